/**
 * openModel on a TF.js export folder / model.json (the Teachable Machine MobileNetV2 study asset; skipped without it),
 * and `random:<file>` (the random-init control of an imported model).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { disposeGraph } from '../../src/graph/index.js';
import { exportOnnx } from '../../src/graph/onnx/index.js';
import { openModel } from '../../src/transfer/index.js';
import { tempDir, tinyNet } from './fixtures.js';

const DIR = process.env.TAPIR_TM_MOBILENET_DIR ?? join(process.cwd(), '..', 'shared', 'models', 'tm-mobilenet_v2_035');
const skip = existsSync(join(DIR, 'model.json')) ? false : `no TF.js asset at ${DIR}`;

test(
  'openModel takes a TF.js export by its folder or its model.json; a missing model.json is named',
  { skip },
  async () => {
    for (const spec of [DIR, join(DIR, 'model.json')]) {
      const m = await openModel(spec);
      assert.equal(m.kind, 'tfjs');
      assert.equal(m.base, spec);
      assert.deepEqual(m.graph.preprocessing.range, [-1, 1]);
      assert.ok([...m.graph.params.values()].some((p) => p.prunable));
      disposeGraph(m.graph);
    }
    await assert.rejects(openModel(join(DIR, 'nope.json')), /TF\.js model file .*nope\.json does not exist/);
  },
);

test('random:<file>: the file architecture with fresh weights, deterministic by seed; pruned directories refused', async () => {
  const dir = tempDir('tapir-random-file-');
  try {
    const file = join(dir, 'tiny.onnx');
    const src = tinyNet(3);
    await exportOnnx(src, file);
    disposeGraph(src);
    const dense = await openModel(file);
    const rnd = await openModel(`random:${file}`, { seed: 1 });
    const again = await openModel(`random:${file}`, { seed: 1 });
    const other = await openModel(`random:${file}`, { seed: 2 });
    assert.equal(rnd.spec, `random:${file}`);
    assert.equal(rnd.base, `random:${file}`, 'its own dense reference');
    assert.equal(rnd.kind, 'onnx');
    assert.deepEqual([...rnd.graph.params.keys()], [...dense.graph.params.keys()]);
    const weights = (m: typeof dense) =>
      [...m.graph.params.values()].filter((p) => p.role === 'weight').map((p) => p.tensor.toArray());
    const [wd, wr, wa, wo] = [dense, rnd, again, other].map(weights);
    wd!.forEach((w, i) => {
      assert.equal(wr![i]!.length, w.length);
      assert.notDeepEqual(wr![i], w, 'fresh weights');
      assert.deepEqual(wa![i], wr![i], 'same seed, same weights');
      assert.notDeepEqual(wo![i], wr![i], 'another seed, other weights');
    });
    for (const m of [dense, rnd, again, other]) disposeGraph(m.graph);
    mkdirSync(join(dir, 'pruned'));
    writeFileSync(join(dir, 'pruned', 'prune.json'), '{}');
    await assert.rejects(
      openModel(`random:${join(dir, 'pruned')}`),
      /random init of a pruned or fine-tuned model directory/,
    );
    await assert.rejects(openModel(`random:${join(dir, 'nope.onnx')}`), /ONNX file .*nope\.onnx does not exist/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
