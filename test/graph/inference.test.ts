/**
 * Inference runtimes (src/graph/inference.ts): onnxruntime on the exported graph gives the interpreter's values
 * (dense and masked, feature tap and logits), one session serves one model state, a changed state gets a new one,
 * and a graph that cannot run in onnxruntime falls back to the interpreter with one warning.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { liveTensors, noGrad, rand, scope, type Tensor } from '../../src/engine/index.js';
import {
  EXPORT_RULES,
  forward,
  openRunner,
  OrtSessions,
  setMask,
  stateFingerprint,
  toDType,
  type Graph,
  type Runtime,
} from '../../src/graph/index.js';
import { CASE_NAMES, disposeCase, makeCase, type Case } from '../cases/index.js';
import { expectClose } from '../helpers/check.js';

/** A shared case in float32 (onnxruntime runs the float32 export), its batches too. */
function case32(name: (typeof CASE_NAMES)[number], seed = 1): Case {
  const c = makeCase(name, { seed, sizes: [4, 3] });
  toDType(c.graph, 'float32');
  for (const b of c.batches) {
    const x = b.x.to('float32');
    b.x.dispose();
    (b as { x: Tensor }).x = x;
  }
  return c;
}

/** About half of every weight masked, the weights themselves left as they are. */
function maskHalf(g: Graph): void {
  for (const [name, p] of g.params)
    if (p.role === 'weight') scope(() => setMask(g, name, rand(p.tensor.shape).gt(0.5).to('float32')));
}

async function values(g: Graph, x: Tensor, runtime: Runtime, sessions: OrtSessions): Promise<number[][]> {
  const r = await openRunner(g, { outputs: [g.featureTap, g.outputs[0]!], runtime, sessions });
  try {
    const ts = await r.run(x);
    const out = ts.map((t) => t.toArray());
    for (const t of ts) t.dispose();
    const arrays = await r.runArray(x.data<'float32'>(), x.shape);
    assert.deepEqual(
      arrays.map((a) => Array.from(a.data)),
      out,
      `${g.name}: runArray = run (${r.runtime})`,
    );
    if (runtime === 'ort') assert.equal(r.runtime, 'ort', `${g.name}: ran in onnxruntime (${r.fallback})`);
    return out;
  } finally {
    r.close();
  }
}

for (const name of CASE_NAMES)
  test(`inference: ${name} feature tap and logits in onnxruntime equal the interpreter's (dense and masked, ≤ 1e-5 rel.)`, async () => {
    const c = case32(name);
    const sessions = new OrtSessions();
    for (const masked of [false, true]) {
      if (masked) maskHalf(c.graph);
      for (const b of c.batches) {
        const want = await values(c.graph, b.x, 'torch', sessions);
        const got = await values(c.graph, b.x, 'ort', sessions);
        want.forEach((w, i) => {
          const scale = Math.max(...w.map(Math.abs));
          expectClose(got[i]!, w, { rtol: 1e-5, atol: 1e-5 * scale }, `${name} ${masked ? 'masked' : 'dense'} #${i}`);
        });
      }
    }
    assert.equal(sessions.created, 2, 'one session for the dense state, one for the masked state');
    await sessions.release();
    disposeCase(c);
  });

test('inference: one session per model state; new weights, a new mask or new BN statistics get a new one', async () => {
  const c = case32('conv-bn');
  const g = c.graph;
  const x = c.batches[0]!.x;
  const sessions = new OrtSessions({ maxEntries: 8 });
  const sessionOf = async () => {
    const r = await openRunner(g, { outputs: [g.featureTap], runtime: 'auto', sessions });
    const s = r.session;
    const [t] = await r.run(x);
    t!.dispose();
    r.close();
    assert.ok(s, `auto runs in onnxruntime (${r.fallback})`);
    return s;
  };
  const live = liveTensors();
  const first = await sessionOf();
  assert.equal(await sessionOf(), first, 'same state: the same session object');
  assert.equal(sessions.created, 1);
  assert.ok(liveTensors() <= live, 'runs leave no tensors behind (the GC safety net may only free more)');

  const fp0 = stateFingerprint(g, [g.featureTap]);
  noGrad(() => g.params.get('conv1.weight')!.tensor.mul_(0.5));
  const afterWeights = await sessionOf();
  assert.notEqual(afterWeights, first, 'changed weights: a new session');
  scope(() => setMask(g, 'conv2.weight', rand(g.params.get('conv2.weight')!.tensor.shape).gt(0.3).to('float32')));
  const afterMask = await sessionOf();
  assert.notEqual(afterMask, afterWeights, 'a new mask: a new session');
  noGrad(() => g.params.get('bn.running_var')!.tensor.add_(0.25));
  const afterBn = await sessionOf();
  assert.notEqual(afterBn, afterMask, 'new BN statistics: a new session');
  assert.equal(await sessionOf(), afterBn);
  assert.equal(sessions.created, 4);
  assert.notEqual(stateFingerprint(g, [g.featureTap]), fp0);
  // The head is not part of the tap's subgraph: changing it keeps the feature session.
  noGrad(() => g.params.get('fc.weight')!.tensor.mul_(2));
  assert.equal(await sessionOf(), afterBn, 'a head change does not touch the feature tap');

  const torch = await openRunner(g, { outputs: [g.featureTap], runtime: 'torch', sessions });
  assert.equal(torch.runtime, 'torch');
  assert.equal(torch.session, null);
  assert.equal(sessions.created, 4, 'torch never makes a session');
  await sessions.release();
  assert.equal(sessions.size, 0);
  disposeCase(c);
});

