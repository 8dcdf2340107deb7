import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ModelInfo } from '../../src/cli/commands/info.js';
import { runCli } from '../helpers/cli.js';

const run = async (args: string[]): Promise<string> => (await runCli(args)).out;

test('tapir info mobilenet_v2 --json: parameters, prunable tensors with shapes, totals, input size', async () => {
  const r = JSON.parse(await run(['info', 'mobilenet_v2', '--json'])) as ModelInfo;
  assert.equal(
    r.totalParameters,
    r.parameters.reduce((n, p) => n + p.shape.reduce((a, d) => a * d, 1), 0),
  );
  assert.ok(
    Math.abs(r.totalParameters - 2.62e6) < 0.01e6,
    `MobileNetV2 α 1.0 + NSFW head ≈ 2.62 M, got ${r.totalParameters}`,
  );
  assert.equal(
    r.prunableParameters,
    r.prunable.reduce((n, p) => n + p.numel, 0),
  );
  assert.deepEqual(r.prunable[0], { name: 'Conv1.weight', shape: [32, 3, 3, 3], numel: 864 });
  assert.deepEqual(r.prunable.find((p) => p.name === 'Conv_1.weight')!.shape, [1280, 320, 1, 1]);
  assert.ok(!r.prunable.some((p) => p.name.startsWith('dense_') || p.name.includes('BN')));
  assert.deepEqual(r.inputSize, [224, 224]);
  assert.deepEqual(r.inputRange, [0, 1]);
  assert.equal(r.featureTap, 'flatten_1');
});

test('tapir info on a TF.js graph model folder (nsfwjs mobilenet_v2_mid)', async () => {
  const r = JSON.parse(await run(['info', 'node_modules/nsfwjs/dist/models/mobilenet_v2_mid', '--json'])) as ModelInfo;
  assert.ok(
    Math.abs(r.totalParameters - 4.3e6) < 0.01e6,
    `α 1.4 MobileNetV2 + head ≈ 4.30 M, got ${r.totalParameters}`,
  );
  assert.deepEqual(r.prunable[0]!.shape, [48, 3, 3, 3]);
  assert.equal(r.parameters.find((p) => p.shape.join() === '5,1792')!.role, 'head');
});

test('tapir info on a built-in at a smaller size, and an unknown model, which is a ConfigError naming the ids', async () => {
  const r = JSON.parse(await run(['info', 'resnet18@64', '--json'])) as ModelInfo;
  assert.equal(r.trainableParameters, 11689512);
  assert.deepEqual(r.inputSize, [64, 64]);
  await assert.rejects(run(['info', 'mobilenet_v9', '--json']), /unknown model 'mobilenet_v9'.*resnet18/);
});

test('tapir info on an ONNX file with several unsupported ops lists every one of them at once', async () => {
  const { mkdtemp, rm, writeFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { onnx } = await import('../../src/graph/onnx/proto.js');
  const { UnsupportedOpError } = await import('../../src/graph/errors.js');
  const { makeProgram } = await import('../../src/cli/program.js');
  const node = (opType: string, input: string, output: string, name: string, domain?: string) => ({
    opType,
    input: [input],
    output: [output],
    name,
    ...(domain ? { domain } : {}),
  });
  const m = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [
      { domain: '', version: 14 },
      { domain: 'com.microsoft', version: 1 },
    ],
    graph: {
      name: 'g',
      node: [
        node('LRN', 'x', 'a', 'lrn1'),
        node('Relu', 'a', 'b', 'relu'),
        node('LpNormalization', 'b', 'c', 'lp'),
        node('LRN', 'c', 'd', 'lrn2'),
        node('FusedGemm', 'd', 'y', 'fused', 'com.microsoft'),
      ],
      input: [
        {
          name: 'x',
          type: {
            tensorType: {
              elemType: 1,
              shape: { dim: [{ dimValue: 1 }, { dimValue: 4 }, { dimValue: 2 }, { dimValue: 2 }] },
            },
          },
        },
      ],
      output: [{ name: 'y', type: { tensorType: { elemType: 1 } } }],
    },
  });
  const dir = await mkdtemp(join(tmpdir(), 'tapir-info-'));
  const file = join(dir, 'm.onnx');
  await writeFile(file, onnx.ModelProto.encode(m).finish());
  try {
    let out = '';
    await assert.rejects(
      makeProgram({
        out: (s) => {
          out += s;
        },
        err: () => {},
      }).parseAsync(['node', 'tapir', 'info', file]),
      (e: unknown) => {
        assert.ok(e instanceof UnsupportedOpError);
        assert.match(
          e.message,
          /3 unsupported ops: 'LRN' in node 'lrn1' \(\+1 more\), 'LpNormalization' in node 'lp', 'com\.microsoft\.FusedGemm' in node 'fused'\. Supported ops: .*Conv/,
        );
        assert.deepEqual(e.unsupported, [
          { op: 'LRN', nodes: ['lrn1', 'lrn2'] },
          { op: 'LpNormalization', nodes: ['lp'] },
          { op: 'com.microsoft.FusedGemm', nodes: ['fused'] },
        ]);
        return true;
      },
    );
    for (const re of [/LRN\s+2\s+lrn1/, /LpNormalization\s+1\s+lp/, /com\.microsoft\.FusedGemm\s+1\s+fused/])
      assert.match(out, re);
    await assert.rejects(
      run(['info', file, '--json']),
      (e: unknown) =>
        e instanceof UnsupportedOpError && (e.context as { unsupported: unknown[] }).unsupported.length === 3,
    );
  } finally {
    await rm(dir, { recursive: true });
  }
});
