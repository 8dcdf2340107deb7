import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import {
  DEMO_STUDY,
  demoConfig,
  expandGrid,
  parseStudy,
  protocolHash,
  StudyConfigError,
} from '../../src/study/index.js';
import { eachFails, fails } from '../helpers/study-config.js';

const base = `
models: [mobilenet_v2]
resolution: 32
scores: [magnitude, {name: diag-hessian, estimator: fisher}]
sparsities: [0.5, 0.9]
sources: [digits]
heldout: [mnist]
`;

test('a valid config expands to the grid with controls', () => {
  const c = parseStudy(
    `${base}controls: {random_init: {scores: [magnitude], sparsities: [0.5]}, shuffled_mask: true}\n`,
    'studies.yaml',
  );
  assert.equal(c.name, 'studies');
  assert.deepEqual(c.sparsities, [0.5, 0.9]);
  assert.equal(c.scores[1]!.estimator, 'fisher');
  const cells = expandGrid(c);
  // 2 scores × 2 sparsities, + random-init (1 × 1), + shuffled (2 × 2)
  assert.equal(cells.length, 4 + 1 + 4);
  assert.equal(new Set(cells.map((x) => x.key)).size, cells.length);
  assert.equal(cells.filter((x) => x.control === 'random-init')[0]!.model, 'random:mobilenet_v2@32');
  assert.equal(cells[0]!.model, 'mobilenet_v2@32');
});

test('the protocol hash changes with anything that changes the numbers, not with the name', () => {
  const a = parseStudy(base, 'a.yaml');
  assert.equal(protocolHash(a), protocolHash(parseStudy(`name: other\n${base}`, 'b.yaml')));
  assert.notEqual(protocolHash(a), protocolHash(parseStudy(`${base}alpha: 10\n`, 'b.yaml')));
  assert.notEqual(protocolHash(a), protocolHash(parseStudy(`${base}data: {cap: 10}\n`, 'b.yaml')));
});

test('bad values give field-level errors', () => {
  eachFails([
    [base.replace('[0.5, 0.9]', '[0.5, 0.7, 1.2]'), 'studies.yaml: sparsities[2]: must be in [0, 1), got 1.2'],
    [base.replace('[0.5, 0.9]', '[0.5, "x"]'), "studies.yaml: sparsities[1]: must be a number, got 'x'"],
    [
      base.replace('estimator: fisher', 'estimator: lbfgs'),
      "studies.yaml: scores[1].estimator: must be one of fisher, ggn, hutchinson, got 'lbfgs'",
    ],
    [
      base.replace('[magnitude,', '[magnitud,'),
      "studies.yaml: scores[0]: must be one of magnitude, diag-hessian, block-hessian, snip, grasp, synflow, random, wanda, sparsegpt, got 'magnitud'",
    ],
    [
      base.replace('{name: diag-hessian, estimator: fisher}', '{name: magnitude, estimator: fisher}'),
      "studies.yaml: scores[1].estimator: only diag-hessian takes an estimator (score is 'magnitude')",
    ],
    [`${base}finetune: {epochs: 0}\n`, 'studies.yaml: finetune.epochs: must be >= 1, got 0'],
    [`${base}finetune: {lr: -1}\n`, 'studies.yaml: finetune.lr: must be > 0, got -1'],
    [
      `${base}data: {caps: {emoji: 5}}\n`,
      "studies.yaml: data.caps.emoji: 'emoji' is neither a source nor a held-out task",
    ],
    [
      base.replace('heldout: [mnist]', 'heldout: [mnist, digits]'),
      "studies.yaml: heldout[1]: 'digits' is also a source task",
    ],
    [
      base.replace('sparsities: [0.5, 0.9]', 'sparsities: []'),
      'studies.yaml: sparsities: must list at least one value',
    ],
    [base.replace('[0.5, 0.9]', '[0.5, 0.5]'), 'studies.yaml: sparsities[1]: duplicates sparsities[0] (0.5)'],
    [
      `${base}controls: {random_init: {sparsities: [2]}}\n`,
      'studies.yaml: controls.random_init.sparsities[0]: must be in [0, 1), got 2',
    ],
  ]);
});

