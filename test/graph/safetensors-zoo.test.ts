/**
 * safetensors state dicts written from torch (torchvision ResNet-18, a timm-named ViT with vit_tiny dims) loaded
 * into tapir's built-in architectures: the outputs must match torch's on the same input, which checks the loader
 * and the zoo's parameter names and layouts together.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ShapeError } from '../../src/engine/index.js';
import { forward } from '../../src/graph/interpreter.js';
import { disposeGraph } from '../../src/graph/params.js';
import { loadStateDict, readSafetensors } from '../../src/graph/safetensors.js';
import { buildResNet, buildVit } from '../../src/graph/zoo/index.js';
import { maxRelError, onnxFixtures, readF32, torchMissing, type Fixtures } from './onnx-fixtures.js';

const skip = torchMissing();
let fx: Fixtures;
before(() => {
  if (!skip) fx = onnxFixtures()!;
});

const cases = {
  resnet18: () => buildResNet({ depth: 18, size: 32, numClasses: 10 }),
  vit_tiny_d1: () => buildVit({ variant: 'vit_tiny', size: 32, patch: 16, depth: 1, numClasses: 10 }),
} as const;

for (const [id, build] of Object.entries(cases) as [keyof typeof cases, () => ReturnType<typeof buildResNet>][]) {
  test(
    `safetensors: torch ${id} weights loaded into the zoo architecture reproduce torch's output`,
    { skip: skip ?? false },
    async () => {
      const f = fx.safetensors[id];
      const g = build();
      const st = await readSafetensors(join(fx.dir, f.file));
      assert.equal(st.metadata.format, 'pt');
      const r = await loadStateDict(g, st);
      assert.deepEqual(r.missing, [], 'every zoo parameter is in the torch state dict');
      assert.deepEqual(r.unexpected, [], 'every torch tensor has a zoo parameter');
      assert.equal(r.loaded.length, g.params.size);
      const x = readF32(join(fx.dir, f.input), f.input_shape);
      const y = forward(g, x, { mode: 'eval' }).outputs[0]!;
      const err = maxRelError(y.data<'float32'>(), readF32(join(fx.dir, f.output), f.output_shape).data<'float32'>());
      assert.ok(err <= 1e-4, `${id}: max rel. error ${err}`);
      disposeGraph(g);
    },
  );
}

test('safetensors: weights of another size are refused naming the tensor', { skip: skip ?? false }, async () => {
  const g = buildVit({ variant: 'vit_small', size: 32, patch: 16, depth: 1, numClasses: 10 });
  await assert.rejects(
    loadStateDict(g, join(fx.dir, fx.safetensors.vit_tiny_d1.file)),
    (e: unknown) =>
      e instanceof ShapeError &&
      /tensor '[\w.]+' in .*vit_tiny_d1\.safetensors has shape \[[\d, ]+\] but model '.*' expects \[[\d, ]+\]/.test(
        e.message,
      ),
  );
  disposeGraph(g);
});
