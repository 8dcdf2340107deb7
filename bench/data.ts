/**
 * Data benchmark: is loading ever the bottleneck of training?
 *
 *   1. cold prepare: open a task and decode + resize + cache every image at 96 px (empty cache);
 *   2. warm epoch: read the task's training split back from the cache (checksums verified) and build every
 *      NCHW float32 batch of 32 with a model's preprocessing (range + mean/std);
 *   3. training: forward + backward of a small 3-conv network at 96 px, batch 32, in the engine, same run.
 *
 * `warm_over_train` = warm-epoch images/s ÷ training images/s; `ratio` is the same quantity written as
 * (training time per image) / (warm load time per image). It must be ≫ 1: a warm epoch costs a small fraction of
 * the training step it feeds. Medians over `--runs` repeats. Last line: one JSON object.
 *
 *   node dist/bench/data.js [--task fashion-mnist] [--cap 300] [--runs 5] [--clipart-cap 4]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getNumThreads, liveTensors, manualSeed, nn, randint, randn, type Tensor } from '../src/engine/index.js';
import { batches, loadSplits, openTask, SPLIT_NAMES, type Preprocess } from '../src/data/index.js';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2)
  args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '');
const TASK = args.get('task') ?? 'fashion-mnist';
const CAP = Number(args.get('cap') ?? 300);
const RUNS = Number(args.get('runs') ?? 5);
const CLIPART_CAP = Number(args.get('clipart-cap') ?? 4);
const SIZE = [96, 96] as const;
const BATCH = 32;
const P: Preprocess = {
  size: SIZE,
  range: [0, 1],
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
  channels: 3,
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const now = () => performance.now();

const cache = mkdtempSync(join(tmpdir(), 'tapir-bench-data-'));
process.env.TAPIR_CACHE = cache;
try {
  // 1. cold prepare
  let t0 = now();
  const task = await openTask(TASK, { cap: CAP });
  const cold = await loadSplits(task, SIZE);
  const coldS = (now() - t0) / 1000;
  const nCold = SPLIT_NAMES.reduce((a, s) => a + cold.sets[s]!.n, 0);
  let clip: { n: number; s: number } | null = null;
  if (CLIPART_CAP > 0) {
    t0 = now();
    const ct = await openTask('clipart', { cap: CLIPART_CAP });
    const c = await loadSplits(ct, SIZE);
    clip = { n: SPLIT_NAMES.reduce((a, s) => a + c.sets[s]!.n, 0), s: (now() - t0) / 1000 };
  }

  // 2. warm epochs: cache read + batch building, tensors freed as a training loop would
  const live0 = liveTensors();
  const warm: number[] = [];
  let nWarm = 0;
  for (let r = 0; r < RUNS; r++) {
    t0 = now();
    const { sets, stats } = await loadSplits(task, SIZE, ['train']);
    if (stats.decoded !== 0) throw new Error('warm epoch decoded images: the cache was not used');
    for (const b of batches(sets.train!, P, { batchSize: BATCH, shuffle: true, seed: r })) {
      b.x.dispose();
      b.y.dispose();
    }
    warm.push((now() - t0) / 1000);
    nWarm = sets.train!.n;
  }
  const leaked = liveTensors() - live0;

  // 3. engine fwd+bwd on a small conv net at 96 px
  manualSeed(0);
  const param = (shape: number[], scale: number) => {
    const p = randn(shape).mul(scale);
    p.requiresGrad_(true);
    return p;
  };
  const W = [param([16, 3, 3, 3], 0.2), param([32, 16, 3, 3], 0.08), param([64, 32, 3, 3], 0.06), param([10, 64], 0.1)];
  const x = randn([BATCH, 3, SIZE[0], SIZE[1]]);
  const y = randint(0, 10, [BATCH]);
  const step = () => {
    const tmp: Tensor[] = [];
    const t = <T extends Tensor>(v: T) => (tmp.push(v), v);
    let h: Tensor = x;
    for (let l = 0; l < 3; l++) h = t(nn.relu(t(nn.conv2d(h, W[l]!, null, { stride: 2, padding: 1 }))));
    const feat = t(t(nn.adaptiveAvgPool2d(h, [1, 1])).flatten(1));
    const loss = t(nn.crossEntropy(t(nn.linear(feat, W[3]!)), y));
    loss.backward();
    for (const v of tmp) v.dispose();
    for (const p of W) p.zeroGrad();
  };
  step();
  step();
  const train: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    t0 = now();
    step();
    train.push((now() - t0) / 1000);
  }

  const coldIps = nCold / coldS;
  const warmIps = nWarm / median(warm);
  const trainIps = BATCH / median(train);
  const rows: [string, string, string][] = [
    [`cold prepare ${task.id} cap ${CAP} (${nCold} images)`, `${coldS.toFixed(2)} s`, `${coldIps.toFixed(0)} img/s`],
    ...(clip
      ? [
          [
            `cold prepare clipart cap ${CLIPART_CAP} (${clip.n} images)`,
            `${clip.s.toFixed(2)} s`,
            `${(clip.n / clip.s).toFixed(1)} img/s`,
          ] as [string, string, string],
        ]
      : []),
    [
      `warm epoch train split (${nWarm} images, batch ${BATCH})`,
      `${(median(warm) * 1000).toFixed(0)} ms`,
      `${warmIps.toFixed(0)} img/s`,
    ],
    [
      `engine fwd+bwd 3-conv net 96 px, batch ${BATCH}`,
      `${(median(train) * 1000).toFixed(0)} ms`,
      `${trainIps.toFixed(0)} img/s`,
    ],
  ];
  const w0 = Math.max(...rows.map((r) => r[0].length));
  console.log(`threads ${getNumThreads()}, ${RUNS} runs, medians`);
  for (const r of rows) console.log(`${r[0].padEnd(w0)}  ${r[1].padStart(9)}  ${r[2].padStart(12)}`);
  console.log(
    `warm epoch is ${(warmIps / trainIps).toFixed(1)}x faster than training on it; live tensors leaked by the warm epochs: ${leaked}`,
  );
  const ratio = warmIps / trainIps;
  console.log(
    JSON.stringify({
      bench: 'data',
      task: task.id,
      size: SIZE,
      batch: BATCH,
      threads: getNumThreads(),
      n: RUNS,
      cold_images: nCold,
      cold_images_per_s: +coldIps.toFixed(1),
      ...(clip ? { clipart_cold_images: clip.n, clipart_cold_images_per_s: +(clip.n / clip.s).toFixed(2) } : {}),
      warm_images: nWarm,
      warm_images_per_s: +warmIps.toFixed(1),
      train_images_per_s: +trainIps.toFixed(1),
      warm_over_train: +ratio.toFixed(2),
      tapir_ms: +((1000 * median(warm)) / nWarm).toFixed(4),
      peer_ms: +((1000 * median(train)) / BATCH).toFixed(4),
      ratio: +ratio.toFixed(2),
      ratio_definition:
        'training ms per image / warm-load ms per image (= warm_over_train); tapir_ms = warm load per image, peer_ms = fwd+bwd per image',
      live_tensors_leaked: leaked,
    }),
  );
} finally {
  rmSync(cache, { recursive: true, force: true });
}
