/** openModel on a TF.js export folder / model.json (the Teachable Machine MobileNetV2 study asset; skipped without it). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { disposeGraph } from '../../src/graph/index.js';
import { openModel } from '../../src/transfer/index.js';

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
