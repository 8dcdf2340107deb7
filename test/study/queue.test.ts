/**
 * A study spread over machines through BullMQ on Redis (src/study/queue/, docs/SCALING.md). Each test starts its own
 * redis-server on a free loopback port (installed by `make setup`), runs `tapir study --redis` and `tapir worker`
 * child processes on a tiny net and two generated folder datasets under a data root (TAPIR_DATA), and kills them:
 * a worker SIGKILLed mid-cell, the coordinator SIGKILLed once. The final database must equal a single-process run of
 * the same config row for row, bit for bit. Every process started here is killed in `after`, even on failure.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { disposeGraph, exportOnnx } from '../../src/graph/index.js';
import { StudyStore, jobId } from '../../src/study/index.js';
import { makeFolderTask, tempDir, tinyNet } from '../transfer/fixtures.js';

const REPO = new URL('../../../', import.meta.url).pathname;
const MAIN = join(REPO, 'dist', 'src', 'cli', 'main.js');
const TCMALLOC = '/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4';
const WORK = tempDir('tapir-queue-');
const ROOT = join(WORK, 'data');
const ENV = {
  ...process.env,
  TAPIR_THREADS: '1',
  TAPIR_DATA: ROOT,
  TAPIR_CACHE: join(WORK, 'cache'),
  ...(existsSync(TCMALLOC) ? { LD_PRELOAD: TCMALLOC } : {}),
};
// Short locks so a dead worker's cell is handed on within seconds (the defaults are 30 s).
const FAST = ['--lock-duration', '3000', '--stalled-interval', '1000'];

interface Proc {
  child: ChildProcess;
  out: string;
  err: string;
  lines: string[];
  exited: Promise<{ code: number | null; signal: string | null }>;
}
const procs: Proc[] = [];
let redis: ChildProcess | null = null;
let URL_ = '';

/** A child in its own process group (killing the group takes its cell processes too, as a machine going down would). */
function start(
  cmd: string,
  args: string[],
  o: { env?: NodeJS.ProcessEnv; onLine?: (l: string, p: Proc) => void } = {},
): Proc {
  const child = spawn(cmd, args, { env: o.env ?? ENV, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const p: Proc = { child, out: '', err: '', lines: [], exited: null as never };
  p.exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  child.stdout!.on('data', (b: Buffer) => (p.out += b.toString()));
  let partial = '';
  child.stderr!.on('data', (b: Buffer) => {
    p.err += b.toString();
    const parts = (partial + b.toString()).split('\n');
    partial = parts.pop()!;
    for (const l of parts) {
      p.lines.push(l);
      o.onLine?.(l, p);
    }
  });
  procs.push(p);
  return p;
}
const tapir = (args: string[], o: Parameters<typeof start>[2] = {}) => start(process.execPath, [MAIN, ...args], o);
const killGroup = (p: { pid?: number }, sig: NodeJS.Signals = 'SIGKILL') => {
  try {
    process.kill(-p.pid!, sig);
  } catch {
    /* gone already */
  }
};
const until = async (what: string, ok: () => boolean | Promise<boolean>, ms = 240_000) => {
  const t = Date.now();
  while (!(await ok())) {
    if (Date.now() - t > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

after(() => {
  for (const p of procs) killGroup(p.child);
  if (redis) killGroup(redis);
});

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

before(async () => {
  const which = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  assert.equal(
    which.status,
    0,
    'redis-server is not installed: run `make setup` (it installs the Debian package redis-server)',
  );
  const port = await freePort();
  const dir = join(WORK, 'redis');
  mkdirSync(dir, { recursive: true });
  redis = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore', detached: true },
  );
  URL_ = `redis://127.0.0.1:${port}`;
  const c = new Redis(URL_, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  c.on('error', () => undefined);
  await until(
    'redis-server to answer',
    async () => {
      try {
        await c.connect();
        await c.ping();
        return true;
      } catch {
        c.disconnect();
        return false;
      }
    },
    20_000,
  );
  c.disconnect();
  mkdirSync(ROOT, { recursive: true });
  for (const [name, n] of [
    ['qsrc', 24],
    ['qother', 16],
  ] as const)
    cpSync((await makeFolderTask(`queue-${name}`, n)).slice('folder:'.length), join(ROOT, name), { recursive: true });
  const g = tinyNet(11, 16, true);
  await exportOnnx(g, join(ROOT, 'tiny.onnx'));
  disposeGraph(g);
});

const config = (name: string, extra = '') =>
  `name: ${name}\nmodels: ['tiny.onnx']\nsources: ['folder:qsrc']\nheldout: ['folder:qother']\ncalibration: 8\ndata: {cap: 24}\nalpha: 1\n${extra}`;

type Row = Record<string, unknown>;
function dump(db: string): Record<string, Row[]> {
  const s = new StudyStore(db, { readonly: true });
  try {
    return {
      cells: s.all(
        'SELECT key, model, control, score, sparsity, source, seed, achieved_sparsity, allocation, bn, calibration, calib_data FROM cells ORDER BY key',
      ),
      results: s.all(
        'SELECT cell, task, phase, head, accuracy, n_train, n_test FROM results ORDER BY cell, task, phase, head',
      ),
      densities: s.all('SELECT cell, tensor, ord, numel, kept FROM densities ORDER BY cell, tensor'),
      masks: s.all('SELECT cell, tensor, hex(bits) AS h FROM masks ORDER BY cell, tensor'),
      layerErrors: s.all('SELECT cell, tensor, ord, rel_error FROM layer_errors ORDER BY cell, tensor'),
      dense: s.all(
        'SELECT model, protocol, task, head, accuracy, n_train, n_test, classes FROM dense ORDER BY model, task, head',
      ),
      errors: s.all('SELECT key FROM cell_errors'),
    };
  } finally {
    s.close();
  }
}

test(
  '2 workers, one SIGKILLed mid-cell, the coordinator SIGKILLed once: the database equals a single-process run',
  { timeout: 600_000 },
  async () => {
    const cfg = join(WORK, 'grid.yaml');
    writeFileSync(
      cfg,
      config(
        'queue-grid',
        'scores: [magnitude, random, snip]\nsparsities: [0.3, 0.6]\nseeds: [0, 1]\nfinetune: {steps: 300, batch_size: 8}\n',
      ),
    );
    const ref = tapir(['study', cfg, '--db', join(WORK, 'ref.sqlite'), '--no-progress']);
    assert.equal((await ref.exited).code, 0, ref.err);
    const want = dump(join(WORK, 'ref.sqlite'));
    assert.equal(want.cells!.length, 12);
    // 2 tasks × 2 heads × 2 phases + the fine-tuned source head = 9 rows a cell.
    assert.equal(want.results!.length, 12 * 9);

    const db = join(WORK, 'grid.sqlite');
    let coordDone = 0;
    const coord1 = tapir(['study', cfg, '--db', db, '--redis', URL_], {
      onLine: (l) => {
        const m = /^study ([\d.]+)\/(\d+) cells/.exec(l);
        if (m) coordDone = Number(m[1]);
      },
    });
    let killedKey = '';
    const a = tapir(['worker', '--redis', URL_, ...FAST], {
      onLine: (l, p) => {
        const m = /^cell ([0-9a-f]{16}) .*: fine-tune$/.exec(l);
        if (m && !killedKey) {
          killedKey = m[1]!;
          killGroup(p.child);
        }
      },
    });
    const b = tapir(['worker', '--redis', URL_, ...FAST]);
    await until('worker A to reach a fine-tune stage', () => killedKey !== '');
    assert.equal((await a.exited).signal, 'SIGKILL');
    assert.ok(
      !a.lines.some((l) => l.startsWith(`cell ${killedKey}`) && / done in /.test(l)),
      'worker A was killed before it finished the cell',
    );

    // The coordinator dies once it has written a few cells; the workers go on, leaving finished jobs in Redis.
    const stored = () => {
      try {
        return dump(db).cells!.length;
      } catch {
        return 0;
      }
    };
    await until('the coordinator to write 3 cells', () => coordDone > 0 && stored() >= 3);
    killGroup(coord1.child);
    assert.equal((await coord1.exited).signal, 'SIGKILL');
    const q = new Queue('tapir', { connection: { url: URL_, maxRetriesPerRequest: null } });
    try {
      await until('a finished job waiting in Redis', async () => (await q.getCompletedCount()) >= 1);
      const partial = dump(db).cells!.length;
      assert.ok(partial >= 3 && partial < 12, `coordinator 1 wrote ${partial} cells`);

      const coord2 = tapir(['study', cfg, '--db', db, '--redis', URL_, '--json']);
      const r2 = await coord2.exited;
      assert.equal(r2.code, 0, coord2.out + coord2.err);
      const run = (
        JSON.parse(coord2.out) as {
          run: { ran: number; enqueued: number; pickedUp: number; stalled: number; skipped: number; failed: unknown[] };
        }
      ).run;
      assert.equal(run.enqueued, 0, 'every missing cell still had its job: nothing enqueued twice');
      assert.ok(run.pickedUp >= 1, 'finished jobs left in Redis were collected');
      assert.equal(run.skipped, partial);
      assert.equal(run.ran, 12 - partial);
      assert.deepEqual(run.failed, []);
      // The killed worker's cell was run again by the other worker, after BullMQ's stalled check handed it on.
      const s = new StudyStore(db, { readonly: true });
      const info = JSON.parse(s.all<{ info: string }>('SELECT info FROM cells WHERE key = ?', killedKey)[0]!.info) as {
        queue: { worker: string; stalled: number };
      };
      s.close();
      assert.ok(info.queue.worker.endsWith(`:${b.child.pid}`), `cell ${killedKey} ran on ${info.queue.worker}`);
      assert.equal(info.queue.stalled, 1);
      // Same rows as the single-process run, bit for bit (accuracies, masks, densities, layer errors, dense references).
      assert.deepEqual(dump(db), want);
      // Nothing of this study is left in Redis.
      const counts = await q.getJobCounts('completed', 'failed', 'active', 'wait', 'delayed');
      assert.deepEqual(counts, { completed: 0, failed: 0, active: 0, wait: 0, delayed: 0 });
      assert.equal(await q.getJob(jobId(killedKey)), undefined);
    } finally {
      await q.close();
      killGroup(b.child, 'SIGTERM');
    }
    const rb = await b.exited;
    assert.equal(rb.code, 0, `a worker stops cleanly on SIGTERM: ${b.err}`);
  },
);

test(
  'a cell that fails deterministically fails once, with its error in the database and the report',
  { timeout: 300_000 },
  async () => {
    const cfg = join(WORK, 'fail.yaml');
    // min_density 0.5 reserves half the weights: sparsity 0.8 cannot be met (the allocation refuses), 0.3 can.
    writeFileSync(
      cfg,
      config('queue-fail', 'scores: [magnitude]\nsparsities: [0.3, 0.8]\nprune: {min_density: 0.5}\nfinetune: false\n'),
    );
    const db = join(WORK, 'fail.sqlite');
    const w = tapir(['worker', '--redis', URL_, '--queue', 'fails', ...FAST]);
    const c1 = tapir(['study', cfg, '--db', db, '--redis', URL_, '--queue', 'fails', '--no-progress']);
    const r1 = await c1.exited;
    assert.equal(r1.code, 1, c1.err);
    assert.match(c1.err, /1 cell of .*fail\.yaml failed/);
    assert.match(c1.err, /minDensity 0\.5/);
    assert.match(c1.err, /fix: .*--retry-failed/);
    const d = dump(db);
    assert.equal(d.cells!.length, 1);
    assert.equal((d.cells![0] as { sparsity: number }).sparsity, 0.3);
    const s = new StudyStore(db, { readonly: true });
    const errs = s.cellErrors();
    s.close();
    assert.equal(errs.length, 1);
    assert.equal(errs[0]!.sparsity, 0.8);
    assert.equal(errs[0]!.attempts, 1, 'no retry');
    assert.match(errs[0]!.error, /minDensity/);
    const failures = () => w.lines.filter((l) => / failed: /.test(l)).length;
    assert.equal(failures(), 1);
    // The report shows the failed cell.
    const rep = spawnSync(process.execPath, [MAIN, 'report', '--db', db, '--out', join(WORK, 'fail.html')], {
      env: ENV,
      encoding: 'utf8',
    });
    assert.equal(rep.status, 0, rep.stderr);
    assert.match(rep.stdout, /Failed cells/);
    assert.match(rep.stdout, /minDensity 0\.5/);
    // Rerunning does not run it again (still failed, still one attempt); --retry-failed does, once.
    const c2 = tapir(['study', cfg, '--db', db, '--redis', URL_, '--queue', 'fails', '--no-progress']);
    assert.equal((await c2.exited).code, 1);
    assert.equal(failures(), 1);
    const c3 = tapir([
      'study',
      cfg,
      '--db',
      db,
      '--redis',
      URL_,
      '--queue',
      'fails',
      '--no-progress',
      '--retry-failed',
    ]);
    assert.equal((await c3.exited).code, 1, c3.err);
    assert.equal(failures(), 2);
    killGroup(w.child, 'SIGTERM');
    await w.exited;
  },
);

test(
  "workers refuse a study whose build or data differ from the coordinator's, naming the fix; the cell goes to a matching worker",
  { timeout: 300_000 },
  async () => {
    const cfg = join(WORK, 'one.yaml');
    writeFileSync(cfg, config('queue-one', 'scores: [magnitude]\nsparsities: [0.5]\nfinetune: false\n'));
    const db = join(WORK, 'one.sqlite');
    const coord = tapir(['study', cfg, '--db', db, '--redis', URL_, '--queue', 'checks', '--no-progress']);
    // Other data: the same folder with one image replaced by a different one.
    const other = join(WORK, 'data-other');
    cpSync(ROOT, other, { recursive: true });
    const cls = readdirSync(join(other, 'qsrc')).sort()[0]!;
    const img = readdirSync(join(other, 'qsrc', cls)).sort()[0]!;
    appendFileSync(join(other, 'qsrc', cls, img), new Uint8Array(7));
    const badData = tapir(['worker', '--redis', URL_, '--queue', 'checks', ...FAST], {
      env: { ...ENV, TAPIR_DATA: other },
    });
    const rd = await badData.exited;
    assert.equal(rd.code, 1, badData.err);
    assert.match(badData.err, /refuses study queue-one/);
    assert.match(badData.err, /task folder:qsrc: different here \(data root TAPIR_DATA=.*data-other\)/);
    assert.match(badData.err, /put the same files under this worker's TAPIR_DATA/);
    // Another build: a copy of the compiled code with one file changed.
    const alt = join(WORK, 'alt');
    cpSync(join(REPO, 'dist'), join(alt, 'dist'), { recursive: true });
    cpSync(join(REPO, 'package.json'), join(alt, 'package.json'));
    symlinkSync(join(REPO, 'node_modules'), join(alt, 'node_modules'));
    symlinkSync(join(REPO, 'build'), join(alt, 'build'));
    appendFileSync(join(alt, 'dist', 'src', 'study', 'grid.js'), '\n// another build\n');
    const badBuild = start(process.execPath, [
      join(alt, 'dist', 'src', 'cli', 'main.js'),
      'worker',
      '--redis',
      URL_,
      '--queue',
      'checks',
      ...FAST,
    ]);
    const rv = await badBuild.exited;
    assert.equal(rv.code, 1, badBuild.err);
    assert.match(
      badBuild.err,
      /the coordinator runs tapir [\d.]+\+[0-9a-f]{12}, this worker tapir [\d.]+\+[0-9a-f]{12}: check out and build the same commit/,
    );
    // A matching worker takes the cell the others put back.
    const good = tapir(['worker', '--redis', URL_, '--queue', 'checks', ...FAST]);
    const rc = await coord.exited;
    assert.equal(rc.code, 0, coord.err);
    assert.equal(coord.err.match(/refused this study/g)?.length, 2, coord.err);
    assert.equal(dump(db).cells!.length, 1);
    killGroup(good.child, 'SIGTERM');
    await good.exited;
  },
);

test(
  'the coordinator refuses absolute data paths and an unreachable Redis before creating the database; a bad TAPIR_DATA is refused',
  { timeout: 120_000 },
  () => {
    const cfg = join(WORK, 'abs.yaml');
    writeFileSync(
      cfg,
      config('queue-abs', 'scores: [magnitude]\nsparsities: [0.5]\nfinetune: false\n').replace(
        "heldout: ['folder:qother']",
        `heldout: ['folder:${join(ROOT, 'qother')}']`,
      ),
    );
    const db = join(WORK, 'abs.sqlite');
    const r = spawnSync(process.execPath, [MAIN, 'study', cfg, '--db', db, '--redis', URL_], {
      env: ENV,
      encoding: 'utf8',
    });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /abs\.yaml: heldout\[0\]: 'folder:\/.*qother' is an absolute path/);
    assert.match(r.stderr, /fix: write it relative to TAPIR_DATA/);
    const cfg2 = join(WORK, 'rel.yaml');
    writeFileSync(cfg2, config('queue-rel', 'scores: [magnitude]\nsparsities: [0.5]\nfinetune: false\n'));
    const r2 = spawnSync(process.execPath, [MAIN, 'study', cfg2, '--db', db, '--redis', 'redis://127.0.0.1:1'], {
      env: ENV,
      encoding: 'utf8',
    });
    assert.equal(r2.status, 1, r2.stderr);
    assert.match(r2.stderr, /cannot reach Redis at redis:\/\/127\.0\.0\.1:1/);
    assert.match(r2.stderr, /fix: start redis-server/);
    assert.equal(existsSync(db), false, 'no database was created');
    const r3 = spawnSync(process.execPath, [MAIN, 'worker', '--redis', URL_], {
      env: { ...ENV, TAPIR_DATA: join(WORK, 'no-such-dir') },
      encoding: 'utf8',
    });
    assert.equal(r3.status, 1, r3.stderr);
    assert.match(r3.stderr, /TAPIR_DATA=.*no-such-dir is not a directory \(it does not exist\)/);
  },
);
