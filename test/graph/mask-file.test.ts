import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { manualSeed, rand, scope } from '../../src/engine/index.js';
import { loadMaskFile, MaskFileError, packBits, unpackBits, writeMaskFile } from '../../src/graph/mask-file.js';
import { readSafetensors } from '../../src/graph/safetensors.js';
import { clearMasks, disposeGraph, prunableParams, setMask } from '../../src/graph/params.js';
import { buildResNet, buildVit } from '../../src/graph/zoo/index.js';

test('bits pack LSB-first (numpy packbits little) and round-trip at odd lengths', () => {
  assert.deepEqual([...packBits([1, 0, 0, 0, 0, 0, 0, 0, 0, 1])], [1, 2]);
  const v = Array.from({ length: 13 }, (_, i) => ((i * 7) % 3 === 0 ? 1 : 0));
  assert.deepEqual([...unpackBits(packBits(v), 13)], v);
});

test('mask file: write atomically, read back by name with shapes and metadata; wrong model is a clear error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tapir-mask-'));
  const g = buildResNet({ depth: 18, size: 32 });
  manualSeed(5);
  const masked = prunableParams(g).slice(0, 3);
  const want = scope(() =>
    masked.map((p) => {
      const m = rand(p.tensor.shape).gt(0.3).float();
      setMask(g, p.name, m);
      return m.toArray();
    }),
  );
  const file = join(dir, 'resnet18.mask.safetensors');
  const sp = await writeMaskFile(file, g, { score: 'magnitude', allocation: 'global', seed: 5, calibrationCount: 0 });
  assert.deepEqual(readdirSync(dir), ['resnet18.mask.safetensors'], 'no temp file left behind');
  assert.ok(sp.global > 0.25 && sp.global < 0.35, `sparsity ${sp.global}`);
  const st = await readSafetensors(file);
  assert.equal(st.metadata.score, 'magnitude');
  assert.equal(st.metadata.seed, '5');
  assert.equal(st.entries.get(masked[0]!.name)!.dtype, 'U8');
  assert.equal(st.entries.get(masked[0]!.name)!.shape[0], Math.ceil(masked[0]!.tensor.numel / 8));

  clearMasks(g);
  const r = await loadMaskFile(g, file);
  assert.equal(r.count, 3);
  masked.forEach((p, i) => assert.deepEqual(g.masks.get(p.name)!.toArray(), want[i]));

  const vit = buildVit({ variant: 'vit_tiny', size: 32, depth: 1 });
  await assert.rejects(
    loadMaskFile(vit, file),
    (e: unknown) =>
      e instanceof MaskFileError &&
      /mask tensor 'conv1.weight' has no parameter of that name in model 'vit_tiny'.*resnet18/.test(
        (e as Error).message,
      ),
  );
  assert.equal(vit.masks.size, 0, 'nothing applied on failure');
  const r50 = buildResNet({ depth: 50, size: 32 });
  await assert.rejects(
    loadMaskFile(r50, file),
    /mask tensor 'layer1.0.conv1.weight' is for shape \[64, 64, 3, 3\] but model 'resnet50' has \[64, 64, 1, 1\]/,
  );
  for (const m of [g, vit, r50]) disposeGraph(m);
  rmSync(dir, { recursive: true });
});