test('inference: least recently used sessions are dropped past maxEntries, never one a runner still holds', async () => {
  const c = case32('mlp');
  const g = c.graph;
  const sessions = new OrtSessions({ maxEntries: 1 });
  const held = await openRunner(g, { outputs: [g.featureTap], sessions });
  noGrad(() => g.params.get('fc1.weight')!.tensor.mul_(0.5));
  const other = await openRunner(g, { outputs: [g.featureTap], sessions });
  assert.equal(sessions.size, 2, 'the held session stays');
  const [t] = await held.run(c.batches[0]!.x);
  t!.dispose();
  held.close();
  other.close();
  await openRunner(g, { outputs: [g.featureTap], sessions }).then((r) => r.close());
  assert.equal(sessions.size, 1, 'released once no runner holds it');
  await sessions.release();
  disposeCase(c);
});

test('inference: a graph the exporter refuses runs in the interpreter, with one TAPIR_ORT_FALLBACK warning', async () => {
  const c = case32('depthwise');
  const g = c.graph;
  const warnings: Error[] = [];
  const onWarning = (w: Error) => {
    if ((w as { code?: string }).code === 'TAPIR_ORT_FALLBACK') warnings.push(w);
  };
  process.on('warning', onWarning);
  const rule = EXPORT_RULES.tanh!;
  delete EXPORT_RULES.tanh; // an IR op the exporter has no rule for
  const sessions = new OrtSessions();
  try {
    const want = await values(g, c.batches[0]!.x, 'torch', sessions);
    for (const runtime of ['auto', 'ort', 'auto'] as const) {
      const r = await openRunner(g, { outputs: [g.featureTap, g.outputs[0]!], runtime, sessions });
      assert.equal(r.runtime, 'torch');
      assert.match(r.fallback ?? '', /ONNX export failed: .*unsupported op 'tanh'/);
      const ts = await r.run(c.batches[0]!.x);
      assert.deepEqual(
        ts.map((t) => t.toArray()),
        want,
      );
      for (const t of ts) t.dispose();
      r.close();
    }
    assert.equal(sessions.created, 0);
    assert.equal(sessions.size, 1, 'the failed export is remembered for this state');
  } finally {
    EXPORT_RULES.tanh = rule;
  }
  await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
  process.off('warning', onWarning);
  assert.equal(warnings.length, 1, 'noted once');
  assert.match(warnings[0]!.message, /graph 'depthwise' runs in the libtorch interpreter/);
  disposeCase(c);
});

test('inference: a float64 graph runs in the interpreter under auto and ort, the reason kept', async () => {
  const c = makeCase('mlp');
  const g = c.graph;
  for (const runtime of ['auto', 'ort'] as const) {
    const r = await openRunner(g, { outputs: [g.featureTap], runtime });
    assert.equal(r.runtime, 'torch');
    assert.match(r.fallback ?? '', /float64/);
    const [t] = await r.run(c.batches[0]!.x);
    const want = forward(g, c.batches[0]!.x, { mode: 'eval', taps: [g.featureTap], outputs: [] }).taps.get(
      g.featureTap,
    )!;
    assert.deepEqual(t!.toArray(), want.toArray());
    const x32 = scope(() => c.batches[0]!.x.to('float32').data<'float32'>());
    const [a] = await r.runArray(x32, c.batches[0]!.x.shape);
    assert.ok(a!.data instanceof Float64Array, 'runArray answers in the graph dtype');
    assert.deepEqual(a!.dims, want.shape);
    t!.dispose();
    want.dispose();
    r.close();
  }
  await assert.rejects(
    openRunner(g, { outputs: [g.featureTap], runtime: 'onnx' as Runtime }),
    /runtime must be one of auto, torch, ort/,
  );
  disposeCase(c);
});
