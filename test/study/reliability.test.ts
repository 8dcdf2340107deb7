/**
 * Reliability cases of studies and reports (one test per case, named after it): a report never mixes two runs of a
 * study with different settings silently (case 2) and says when cells are missing (case 6).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  expandGrid,
  markdownReport,
  parseStudy,
  protocolHash,
  readReport,
  reportTables,
  StudyStore,
} from '../../src/study/index.js';
import { tempDir } from '../transfer/fixtures.js';

const WORK = tempDir('tapir-study-reliability-');
const yaml = (alpha: number) =>
  `name: s\nmodels: [m]\nscores: [magnitude]\nsparsities: [0.5, 0.7]\nsources: [digits]\nheldout: [mnist]\nalpha: ${alpha}\nfinetune: false\n`;

function writeCells(s: StudyStore, alpha: number, n: number): void {
  const c = parseStudy(yaml(alpha), 's.yaml');
  const protocol = protocolHash(c);
  s.recordStudy(c.name, protocol, c);
  s.writeDense(
    'm',
    protocol,
    ['digits', 'mnist'].map((t) => ({
      task: t,
      head: 'dense',
      accuracy: 0.8,
      nTrain: 8,
      nTest: 4,
      classes: ['a', 'b'],
    })),
    [],
    {},
  );
  for (const cell of expandGrid(c).slice(0, n))
    s.writeCell(
      {
        key: cell.key,
        study: c.name,
        protocol,
        model: cell.model,
        control: cell.control,
        score: cell.scoreLabel,
        scoreSpec: cell.score,
        sparsity: cell.sparsity,
        source: cell.source,
        seed: cell.seed,
        achievedSparsity: cell.sparsity,
        info: {},
        wallS: 1,
      },
      ['digits', 'mnist'].map((t) => ({
        task: t,
        phase: 'zero-shot',
        head: 'dense',
        accuracy: alpha === 1 ? 0.4 : 0.6,
        nTrain: 8,
        nTest: 4,
      })),
      [],
      new Map(),
    );
}

test('case 2: a database holding two runs of one study with different settings shows which row ran with which', () => {
  const s = new StudyStore(join(WORK, 'two.sqlite'));
  writeCells(s, 1, 2);
  writeCells(s, 1000, 2);
  const d = readReport(s);
  s.close();
  const summary = reportTables(d)[0]!;
  assert.equal(summary.header[0], 'settings');
  assert.deepEqual(
    summary.rows.map((r) => r[0]),
    ['alpha=1', 'alpha=1', 'alpha=1000', 'alpha=1000'],
  );
  assert.match(summary.note!, /holds 2 runs of the study with different settings/);
});

test('case 6: a report on a partial database says how many cells are missing', () => {
  const s = new StudyStore(join(WORK, 'partial.sqlite'));
  writeCells(s, 1, 1);
  const d = readReport(s);
  s.close();
  assert.match(
    markdownReport(d),
    /INCOMPLETE: 1 of 2 cells of study s are finished; re-run `tapir study` on its config to finish/,
  );
});
