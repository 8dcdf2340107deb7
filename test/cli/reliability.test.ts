/**
 * Reliability cases of the CLI (one test per case, named after it): results that would look right but are not, and
 * inputs that must stop with a message naming the input and the fix.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { disposeGraph, exportOnnx } from '../../src/graph/index.js';
import { runCli } from '../helpers/cli.js';
import { makeFolderTask, tempDir, tinyNet, useTempCache } from '../transfer/fixtures.js';

useTempCache();
const WORK = tempDir('tapir-reliability-');
const MODEL = join(WORK, 'tiny.onnx');
let TASK = '';

before(async () => {
  TASK = await makeFolderTask('reliability', 20);
  const g = tinyNet(3, 16, true);
  await exportOnnx(g, MODEL);
  disposeGraph(g);
});

interface EvalDoc { reference: string; rows: { accuracy: number; denseAccuracy: number }[] }

test('case 1: a pruned model (its directory or its model.onnx) is evaluated against its base model, not against itself', async () => {
  const out = join(WORK, 'p');
  await runCli(['prune', '--model', MODEL, '--score', 'magnitude', '--sparsity', '0.7', '--out', out, '--no-progress']);
  const base = JSON.parse((await runCli(['eval', '--model', MODEL, '--tasks', TASK, '--cap', '20', '--alpha', '1', '--no-progress', '--json'])).out) as EvalDoc;
  for (const m of [out, join(out, 'model.onnx')]) {
    const doc = JSON.parse((await runCli(['eval', '--model', m, '--tasks', TASK, '--cap', '20', '--alpha', '1', '--no-progress', '--json'])).out) as EvalDoc;
    assert.equal(doc.reference, MODEL, `${m}: the dense reference is the base model`);
    assert.equal(doc.rows[0]!.denseAccuracy, base.rows[0]!.accuracy, `${m}: dense accuracy is the base model's`);
  }
});
