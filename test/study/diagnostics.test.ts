/**
 * Study diagnostics: the `diagnostics` section's parsing, the scale-free task heads shared with
 * `tapir hessian`, and a tiny study that writes the diag_* tables, skips them when done, and reports them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { liveTensors, noGrad, scope, setNumThreads, tensor } from '../../src/engine/index.js';
import { disposeGraph, type Graph } from '../../src/graph/index.js';
import { exportOnnx } from '../../src/graph/onnx/index.js';
import { hessianOperator, runDiagnostics, type DiagnosticsReport } from '../../src/analysis/index.js';
import { ESTIMATORS } from '../../src/prune/index.js';
import { openTask, loadSample } from '../../src/data/index.js';
import {
  disposeTaskHead,
  extractFeatures,
  fitRidgeHead,
  ridgeToLinear,
  disposeHead,
  openModel,
  withTaskHead,
} from '../../src/transfer/index.js';
import { makeProgram } from '../../src/cli/program.js';
import {
  expandGrid,
  htmlReport,
  markdownReport,
  parseStudy,
  protocolHash,
  readReport,
  runStudy,
  StudyConfigError,
  StudyStore,
  type StudySteps,
} from '../../src/study/index.js';
import {
  buildTaskInputs,
  DIAGNOSTICS_ALPHA_GRID,
  type HeadAlpha,
  type HeadInfo,
} from '../../src/study/diagnostics-inputs.js';
import { planDiagnostics, cellMask } from '../../src/study/diagnostics.js';
import { makeFolderTask, tempDir, tinyNet, useTempCache } from '../transfer/fixtures.js';
import { eachFails, fails } from '../helpers/study-config.js';

setNumThreads(1);
useTempCache();

const base = `
models: [mobilenet_v2]
resolution: 32
scores: [magnitude]
sparsities: [0.5, 0.9]
sources: [digits]
heldout: [mnist]
`;

test('diagnostics section: defaults, explicit values, and no effect on the protocol hash', () => {
  const d = parseStudy(`${base}diagnostics: true\n`, 'studies.yaml').diagnostics!;
  assert.deepEqual(d, {
    tasks: ['digits', 'mnist'],
    images: 32,
    headImages: 30,
    alpha: 'images',
    probes: 16,
    k: 4,
    steps: null,
    loss: 'mse',
    sparsities: [0.5, 0.9],
    control: true,
    seed: 0,
  });
  const e = parseStudy(
    `${base}prune: {loss: ce}\ndiagnostics: {tasks: [mnist], images: 8, head_images: 5, alpha: 100, probes: 4, k: 2, steps: 9, sparsities: [0.7], control: false, seed: 3}\n`,
    'studies.yaml',
  ).diagnostics!;
  assert.deepEqual(e, {
    tasks: ['mnist'],
    images: 8,
    headImages: 5,
    alpha: 100,
    probes: 4,
    k: 2,
    steps: 9,
    loss: 'ce',
    sparsities: [0.7],
    control: false,
    seed: 3,
  });
  assert.equal(parseStudy(`${base}diagnostics: {alpha: auto}\n`, 'studies.yaml').diagnostics!.alpha, 'auto');
  assert.equal(parseStudy(`${base}diagnostics: {alpha: images}\n`, 'studies.yaml').diagnostics!.alpha, 'images');
  assert.equal(parseStudy(`${base}diagnostics: false\n`, 'studies.yaml').diagnostics, null);
  assert.equal(parseStudy(base, 'studies.yaml').diagnostics, null);
  // Diagnostics do not change any cell's numbers: cell keys and the protocol hash stay as they were.
  const plain = parseStudy(base, 'studies.yaml');
  const withDiag = parseStudy(`${base}diagnostics: {probes: 4}\n`, 'studies.yaml');
  assert.equal(protocolHash(withDiag), protocolHash(plain));
  assert.deepEqual(
    expandGrid(withDiag).map((c) => c.key),
    expandGrid(plain).map((c) => c.key),
  );
});

test('diagnostics section: field-level errors', () => {
  fails(`${base}diagnostics: 3\n`, 'studies.yaml: diagnostics: must be true, false or a mapping, got 3');
  fails(
    `${base}diagnostics: {tasks: [emoji]}\n`,
    "studies.yaml: diagnostics.tasks[0]: 'emoji' is not a task of this study",
    /digits, mnist/,
  );
  eachFails([
    [`${base}diagnostics: {tasks: []}\n`, 'studies.yaml: diagnostics.tasks: must list at least one value'],
    [`${base}diagnostics: {probes: 1}\n`, 'studies.yaml: diagnostics.probes: must be >= 2, got 1'],
    [`${base}diagnostics: {k: 0}\n`, 'studies.yaml: diagnostics.k: must be >= 1, got 0'],
    [`${base}diagnostics: {images: 2.5}\n`, 'studies.yaml: diagnostics.images: must be an integer, got 2.5'],
    [
      `${base}diagnostics: {sparsities: [0.5, 1]}\n`,
      'studies.yaml: diagnostics.sparsities[1]: must be in [0, 1), got 1',
    ],
    [`${base}diagnostics: {loss: hinge}\n`, "studies.yaml: diagnostics.loss: must be one of mse, ce, got 'hinge'"],
    [`${base}diagnostics: {alpha: -1}\n`, 'studies.yaml: diagnostics.alpha: must be > 0, got -1'],
    [
      `${base}diagnostics: {alpha: big}\n`,
      "studies.yaml: diagnostics.alpha: must be a number > 0, 'images' or 'auto', got 'big'",
    ],
    [
      `${base}diagnostics: {control: yes please}\n`,
      "studies.yaml: diagnostics.control: must be true or false, got 'yes please'",
    ],
  ]);
  fails(`${base}diagnostics: {probe: 4}\n`, 'studies.yaml: diagnostics.probe: unknown field', /probes/);
});

/** transfer's tiny net in float64, its last BN (before ReLU and the pooled feature tap) scaled by `s`: features × s. */
function scaledNet(s: number): Graph {
  const g = tinyNet(0);
  noGrad(() => {
    for (const p of g.params.values()) {
      const old = p.tensor;
      p.tensor = old.to('float64');
      if (p.trainable) p.tensor.requiresGrad_(true);
      old.dispose();
    }
    for (const n of ['bn2.weight', 'bn2.bias']) g.params.get(n)!.tensor.mul_(s);
  });
  return g;
}

