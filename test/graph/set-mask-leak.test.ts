import { test } from 'node:test';
import assert from 'node:assert/strict';
import { liveTensors, ones, zeros } from '../../src/engine/index.js';
import { GraphBuilder } from '../../src/graph/builder.js';
import { clearMasks, setMask } from '../../src/graph/params.js';

// Regression: setMask leaked the intermediate of its dtype conversion (one tensor per call).
test('setMask and clearMasks leave no tensor behind', () => {
  const b = new GraphBuilder();
  b.param('w', zeros([3, 4]), 'weight');
  const g = { params: b.params, masks: new Map(), name: 'g' } as unknown as Parameters<typeof setMask>[0];
  const m64 = ones([3, 4], { dtype: 'float64' });
  const m32 = ones([3, 4]);
  const before = liveTensors();
  for (let i = 0; i < 5; i++) {
    setMask(g, 'w', m64);
    setMask(g, 'w', m32);
  }
  assert.equal(liveTensors(), before + 1, 'exactly the graph-owned mask is alive');
  assert.equal(g.masks.get('w')!.dtype, 'float32');
  clearMasks(g);
  assert.equal(liveTensors(), before);
  m64.dispose();
  m32.dispose();
});
