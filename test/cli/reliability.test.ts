/**
 * Reliability cases of the CLI (one test per case, named after it): results that would look right but are not, and
 * inputs that must stop with a message naming the input and the fix.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors } from '../../src/graph/index.js';
import { argv, cliWorkspace, runCli } from '../helpers/cli.js';

const W = cliWorkspace({ dir: 'tapir-reliability-', task: 'reliability', seed: 3 });
const WORK = W.work;
const MODEL = W.model;

interface EvalDoc {
  reference: string;
  rows: { accuracy: number; denseAccuracy: number }[];
}

test('case 1: a pruned model (its directory or its model.onnx) is evaluated against its base model, not against itself', async () => {
  const out = join(WORK, 'p');
  await runCli(argv`prune --model ${MODEL} --score magnitude --sparsity 0.7 --out ${out} --no-progress`);
  const base = JSON.parse(
    (await runCli(argv`eval --model ${MODEL} --tasks ${W.task} --cap 20 --alpha 1 --no-progress --json`)).out,
  ) as EvalDoc;
  for (const m of [out, join(out, 'model.onnx')]) {
    const doc = JSON.parse(
      (await runCli(argv`eval --model ${m} --tasks ${W.task} --cap 20 --alpha 1 --no-progress --json`)).out,
    ) as EvalDoc;
    assert.equal(doc.reference, MODEL, `${m}: the dense reference is the base model`);
    assert.equal(doc.rows[0]!.denseAccuracy, base.rows[0]!.accuracy, `${m}: dense accuracy is the base model's`);
  }
});

test('case 6: conflicting --min-density and --sparsity stop before anything is written', async () => {
  const out = join(WORK, 'md');
  await assert.rejects(
    runCli(argv`prune --model ${MODEL} --score magnitude --sparsity 0.5 --min-density 0.6 --out ${out} --no-progress`),
    /minDensity 0.6 keeps at least \d+ weights \(6\d\.\d %\), more than the \d+ \(50\.0 %\) that sparsity 0.5 keeps/,
  );
  assert.ok(!existsSync(out), 'no output directory');
});

test('case 6: a mask file missing a tensor it lists is refused, not applied with that tensor dense', async () => {
  const out = join(WORK, 'trunc');
  await runCli(argv`prune --model ${MODEL} --score magnitude --sparsity 0.5 --out ${out} --no-progress --no-onnx`);
  const file = join(out, 'mask.safetensors');
  const st = await readSafetensors(file);
  const names = [...st.entries.keys()];
  assert.ok(names.length >= 2);
  await writeSafetensors(
    file,
    new Map(
      names.slice(1).map((n) => [n, { dtype: 'U8' as const, shape: [...st.entries.get(n)!.shape], data: st.bytes(n) }]),
    ),
    st.metadata,
  );
  await assert.rejects(
    runCli(argv`eval --model ${MODEL} --mask ${out} --tasks ${W.task} --cap 20 --no-progress`),
    new RegExp(
      `lists ${names.length} masked tensors but lacks 1 of them \\(${names[0]!.replace('.', '\\.')}\\): it is truncated or was edited`,
    ),
  );
});

test('case 7: bad options and inputs stop with a message that names them and the fix, before anything is written', async () => {
  await assert.rejects(
    runCli(argv`eval --model ${MODEL} --tasks ${W.task} --alpha 0 --no-progress`),
    /--alpha must be a decimal number > 0, got '0'/,
  );
  await assert.rejects(
    runCli(['prune', '--model', MODEL, '--score', 'magnitude', '--sparsity', '0x1', '--out', join(WORK, 'x')]),
    /--sparsity must be a decimal number, got '0x1'/,
  );
  await assert.rejects(
    runCli(['finetune', '--model', MODEL, '--task', W.task, '--momentum', '5', '--out', join(WORK, 'ft')]),
    /--momentum must be a decimal number >= 0 and < 1, got '5'/,
  );
  await assert.rejects(
    runCli(['eval', '--model', join(WORK, 'no', 'such.onnx'), '--tasks', W.task]),
    /ONNX file .*no\/such\.onnx does not exist/,
  );
  await assert.rejects(
    runCli(['eval', '--model', join(WORK, 'no-such-dir'), '--tasks', W.task]),
    /no file or directory at .*no-such-dir/,
  );
  // report --out an existing directory: refused, nothing left beside it.
  const db = join(WORK, 'r.sqlite');
  const yaml = join(WORK, 'r.yaml');
  writeFileSync(
    yaml,
    `models: ['${MODEL}']\nscores: [magnitude]\nsparsities: [0.5]\nsources: ['${W.task}']\nheldout: []\ndata: {cap: 20}\nheads: [dense]\nalpha: 1\nfinetune: false\n`,
  );
  await runCli(['study', yaml, '--db', db, '--no-progress']);
  const dir = join(WORK, 'a-dir');
  mkdirSync(dir);
  await assert.rejects(runCli(['report', '--db', db, '--out', dir]), /a-dir is a directory, not a file/);
  assert.deepEqual(
    readdirSync(WORK).filter((f) => f.includes('.tmp')),
    [],
  );
});

test('case 7: study config errors in models and tasks name the field and come before the database is created', async () => {
  const db = join(WORK, 'never.sqlite');
  const cfg = (models: string, heldout: string) => {
    const f = join(WORK, `bad-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(
      f,
      `models: [${models}]\nscores: [magnitude]\nsparsities: [0.5]\nsources: ['${W.task}']\nheldout: [${heldout}]\ndata: {cap: 20}\nfinetune: false\n`,
    );
    return f;
  };
  await assert.rejects(
    runCli(['study', cfg(`'${join(WORK, 'missing.onnx')}'`, ''), '--db', db]),
    /models\[0\]: '.*missing\.onnx' does not open: ONNX file .* does not exist/,
  );
  await assert.rejects(
    runCli(['study', cfg(`'${MODEL}'`, 'no-such-dataset'), '--db', db]),
    /heldout\[0\]: task 'no-such-dataset' cannot be opened/,
  );
  assert.ok(!existsSync(db), 'no database was created');
});

test('case 6: a grid larger than 1000 cells asks for --yes and says its size and estimated time', async () => {
  const f = join(WORK, 'big.yaml');
  const sps = Array.from({ length: 150 }, (_, i) => (i / 200).toFixed(3)).join(', ');
  writeFileSync(
    f,
    `models: ['${MODEL}']\nscores: [magnitude, random, snip, synflow, grasp, wanda, sparsegpt]\nsparsities: [${sps}]\nsources: ['${W.task}']\nheldout: []\ndata: {cap: 20}\nfinetune: false\n`,
  );
  await assert.rejects(
    runCli(['study', f, '--db', join(WORK, 'big.sqlite')]),
    /big\.yaml expands to 1050 cells, about 17\.5 h at ~60 s a cell/,
  );
  assert.ok(!existsSync(join(WORK, 'big.sqlite')));
});

test('case 7: a bad TAPIR_THREADS stops the CLI; usage errors under --json print one JSON error', () => {
  const main = new URL('../../src/cli/main.js', import.meta.url).pathname;
  const env = spawnSync(process.execPath, [main, 'models'], {
    env: { ...process.env, TAPIR_THREADS: 'abc' },
    encoding: 'utf8',
  });
  assert.equal(env.status, 1);
  assert.match(env.stderr, /TAPIR_THREADS must be a positive integer, got 'abc'/);
  const usage = spawnSync(process.execPath, [main, 'prune', '--json', '--bogus'], { encoding: 'utf8' });
  assert.equal(usage.status, 1);
  const doc = JSON.parse(usage.stdout) as { error: { code: string; message: string } };
  assert.equal(doc.error.code, 'E_USAGE');
  assert.match(doc.error.message, /unknown option '--bogus'|required option/);
});

test('case 7: TAPIR_CACHE on a file or a read-only directory names TAPIR_CACHE and the fix', async () => {
  const saved = process.env.TAPIR_CACHE;
  try {
    const file = join(WORK, 'a-file');
    writeFileSync(file, 'x');
    process.env.TAPIR_CACHE = file;
    await assert.rejects(
      runCli(['data', 'prepare', 'digits', '--no-progress']),
      /the cache root .*a-file is a file, not a directory \(TAPIR_CACHE\)/,
    );
    const ro = join(WORK, 'ro');
    mkdirSync(ro);
    chmodSync(ro, 0o500);
    process.env.TAPIR_CACHE = ro;
    // root ignores permissions: only check where they apply.
    if (process.getuid?.() !== 0)
      await assert.rejects(
        runCli(['data', 'prepare', W.task, '--no-progress']),
        /cannot write the image cache under .*ro \(EACCES: not writable\)/,
      );
  } finally {
    if (saved === undefined) delete process.env.TAPIR_CACHE;
    else process.env.TAPIR_CACHE = saved;
  }
});