const OPTS = { loss: 'mse' as const, probes: 3, k: 2, steps: 6, seed: 0, sparsities: [0.5] };
const close = (a: number, b: number, rel: number, what: string) =>
  assert.ok(Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b)), `${what}: ${a} vs ${b}`);

test("scale-free task heads: features × 1e-12 (a random init's) give the same loss and curvature; the old head does not", async () => {
  const task = await makeFolderTask('diag-a', 20);
  const live = liveTensors();
  const run = async (s: number, alpha: HeadAlpha = 'images') => {
    const g = scaledNet(s);
    const built = await buildTaskInputs(g, [task], { images: 6, headImages: 5, alpha, batchSize: 4 });
    try {
      // The head recipe a fixed absolute std floor gives (transfer's featureStats, alpha 1 as `tapir hessian` had).
      const t = await openTask(task, {});
      const train = await loadSample(t, 'train', g.preprocessing.size, 5);
      const feats = await extractFeatures(g, train);
      const y = tensor(
        BigInt64Array.from(train.labels, (v) => BigInt(v)),
        [train.n],
      );
      const ridge = fitRidgeHead(feats, y, { numClasses: 3, alpha: 1 });
      y.dispose();
      const view = withTaskHead(g, ridgeToLinear(ridge, 'float64'));
      disposeHead(ridge);
      feats.dispose();
      const oldLoss = hessianOperator(view, 'mse', built.inputs[0]!.batches).lossValue();
      disposeTaskHead(view);
      const r = runDiagnostics(built.inputs, OPTS);
      // Σθ²Hⱼⱼ straight from src/prune's Hutchinson diagonal with the same probes (same seed): Σ θⱼ² diag(H)ⱼ.
      const inp = built.inputs[0]!;
      const weighted = scope(() => {
        const names = hessianOperator(inp.graph, 'mse', inp.batches).layout.names;
        const est = ESTIMATORS.hutchinson.diag(inp.graph, inp.batches, {
          loss: 'mse',
          probes: OPTS.probes,
          seed: OPTS.seed,
          params: names,
        });
        let w = 0;
        for (const n of names)
          w += noGrad(() => inp.graph.params.get(n)!.tensor.square().mul(est.diag.get(n)!).sum().item());
        return w;
      });
      return { r, head: built.heads[0]!, oldLoss, weighted };
    } finally {
      built.dispose();
      disposeGraph(g);
    }
  };
  const a = await run(1);
  const b = await run(1e-12);
  assert.equal(liveTensors(), live, 'inputs, heads and views are freed');
  assert.equal(a.head.alpha, 15, "alpha 'images': one unit of penalty per head training image (3 classes × 5)");
  assert.equal(b.head.alpha, a.head.alpha);
  assert.equal(b.head.trainAccuracy, a.head.trainAccuracy);
  assert.equal(a.head.images, 15);
  close(b.head.featureRms / a.head.featureRms, 1e-12, 1e-9, 'feature rms');
  const [ta, tb] = [a.r.tasks[0]!, b.r.tasks[0]!];
  close(tb.loss, ta.loss, 1e-9, 'loss');
  close(tb.trace.estimate, ta.trace.estimate, 1e-8, 'trace');
  close(tb.weightedTrace.estimate, ta.weightedTrace.estimate, 1e-8, 'Σθ²H');
  ta.topEigenvalues.forEach((v, i) => close(tb.topEigenvalues[i]!, v, 1e-8, `λ${i + 1}`));
  a.r.lossChange.forEach((x, i) => close(b.r.lossChange[i]!.measured, x.measured, 1e-8, 'measured ΔL'));
  // The absolute std floor (1e-8) flattens 1e-12 features: that head predicts the class prior 1/3 whatever the image,
  // so its mse is (1/3)·((2/3)² + 2·(1/3)²) = 2/9 and its loss no longer depends on the backbone.
  close(b.oldLoss, 2 / 9, 1e-6, 'old head at 1e-12');
  assert.ok(Math.abs(b.oldLoss - a.oldLoss) > 0.05 * a.oldLoss, `old head: loss ${a.oldLoss} vs ${b.oldLoss}`);
  // Σθ²Hⱼⱼ is the Hutchinson estimate of Σ θⱼ² Hⱼⱼ: its per-probe mean equals the diagonal-weighted sum (same probes),
  // and 3 probes of a non-diagonal Hessian disagree, so its standard error is positive.
  close(ta.weightedTrace.estimate, a.weighted, 1e-9, 'Σθ²H vs Σθ²·diag');
  close(tb.weightedTrace.estimate, b.weighted, 1e-9, 'Σθ²H vs Σθ²·diag at 1e-12');
  assert.ok(Number.isFinite(ta.weightedTrace.stderr) && ta.weightedTrace.stderr > 0);
  // alpha 'auto' is chosen on standardised features, so it too is blind to the feature scale.
  const [c, e] = [await run(1, 'auto'), await run(1e-12, 'auto')];
  assert.ok(DIAGNOSTICS_ALPHA_GRID.includes(c.head.alpha));
  assert.equal(e.head.alpha, c.head.alpha);
  close(e.r.tasks[0]!.trace.estimate, c.r.tasks[0]!.trace.estimate, 1e-8, 'trace (auto)');
});

