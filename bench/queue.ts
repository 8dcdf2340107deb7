/**
 * Study over Redis (docs/SCALING.md): the same small grid run by one process (`tapir study`), then through
 * `tapir study --redis` with 1 and with 2 `tapir worker`s on this machine (TAPIR_THREADS=1 each), alternating the
 * three set-ups run by run. Prints a table of medians, then one JSON line {"bench":"queue", …, "ratio": 2-worker wall
 * time / 1-worker wall time}. Also reports the coordinator's own time per cell (enqueue; fetch + commit + remove).
 *
 *   LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 node dist/bench/queue.js [runs]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { disposeGraph, exportOnnx } from '../src/graph/index.js';
import { makeFolderTask, tinyNet } from '../test/transfer/fixtures.js';

const MAIN = new URL('../src/cli/main.js', import.meta.url).pathname;
const runs = Number(process.argv[2] ?? 2);
const dir = mkdtempSync(join(tmpdir(), 'tapir-bench-queue-'));
const root = join(dir, 'data');
const env = { ...process.env, TAPIR_THREADS: '1', TAPIR_DATA: root, TAPIR_CACHE: join(dir, 'cache') };
const kids: ChildProcess[] = [];
const kill = (c: ChildProcess, sig: NodeJS.Signals = 'SIGKILL') => {
  try {
    process.kill(-c.pid!, sig);
  } catch {
    /* gone */
  }
};
process.on('exit', () => {
  for (const c of kids) kill(c);
  rmSync(dir, { recursive: true, force: true });
});

const port = await new Promise<number>((resolve) => {
  const s = createServer();
  s.listen(0, '127.0.0.1', () => {
    const p = (s.address() as { port: number }).port;
    s.close(() => resolve(p));
  });
});
const redis = spawn(
  'redis-server',
  ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
  { stdio: 'ignore', detached: true },
);
kids.push(redis);
const url = `redis://127.0.0.1:${port}`;
mkdirSync(root, { recursive: true });
for (const [name, n] of [
  ['bsrc', 40],
  ['bother', 24],
] as const)
  cpSync((await makeFolderTask(`bench-queue-${name}`, n)).slice('folder:'.length), join(root, name), {
    recursive: true,
  });
const g = tinyNet(5, 16, true);
await exportOnnx(g, join(root, 'tiny.onnx'));
disposeGraph(g);
const cfg = join(dir, 'grid.yaml');
const CELLS = 24;
writeFileSync(
  cfg,
  `name: bench-queue\nmodels: ['tiny.onnx']\nscores: [magnitude, random, snip]\nsparsities: [0.3, 0.5, 0.7, 0.9]\nseeds: [0, 1]\n` +
    `sources: ['folder:bsrc']\nheldout: ['folder:bother']\ncalibration: 16\ndata: {cap: 40}\nalpha: 1\nfinetune: {steps: 1500, batch_size: 32}\n`,
);

interface Run {
  wallS: number;
  enqueueMsPerCell?: number;
  collectMsPerCell?: number;
}
function local(k: number): Run {
  const r = spawnSync(process.execPath, [MAIN, 'study', cfg, '--db', join(dir, `local-${k}.sqlite`), '--json'], {
    env,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(r.stdout + r.stderr);
  return { wallS: (JSON.parse(r.stdout) as { run: { wallS: number } }).run.wallS };
}
async function queued(workers: number, k: number): Promise<Run> {
  const queue = `bench-${workers}-${k}`;
  const ws = Array.from({ length: workers }, () => {
    const w = spawn(process.execPath, [MAIN, 'worker', '--redis', url, '--queue', queue], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
    });
    kids.push(w);
    return new Promise<ChildProcess>((resolve) =>
      w.stderr!.on('data', (b: Buffer) => {
        if (/ ready: /.test(b.toString())) resolve(w);
      }),
    );
  });
  const started = await Promise.all(ws);
  const c = spawn(
    process.execPath,
    [MAIN, 'study', cfg, '--db', join(dir, `q${workers}-${k}.sqlite`), '--redis', url, '--queue', queue, '--json'],
    { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  kids.push(c);
  let out = '';
  c.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  const code = await new Promise<number | null>((resolve) => c.on('close', resolve));
  for (const w of started) kill(w, 'SIGTERM');
  if (code !== 0) throw new Error(out);
  const run = (
    JSON.parse(out) as {
      run: { wallS: number; ran: number; coordinator: { enqueueMsPerCell: number; collectMsPerCell: number } };
    }
  ).run;
  if (run.ran !== CELLS) throw new Error(`ran ${run.ran} cells`);
  return { wallS: run.wallS, ...run.coordinator };
}

const med = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const res: Record<string, Run[]> = { local: [], w1: [], w2: [] };
const load0 = loadavg()[0]!;
for (let k = 0; k < runs; k++) {
  res.local!.push(local(k));
  res.w1!.push(await queued(1, k));
  res.w2!.push(await queued(2, k));
  process.stderr.write(
    `run ${k + 1}/${runs}: local ${res.local!.at(-1)!.wallS.toFixed(1)} s, 1 worker ${res.w1!.at(-1)!.wallS.toFixed(1)} s, 2 workers ${res.w2!.at(-1)!.wallS.toFixed(1)} s\n`,
  );
}
const row = (name: string, xs: Run[]) =>
  `| ${name} | ${med(xs.map((x) => x.wallS)).toFixed(1)} | ${(med(xs.map((x) => x.wallS)) / CELLS).toFixed(2)} | ${xs[0]!.enqueueMsPerCell === undefined ? '–' : med(xs.map((x) => x.enqueueMsPerCell!)).toFixed(2)} | ${xs[0]!.collectMsPerCell === undefined ? '–' : med(xs.map((x) => x.collectMsPerCell!)).toFixed(2)} |`;
console.log(
  `${CELLS} cells, tiny conv net, ${runs} runs each (medians), ${cpus().length} cores, load average ${load0.toFixed(2)} → ${loadavg()[0]!.toFixed(2)}\n`,
);
console.log(
  '| set-up | wall s | s a cell | coordinator enqueue ms/cell | coordinator collect ms/cell |\n|---|---|---|---|---|',
);
console.log(
  [
    row('tapir study (one process)', res.local!),
    row('--redis, 1 worker', res.w1!),
    row('--redis, 2 workers', res.w2!),
  ].join('\n'),
);
const w1 = med(res.w1!.map((x) => x.wallS));
const w2 = med(res.w2!.map((x) => x.wallS));
console.log(
  JSON.stringify({
    bench: 'queue',
    cells: CELLS,
    n: runs,
    threads: 1,
    local_s: med(res.local!.map((x) => x.wallS)),
    w1_s: w1,
    w2_s: w2,
    enqueue_ms_per_cell: med(res.w2!.map((x) => x.enqueueMsPerCell!)),
    collect_ms_per_cell: med(res.w2!.map((x) => x.collectMsPerCell!)),
    load: [load0, loadavg()[0]],
    ratio: w2 / w1,
  }),
);
process.exit(0);
