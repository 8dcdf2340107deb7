/**
 * Ablation axes in the study config and grid: calibration sizes, calib_data, prune.allocation and prune.bn as
 * scalars or lists. A config that uses only scalars / defaults must hash exactly as before the axes existed
 * (a long study may be running into a database keyed by those hashes): the demo keys below were computed with
 * the code before the axes were added.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { demoConfig, expandGrid, parseStudy, protocolHash } from '../../src/study/index.js';
import { cellKeyAxes } from '../../src/study/grid.js';
import { eachFails, fails } from '../helpers/study-config.js';

const DEMO_PROTOCOL = '946eff468bcf010b';
const DEMO_KEYS = [
  'd3146f89734ddab4',
  '2692f66d4a425162',
  '16994e931020b4e9',
  '3f81512215695ee3',
  'a694890083d4247d',
  '795a41dc7c3771d6',
  '30c09f94bbc70e3b',
  '982ae0b2dbdf5b72',
  'afa37b60de1e46fc',
  '54d7166a8a26d81d',
  'd1ae3b82de887eed',
  '800a36811275d129',
  'c86fe1a7e45c6efa',
  '2cb5ce89c6d04fb4',
];

const base = `
models: [mobilenet_v2]
resolution: 32
scores: [magnitude, random]
sparsities: [0.5, 0.9]
sources: [digits]
heldout: [mnist, emoji]
calibration: 32
prune: {loss: mse, allocation: global}
`;

test('the demo study keeps its protocol hash and every cell key (pinned before the axes existed)', () => {
  const c = demoConfig();
  assert.equal(protocolHash(c), DEMO_PROTOCOL);
  const cells = expandGrid(c);
  // The reconstruction score added later brings 3 cells of its own; every pinned key is still there, in order.
  assert.deepEqual(
    cells.filter((x) => x.score.name !== 'sparsegpt').map((x) => x.key),
    DEMO_KEYS,
  );
  assert.equal(cells.filter((x) => x.score.name === 'sparsegpt').length, 3);
  assert.ok(
    cells
      .filter((x) => !x.score.pin)
      .every((x) => x.allocation === 'global' && x.bn === 'none' && x.calibration === 32 && x.calibData === 'source'),
  );
});

test('scalars, one-value lists and explicit defaults give the same protocol and keys', () => {
  const a = parseStudy(base, 'a.yaml');
  assert.deepEqual(a.calibrations, [32]);
  assert.equal(a.calibration, 32);
  assert.deepEqual(a.calibData, ['source']);
  assert.deepEqual(a.prune.allocations, ['global']);
  assert.deepEqual(a.prune.bns, ['none']);
  const keys = (y: string) => expandGrid(parseStudy(y, 'a.yaml')).map((x) => x.key);
  const same = [
    base.replace('calibration: 32', 'calibration: [32]'),
    base.replace('allocation: global}', 'allocation: [global]}'),
    base.replace('allocation: global}', 'allocation: global, bn: none}'),
    base.replace('allocation: global}', 'allocation: global, bn: [none]}'),
    `${base}calib_data: source\n`,
    `${base}calib_data: [source]\n`,
  ];
  for (const y of same) {
    assert.equal(protocolHash(parseStudy(y, 'a.yaml')), protocolHash(a), y);
    assert.deepEqual(keys(y), keys(base), y);
  }
});

test('lists are grid axes: counts, order (base values first), controls at the base values, keys', () => {
  const y =
    base
      .replace('calibration: 32', 'calibration: [32, 8]')
      .replace('allocation: global}', 'allocation: [global, erk], bn: [none, match-dense]}') +
    'calib_data: [source, noise, mnist]\ncontrols: {random_init: {scores: [magnitude], sparsities: [0.5]}, shuffled_mask: true}\n';
  const c = parseStudy(y, 'studies.yaml');
  const cells = expandGrid(c);
  const main = cells.filter((x) => x.control === 'none');
  // 3 calib_data × 2 calibration × 2 allocation × 2 bn × 2 scores × 2 sparsities; controls: 1 and 4 cells at the base values.
  assert.equal(main.length, 3 * 2 * 2 * 2 * 2 * 2);
  assert.equal(cells.length, main.length + 1 + 4);
  assert.equal(new Set(cells.map((x) => x.key)).size, cells.length);
  for (const x of cells.filter((x) => x.control !== 'none'))
    assert.deepEqual([x.calibData, x.calibration, x.allocation, x.bn], ['source', 32, 'global', 'none']);
  // The first 4 cells are the base grid (score × sparsity), then bn varies fastest, then allocation, calibration, calib_data.
  assert.deepEqual(
    main.slice(0, 5).map((x) => [x.calibData, x.calibration, x.allocation, x.bn, x.scoreLabel, x.sparsity]),
    [
      ['source', 32, 'global', 'none', 'magnitude', 0.5],
      ['source', 32, 'global', 'none', 'magnitude', 0.9],
      ['source', 32, 'global', 'none', 'random', 0.5],
      ['source', 32, 'global', 'none', 'random', 0.9],
      ['source', 32, 'global', 'match-dense', 'magnitude', 0.5],
    ],
  );
  assert.deepEqual(main.at(-1)!.calibData, 'mnist');
  // The protocol holds only the base values: it equals the scalar config's, and so do the base cells' keys.
  const scalar = parseStudy(
    `${base}controls: {random_init: {scores: [magnitude], sparsities: [0.5]}, shuffled_mask: true}\n`,
    'studies.yaml',
  );
  assert.equal(protocolHash(c), protocolHash(scalar));
  const scalarCells = expandGrid(scalar);
  assert.deepEqual(
    main.slice(0, 4).map((x) => x.key),
    scalarCells.slice(0, 4).map((x) => x.key),
  );
  assert.deepEqual(
    cells.filter((x) => x.control !== 'none').map((x) => x.key),
    scalarCells.filter((x) => x.control !== 'none').map((x) => x.key),
  );
  // A cell key holds exactly the axes that differ from the base (allocation, calibration) or the default (bn, calib_data).
  assert.deepEqual(cellKeyAxes(c, { allocation: 'global', bn: 'none', calibration: 32, calibData: 'source' }), {});
  assert.deepEqual(cellKeyAxes(c, { allocation: 'erk', bn: 'match-dense', calibration: 8, calibData: 'noise' }), {
    allocation: 'erk',
    bn: 'match-dense',
    calibration: 8,
    calibData: 'noise',
  });
  // The base is the FIRST value: reordering a list changes the protocol (its base changed).
  assert.notEqual(protocolHash(parseStudy(y.replace('[32, 8]', '[8, 32]'), 'studies.yaml')), protocolHash(c));
  assert.notEqual(
    protocolHash(parseStudy(y.replace('[global, erk]', '[erk, global]'), 'studies.yaml')),
    protocolHash(c),
  );
  // bn and calib_data never enter the protocol: a scalar non-default value goes into each cell key instead.
  const md = parseStudy(base.replace('allocation: global}', 'allocation: global, bn: match-dense}'), 'a.yaml');
  assert.equal(protocolHash(md), protocolHash(parseStudy(base, 'a.yaml')));
  assert.notDeepEqual(
    expandGrid(md).map((x) => x.key),
    expandGrid(parseStudy(base, 'a.yaml')).map((x) => x.key),
  );
});

test('axis fields: bad values give errors that name the field path', () => {
  eachFails([
    [base.replace('calibration: 32', 'calibration: [16, 0]'), 'studies.yaml: calibration[1]: must be >= 1, got 0'],
    [base.replace('calibration: 32', 'calibration: 2.5'), 'studies.yaml: calibration[0]: must be an integer, got 2.5'],
    [
      base.replace('calibration: 32', 'calibration: [16, 16]'),
      'studies.yaml: calibration[1]: duplicates calibration[0] (16)',
    ],
    [base.replace('calibration: 32', 'calibration: []'), 'studies.yaml: calibration: must list at least one value'],
    [
      base.replace('allocation: global}', 'allocation: [global, uniform]}'),
      "studies.yaml: prune.allocation[1]: must be one of global, layerwise, erk, rowwise, error, error-layer, got 'uniform'",
    ],
    [
      base.replace('allocation: global}', 'allocation: global, bn: [none, recalibrate]}'),
      "studies.yaml: prune.bn[1]: must be one of none, reestimate, match-dense, got 'recalibrate'",
    ],
    [
      base.replace('allocation: global}', 'allocation: global, bn: [none, none]}'),
      'studies.yaml: prune.bn[1]: duplicates prune.bn[0] ("none")',
    ],
    [
      `${base}calib_data: [source, 3]\n`,
      "studies.yaml: calib_data[1]: must be 'source', 'noise', 'all', 'mix:A+B' or a task id, got 3",
    ],
    [`${base}calib_data: [source, "no such task!"]\n`, "studies.yaml: calib_data[1]: 'no such task!' is not a task id"],
    [`${base}calib_data: [noise, noise]\n`, 'studies.yaml: calib_data[1]: duplicates calib_data[0] ("noise")'],
    [`${base}calib_data: []\n`, 'studies.yaml: calib_data: must list at least one value'],
    [`${base}calib_dta: noise\n`, 'studies.yaml: calib_dta: unknown field'],
    [base.replace('allocation: global}', 'allocation: global, bns: none}'), 'studies.yaml: prune.bns: unknown field'],
  ]);
});

test('a calib_data task may be capped; other unknown cap keys are still refused', () => {
  const c = parseStudy(
    `${base}calib_data: [source, 'fashion-mnist[0-2]']\ndata: {caps: {'fashion-mnist[0-2]': 6}}\n`,
    'studies.yaml',
  );
  assert.deepEqual(c.calibData, ['source', 'fashion-mnist[0-2]']);
  assert.equal(c.caps['fashion-mnist[0-2]'], 6);
  fails(
    `${base}data: {caps: {'fashion-mnist[0-2]': 6}}\n`,
    "studies.yaml: data.caps.fashion-mnist[0-2]: 'fashion-mnist[0-2]' is neither a source nor a held-out task",
  );
});

test('reconstruction pruners, N:M and rowwise allocations, all/mix calibration data in a study config', () => {
  const y =
    base
      .replace(
        'scores: [magnitude, random]',
        'scores: [wanda, {name: sparsegpt, target: dense-output, block_size: 16, damping: 0.05}]',
      )
      .replace('allocation: global}', 'allocation: [global, rowwise, "2:4"]}') +
    'calib_data: [source, all, "mix:mnist+emoji"]\n';
  const c = parseStudy(y, 'studies.yaml');
  assert.deepEqual(c.scores[1], { name: 'sparsegpt', target: 'dense-output', blockSize: 16, damping: 0.05 });
  assert.deepEqual(c.prune.allocations, ['global', 'rowwise', '2:4']);
  assert.deepEqual(c.calibData, ['source', 'all', 'mix:mnist+emoji']);
  const cells = expandGrid(c);
  // 3 calib_data × (global, rowwise at 2 sparsities + 2:4 at 0.5 only) × 2 scores.
  assert.equal(cells.length, 3 * (2 + 2 + 1) * 2);
  assert.ok(cells.filter((x) => x.allocation === '2:4').every((x) => x.sparsity === 0.5));
  eachFails([
    [
      y.replace('sparsities: [0.5, 0.9]', 'sparsities: [0.7, 0.9]'),
      'studies.yaml: prune.allocation[2]: allocation 2:4 prunes 0.5, which is not one of the sparsities',
    ],
    [y.replace('"2:4"', '"4:2"'), "studies.yaml: prune.allocation[2]: allocation '4:2': N:M needs 0 <= N < M"],
    [
      base.replace('scores: [magnitude, random]', 'scores: [{name: magnitude, target: dense-output}]'),
      "studies.yaml: scores[0].target: only sparsegpt takes target (score is 'magnitude')",
    ],
    [
      base.replace('scores: [magnitude, random]', 'scores: [{name: sparsegpt, target: dense}]'),
      "studies.yaml: scores[0].target: must be one of dense-weights, dense-output, got 'dense'",
    ],
    [`${base}calib_data: ["mix:mnist+bad id!"]\n`, "studies.yaml: calib_data[0].mix[1]: 'bad id!' is not a task id"],
  ]);
});

test('a score may pin axis values (its recipe): its cells use them once, the other scores the study axes', () => {
  const y =
    base
      .replace(
        'scores: [magnitude, random]',
        'scores: [magnitude, {name: sparsegpt, target: dense-output, allocation: erk, calib_data: all, calibration: 128, bn: match-dense}]',
      )
      .replace('allocation: global}', 'allocation: [global, layerwise]}') + 'calib_data: [source, noise]\n';
  const c = parseStudy(y, 'studies.yaml');
  assert.deepEqual(c.scores[1]!.pin, { allocation: 'erk', calibData: 'all', calibration: 128, bn: 'match-dense' });
  const cells = expandGrid(c);
  const sg = cells.filter((x) => x.score.name === 'sparsegpt');
  assert.equal(sg.length, 2, 'one cell per sparsity, not one per axis combination');
  assert.ok(
    sg.every((x) => x.allocation === 'erk' && x.calibData === 'all' && x.calibration === 128 && x.bn === 'match-dense'),
  );
  assert.equal(cells.filter((x) => x.score.name === 'magnitude').length, 2 * 2 * 2);
  assert.equal(
    sg[0]!.scoreLabel,
    'sparsegpt(dense-output; allocation=erk, calib_data=all, calibration=128, bn=match-dense)',
  );
  // Keys of the other scores are those of the same study without the pinned score.
  const plain = expandGrid(
    parseStudy(
      y.replace(
        ', {name: sparsegpt, target: dense-output, allocation: erk, calib_data: all, calibration: 128, bn: match-dense}',
        '',
      ),
      'studies.yaml',
    ),
  );
  assert.deepEqual(
    cells.filter((x) => x.score.name === 'magnitude').map((x) => x.key),
    plain.map((x) => x.key),
  );
  fails(
    base.replace('scores: [magnitude, random]', 'scores: [{name: wanda, allocation: "4:5"}]'),
    'studies.yaml: scores[0].allocation: allocation 4:5 prunes 0.2, which is not one of the sparsities',
  );
});

test('rounds: a score option for every score; R > 1 prunes in R rounds (its own cell key and label), 1 is one-shot', async () => {
  const { scoreOptions } = await import('../../src/study/runner.js');
  const y = base.replace(
    'scores: [magnitude, random]',
    'scores: [{name: magnitude, rounds: 1}, {name: snip, rounds: 3}]',
  );
  const c = parseStudy(y, 'studies.yaml');
  assert.deepEqual(c.scores[0], { name: 'magnitude' }, 'rounds: 1 is the one-shot default, the same cell as before');
  assert.equal(expandGrid(c).find((x) => x.score.name === 'snip')!.scoreLabel, 'snip(rounds=3)');
  assert.deepEqual(scoreOptions(c.scores[1]!).schedule, { kind: 'iterative', rounds: 3 });
  assert.equal(scoreOptions(c.scores[0]!).schedule, undefined);
  const one = expandGrid(
    parseStudy(base.replace('scores: [magnitude, random]', 'scores: [magnitude]'), 'studies.yaml'),
  );
  assert.deepEqual(
    expandGrid(c)
      .filter((x) => x.score.name === 'magnitude')
      .map((x) => x.key),
    one.map((x) => x.key),
  );
  fails(
    base.replace('scores: [magnitude, random]', 'scores: [{name: snip, rounds: 0}]'),
    'studies.yaml: scores[0].rounds: must be >= 1, got 0',
  );
});

test('activations: a sparsegpt option (half: float16 walks); full is the default cell, half its own key and label', async () => {
  const { scoreOptions } = await import('../../src/study/runner.js');
  const y = base.replace(
    'scores: [magnitude, random]',
    'scores: [{name: sparsegpt, activations: full}, {name: sparsegpt, target: dense-output, activations: half}]',
  );
  const c = parseStudy(y, 'studies.yaml');
  assert.deepEqual(c.scores[0], { name: 'sparsegpt' }, 'full is the default: the same cell as leaving it out');
  assert.deepEqual(c.scores[1], { name: 'sparsegpt', target: 'dense-output', activations: 'half' });
  const cells = expandGrid(c);
  assert.equal(cells.at(-1)!.scoreLabel, 'sparsegpt(dense-output,activations=half)');
  assert.deepEqual(scoreOptions(c.scores[1]!).reconstruct, { target: 'dense-output', activations: 'half' });
  const plain = expandGrid(
    parseStudy(base.replace('scores: [magnitude, random]', 'scores: [sparsegpt]'), 'studies.yaml'),
  );
  assert.deepEqual(
    cells.filter((x) => x.scoreLabel === 'sparsegpt').map((x) => x.key),
    plain.map((x) => x.key),
  );
  eachFails([
    [
      base.replace('scores: [magnitude, random]', 'scores: [{name: wanda, activations: half}]'),
      "studies.yaml: scores[0].activations: only sparsegpt takes activations (score is 'wanda')",
    ],
    [
      base.replace('scores: [magnitude, random]', 'scores: [{name: sparsegpt, activations: float16}]'),
      "studies.yaml: scores[0].activations: must be one of full, half, got 'float16'",
    ],
  ]);
});
