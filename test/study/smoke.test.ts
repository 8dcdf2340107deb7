/**
 * The smoke version of study 1 (studies/smoke.yaml, the committed config): `tapir study` then `tapir results` in
 * child processes, on the real nsfwjs MobileNetV2 at 32 px with 5 images per class. Checks the whole chain (grid →
 * SQLite → report → RESULTS.md with findings and SVG plots) and that every finding sentence in the document is the
 * one computed from the database's numbers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { expandGrid, loadStudy, readReport, StudyStore } from '../../src/study/index.js';
import { computeFindings, DEFAULT_THRESHOLDS, heldMean } from '../../src/study/results-findings.js';
import { restrictToConfig } from '../../src/study/results.js';

const MAIN = new URL('../../src/cli/main.js', import.meta.url).pathname;
const CONFIG = new URL('../../../studies/smoke.yaml', import.meta.url).pathname;
const TCMALLOC = '/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4';
// One thread: OpenMP hand-offs make tiny work several times slower on a busy 2-core machine.
const ENV = { ...process.env, TAPIR_THREADS: '1', ...(existsSync(TCMALLOC) ? { LD_PRELOAD: TCMALLOC } : {}) };

const tapir = (args: string[]) =>
  spawnSync(process.execPath, [MAIN, ...args], { env: ENV, encoding: 'utf8', timeout: 300_000 });

test(
  'studies/smoke.yaml runs end to end and tapir results writes its findings, tables and plots',
  { timeout: 600_000 },
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'tapir-smoke-'));
    try {
      const config = loadStudy(CONFIG);
      assert.equal(config.name, 'smoke');
      const grid = expandGrid(config);
      assert.equal(grid.length, 2 * 2, '2 scores × 2 sparsities');
      const db = join(dir, 'smoke.sqlite');
      const run = tapir(['study', CONFIG, '--db', db, '--no-progress']);
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stdout, /4 cells run, 0 already done/);

      const s = new StudyStore(db, { readonly: true });
      const data = restrictToConfig(readReport(s), config);
      // Per-image correctness: every evaluated row (all but the fine-tuned trained head) and every dense row keeps
      // n_test bits whose count is the stored accuracy.
      const bits = s.correctBits();
      const denseBits = s.denseCorrectBits();
      s.close();
      const popcount = (b: Uint8Array) => b.reduce((a, x) => a + x.toString(2).replaceAll('0', '').length, 0);
      const rows = data.acc.filter((r) => r.head !== 'trained');
      assert.equal(bits.size, rows.length, 'one bit string per evaluated row');
      for (const r of rows) {
        const b = bits.get([r.cell, r.task, r.phase, r.head].join('\t'));
        assert.ok(b, `bits of ${r.cell} ${r.task} ${r.phase} ${r.head}`);
        const n = data.dense.find((d) => d.task === r.task)!.nTest;
        assert.equal(b.length, Math.ceil(n / 8));
        assert.equal(popcount(b) / n, r.accuracy);
      }
      assert.equal(
        denseBits.size,
        data.dense.length + data.pixels.length,
        'the dense reference and the pixel baseline',
      );
      for (const d of data.dense) {
        const b = [...denseBits].find(([k]) => k.split('\t')[2] === d.task && k.split('\t')[0] === d.model)?.[1];
        assert.ok(b, `dense bits of ${d.model} ${d.task}`);
        assert.equal(popcount(b) / d.nTest, d.accuracy);
      }
      assert.equal(data.cells.length, 4);
      // 2 tasks × 2 heads × 2 phases + the fine-tuned source head = 9 rows per cell.
      assert.equal(data.acc.length, 4 * 9);
      assert.ok(data.dense.every((x) => x.nTest > 0 && x.accuracy >= 0 && x.accuracy <= 1));

      const out = join(dir, 'RESULTS.md');
      const res = tapir(['results', CONFIG, '--db-dir', dir, '--out', out, '--plots', join(dir, 'results')]);
      assert.equal(res.status, 0, res.stderr);
      assert.match(res.stdout, /smoke: complete, 4\/4 cells/);
      const md = readFileSync(out, 'utf8');
      assert.match(md, /Status: complete: 4 of 4 cells\./);
      assert.ok(
        md.includes(`Reproduce: \`bin/tapir study ${relative(process.cwd(), CONFIG)} --db ${db}\``),
        'the reproduce command',
      );
      const findings = computeFindings(data, DEFAULT_THRESHOLDS);
      assert.deepEqual(
        findings.map((f) => f.id),
        ['dense', 'p1', 'p2', 'collapse', 'target'],
        'no controls; the target is checked on every held-out task',
      );
      for (const f of findings)
        for (const sentence of f.sentences) assert.ok(md.includes(`- ${sentence}`), `RESULTS.md states: ${sentence}`);
      // Bootstrap intervals from the per-image bits: in the P1 table, each value the stored mean retained of its cell
      // (one seed, one source: one cell per row) and inside its own interval.
      const p1 = findings.find((f) => f.id === 'p1')!;
      const zsDense = p1.table!.rows.filter((r) => r[1] === 'dense');
      assert.equal(zsDense.length, 2, 'one row per score');
      for (const r of zsDense) {
        const cellsOf = data.cells.filter((c) => c.score === r[0]);
        cellsOf.forEach((c, j) => {
          const m = /^([\d.]+)% \[(\d+)–(\d+)\]$/.exec(r[2 + j]!);
          assert.ok(m, `interval cell ${r[2 + j]}`);
          const want = heldMean(data, c.key, 'zero-shot', 'dense')!;
          assert.equal(Number(m[1]), Number((100 * want).toFixed(1)));
          assert.ok(Number(m[2]) <= Number(m[1]) + 0.5 && Number(m[1]) <= Number(m[3]) + 0.5, r[2 + j]);
        });
      }
      const p2 = findings.find((f) => f.id === 'p2')!;
      assert.match(p2.sentences.join(' '), /the change's 95 % interval lies above zero in \d+ and below zero in \d+/);
      const svgs = readdirSync(join(dir, 'results', 'smoke'));
      // accuracy, retained (with bootstrap bands), densities, per-layer errors and the mask overlap of its two scores.
      assert.equal(svgs.length, 5);
      for (const f of svgs) assert.ok(md.includes(`](results/smoke/${f})`));
      assert.match(md, /#### Summary: source accuracy and retained fraction/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
