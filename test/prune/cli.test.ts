/** `tapir prune` in-process through makeProgram, on a tiny ONNX conv net and a generated folder: task. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { disposeGraph, loadMaskFile, prunableParams, readSafetensors } from '../../src/graph/index.js';
import { importOnnx } from '../../src/graph/onnx/index.js';
import { openModel } from '../../src/transfer/index.js';
import { argv, cliWorkspace, runCli } from '../helpers/cli.js';

const W = cliWorkspace({ dir: 'tapir-prune-cli-', task: 'prune-cli', seed: 5 });
const WORK = W.work;
const MODEL = W.model;

const run = runCli;

interface PruneDoc {
  achievedSparsity: number;
  keptParameters: number;
  prunableParameters: number;
  score: string;
  calibration: { images: number; hash: string };
  tensors: { name: string; kept: number }[];
  timings: Record<string, number>;
  scoreInfo: Record<string, unknown>;
}

test('tapir prune --json: mask file, ONNX model and prune.json agree; the masked ONNX model has zeros', async () => {
  const out = join(WORK, 'obd');
  const { out: stdout } = await run(
    argv`prune --model ${MODEL} --score diag-hessian --estimator fisher --sparsity 0.6 --source ${W.task} --cap 20 --calib 5 --batch-size 2 --loss ce --out ${out} --json --no-progress`,
  );
  const doc = JSON.parse(stdout) as PruneDoc;
  assert.deepEqual(doc, JSON.parse(readFileSync(join(out, 'prune.json'), 'utf8')));
  assert.equal(doc.keptParameters, Math.round(0.4 * doc.prunableParameters));
  assert.equal(doc.calibration.images, 5);
  assert.match(doc.calibration.hash, /^[0-9a-f]{16}$/);
  assert.equal(doc.scoreInfo.estimator, 'fisher');
  // Each phase that ran took measurable time (a missing or stale timing would be undefined or 0).
  for (const k of ['score', 'allocate', 'layerErrors'])
    assert.ok(doc.timings[k]! > 0 && Number.isFinite(doc.timings[k]!), `timings.${k}`);
  const m = await importOnnx(join(out, 'model.onnx'));
  const r = await loadMaskFile(m, join(out, 'mask.safetensors'));
  assert.equal(r.count, doc.tensors.length);
  assert.equal(r.metadata.score, 'diag-hessian');
  for (const p of prunableParams(m)) {
    const mask = m.masks.get(p.name)!.toArray();
    const w = p.tensor.toArray();
    assert.equal(
      mask.reduce((a, b) => a + b, 0),
      doc.tensors.find((t) => t.name === p.name)!.kept,
    );
    w.forEach((v, i) => {
      if (mask[i] === 0) assert.ok(v === 0, `${p.name}[${i}] zeroed in model.onnx`);
    });
  }
  disposeGraph(m);
});

test('tapir prune: data-free scores need no task; table output; same seed ⇒ same mask file', async () => {
  const a = join(WORK, 'rand-a');
  const b = join(WORK, 'rand-b');
  const { out } = await run(
    argv`prune --model ${MODEL} --score random --sparsity 0.5 --seed 3 --out ${a} --no-progress --no-onnx`,
  );
  assert.match(out, /achieved 0\.5/);
  await run(argv`prune --model ${MODEL} --score random --sparsity 0.5 --seed 3 --out ${b} --no-progress --no-onnx`);
  assert.ok(!existsSync(join(a, 'model.onnx')));
  // Same masks bit for bit (the files differ only in their run ids).
  const bits = async (d: string) => {
    const st = await readSafetensors(join(d, 'mask.safetensors'));
    return [...st.entries.keys()].sort().map((k) => Buffer.from(st.bytes(k)).toString('hex'));
  };
  assert.deepEqual(await bits(a), await bits(b));
});

test('tapir prune: bad input is a clear error', async () => {
  const base = ['prune', '--model', MODEL, '--out', join(WORK, 'bad'), '--no-progress'];
  await assert.rejects(run([...base, '--score', 'magnitude', '--sparsity', '1']), /sparsity must be in \[0, 1\)/);
  await assert.rejects(
    run([...base, '--score', 'snip', '--sparsity', '0.5']),
    /needs calibration images: pass --source/,
  );
  await assert.rejects(run([...base, '--score', 'hessian', '--sparsity', '0.5']), /--score must be one of/);
  await assert.rejects(
    run([...base, '--score', 'sparsegpt', '--sparsity', '0.5', '--activations', 'float16']),
    /--activations must be one of full, half/,
  );
  await assert.rejects(
    run([...base, '--score', 'magnitude', '--sparsity', '0.5', '--allocation', 'error']),
    /allocation 'error' needs per-layer error curves, which magnitude does not measure/,
  );
  await assert.rejects(
    run([...base, '--score', 'snip', '--sparsity', '0.5', '--source', W.task, '--cap', '20', '--calib', '500']),
    /asked for 500 calibration images but the calibration set has only/,
  );
});

test('tapir prune --bn match-dense: repaired BN affine written to model.onnx, running statistics kept; prune.json records the repair', async () => {
  const out = join(WORK, 'bn-match');
  const args = [
    'prune',
    '--model',
    MODEL,
    '--score',
    'magnitude',
    '--sparsity',
    '0.6',
    '--source',
    W.task,
    '--cap',
    '20',
    '--calib',
    '5',
    '--batch-size',
    '2',
    '--no-progress',
  ];
  const { out: stdout } = await run([...args, '--bn', 'match-dense', '--out', out, '--json']);
  const doc = JSON.parse(stdout) as {
    bn: { mode: string; layers: number; images: number; degenerate: number };
    timings: Record<string, number>;
  };
  assert.equal(doc.bn.mode, 'match-dense');
  assert.equal(doc.bn.layers, 2);
  assert.equal(doc.bn.degenerate, 0, 'no BN channel of this net is left constant by this 60 % magnitude mask');
  assert.equal(doc.bn.images, 5);
  assert.ok(doc.timings.bn! > 0 && Number.isFinite(doc.timings.bn!), 'the BN repair ran and was timed');
  const dense = await importOnnx(MODEL);
  const m = await importOnnx(join(out, 'model.onnx'));
  for (const n of ['bn1', 'bn2']) {
    assert.notDeepEqual(
      m.params.get(`${n}.weight`)!.tensor.toArray(),
      dense.params.get(`${n}.weight`)!.tensor.toArray(),
      `${n}.weight repaired`,
    );
    assert.deepEqual(
      m.params.get(`${n}.running_var`)!.tensor.toArray(),
      dense.params.get(`${n}.running_var`)!.tensor.toArray(),
      `${n}.running_var kept`,
    );
  }
  disposeGraph(m);
  disposeGraph(dense);
  const none = JSON.parse((await run([...args, '--out', join(WORK, 'bn-none'), '--json'])).out) as { bn: unknown };
  assert.deepEqual(none.bn, { mode: 'none', layers: 0, images: 0, degenerate: 0 });
  const base = [
    'prune',
    '--model',
    MODEL,
    '--score',
    'magnitude',
    '--sparsity',
    '0.5',
    '--out',
    join(WORK, 'bn-bad'),
    '--no-progress',
  ];
  await assert.rejects(
    run([...base, '--bn', 'match-dense']),
    /score 'magnitude' with BN repair 'match-dense' needs calibration images: pass --source/,
  );
  await assert.rejects(run([...base, '--bn', 'dense']), /--bn must be one of/);
});

test('a pruned-model directory: written as a unit, opened as base model + pruned weights + mask, evaluated against its base; a mixed directory is refused', async () => {
  const out = join(WORK, 'sgpt');
  await run(
    argv`prune --model ${MODEL} --score sparsegpt --target dense-output --activations half --sparsity 0.5 --source ${W.task} --cap 20 --calib 8 --no-progress --out ${out}`,
  );
  const doc = JSON.parse(readFileSync(join(out, 'prune.json'), 'utf8')) as {
    scoreInfo: { activations: string };
    model: string;
    runId: string;
    weightsChanged: boolean;
    layerErrors: { relError: number }[];
    reconstruction: { layers: unknown[] };
  };
  assert.equal(doc.model, MODEL);
  assert.equal(doc.scoreInfo.activations, 'half');
  assert.equal(doc.weightsChanged, true);
  assert.equal(doc.reconstruction.layers.length, doc.layerErrors.length);
  const m = await openModel(out);
  assert.equal(m.kind, 'pruned');
  assert.equal(m.base, MODEL);
  const onnx = await importOnnx(join(out, 'model.onnx'));
  for (const [n, p] of m.graph.params)
    assert.deepEqual(
      p.tensor.mul(m.graph.masks.get(n) ?? 1).toArray(),
      onnx.params.get(n)!.tensor.toArray(),
      `${n}: safetensors ⊙ mask = model.onnx`,
    );
  // Evaluated against the base model by default (not against itself).
  const { out: ev } = await run(argv`eval --model ${out} --tasks ${W.task} --cap 20 --alpha 1 --no-progress --json`);
  assert.equal((JSON.parse(ev) as { reference: string }).reference, MODEL);
  // Its mask alone is not the pruned model.
  await assert.rejects(
    run(argv`eval --model ${MODEL} --mask ${out} --tasks ${W.task} --cap 20 --no-progress`),
    /changed weights when pruning \(reconstruction or OBS compensation\): its mask alone is not the pruned model/,
  );
  // A second run into the same directory replaces it whole; a mask from another run makes it unreadable.
  const other = join(WORK, 'sgpt-other');
  await run(argv`prune --model ${MODEL} --score magnitude --sparsity 0.3 --no-progress --out ${other}`);
  copyFileSync(join(other, 'mask.safetensors'), join(out, 'mask.safetensors'));
  await assert.rejects(openModel(out), /not a complete pruned-model directory: mask.safetensors belongs to run/);
  await run(argv`prune --model ${MODEL} --score magnitude --sparsity 0.3 --no-progress --out ${out}`);
  assert.equal((await openModel(out)).kind, 'pruned');
  assert.deepEqual(
    readdirSync(WORK).filter((f) => f.includes('.tmp-')),
    [],
    'no temp directory left behind',
  );
  for (const g of [m.graph, onnx]) disposeGraph(g);
});
