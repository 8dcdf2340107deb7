/** `tapir prune` in-process through makeProgram, on a tiny ONNX conv net and a generated folder: task. */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { disposeGraph, loadMaskFile, prunableParams } from '../../src/graph/index.js';
import { exportOnnx, importOnnx } from '../../src/graph/onnx/index.js';
import { makeProgram } from '../../src/cli/program.js';
import { makeFolderTask, tempDir, tinyNet, useTempCache } from '../transfer/fixtures.js';

useTempCache();
const WORK = tempDir('tapir-prune-cli-');
const MODEL = join(WORK, 'tiny.onnx');
let TASK = '';

before(async () => {
  TASK = await makeFolderTask('prune-cli', 20);
  const g = tinyNet(5, 16, true);
  await exportOnnx(g, MODEL);
  disposeGraph(g);
});

async function run(args: string[]): Promise<{ out: string; err: string }> {
  let out = '';
  let err = '';
  const p = makeProgram({ out: (s) => (out += s), err: (s) => (err += s) });
  await p.parseAsync(['node', 'tapir', ...args]);
  return { out, err };
}

interface PruneDoc { achievedSparsity: number; keptParameters: number; prunableParameters: number; score: string; calibration: { images: number; hash: string }; tensors: { name: string; kept: number }[]; timings: Record<string, number>; scoreInfo: Record<string, unknown> }

test('tapir prune --json: mask file, ONNX model and prune.json agree; the masked ONNX model has zeros', async () => {
  const out = join(WORK, 'obd');
  const { out: stdout } = await run(['prune', '--model', MODEL, '--score', 'diag-hessian', '--estimator', 'fisher', '--sparsity', '0.6', '--source', TASK, '--cap', '20',
    '--calib', '5', '--batch-size', '2', '--loss', 'ce', '--out', out, '--json', '--no-progress']);
  const doc = JSON.parse(stdout) as PruneDoc;
  assert.deepEqual(doc, JSON.parse(readFileSync(join(out, 'prune.json'), 'utf8')));
  assert.equal(doc.keptParameters, Math.round(0.4 * doc.prunableParameters));
  assert.equal(doc.calibration.images, 5);
  assert.match(doc.calibration.hash, /^[0-9a-f]{16}$/);
  assert.equal(doc.scoreInfo.estimator, 'fisher');
  assert.ok(doc.timings.score! >= 0 && doc.timings.allocate! >= 0);
  const m = await importOnnx(join(out, 'model.onnx'));
  const r = await loadMaskFile(m, join(out, 'mask.safetensors'));
  assert.equal(r.count, doc.tensors.length);
  assert.equal(r.metadata.score, 'diag-hessian');
  for (const p of prunableParams(m)) {
    const mask = m.masks.get(p.name)!.toArray();
    const w = p.tensor.toArray();
    assert.equal(mask.reduce((a, b) => a + b, 0), doc.tensors.find((t) => t.name === p.name)!.kept);
    w.forEach((v, i) => { if (mask[i] === 0) assert.ok(v === 0, `${p.name}[${i}] zeroed in model.onnx`); });
  }
  disposeGraph(m);
});

test('tapir prune: data-free scores need no task; table output; same seed ⇒ same mask file', async () => {
  const a = join(WORK, 'rand-a');
  const b = join(WORK, 'rand-b');
  const { out } = await run(['prune', '--model', MODEL, '--score', 'random', '--sparsity', '0.5', '--seed', '3', '--out', a, '--no-progress', '--no-onnx']);
  assert.match(out, /achieved 0\.5/);
  await run(['prune', '--model', MODEL, '--score', 'random', '--sparsity', '0.5', '--seed', '3', '--out', b, '--no-progress', '--no-onnx']);
  assert.ok(!existsSync(join(a, 'model.onnx')));
  const strip = (f: string) => readFileSync(f);
  assert.deepEqual(strip(join(a, 'mask.safetensors')), strip(join(b, 'mask.safetensors')));
});

test('tapir prune: bad input is a clear error', async () => {
  const base = ['prune', '--model', MODEL, '--out', join(WORK, 'bad'), '--no-progress'];
  await assert.rejects(run([...base, '--score', 'magnitude', '--sparsity', '1']), /sparsity must be in \[0, 1\)/);
  await assert.rejects(run([...base, '--score', 'snip', '--sparsity', '0.5']), /needs calibration images: pass --source/);
  await assert.rejects(run([...base, '--score', 'hessian', '--sparsity', '0.5']), /--score must be one of/);
  await assert.rejects(run([...base, '--score', 'snip', '--sparsity', '0.5', '--source', TASK, '--cap', '20', '--calib', '500']), /asked for 500 calibration images but the calibration set has only/);
});

test('tapir prune --bn match-dense: repaired BN affine written to model.onnx, running statistics kept; prune.json records the repair', async () => {
  const out = join(WORK, 'bn-match');
  const args = ['prune', '--model', MODEL, '--score', 'magnitude', '--sparsity', '0.6', '--source', TASK, '--cap', '20', '--calib', '5', '--batch-size', '2', '--no-progress'];
  const { out: stdout } = await run([...args, '--bn', 'match-dense', '--out', out, '--json']);
  const doc = JSON.parse(stdout) as { bn: { mode: string; layers: number; images: number; degenerate: number }; timings: Record<string, number> };
  assert.equal(doc.bn.mode, 'match-dense');
  assert.equal(doc.bn.layers, 2);
  assert.ok(Number.isInteger(doc.bn.degenerate) && doc.bn.degenerate >= 0);
  assert.equal(doc.bn.images, 5);
  assert.ok(doc.timings.bn! >= 0);
  const dense = await importOnnx(MODEL);
  const m = await importOnnx(join(out, 'model.onnx'));
  for (const n of ['bn1', 'bn2']) {
    assert.notDeepEqual(m.params.get(`${n}.weight`)!.tensor.toArray(), dense.params.get(`${n}.weight`)!.tensor.toArray(), `${n}.weight repaired`);
    assert.deepEqual(m.params.get(`${n}.running_var`)!.tensor.toArray(), dense.params.get(`${n}.running_var`)!.tensor.toArray(), `${n}.running_var kept`);
  }
  disposeGraph(m);
  disposeGraph(dense);
  const none = JSON.parse((await run([...args, '--out', join(WORK, 'bn-none'), '--json'])).out) as { bn: unknown };
  assert.deepEqual(none.bn, { mode: 'none', layers: 0, images: 0, degenerate: 0 });
  const base = ['prune', '--model', MODEL, '--score', 'magnitude', '--sparsity', '0.5', '--out', join(WORK, 'bn-bad'), '--no-progress'];
  await assert.rejects(run([...base, '--bn', 'match-dense']), /score 'magnitude' with BN repair 'match-dense' needs calibration images: pass --source/);
  await assert.rejects(run([...base, '--bn', 'dense']), /--bn must be one of/);
});
