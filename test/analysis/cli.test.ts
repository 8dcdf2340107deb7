/**
 * `tapir hessian` driven in-process through makeProgram, end to end on a tiny ONNX model and two folder tasks
 * (lives here because it exercises the analysis layer; src/cli/commands/hessian.ts has no logic of its own).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { manualSeed, ones, randn, setNumThreads, zeros } from '../../src/engine/index.js';
import { disposeGraph, makeParam, type Graph, type Node } from '../../src/graph/index.js';
import { exportOnnx, importOnnx } from '../../src/graph/onnx/index.js';
import { writeMaskFile } from '../../src/graph/mask-file.js';
import { setMask } from '../../src/graph/index.js';
import type { DiagnosticsReport } from '../../src/analysis/index.js';
import { argv, runCli } from '../helpers/cli.js';

setNumThreads(1);
const root = mkdtempSync(join(tmpdir(), 'tapir-hessian-cli-'));
process.env.TAPIR_CACHE = join(root, 'cache');
after(() => rmSync(root, { recursive: true, force: true }));

const node = (name: string, op: string, inputs: string[], attrs: Node['attrs'] = {}): Node => ({
  name,
  op,
  inputs,
  outputs: [name],
  attrs,
});

function tinyRgbNet(): Graph {
  manualSeed(3);
  const ps = [
    makeParam('conv.weight', randn([4, 3, 3, 3]).mul(0.5), 'weight'),
    makeParam('bn.weight', ones([4]), 'norm'),
    makeParam('bn.bias', zeros([4]), 'norm'),
    makeParam('bn.running_mean', zeros([4]), 'buffer'),
    makeParam('bn.running_var', ones([4]), 'buffer'),
    makeParam('fc.weight', randn([2, 4]), 'head'),
    makeParam('fc.bias', zeros([2]), 'bias'),
  ];
  return {
    name: 'tiny-rgb',
    inputs: [{ name: 'x', shape: [null, 3, 8, 8] }],
    outputs: ['logits'],
    nodes: [
      node('conv', 'conv2d', ['x', 'conv.weight'], { padding: 1 }),
      node('bn', 'batchnorm', ['conv', 'bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var']),
      node('act', 'tanh', ['bn']),
      node('gap', 'globalavgpool', ['act']),
      node('feat', 'flatten', ['gap']),
      node('logits', 'linear', ['feat', 'fc.weight', 'fc.bias']),
    ],
    params: new Map(ps.map((p) => [p.name, p])),
    constants: new Map(),
    masks: new Map(),
    featureTap: 'feat',
    preprocessing: { size: [8, 8], range: [0, 1] },
    meta: {},
  };
}

async function folderTask(name: string, shift: number): Promise<string> {
  const dir = join(root, name);
  for (const [c, base] of [
    ['a', 40],
    ['b', 160],
  ] as const) {
    mkdirSync(join(dir, c), { recursive: true });
    for (let i = 0; i < 10; i++) {
      const px = new Uint8Array(8 * 8 * 3).map((_, k) => (base + shift + ((k * 37 + i * 11) % 50)) % 256);
      writeFileSync(
        join(dir, c, `${i}.png`),
        new Uint8Array(
          await sharp(px, { raw: { width: 8, height: 8, channels: 3 } })
            .png()
            .toBuffer(),
        ),
      );
    }
  }
  return `folder:${dir}`;
}

const run = runCli;

test('tapir hessian --json: spectra, alignment and loss-change tables for two tasks', async () => {
  const g = tinyRgbNet();
  const model = join(root, 'tiny.onnx');
  await exportOnnx(g, model);
  disposeGraph(g);
  const t1 = await folderTask('t1', 0);
  const t2 = await folderTask('t2', 70);
  const args = [
    'hessian',
    '--model',
    model,
    '--tasks',
    `${t1},${t2}`,
    '--images',
    '6',
    '--head-images',
    '3',
    '--probes',
    '3',
    '--k',
    '2',
    '--steps',
    '6',
    '--sparsity',
    '0.5',
    '--no-progress',
  ];
  const r = JSON.parse((await run([...args, '--json'])).out) as DiagnosticsReport & { model: string };
  assert.equal(r.params.count, 4 * 3 * 3 * 3, 'the prunable conv weights (the head is not analysed)');
  assert.equal(r.tasks.length, 2);
  for (const t of r.tasks) {
    // 3 Rademacher probes of a non-diagonal Hessian give different vᵀHv: a positive trace estimate, a positive s.e.
    assert.ok(t.trace.estimate > 0 && t.trace.stderr > 0, `trace ${t.trace.estimate} ± ${t.trace.stderr}`);
    assert.equal(t.topEigenvalues.length, 2);
    assert.ok(t.topEigenvalues[0]! >= t.topEigenvalues[1]!);
  }
  assert.equal(r.pairs.length, 1);
  assert.ok(r.pairs[0]!.diagCosine <= 1 + 1e-9 && r.pairs[0]!.eigenOverlap <= 1 + 1e-9);
  assert.equal(r.lossChange.length, 2);
  const text = (await run(args)).out;

  // --mask: the given mask is the perturbation (its own sparsity), spectra are taken at the dense weights.
  const imported = await importOnnx(model);
  const conv = [...imported.params.values()].find((p) => p.prunable)!;
  setMask(
    imported,
    conv.name,
    conv.tensor
      .abs()
      .gt(conv.tensor.abs().reshape([-1]).sort().values.index(0, 53).item())
      .to('float32'),
  );
  const maskDir = join(root, 'mask');
  mkdirSync(maskDir);
  await writeMaskFile(join(maskDir, 'mask.safetensors'), imported);
  disposeGraph(imported);
  const m = JSON.parse((await run([...args, '--mask', maskDir, '--json'])).out) as DiagnosticsReport;
  assert.equal(m.lossChange.length, 2);
  for (const row of m.lossChange) {
    assert.equal(row.maskFrom, 'given');
    assert.ok(Math.abs(row.sparsity - 54 / 108) < 1e-9, `sparsity ${row.sparsity}`);
  }
  assert.ok(
    Math.abs(m.tasks[0]!.trace.estimate - r.tasks[0]!.trace.estimate) <
      1e-6 * Math.max(1, Math.abs(r.tasks[0]!.trace.estimate)),
    'the spectrum is of the dense model',
  );
  for (const h of ['Spectrum per task', 'Cross-task alignment', 'Predicted vs measured loss change', 'gᵀδ + ½δᵀHδ'])
    assert.ok(text.includes(h), `table '${h}' printed`);
});

test('tapir hessian: bad options fail with the option named', async () => {
  await assert.rejects(run(argv`hessian --model x --tasks mnist --loss hinge`), /--loss must be one of mse, ce/);
  await assert.rejects(
    run(argv`hessian --model x --tasks mnist --sparsity 1`),
    /--sparsity values must be in \[0, 1\)/,
  );
  await assert.rejects(run(argv`hessian --model x --tasks mnist --probes 1`), /--probes must be an integer >= 2/);
  await assert.rejects(run(['hessian', '--model', 'x', '--tasks', ' , ']), /--tasks is empty/);
});