test('errors deep in the config name the nested field path', () => {
  // A score option, its pinned allocation (in a control's scores too) and an unknown score option.
  eachFails([
    [
      base.replace('estimator: fisher}', 'estimator: fisher, probes: 0}'),
      'studies.yaml: scores[1].probes: must be >= 1, got 0',
    ],
    [
      base.replace('{name: diag-hessian, estimator: fisher}', '{name: block-hessian, block_size: 2.5}'),
      'studies.yaml: scores[1].block_size: must be an integer, got 2.5',
    ],
    [
      base.replace('{name: diag-hessian, estimator: fisher}', '{name: magnitude, estimator: lbfgs}'),
      "studies.yaml: scores[1].estimator: only diag-hessian takes an estimator (score is 'magnitude')",
    ],
    [
      `${base}controls: {random_init: {scores: [{name: wanda, allocation: "1:4"}]}}\n`,
      'studies.yaml: controls.random_init.scores[0].allocation: allocation 1:4 prunes 0.75, which is not one of the sparsities',
    ],
    [
      base.replace('{name: diag-hessian, estimator: fisher}', '{name: wanda, allocation: error}'),
      "studies.yaml: scores[1].allocation: allocation 'error' needs per-layer error curves, which wanda does not measure",
    ],
    [
      base.replace('{name: diag-hessian, estimator: fisher}', '{name: sparsegpt, allocation: error, rounds: 3}'),
      "studies.yaml: scores[1].rounds: allocation 'error' is one-shot",
    ],
    [
      `${base}controls: {shuffled_mask: 3}\n`,
      'studies.yaml: controls.shuffled_mask: must be true, false or {scores: […], sparsities: […]}, got 3',
    ],
  ]);
  assert.throws(
    () => parseStudy(base.replace('estimator: fisher}', 'estimator: fisher, blocksize: 8}'), 'studies.yaml'),
    (e: unknown) => {
      assert.ok(e instanceof StudyConfigError);
      assert.equal(e.message, 'studies.yaml: scores[1].blocksize: unknown field');
      assert.equal(e.fix, "did you mean 'block_size'?");
      return true;
    },
  );
  // A fine-tuning field.
  eachFails([
    [`${base}finetune: {momentum: 1}\n`, 'studies.yaml: finetune.momentum: must be in [0, 1), got 1'],
    [`${base}finetune: {optimizer: adam}\n`, "studies.yaml: finetune.optimizer: must be one of sgd, adamw, got 'adam'"],
    [`${base}finetune: {batch_size: "32"}\n`, "studies.yaml: finetune.batch_size: must be a number, got '32'"],
    [`${base}finetune: fast\n`, "studies.yaml: finetune: must be a mapping or false, got 'fast'"],
    [`${base}data: {caps: {mnist: 2}}\n`, 'studies.yaml: data.caps.mnist: must be >= 3, got 2'],
    [`${base}data: {caps: {mnist: 3.5}}\n`, 'studies.yaml: data.caps.mnist: must be an integer, got 3.5'],
    [`${base}data: {caps: [mnist]}\n`, 'studies.yaml: data.caps: must map task ids to caps, got ["mnist"]'],
    [`${base}calib_data: [source, "mix:"]\n`, "studies.yaml: calib_data[1]: calibration data 'mix:' names no task"],
  ]);
});

test('unknown fields are named, with a suggestion', () => {
  assert.throws(
    () => parseStudy(`${base}sparsity: [0.5]\n`, 'studies.yaml'),
    (e: unknown) => {
      assert.ok(e instanceof StudyConfigError);
      assert.equal(e.message, 'studies.yaml: sparsity: unknown field');
      assert.match(e.fix ?? '', /sparsities/);
      return true;
    },
  );
  fails(`${base}finetune: {epoch: 2}\n`, 'studies.yaml: finetune.epoch: unknown field');
});

test('YAML syntax errors carry the line and column; a non-mapping is refused', () => {
  assert.throws(
    () => parseStudy('models: [a\nscores: x', 'studies.yaml'),
    (e: unknown) => {
      assert.ok(e instanceof StudyConfigError);
      assert.match(e.message, /^studies\.yaml: line \d+, column \d+: YAML syntax error/);
      return true;
    },
  );
  assert.throws(() => parseStudy('- 1\n- 2\n', 'studies.yaml'), /studies\.yaml: the top level must be a mapping/);
  assert.throws(() => parseStudy('models: [a]\nmodels: [b]\n', 'studies.yaml'), /YAML syntax error/);
});

test('the embedded demo study is studies/demo.yaml and is valid', () => {
  assert.equal(DEMO_STUDY, readFileSync(new URL('../../../studies/demo.yaml', import.meta.url), 'utf8'));
  const c = demoConfig();
  assert.deepEqual(c.heldout, ['fashion-mnist', 'mnist', 'emoji', 'digits']);
  assert.deepEqual(
    c.scores.map((s) => s.name),
    ['magnitude', 'diag-hessian', 'block-hessian', 'random', 'sparsegpt'],
  );
  assert.ok(c.sparsities.length >= 3 && Math.min(...c.sparsities) === 0.5 && Math.max(...c.sparsities) === 0.9);
  assert.ok(c.controls.randomInit);
});

test('every committed study config under studies/ parses, is named after its file and has a non-empty grid', () => {
  const dir = new URL('../../../studies/', import.meta.url);
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.length >= 8, `expected the issue-8 studies, found ${files.join(', ')}`);
  for (const f of files) {
    const c = parseStudy(readFileSync(new URL(f, dir), 'utf8'), `studies/${f}`);
    assert.equal(
      c.name ?? f.replace(/\.yaml$/, ''),
      f.replace(/\.yaml$/, ''),
      `studies/${f}: name must match the file name`,
    );
    assert.ok(expandGrid(c).length > 0, `studies/${f}: empty grid`);
  }
});
