/**
 * The ablation axes end to end on the tiny conv net of the transfer tests (BN layers, 16 px) and generated
 * folder tasks: calibration sets per calib_data (noise labels = the dense model's argmax through the source head;
 * a task id gives that task's images and labels), a study with 2 values on every axis run by the real runner and
 * prune step, BN repair recorded per cell and undone before the next cell, and the report's ablation tables.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { noGrad, ones, randn, scope, tensor, zeros, type Tensor } from '../../src/engine/index.js';
import { applyMasksInPlace, disposeGraph, forward, GraphBuilder, setMask } from '../../src/graph/index.js';
import { calibrationSet, labelByModel, repairBatchNorm, disposeCalibSet } from '../../src/prune/index.js';
import { imagesToTensor, loadSplit, openTask } from '../../src/data/index.js';
import {
  disposeHead,
  extractFeatures,
  FeatureCache,
  fitRidgeHead,
  headLogits,
  preprocessOf,
  scoringHead,
} from '../../src/transfer/index.js';
import { restoreFrom } from '../../src/graph/index.js';
import {
  cellCalibData,
  htmlReport,
  markdownReport,
  parseStudy,
  phaseProfile,
  readReport,
  runStudy,
  StudyStore,
  taskOptionsFor,
  type StudyConfig,
} from '../../src/study/index.js';
import { ablationPlot, ablationTable, renderSvg } from '../../src/study/index.js';
import { ablations, type Ablation } from '../../src/study/report-data.js';
import { makeFolderTask, tinyNet, useTempCache } from '../transfer/fixtures.js';

useTempCache();
let S = '';
let T = '';
let U = '';
before(async () => {
  S = await makeFolderTask('study-ablation-s', 20);
  T = await makeFolderTask('study-ablation-t', 24);
  U = await makeFolderTask('study-ablation-u', 16);
});

const config = (extra = '', data = '{cap: 12}'): StudyConfig =>
  parseStudy(
    `
name: ablation
models: [tiny]
scores: [snip]
sparsities: [0.5]
sources: ['${S}']
heldout: ['${T}', '${U}']
data: ${data}
alpha: 1
finetune: false
${extra}`,
    'ablation.yaml',
  );

/** A cell's calibration set as the study builds it (transfer's pruneOnTask): mix/noise labelled by the source head. */
async function studyCalib(
  g: ReturnType<typeof tinyNet>,
  c: StudyConfig,
  seed: number,
  cache: FeatureCache,
  n: number,
  data = 'source',
) {
  const set = await calibrationSet(g, cellCalibData(c, data), {
    source: S,
    n,
    seed,
    taskOptions: (t) => taskOptionsFor(c, t),
    open: (id, o) => cache.task(id, o),
  });
  if (set.needsLabels) {
    const h = await scoringHead(g, set.taskSpec, { taskOptions: set.taskOptions, alpha: c.alpha, cache });
    labelByModel(set, g, h.head);
    h.head.weight.dispose();
    h.head.bias.dispose();
  }
  return set;
}

const rows = (t: Tensor) => {
  const n = t.shape[0]!;
  const a = Array.from(t.contiguous().data() as Float32Array);
  const per = a.length / n;
  return Array.from({ length: n }, (_, i) => a.slice(i * per, (i + 1) * per).join(','));
};

