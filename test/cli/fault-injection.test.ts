/**
 * Fault injection (cases 4 and 7 of reliability): `tapir prune --out d` and `tapir report --out f` are killed with
 * SIGKILL at seeded random moments, 20 times each, into an output that already holds an earlier run. Afterwards a
 * later command must find the earlier output or the new one whole, never a mix accepted as valid: the pruned-model
 * directory opens with the masks of one of the two runs (or is refused), the report equals one of the two reports.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { disposeGraph } from '../../src/graph/index.js';
import { mulberry32 } from '../../src/data/rng.js';
import { openModel } from '../../src/transfer/index.js';
import { argv, cliWorkspace, runCli } from '../helpers/cli.js';

const W = cliWorkspace({ dir: 'tapir-faults-', task: 'faults', seed: 4 });
const WORK = W.work;
const MODEL = W.model;
const MAIN = new URL('../../src/cli/main.js', import.meta.url).pathname;

/** Runs the CLI in a child and SIGKILLs it after `ms` (or lets it finish first); resolves when it is gone. */
function runKilled(args: readonly string[], ms: number): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      stdio: 'ignore',
      env: { ...process.env, TAPIR_THREADS: '1' },
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** The kept-bit fingerprint of a pruned-model directory (mask of every tensor), or null when it is refused. */
async function maskPrint(dir: string): Promise<string | null> {
  try {
    const m = await openModel(dir);
    const print = [...m.graph.masks]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([n, t]) => `${n}:${(t.toArray() as number[]).join('')}`)
      .join('|');
    disposeGraph(m.graph);
    return print;
  } catch {
    return null;
  }
}

test(
  'a prune killed at 20 random moments never leaves a directory that opens as a mix of two runs',
  { timeout: 300_000 },
  async () => {
    const a = ['prune', '--model', MODEL, '--score', 'magnitude', '--sparsity', '0.3', '--no-progress'];
    const b = [
      'prune',
      '--model',
      MODEL,
      '--score',
      'sparsegpt',
      '--sparsity',
      '0.6',
      '--source',
      W.task,
      '--cap',
      '20',
      '--calib',
      '8',
      '--no-progress',
    ];
    const refA = join(WORK, 'ref-a');
    const refB = join(WORK, 'ref-b');
    await runCli([...a, '--out', refA]);
    const t0 = performance.now();
    await runCli([...b, '--out', refB]);
    const span = Math.max(800, 3 * (performance.now() - t0));
    const valid = new Set([await maskPrint(refA), await maskPrint(refB)]);
    assert.equal(valid.size, 2);
    const out = join(WORK, 'target');
    const rand = mulberry32(7);
    let refused = 0;
    for (let i = 0; i < 20; i++) {
      await runCli([...(i % 2 ? b : a), '--out', out]);
      await runKilled([...(i % 2 ? a : b), '--out', out], Math.floor(rand() * span));
      const p = await maskPrint(out);
      if (p === null) refused++;
      else assert.ok(valid.has(p), `run ${i}: the directory opens with masks of neither run`);
    }
    // The directory always exists as one of the two runs here (it is replaced by a rename), so none is refused.
    assert.equal(refused, 0);
  },
);

test(
  'a report killed at 20 random moments leaves the earlier report or the new one, whole',
  { timeout: 300_000 },
  async () => {
    const yaml = join(WORK, 'f.yaml');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(
      yaml,
      `models: ['${MODEL}']\nscores: [magnitude, random]\nsparsities: [0.5]\nsources: ['${W.task}']\nheldout: []\ndata: {cap: 20}\nheads: [dense]\nalpha: 1\nfinetune: false\n`,
    );
    const db1 = join(WORK, 'f1.sqlite');
    const db2 = join(WORK, 'f2.sqlite');
    await runCli(argv`study ${yaml} --db ${db1} --no-progress --max-cells 1`);
    await runCli(['study', yaml, '--db', db2, '--no-progress']);
    const out = join(WORK, 'report.html');
    await runCli(['report', '--db', db1, '--out', out]);
    const r1 = readFileSync(out, 'utf8');
    const t0 = performance.now();
    await runCli(['report', '--db', db2, '--out', out]);
    const span = Math.max(800, 3 * (performance.now() - t0));
    const r2 = readFileSync(out, 'utf8');
    assert.notEqual(r1, r2);
    const rand = mulberry32(11);
    for (let i = 0; i < 20; i++) {
      await runCli(['report', '--db', i % 2 ? db2 : db1, '--out', out]);
      await runKilled(['report', '--db', i % 2 ? db1 : db2, '--out', out], Math.floor(rand() * span));
      assert.ok(existsSync(out), `run ${i}: the report is gone`);
      const now = readFileSync(out, 'utf8');
      // Generated-at stamps and vega's per-process element counters aside, the file is one of the two reports, whole.
      const strip = (s: string) =>
        s.replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, 'T').replace(/\b(gradient|clip|pattern)_?\d+/g, '$1');
      assert.ok(
        [strip(r1), strip(r2)].includes(strip(now)),
        `run ${i}: a partial or mixed report (${now.length} bytes)`,
      );
    }
  },
);
