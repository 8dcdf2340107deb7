// A 1000-step SGD loop on a small CNN must keep the live-tensor count flat and lower the loss.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  grad,
  keep,
  liveTensors,
  manualSeed,
  nn,
  noGrad,
  ones,
  randint,
  randn,
  scope,
  setNumThreads,
  zeros,
  type Tensor,
} from '../../src/engine/index.js';

test('1000 SGD steps on conv → BN(train) → relu → maxpool → linear: flat live-tensor count, falling loss', () => {
  // Ops this small cost less than a thread hand-off; on a busy 2-core machine 2 threads made this loop 8× slower.
  setNumThreads(1);
  const live0 = liveTensors();
  manualSeed(0);
  const o = { requiresGrad: true };
  const params = scope(() => [
    randn([4, 1, 3, 3]).mul(0.3).requiresGrad_(),
    zeros([4], o),
    ones([4], o),
    zeros([4], o),
    randn([3, 64]).mul(0.1).requiresGrad_(),
    zeros([3], o),
  ]).map((t) => keep(t));
  const [w, cb, gamma, beta, lw, lb] = params as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
  const runningMean = keep(zeros([4]));
  const runningVar = keep(ones([4]));
  // Four fixed batches of 8 images, 8×8; the label is a function of the image so the loss can fall.
  const batches = scope(() =>
    Array.from({ length: 4 }, () => {
      const y = randint(0, 3, [8]);
      const x = randn([8, 1, 8, 8]).add(y.to('float32').view([8, 1, 1, 1]).mul(0.8));
      return [x, y] as const;
    }).flat(),
  ).map((t) => keep(t));
  const forward = (x: Tensor) => {
    let h = nn.conv2d(x, w, cb, { padding: 1 });
    h = nn.batchNorm(h, { weight: gamma, bias: beta, runningMean, runningVar, training: true });
    h = nn.maxPool2d(nn.relu(h), 2).flatten(1);
    return nn.linear(h, lw, lb);
  };
  const liveAt = new Map<number, number>();
  const losses: number[] = [];
  for (let step = 1; step <= 1000; step++) {
    const k = (step % 4) * 2;
    const loss = scope(() => {
      const l = nn.crossEntropy(forward(batches[k]!), batches[k + 1]!);
      // Alternate the two gradient paths: functional grad() and backward() into .grad.
      let gs: Tensor[];
      if (step % 2 === 0) {
        gs = grad(l, params) as Tensor[];
      } else {
        l.backward();
        gs = params.map((p) => p.grad!);
        params.forEach((p) => p.zeroGrad());
      }
      noGrad(() => params.forEach((p, i) => p.add_(gs[i]!, -0.05)));
      return l.item();
    });
    losses.push(loss);
    if (step === 100 || step === 1000) liveAt.set(step, liveTensors());
  }
  assert.equal(
    liveAt.get(1000),
    liveAt.get(100),
    `live tensors at step 100: ${liveAt.get(100)}, at step 1000: ${liveAt.get(1000)}`,
  );
  // params (6) + running stats (2) + 4 batches × (x, y): nothing else survives a step.
  assert.equal(liveAt.get(100)! - live0, 6 + 2 + 8);
  const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
  const first = mean(losses.slice(0, 20));
  const last = mean(losses.slice(-20));
  assert.ok(last < 0.7 * first, `loss fell from ${first.toFixed(3)} to ${last.toFixed(3)}`);
  assert.ok(Number.isFinite(last));
  // Running statistics moved away from their initial values.
  assert.ok(runningVar.toArray().some((v) => Math.abs(v - 1) > 1e-3));
  for (const t of [...params, ...batches, runningMean, runningVar]) t.dispose();
  assert.equal(liveTensors(), live0);
});