test('noise calibration: seeded uniform pixels through the preprocessing, labelled by the dense argmax through the source head', async () => {
  const g = tinyNet(0, 16);
  const cache = new FeatureCache();
  try {
    const c = config();
    const calib = await studyCalib(g, c, 3, cache, 20, 'noise');
    assert.equal(calib.data.kind, 'noise');
    assert.equal(calib.numClasses, 3);
    assert.deepEqual(
      calib.batches.map((b) => b.x.shape[0]),
      [20],
    );
    const x = calib.batches[0]!.x;
    // range [0, 1], no mean/std: every value is k / 255 for an integer k in 0..255, and they spread over the range.
    const v = Array.from(x.data() as Float32Array);
    assert.ok(v.every((a) => Math.abs(a * 255 - Math.round(a * 255)) < 1e-4 && a >= 0 && a <= 1));
    assert.ok(
      Math.min(...v) < 0.01 && Math.max(...v) > 0.99 && Math.abs(v.reduce((a, b) => a + b) / v.length - 0.5) < 0.02,
    );
    // Labels: the ridge head fitted here on the dense source train features, applied to the noise images' features.
    const task = await openTask(S, { seed: 0, cap: 12 });
    const set = await loadSplit(task, 'train', [16, 16]);
    const f = await extractFeatures(g, set);
    const want = scope(() => {
      const head = fitRidgeHead(
        f,
        tensor(
          BigInt64Array.from(set.labels, (l) => BigInt(l)),
          [set.n],
        ),
        { numClasses: 3, alpha: 1 },
      );
      const nf = forward(g, x, { mode: 'eval', taps: [g.featureTap], outputs: [] }).taps.get(g.featureTap)!;
      const pred = Array.from(headLogits(head, nf).argmax(1).data() as BigInt64Array, Number);
      disposeHead(head);
      return pred;
    });
    f.dispose();
    assert.deepEqual(Array.from(calib.batches[0]!.y.data() as BigInt64Array, Number), want);
    assert.ok(new Set(want).size > 1, `noise labels use more than one class (${want.join(',')})`);
    // Seeded: the same seed gives the same images, another seed others.
    const again = await studyCalib(g, c, 3, cache, 20, 'noise');
    const other = await studyCalib(g, c, 4, cache, 20, 'noise');
    assert.deepEqual(rows(again.batches[0]!.x), rows(x));
    assert.notDeepEqual(rows(other.batches[0]!.x), rows(x));
    for (const s of [calib, again, other]) disposeCalibSet(s);
  } finally {
    cache.dispose();
    disposeGraph(g);
  }
});

test("task-id calibration: the first n images of that task's train split with that task's labels and task options", async () => {
  const g = tinyNet(0, 16);
  const cache = new FeatureCache();
  try {
    const c = config(`calib_data: [source, '${T}']\n`, `{cap: 12, caps: {'${T}': 10}}`);
    const calib = await studyCalib(g, c, 0, cache, 16, T);
    assert.equal(calib.task, T);
    assert.equal(calib.needsLabels, false);
    assert.deepEqual(
      calib.batches.map((b) => b.x.shape[0]),
      [16],
    );
    const set = await loadSplit(await openTask(T, { seed: 0, cap: 10 }), 'train', [16, 16]);
    const all = imagesToTensor(
      set,
      Int32Array.from({ length: set.n }, (_, i) => i),
      preprocessOf(g),
    );
    const index = new Map(rows(all).map((r, i) => [r, i]));
    all.dispose();
    const got = rows(calib.batches[0]!.x).map((r) => index.get(r));
    assert.ok(
      got.every((i) => i !== undefined),
      "every calibration image is an image of T's train split",
    );
    assert.equal(new Set(got).size, 16, 'no image twice');
    assert.deepEqual(
      Array.from(calib.batches[0]!.y.data() as BigInt64Array, Number),
      got.map((i) => set.labels[i!]),
    );
    const src = await studyCalib(g, c, 0, cache, 16);
    assert.equal(src.task, S);
    assert.notDeepEqual(rows(src.batches[0]!.x), rows(calib.batches[0]!.x));
    for (const s of [calib, src]) disposeCalibSet(s);
  } finally {
    cache.dispose();
    disposeGraph(g);
  }
});

type Row = Record<string, unknown>;
const steps = { loadModel: async () => tinyNet(0, 16) };