async function runCli(args: string[]): Promise<string> {
  let out = '';
  await makeProgram({ out: (s) => (out += s), err: () => {} }).parseAsync(['node', 'tapir', ...args]);
  return out;
}

test('tapir hessian builds its task inputs with the shared builder (same numbers as buildTaskInputs + runDiagnostics)', async () => {
  const dir = tempDir('tapir-diag-cli-');
  const g = tinyNet(0);
  const model = join(dir, 'tiny.onnx');
  await exportOnnx(g, model);
  disposeGraph(g);
  const tasks = [await makeFolderTask('diag-a', 20), await makeFolderTask('diag-b', 16, 20)];
  const cli = JSON.parse(
    await runCli([
      'hessian',
      '--model',
      model,
      '--tasks',
      tasks.join(','),
      '--images',
      '6',
      '--head-images',
      '5',
      '--probes',
      '3',
      '--k',
      '2',
      '--steps',
      '6',
      '--sparsity',
      '0.5',
      '--batch-size',
      '4',
      '--no-progress',
      '--json',
    ]),
  ) as DiagnosticsReport & { heads: HeadInfo[] };
  const m = await openModel(model);
  const built = await buildTaskInputs(m.graph, tasks, {
    images: 6,
    headImages: 5,
    alpha: 'images',
    batchSize: 4,
    taskOptions: () => ({ seed: 0 }),
  });
  try {
    const r = runDiagnostics(built.inputs, OPTS);
    assert.deepEqual(cli.heads, built.heads);
    assert.deepEqual(
      JSON.parse(JSON.stringify({ t: r.tasks, p: r.pairs, l: r.lossChange })),
      JSON.parse(JSON.stringify({ t: cli.tasks, p: cli.pairs, l: cli.lossChange })),
    );
    assert.deepEqual(
      cli.heads.map((h) => [h.images, h.alpha]),
      [
        [15, 15],
        [15, 15],
      ],
      'default --alpha images: the number of head training images',
    );
  } finally {
    built.dispose();
    disposeGraph(m.graph);
  }
});

