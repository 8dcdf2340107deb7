/** `tapir eval` and `tapir finetune` driven in-process through makeProgram, on a tiny ONNX model and a generated folder: task. */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { noGrad, randn, scope } from '../../src/engine/index.js';
import { disposeGraph, prunableParams, setMask, writeMaskFile } from '../../src/graph/index.js';
import { exportOnnx, importOnnx } from '../../src/graph/onnx/index.js';
import { readSafetensors } from '../../src/graph/safetensors.js';
import { assertGraphMasked, loadFinetuned, type FinetuneInfo, type ZeroShotRow } from '../../src/transfer/index.js';
import { makeFolderTask, tempDir, tinyNet, useTempCache } from './fixtures.js';
import { argv, runCli } from '../helpers/cli.js';

useTempCache();
const WORK = tempDir('tapir-transfer-cli-');
const MODEL = join(WORK, 'tiny.onnx');
const MASK = join(WORK, 'pruned');
let TASK = '';
let MASKED = 0;

before(async () => {
  TASK = await makeFolderTask('cli', 20);
  const g = tinyNet(11, 16, true);
  await exportOnnx(g, MODEL);
  disposeGraph(g);
  // The mask is written against the imported model (its parameter names), as `tapir prune` would.
  const m = await importOnnx(MODEL);
  scope(() =>
    noGrad(() => {
      for (const p of prunableParams(m)) {
        const c = randn(p.tensor.shape).gt(0).to('float32');
        MASKED += p.tensor.numel - c.sum().item();
        setMask(m, p.name, c);
      }
    }),
  );
  mkdirSync(MASK);
  await writeMaskFile(join(MASK, 'mask.safetensors'), m, { score: 'random' });
  disposeGraph(m);
});

const run = runCli;
type EvalDoc = { rows: ZeroShotRow[]; head: string; reference: string; mask: string | null };

test('tapir eval: dense and refit agree on the unpruned model; a mask changes the evaluated state; pixel row', async () => {
  const base = ['eval', '--model', MODEL, '--tasks', TASK, '--cap', '20', '--json', '--no-progress'];
  const dense = JSON.parse((await run([...base, '--head', 'dense'])).out) as EvalDoc;
  const refit = JSON.parse((await run([...base, '--head', 'refit'])).out) as EvalDoc;
  assert.equal(dense.rows[0]!.accuracy, refit.rows[0]!.accuracy);
  assert.equal(dense.rows[0]!.model, dense.rows[0]!.reference);
  const pruned = JSON.parse((await run([...base, '--mask', MASK, '--pixels', '--alpha', '2'])).out) as EvalDoc;
  assert.equal(pruned.rows.length, 2);
  const [z, px] = pruned.rows;
  assert.equal(z!.head, 'dense');
  assert.equal(z!.alpha, 2);
  assert.notEqual(z!.model, z!.reference, 'the pruned state differs from the dense reference');
  assert.equal(px!.head, 'pixels');
  assert.equal(z!.nTest, 12);
  const table = (await run(argv`eval --model ${MODEL} --tasks ${TASK} --cap 20 --no-progress`)).out;
  assert.match(table, /task\s+classes\s+head\s+accuracy\s+dense\s+retained/);
});

test('tapir finetune writes weights, mask and finetune.json; masked weights stay 0; eval reads the directory', async () => {
  const out = join(WORK, 'ft');
  const args = [
    'finetune',
    '--model',
    MODEL,
    '--mask',
    MASK,
    '--task',
    TASK,
    '--cap',
    '20',
    '--epochs',
    '2',
    '--batch-size',
    '8',
    '--lr',
    '0.01',
    '--optimizer',
    'sgd',
    '--weight-decay',
    '0.01',
    '--out',
    out,
    '--json',
    '--no-progress',
  ];
  const info = JSON.parse((await run(args)).out) as FinetuneInfo;
  assert.equal(info.steps, 12);
  assert.equal(info.maskedEntries, MASKED);
  assert.equal(info.resumedFrom, null);
  for (const f of ['model.safetensors', 'mask.safetensors', 'finetune.json']) assert.ok(existsSync(join(out, f)), f);
  assert.ok(!existsSync(join(out, 'checkpoint.safetensors')), 'checkpoint removed after a finished run');
  const loaded = await loadFinetuned(out);
  assert.equal(loaded.graph.masks.size, 2, 'conv1 and conv2 (the classifier is the head, not prunable)');
  assertGraphMasked(loaded.graph);
  assert.deepEqual(loaded.head!.weight.shape, [3, 8]);
  loaded.head!.weight.dispose();
  loaded.head!.bias.dispose();
  disposeGraph(loaded.graph);
  const ev = JSON.parse(
    (await run(argv`eval --model ${out} --tasks ${TASK} --cap 20 --json --no-progress`)).out,
  ) as EvalDoc;
  assert.equal(ev.reference, MODEL, 'a fine-tuned directory is compared with its base model');
  assert.notEqual(ev.rows[0]!.model, ev.rows[0]!.reference);
});

