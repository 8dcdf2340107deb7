/**
 * The real protocol, small: `tapir study` in a child process on MobileNetV2 at 32 px with tiny tasks. One run goes
 * through; another is killed with SIGKILL in the middle of its second cell and then resumed. Both must end with
 * the same table, with no duplicate and no missing row.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StudyStore } from '../../src/study/index.js';

const MAIN = new URL('../../src/cli/main.js', import.meta.url).pathname;
const TCMALLOC = '/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4';
// One thread: OpenMP hand-offs make tiny work several times slower on a busy 2-core machine.
const ENV = { ...process.env, TAPIR_THREADS: '1', ...(existsSync(TCMALLOC) ? { LD_PRELOAD: TCMALLOC } : {}) };

const CONFIG = `
name: smoke
models: [mobilenet_v2]
resolution: 32
scores: [magnitude, random]
sparsities: [0.5]
sources: ['digits[0-2]']
heldout: ['mnist[0-2]']
calibration: 8
data: {cap: 12}
alpha: 10
finetune: {steps: 2, batch_size: 8}
`;

function study(
  cfg: string,
  db: string,
  onLine?: (line: string, child: ChildProcess) => void,
): Promise<{ code: number | null; signal: string | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, 'study', cfg, '--db', db], {
      env: ENV,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => {
      const s = b.toString();
      err += s;
      for (const line of s.split('\n')) if (line) onLine?.(line, child);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, out, err }));
  });
}

type Row = Record<string, unknown>;
function dump(db: string): { cells: Row[]; results: Row[]; densities: Row[]; masks: Row[]; dense: Row[] } {
  const s = new StudyStore(db, { readonly: true });
  try {
    return {
      cells: s.all(
        'SELECT key, model, control, score, sparsity, source, seed, achieved_sparsity FROM cells ORDER BY key',
      ),
      results: s.all(
        'SELECT cell, task, phase, head, accuracy, n_train, n_test FROM results ORDER BY cell, task, phase, head',
      ),
      densities: s.all('SELECT cell, tensor, numel, kept FROM densities ORDER BY cell, tensor'),
      masks: s.all('SELECT cell, tensor, hex(bits) AS h FROM masks ORDER BY cell, tensor'),
      dense: s.all('SELECT model, task, head, accuracy FROM dense ORDER BY model, task, head'),
    };
  } finally {
    s.close();
  }
}

test(
  'a study killed with SIGKILL mid-cell resumes to the same table, without duplicate or missing rows',
  { timeout: 600_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tapir-resume-'));
    try {
      const cfg = join(dir, 'smoke.yaml');
      writeFileSync(cfg, CONFIG);
      const full = await study(cfg, join(dir, 'full.sqlite'));
      assert.equal(full.code, 0, full.err);
      assert.match(full.out, /2 cells run, 0 already done/);
      const want = dump(join(dir, 'full.sqlite'));
      // 2 tasks × 2 heads × 2 phases + the fine-tuned task head on the source = 9 rows per cell.
      assert.equal(want.cells.length, 2);
      assert.equal(want.results.length, 2 * 9);
      assert.ok(want.densities.length > 0 && want.masks.length > 0);
      // The unpruned pre-trained features separate these digits; a random mask at 50% must not be better than magnitude.
      assert.ok(
        want.dense.filter((d) => d.model === 'mobilenet_v2@32').every((d) => (d.accuracy as number) > 0.5),
        JSON.stringify(want.dense),
      );

      const db = join(dir, 'killed.sqlite');
      let killed = false;
      const first = await study(cfg, db, (line, child) => {
        // The second cell (random) is running: its masks exist, nothing of it is committed yet.
        if (!killed && /^study [\d.]+\/3 cells .*random 50% +fine-tune/.test(line)) {
          killed = true;
          child.kill('SIGKILL');
        }
      });
      assert.ok(killed, `never saw the second cell's fine-tune stage:\n${first.err}`);
      assert.equal(first.signal, 'SIGKILL');
      const partial = dump(db);
      assert.equal(partial.cells.length, 1, 'the cell that was killed left nothing behind');
      assert.equal(partial.results.length, 9);

      const resumed = await study(cfg, db);
      assert.equal(resumed.code, 0, resumed.err);
      assert.match(resumed.out, /1 cells run, 1 already done/);
      assert.deepEqual(dump(db), want);

      const again = await study(cfg, db);
      assert.match(again.out, /0 cells run, 2 already done/);
      assert.deepEqual(dump(db), want);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