type Row = Record<string, unknown>;
function dump(db: string): Record<string, Row[]> {
  const s = new StudyStore(db, { readonly: true });
  try {
    return Object.fromEntries(
      ['diag_done', 'diag_spectra', 'diag_pairs', 'diag_loss_change'].map((t) => [
        t,
        s.all<Row>(`SELECT * FROM ${t} ORDER BY rowid`),
      ]),
    );
  } finally {
    s.close();
  }
}

test(
  'a study with diagnostics writes the diag tables after its cells, resumes without recomputing, and reports them',
  { timeout: 300_000 },
  async () => {
    const dir = tempDir('tapir-diag-study-');
    const [a, b] = [await makeFolderTask('diag-a', 20), await makeFolderTask('diag-b', 16, 20)];
    const cfg = parseStudy(
      `
name: diag
models: [tiny]
scores: [magnitude, random]
sparsities: [0.5, 0.7]
sources: ['${a}']
heldout: ['${b}']
calibration: 8
heads: [dense]
alpha: 10
finetune: false
controls: {random_init: {scores: [magnitude], sparsities: [0.5]}}
diagnostics: {images: 6, head_images: 5, probes: 3, k: 2, steps: 6, sparsities: [0.5]}
`,
      'diag.yaml',
    );
    // 'tiny': transfer's tiny net; 'random:tiny' another init whose features are 1e-6 as large.
    const loads: string[] = [];
    const steps: StudySteps = {
      loadModel: async (spec) => {
        loads.push(spec);
        const g = tinyNet(spec.startsWith('random:') ? 5 : 0);
        if (spec.startsWith('random:'))
          noGrad(() => {
            for (const n of ['bn2.weight', 'bn2.bias']) g.params.get(n)!.tensor.mul_(1e-6);
          });
        return g;
      },
    };
    const plans = planDiagnostics(cfg, expandGrid(cfg));
    assert.deepEqual(
      plans.map((p) => [p.model, p.random, p.maskCells.map((m) => `${m.score} ${m.sparsity}`)]),
      [
        ['tiny', false, ['magnitude 0.5', 'random 0.5']],
        ['random:tiny', true, ['magnitude 0.5']],
      ],
    );
    // A model file gets its random-init control too (openModel re-initialises any architecture).
    const fileCfg = { ...cfg, models: ['models/x.onnx'] };
    assert.deepEqual(
      planDiagnostics(fileCfg, expandGrid(fileCfg)).map((p) => [p.model, p.random]),
      [
        ['models/x.onnx', false],
        ['random:models/x.onnx', true],
      ],
    );
    const db = join(dir, 'd.sqlite');
    let store = new StudyStore(db);
    // Only the first cell: the pre-trained model's mask cells are not all finished, so no diagnostics yet.
    const first = await runStudy(cfg, store, { steps, maxCells: 1 });
    assert.equal(first.diagnostics, 0);
    assert.equal(dump(db).diag_done!.length, 0);
    const full = await runStudy(cfg, store, { steps });
    assert.equal(full.diagnostics, 2);
    const want = dump(db);
    assert.deepEqual(
      want.diag_done!.map((r) => r.model),
      ['tiny', 'random:tiny'],
    );
    assert.equal(want.diag_spectra!.length, 2 * 2);
    assert.equal(want.diag_pairs!.length, 2);
    // OBD of the first task at 0.5 on 2 tasks, + the cells' masks on 2 tasks: 2 + 2·2 (pre-trained), 2 + 1·2 (random).
    assert.equal(want.diag_loss_change!.filter((r) => r.model === 'tiny').length, 2 + 4);
    assert.equal(want.diag_loss_change!.filter((r) => r.model === 'random:tiny').length, 2 + 2);

    // The stored rows are exactly what the shared builder and runDiagnostics give for the dense model and the cell masks.
    const g = await steps.loadModel('tiny');
    const built = await buildTaskInputs(g, [a, b], {
      images: 6,
      headImages: 5,
      alpha: 'images',
      batchSize: 32,
      taskOptions: () => ({ seed: 0 }),
    });
    const cells = store.all<{ key: string; score: string; achieved_sparsity: number }>(
      "SELECT key, score, achieved_sparsity FROM cells WHERE model = 'tiny' AND control = 'none' AND sparsity = 0.5 ORDER BY score",
    );
    const masks = cells.map((c) => ({ from: c.key, mask: cellMask(store, c.key, g) }));
    try {
      const r = runDiagnostics(built.inputs, { ...OPTS, masks });
      const spectra = want.diag_spectra!.filter((s) => s.model === 'tiny');
      r.tasks.forEach((t, i) => {
        assert.equal(spectra[i]!.trace, t.trace.estimate);
        assert.equal(spectra[i]!.weighted_trace, t.weightedTrace.estimate);
        assert.deepEqual(JSON.parse(spectra[i]!.eigenvalues as string), t.topEigenvalues);
        assert.deepEqual(JSON.parse(spectra[i]!.head as string), built.heads[i]);
      });
      const pair = want.diag_pairs!.find((p) => p.model === 'tiny')!;
      assert.equal(pair.cosine, r.pairs[0]!.diagCosine);
      for (const c of cells) {
        const rows = want.diag_loss_change!.filter((l) => l.mask_from === c.key);
        assert.deepEqual(
          rows.map((l) => [l.mask_kind, l.score, l.target]),
          [
            ['cell', c.score, 0.5],
            ['cell', c.score, 0.5],
          ],
        );
        for (const l of rows) {
          const x = r.lossChange.find((y) => y.maskFrom === c.key && y.task === l.task)!;
          assert.deepEqual([l.first, l.second, l.measured], [x.firstOrder, x.secondOrder, x.measured]);
          // The stored mask, unpacked, removes what the cell's mask removed (all prunable weights are analysed).
          close(l.sparsity as number, c.achieved_sparsity, 1e-12, 'removed fraction');
        }
      }
    } finally {
      for (const m of masks) for (const t of m.mask.values()) t.dispose();
      built.dispose();
      disposeGraph(g);
    }

    // Resume: everything is done, nothing is loaded or recomputed.
    store.close();
    store = new StudyStore(db);
    loads.length = 0;
    const again = await runStudy(cfg, store, { steps });
    assert.equal(again.diagnostics, 0);
    assert.equal(again.ran, 0);
    assert.deepEqual(loads, []);
    assert.deepEqual(dump(db), want);
    // Other settings → another hash → a new run next time.
    const probes4 = parseStudy(
      `name: diag\nmodels: [tiny]\nscores: [magnitude, random]\nsparsities: [0.5, 0.7]\nsources: ['${a}']\nheldout: ['${b}']\ncalibration: 8\nheads: [dense]\nalpha: 10\nfinetune: false\ncontrols: {random_init: {scores: [magnitude], sparsities: [0.5]}}\ndiagnostics: {images: 6, head_images: 5, probes: 4, k: 2, steps: 6, sparsities: [0.5]}\n`,
      'diag.yaml',
    );
    assert.notEqual(planDiagnostics(probes4, expandGrid(probes4))[0]!.settings, plans[0]!.settings);

    const d = readReport(store);
    store.close();
    assert.ok(d.diagnostics);
    const md = markdownReport(d);
    assert.match(md, /## Second-order diagnostics/);
    assert.match(md, /### Curvature per task/);
    const { html, plots } = await htmlReport(d);
    for (const title of [
      'Curvature spectrum per task: pre-trained vs random init',
      'Curvature alignment: cosine of the Hessian diagonals, task × task',
      'Predicted (second-order) vs measured loss change',
    ])
      assert.ok(html.includes(`<h2>${title.replace(/&/g, '&amp;')}</h2>`), `plot '${title}'`);
    assert.equal((html.match(/<svg/g) ?? []).length, plots);
    const diagHtml = html.slice(html.indexOf('Second-order diagnostics'));
    assert.equal((diagHtml.match(/<svg/g) ?? []).length, 3);
  },
);