test(
  'a study with 2+ values on every axis: cells, recorded axes and BN repair, no leak between cells, ablation tables',
  { timeout: 600_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tapir-ablation-'));
    try {
      const axes = `calibration: [8, 16]\ncalib_data: [source, noise, '${T}']\nprune: {loss: mse, allocation: [global, layerwise], bn: [none, match-dense]}\n`;
      const c = config(axes);
      const s = new StudyStore(join(dir, 'a.sqlite'));
      const sum = await runStudy(c, s, { steps });
      assert.equal(sum.ran, 3 * 2 * 2 * 2);
      const cells = s.all<Row>(
        'SELECT key, allocation, bn, calibration, calib_data, info, achieved_sparsity FROM cells ORDER BY rowid',
      );
      assert.equal(cells.length, 24);
      for (const cell of cells) {
        const info = JSON.parse(cell.info as string) as {
          bn: { mode: string; layers: number; images: number };
          calib: { data: string; task: string; requested: number; images: number };
          prune: { calibImages: number };
        };
        assert.equal(info.bn.mode, cell.bn);
        // tinyNet has 2 BatchNorms; match-dense measures them on the cell's calibration images.
        assert.deepEqual([info.bn.layers, info.bn.images], cell.bn === 'match-dense' ? [2, cell.calibration] : [0, 0]);
        assert.deepEqual(info.calib, {
          data: cell.calib_data,
          task: cell.calib_data === 'noise' || cell.calib_data === 'source' ? S : T,
          requested: cell.calibration,
          images: cell.calibration,
        });
        assert.equal(info.prune.calibImages, cell.calibration);
        assert.ok(Math.abs((cell.achieved_sparsity as number) - 0.5) < 0.01);
      }
      assert.deepEqual(
        [...new Set(cells.map((x) => `${x.calib_data}|${x.calibration}|${x.allocation}|${x.bn}`))].length,
        24,
      );
      // Masks depend on the calibration data (snip is data-driven): source vs noise at the same size and allocation differ.
      const maskOf = (k: unknown) =>
        s
          .all<{ h: string }>('SELECT hex(bits) AS h FROM masks WHERE cell = ? ORDER BY tensor', k)
          .map((m) => m.h)
          .join();
      const pick = (data: string, n: number, alloc: string, bn: string) =>
        cells.find((x) => x.calib_data === data && x.calibration === n && x.allocation === alloc && x.bn === bn)!.key;
      assert.notEqual(maskOf(pick('source', 8, 'global', 'none')), maskOf(pick('noise', 8, 'global', 'none')));
      // BN repair does not change the mask, only the BN affine parameters: same mask, other zero-shot numbers.
      assert.equal(maskOf(pick('source', 8, 'global', 'none')), maskOf(pick('source', 8, 'global', 'match-dense')));
      const accOf = (k: unknown) =>
        s.all<Row>('SELECT task, phase, head, accuracy FROM results WHERE cell = ? ORDER BY task, phase, head', k);
      assert.equal(accOf(pick('source', 8, 'global', 'none')).length, 3 * 2);

      // The same study without BN repair, into a fresh database: its cells have the same keys (bn none is not in a key)
      // and exactly the same results, so a match-dense cell leaves nothing behind for the cells after it.
      const s2 = new StudyStore(join(dir, 'b.sqlite'));
      const sum2 = await runStudy(config(axes.replace('bn: [none, match-dense]', 'bn: none')), s2, { steps });
      assert.equal(sum2.ran, 12);
      for (const k of s2.all<{ key: string }>('SELECT key FROM cells').map((x) => x.key))
        assert.deepEqual(
          accOf(k),
          s2.all<Row>('SELECT task, phase, head, accuracy FROM results WHERE cell = ? ORDER BY task, phase, head', k),
        );
      s2.close();
      // Re-running skips every cell: the keys are stable.
      assert.equal((await runStudy(c, s, { steps })).ran, 0);

      const d = readReport(s);
      s.close();
      // Every cell stores its seconds per phase; the profile sums them (shares add up to 1).
      const prof = phaseProfile(d);
      assert.equal(prof.cells, 24);
      for (const ph of ['data', 'prune', 'prune.score', 'prune.allocate', 'zeroShot'])
        assert.ok(
          prof.rows.some((r) => r.phase === ph && r.seconds > 0),
          ph,
        );
      assert.ok(Math.abs(prof.rows.reduce((a, r) => a + r.share, 0) - 1) < 1e-9);
      const ab = ablations(d);
      assert.deepEqual(
        ab.map((a) => [a.axis, a.values]),
        [
          ['calibData', ['source', 'noise', T]],
          ['calibration', ['8', '16']],
          ['allocation', ['global', 'layerwise']],
          ['bn', ['none', 'match-dense']],
        ],
      );
      assert.ok(ab.every((a) => a.excluded.length === 1 && a.excluded[0] === T));
      // The bn ablation at match-dense: the one cell with the other axes at base; held-out = U only (T is calibration data).
      const cell = d.cells.find(
        (x) => x.calibData === 'source' && x.calibration === 8 && x.allocation === 'global' && x.bn === 'match-dense',
      )!;
      const acc = (task: string, head: string) =>
        d.acc.find((a) => a.cell === cell.key && a.task === task && a.head === head && a.phase === 'zero-shot')!;
      const dense = d.dense.find((x) => x.task === U)!.accuracy;
      const pt = ab.find((a) => a.axis === 'bn')!.points.find((x) => x.value === 'match-dense')!;
      assert.deepEqual(pt, {
        model: 'tiny',
        source: S,
        value: 'match-dense',
        score: 'snip',
        sparsity: 0.5,
        cells: 1,
        heldDense: acc(U, 'dense').accuracy / dense,
        heldRefit: acc(U, 'refit').accuracy / dense,
        sourceAcc: acc(S, 'dense').accuracy,
      });
      const md = markdownReport(d);
      const pc = (x: number) => `${(100 * x).toFixed(1)}%`;
      assert.match(md, /### Ablation: calib_data \(source vs noise vs folder:/);
      assert.match(md, /### Ablation: calibration \(8 vs 16\)/);
      assert.match(md, /### Ablation: prune\.allocation \(global vs layerwise\)/);
      assert.match(md, /### Ablation: prune\.bn \(none vs match-dense\)/);
      assert.ok(md.includes(`| match-dense | snip | held-out zs retained (dense head) | ${pc(pt.heldDense!)} |`), md);
      assert.ok(md.includes(`| match-dense | snip | held-out zs retained (refit head) | ${pc(pt.heldRefit!)} |`));
      assert.ok(md.includes(`| match-dense | snip | source zs accuracy | ${pc(pt.sourceAcc!)} |`));
      const { html, plots } = await htmlReport(d);
      // accuracy, retained (with bootstrap bands), densities, per-layer errors, overlaps + one plot per ablation axis.
      assert.equal(plots, 5 + 4);
      assert.equal((html.match(/<svg/g) ?? []).length, 9);
      assert.ok(html.includes('Bands: 95 % percentile-bootstrap intervals'));
      assert.ok(html.includes('Where the pruned network drifts from the dense one, layer by layer'));
      assert.ok(html.includes('Ablation: prune.bn, held-out retained fraction'));
      for (const svg of html.match(/<svg[\s\S]*?<\/svg>/g)!) assert.match(svg, /role-mark/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('restoreFrom undoes a match-dense repair (γ/β changed in place, the graph never edited)', () => {
  // conv → BN with fixed γ = 1, β = 0 (a TF.js BN with scale: false, center: false, as the importer gives it) → pool.
  const build = () =>
    scope(() => {
      const b = new GraphBuilder();
      b.param('c.weight', randn([4, 3, 3, 3]), 'weight');
      b.param('bn.weight', ones([4]), 'norm', { trainable: false });
      b.param('bn.bias', zeros([4]), 'norm', { trainable: false });
      b.param('bn.running_mean', zeros([4]), 'buffer', { trainable: false });
      b.param('bn.running_var', ones([4]), 'buffer', { trainable: false });
      const x = b.op(
        'batchnorm',
        [
          b.op('conv2d', ['x', 'c.weight'], { padding: 1 }, 'c'),
          'bn.weight',
          'bn.bias',
          'bn.running_mean',
          'bn.running_var',
        ],
        { eps: 1e-5 },
        'bn',
      );
      const f = b.op('flatten', [b.op('globalavgpool', [x])]);
      return b.build({
        name: 'fixed-affine',
        inputs: [{ name: 'x', shape: [null, 3, 8, 8] }],
        outputs: [f],
        featureTap: f,
        preprocessing: { size: [8, 8], range: [0, 1] },
      });
    });
  const dense = build();
  const work = build();
  noGrad(() => work.params.get('c.weight')!.tensor.copy_(dense.params.get('c.weight')!.tensor));
  const before = { nodes: JSON.stringify(work.nodes), params: [...work.params.keys()] };
  const m = tensor(
    Float32Array.from({ length: 108 }, (_, i) => (i % 3 === 0 ? 1 : 0)),
    [4, 3, 3, 3],
  );
  setMask(work, 'c.weight', m);
  m.dispose();
  applyMasksInPlace(work);
  const x = scope(() => randn([6, 3, 8, 8]).mul(2));
  const r = repairBatchNorm(
    work,
    dense,
    [{ x, y: tensor(BigInt64Array.from([0n, 1n, 0n, 1n, 0n, 1n]), [6]) }],
    'match-dense',
  );
  assert.equal(r.layers, 1);
  assert.notDeepEqual(work.params.get('bn.weight')!.tensor.toArray(), [1, 1, 1, 1], 'γ repaired in place');
  assert.equal(JSON.stringify(work.nodes), before.nodes, 'no node edited');
  assert.deepEqual([...work.params.keys()], before.params, 'no parameter added');
  restoreFrom(work, dense);
  assert.deepEqual(work.params.get('bn.weight')!.tensor.toArray(), [1, 1, 1, 1]);
  const out = (g: typeof work) =>
    scope(() => Array.from(forward(g, x, { mode: 'eval' }).outputs[0]!.data() as Float32Array));
  assert.deepEqual(out(work), out(dense));
  x.dispose();
  disposeGraph(work);
  disposeGraph(dense);
});

test('a database written before the axis columns: read-only report works, a writable open adds the columns', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tapir-oldstore-'));
  try {
    const file = join(dir, 'old.sqlite');
    const Database = createRequire(import.meta.url)('better-sqlite3') as new (f: string) => {
      exec(s: string): void;
      close(): void;
    };
    const db = new Database(file);
    // The cells table as STORE_VERSION 1 created it before the axes, with one finished cell.
    db.exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      INSERT INTO meta VALUES ('store_version', '1');
      CREATE TABLE studies (name TEXT NOT NULL, protocol TEXT NOT NULL, config TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (name, protocol));
      INSERT INTO studies VALUES ('old', 'p0', '{"name":"old","heldout":["b"],"calibration":32,"prune":{"loss":"mse","allocation":"erk","minDensity":0}}', '2026-01-01');
      CREATE TABLE cells (key TEXT PRIMARY KEY, study TEXT NOT NULL, protocol TEXT NOT NULL, model TEXT NOT NULL, control TEXT NOT NULL,
        score TEXT NOT NULL, score_spec TEXT NOT NULL, sparsity REAL NOT NULL, source TEXT NOT NULL, seed INTEGER NOT NULL,
        achieved_sparsity REAL NOT NULL, info TEXT NOT NULL, wall_s REAL NOT NULL, finished_at TEXT NOT NULL);
      INSERT INTO cells VALUES ('k0', 'old', 'p0', 'm', 'none', 'magnitude', '{}', 0.5, 'a', 0, 0.5, '{}', 1, '2026-01-01');
      CREATE TABLE results (cell TEXT NOT NULL REFERENCES cells(key), task TEXT NOT NULL, phase TEXT NOT NULL, head TEXT NOT NULL,
        accuracy REAL NOT NULL, n_train INTEGER NOT NULL, n_test INTEGER NOT NULL, PRIMARY KEY (cell, task, phase, head));
      CREATE TABLE densities (cell TEXT NOT NULL REFERENCES cells(key), tensor TEXT NOT NULL, ord INTEGER NOT NULL, numel INTEGER NOT NULL, kept INTEGER NOT NULL, PRIMARY KEY (cell, tensor));
      CREATE TABLE masks (cell TEXT NOT NULL REFERENCES cells(key), tensor TEXT NOT NULL, bits BLOB NOT NULL, PRIMARY KEY (cell, tensor));
      CREATE TABLE dense (model TEXT NOT NULL, protocol TEXT NOT NULL, task TEXT NOT NULL, head TEXT NOT NULL, accuracy REAL NOT NULL,
        n_train INTEGER NOT NULL, n_test INTEGER NOT NULL, classes TEXT NOT NULL, PRIMARY KEY (model, protocol, task, head));
      CREATE TABLE layers (model TEXT NOT NULL, tensor TEXT NOT NULL, ord INTEGER NOT NULL, op TEXT NOT NULL, shape TEXT NOT NULL, numel INTEGER NOT NULL,
        macs INTEGER NOT NULL, prunable INTEGER NOT NULL, PRIMARY KEY (model, tensor));
      CREATE TABLE dense_done (model TEXT NOT NULL, protocol TEXT NOT NULL, info TEXT NOT NULL, PRIMARY KEY (model, protocol));`);
    db.close();
    const axes = (s: StudyStore) =>
      readReport(s).cells.map((c) => [c.key, c.allocation, c.bn, c.calibration, c.calibData]);
    const ro = new StudyStore(file, { readonly: true });
    assert.deepEqual(axes(ro), [['k0', 'erk', 'none', 32, 'source']]);
    ro.close();
    const rw = new StudyStore(file);
    assert.deepEqual(
      rw
        .all<{ name: string }>('PRAGMA table_info(cells)')
        .map((c) => c.name)
        .slice(-4),
      ['allocation', 'bn', 'calibration', 'calib_data'],
    );
    assert.deepEqual(rw.all('SELECT allocation, bn, calibration, calib_data FROM cells'), [
      { allocation: null, bn: 'none', calibration: null, calib_data: 'source' },
    ]);
    assert.deepEqual(axes(rw), [['k0', 'erk', 'none', 32, 'source']]);
    rw.writeCell(
      {
        key: 'k1',
        study: 'old',
        protocol: 'p0',
        model: 'm',
        control: 'none',
        score: 'magnitude',
        scoreSpec: {},
        sparsity: 0.5,
        source: 'a',
        seed: 0,
        achievedSparsity: 0.5,
        info: {},
        wallS: 1,
        allocation: 'global',
        bn: 'reestimate',
        calibration: 16,
        calibData: 'noise',
      },
      [],
      [],
      new Map(),
    );
    assert.deepEqual(axes(rw)[1], ['k1', 'global', 'reestimate', 16, 'noise']);
    rw.close();
    // Opening it again (already migrated) changes nothing.
    const again = new StudyStore(file);
    assert.equal(again.all('PRAGMA table_info(cells)').length, 18);
    again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ablation table and plot over several sparsities: one column per sparsity, one line per axis value', async () => {
  const pt = (value: string, sparsity: number, r: number) => ({
    model: 'm',
    source: 's',
    value,
    score: 'magnitude',
    sparsity,
    cells: 1,
    heldDense: r,
    heldRefit: null,
    sourceAcc: 0.5,
  });
  const a: Ablation = {
    axis: 'bn',
    values: ['none', 'match-dense'],
    excluded: [],
    points: [pt('none', 0.5, 0.8), pt('none', 0.7, 0.4), pt('match-dense', 0.5, 0.9), pt('match-dense', 0.7, 0.625)],
  };
  const t = ablationTable(a);
  assert.deepEqual(t.header, ['prune.bn', 'score', 'measure', '50%', '70%']);
  // No refit numbers: that measure row is left out.
  assert.deepEqual(t.rows, [
    ['none', 'magnitude', 'held-out zs retained (dense head)', '80.0%', '40.0%'],
    ['none', 'magnitude', 'source zs accuracy', '50.0%', '50.0%'],
    ['match-dense', 'magnitude', 'held-out zs retained (dense head)', '90.0%', '62.5%'],
    ['match-dense', 'magnitude', 'source zs accuracy', '50.0%', '50.0%'],
  ]);
  const plot = ablationPlot(a);
  assert.deepEqual((plot.spec as { data: { values: unknown[] } }).data.values.length, 4);
  const svg = await renderSvg(plot.spec);
  assert.match(svg, /role-mark/);
  assert.ok(svg.includes('>match-dense<') && svg.includes('>none<'), 'legend names both axis values');
});