test('tapir finetune killed with SIGKILL after a checkpoint resumes (--resume) to the weights of an uninterrupted run', async () => {
  const common = [
    '--model',
    MODEL,
    '--mask',
    MASK,
    '--task',
    TASK,
    '--cap',
    '20',
    '--epochs',
    '4',
    '--batch-size',
    '8',
    '--lr',
    '0.01',
    '--augment',
    '--no-progress',
    '--json',
  ];
  const full = join(WORK, 'ft-full');
  await run(['finetune', ...common, '--out', full]);
  const killed = join(WORK, 'ft-killed');
  const main = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js');
  const child = spawn(process.execPath, [main, 'finetune', ...common, '--out', killed], {
    env: process.env,
    stdio: 'ignore',
  });
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  let sawCheckpoint = false;
  for (let i = 0; i < 3000 && child.exitCode === null; i++) {
    if (existsSync(join(killed, 'checkpoint.safetensors'))) {
      sawCheckpoint = true;
      child.kill('SIGKILL');
      break;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  await exited;
  assert.ok(sawCheckpoint, 'the child wrote a checkpoint before it was killed');
  assert.ok(!existsSync(join(killed, 'finetune.json')), 'the killed run did not finish');
  const info = JSON.parse((await run(['finetune', ...common, '--out', killed, '--resume'])).out) as FinetuneInfo;
  assert.ok(
    info.resumedFrom !== null && info.resumedFrom > 0 && info.resumedFrom < info.steps,
    `resumed from step ${info.resumedFrom}`,
  );
  const a = await readSafetensors(join(full, 'model.safetensors'));
  const b = await readSafetensors(join(killed, 'model.safetensors'));
  assert.deepEqual([...b.entries.keys()].sort(), [...a.entries.keys()].sort());
  for (const name of a.entries.keys())
    assert.deepEqual(b.bytes(name), a.bytes(name), `tensor ${name} is bit-identical`);
});

test('tapir eval --runtime torch and --runtime ort give the same rows on a masked model', async () => {
  const base = argv`eval --model ${MODEL} --mask ${MASK} --tasks ${TASK} --cap 20 --json --no-progress`;
  const torch = JSON.parse((await run([...base, '--runtime', 'torch'])).out) as EvalDoc & { runtime: string };
  const ort = JSON.parse((await run([...base, '--runtime', 'ort'])).out) as EvalDoc & { runtime: string };
  assert.deepEqual([torch.runtime, ort.runtime], ['torch', 'ort']);
  assert.deepEqual(
    ort.rows.map((r) => [r.accuracy, r.denseAccuracy, r.model]),
    torch.rows.map((r) => [r.accuracy, r.denseAccuracy, r.model]),
  );
});

test('bad input names the option or file', async () => {
  await assert.rejects(
    run(argv`eval --model ${MODEL} --tasks ${TASK} --runtime onnx`),
    /--runtime must be one of auto, torch, ort, got 'onnx'/,
  );
  await assert.rejects(
    run(['finetune', '--model', MODEL, '--task', TASK, '--out', join(WORK, 'x'), '--runtime', 'gpu']),
    /--runtime must be one of auto, torch, ort/,
  );
  await assert.rejects(
    run(argv`eval --model ${MODEL} --tasks ${TASK} --head bogus`),
    /--head must be one of dense, refit, got 'bogus'/,
  );
  await assert.rejects(
    run(['eval', '--model', MODEL, '--tasks', TASK, '--mask', join(WORK, 'nope')]),
    /no mask file at .*nope/,
  );
  await assert.rejects(
    run(['eval', '--model', join(WORK, 'missing.onnx'), '--tasks', TASK]),
    /missing\.onnx does not exist/,
  );
  await assert.rejects(
    run(['finetune', '--model', MODEL, '--task', TASK, '--out', join(WORK, 'x'), '--optimizer', 'rmsprop']),
    /--optimizer must be one of sgd, adamw/,
  );
  await assert.rejects(
    run(['finetune', '--model', MODEL, '--task', TASK, '--out', join(WORK, 'x'), '--schedule', 'multistep']),
    /needs --milestones/,
  );
});
