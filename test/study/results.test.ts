/**
 * `tapir results`: findings are computed from the stored numbers (a store filled with hand-chosen accuracies, so
 * each sentence's sparsity / count / winner is known in advance), a missing database gives a "not run yet"
 * section, plots are written as SVG files referenced from the markdown, and only the committed config's cells count.
 * Dense accuracies are powers of two, so accuracy / dense recovers the chosen retained fractions exactly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expandGrid, parseStudy, readReport, StudyStore, type CellSpec } from '../../src/study/index.js';
import { packBits } from '../../src/graph/index.js';
import {
  computeFindings,
  controlsFinding,
  DEFAULT_THRESHOLDS,
  paperOrder,
  orderIntervals,
  holdsUpTo,
  retainedInterval,
  taskName,
  type Finding,
} from '../../src/study/results-findings.js';
import { mulberry32 } from '../../src/data/rng.js';
import { diagnosticsFindings, diagSummaryOf } from '../../src/study/results-diagnostics.js';
import type { AccRow, CellRow, ReportData } from '../../src/study/report-data.js';
import { writeResults } from '../../src/study/results.js';
import { makeProgram } from '../../src/cli/program.js';

const DENSE: Record<string, number> = { src: 0.5, 'cifar-b': 0.5, clipart: 0.25 };
const PIXELS: Record<string, number> = { src: 0.25, 'cifar-b': 0.25, clipart: 0.25 };

/** Retained fraction (zero-shot, per held-out task [cifar-b, clipart]) by score, head and sparsity. */
const ZS: Record<string, Record<string, Record<number, [number, number]>>> = {
  magnitude: {
    dense: { 0.3: [0.95, 0.95], 0.5: [0.92, 0.91], 0.7: [0.85, 0.78] },
    refit: { 0.3: [1, 1], 0.5: [0.97, 0.96], 0.7: [0.9, 0.86] },
  },
  random: {
    dense: { 0.3: [0.85, 0.8], 0.5: [0.6, 0.61], 0.7: [0.3, 0.31] },
    refit: { 0.3: [0.9, 0.85], 0.5: [0.7, 0.7], 0.7: [0.4, 0.4] },
  },
};
/** Change of the retained fraction after fine-tuning (both heads, both tasks). */
const FT_GAIN: Record<string, Record<number, number>> = {
  magnitude: { 0.3: 0.02, 0.5: 0.02, 0.7: 0.1 },
  random: { 0.3: -0.05, 0.5: -0.05, 0.7: -0.05 },
};

const CONFIG = `# A synthetic study (test fixture).
name: syn
models: [m]
scores: [magnitude, random]
sparsities: [0.3, 0.5, 0.7]
sources: [src]
heldout: [cifar-b, clipart]
controls: {shuffled_mask: {scores: [magnitude], sparsities: [0.5]}}
`;

function retained(c: CellSpec, head: string, task: number): number {
  if (c.control === 'shuffled-mask') return 0.4;
  const r = ZS[c.score.name]![head]![c.sparsity]![task]!;
  // Calibrating on cifar-b helps cifar-b (+0.1, which the findings must leave out) and clipart (+0.02).
  const calib = c.calibData === 'cifar-b' ? [0.1, 0.02][task]! : 0;
  return (c.bn === 'match-dense' ? r + 0.05 : r) + calib;
}

/** Writes every cell of `config`'s grid with the chosen accuracies, plus one cell that is not in the grid. */
function fill(s: StudyStore, yaml: string): void {
  const config = parseStudy(yaml, 'syn.yaml');
  const cells = expandGrid(config);
  const protocol = cells[0]!.protocol;
  s.recordStudy(config.name, protocol, config);
  const tasks = ['src', 'cifar-b', 'clipart'];
  s.writeDense(
    'm',
    protocol,
    tasks.map((t) => ({ task: t, head: 'dense', accuracy: DENSE[t]!, nTrain: 8, nTest: 4, classes: ['a', 'b'] })),
    [
      { tensor: 'w1', op: 'conv2d', shape: [2, 2], numel: 4, macs: 40, prunable: true },
      { tensor: 'w2', op: 'linear', shape: [2, 4], numel: 8, macs: 8, prunable: true },
    ],
    {},
  );
  s.writeDense(
    'pixels',
    protocol,
    tasks.map((t) => ({ task: t, head: 'pixels', accuracy: PIXELS[t]!, nTrain: 8, nTest: 4, classes: ['a', 'b'] })),
    [],
    {},
  );
  const write = (c: CellSpec, key: string) => {
    const results = [];
    for (const phase of ['zero-shot', 'finetuned']) {
      for (const head of ['dense', 'refit']) {
        const gain = phase === 'finetuned' ? FT_GAIN[c.score.name]![c.sparsity]! : 0;
        results.push({ task: 'src', phase, head, accuracy: 0.5, nTrain: 8, nTest: 4 });
        ['cifar-b', 'clipart'].forEach((t, i) =>
          results.push({
            task: t,
            phase,
            head,
            accuracy: (retained(c, head, i) + gain) * DENSE[t]!,
            nTrain: 8,
            nTest: 4,
          }),
        );
      }
    }
    results.push({ task: 'src', phase: 'finetuned', head: 'trained', accuracy: 0.75, nTrain: 8, nTest: 0 });
    // magnitude at 70% empties w1 (the collapse finding); every other mask keeps both tensors.
    const k1 = c.score.name === 'magnitude' && c.sparsity === 0.7 && c.control === 'none' ? 0 : 2;
    const m1 = [1, 1, 0, 0].map((v, i) => (i < k1 ? v : 0));
    const m2 = [1, 1, 1, 0, 0, 0, 0, 0];
    s.writeCell(
      {
        key,
        study: config.name,
        protocol,
        model: c.model,
        control: c.control,
        score: c.scoreLabel,
        scoreSpec: c.score,
        sparsity: c.sparsity,
        source: c.source,
        seed: c.seed,
        achievedSparsity: c.sparsity,
        info: {},
        wallS: 30,
        allocation: c.allocation,
        bn: c.bn,
        calibration: c.calibration,
        calibData: c.calibData,
      },
      results,
      [
        { tensor: 'w1', numel: 4, kept: k1 },
        { tensor: 'w2', numel: 8, kept: 3 },
      ],
      new Map([
        ['w1', packBits(m1)],
        ['w2', packBits(m2)],
      ]),
    );
  };
  for (const c of cells) write(c, c.key);
  // A cell of another (edited) config in the same database: tapir results must not count it.
  write({ ...cells[0]!, score: { name: 'random' }, scoreLabel: 'random', sparsity: 0.3 }, 'foreign-cell');
}

const byId = (fs: Finding[], id: string) => fs.find((f) => f.id === id)!;

/** A store filled from `yaml` in `dir`, read back as report data without the cell of a foreign config. */
function syntheticReport(dir: string, yaml: string): ReturnType<typeof readReport> {
  const s = new StudyStore(join(dir, 'syn.sqlite'));
  fill(s, yaml);
  const d = readReport(s);
  s.close();
  d.cells = d.cells.filter((c) => c.key !== 'foreign-cell');
  d.acc = d.acc.filter((a) => a.cell !== 'foreign-cell');
  return d;
}

test('retainedInterval: the delta-method value by hand, and about 95 % coverage of a / d over simulated test sets', () => {
  // a = d = 0.5 on n = 100: shrunk to 50.5 / 101 = 0.5 each; se(log ratio) = sqrt(2 · 0.5 / 50) = sqrt(0.02).
  const [lo, hi] = retainedInterval(0.5, 0.5, 100);
  assert.ok(
    Math.abs(lo - Math.exp(-1.96 * Math.sqrt(0.02))) < 1e-12 && Math.abs(hi - Math.exp(1.96 * Math.sqrt(0.02))) < 1e-12,
  );
  // m cells divide the variance by m; 0 % and 100 % keep a finite, non-empty interval.
  const [lo4, hi4] = retainedInterval(0.5, 0.5, 100, 4);
  assert.ok(Math.abs(Math.log(hi4) - Math.log(hi) / 2) < 1e-12 && lo4 > lo);
  const [z0, z1] = retainedInterval(0, 0.8, 50);
  assert.ok(z0 > 0 && z1 > z0 && Number.isFinite(z1));
  // Coverage: independent binomial test sets (the case the interval assumes), true ratio 0.45 / 0.6 = 0.75.
  const rand = mulberry32(7);
  const draw = (p: number, n: number) => {
    let k = 0;
    for (let i = 0; i < n; i++) if (rand() < p) k++;
    return k / n;
  };
  let covered = 0;
  const sims = 2000;
  for (let i = 0; i < sims; i++) {
    const [a, b] = retainedInterval(draw(0.45, 200), draw(0.6, 200), 200);
    if (a <= 0.75 && 0.75 <= b) covered++;
  }
  assert.ok(covered / sims > 0.93 && covered / sims < 0.975, `coverage ${covered / sims}`);
});

test('holdsUpTo: the largest sparsity with the property at it and at every lower one', () => {
  const ok = (v: number) => v >= 0.9;
  assert.equal(
    holdsUpTo(
      [
        { sparsity: 0.7, value: 0.95 },
        { sparsity: 0.3, value: 0.95 },
        { sparsity: 0.5, value: 0.8 },
      ],
      ok,
    ),
    0.3,
  );
  assert.equal(
    holdsUpTo(
      [
        { sparsity: 0.3, value: 0.5 },
        { sparsity: 0.5, value: 0.95 },
      ],
      ok,
    ),
    null,
  );
  assert.equal(
    holdsUpTo(
      [
        { sparsity: 0.3, value: 0.9 },
        { sparsity: 0.5, value: 0.9 },
      ],
      ok,
    ),
    0.5,
  );
  assert.equal(holdsUpTo([{ sparsity: 0.3, value: null }], ok), null);
  // Folder tasks are named by their folder in sentences; other ids stay as they are.
  assert.deepEqual(
    ['folder:../shared/data/cifar10[5-9]', 'folder:/d/x', 'folder:x', 'fashion-mnist[0-4]'].map(taskName),
    ['cifar10[5-9]', 'x', 'x', 'fashion-mnist[0-4]'],
  );
});

test('findings follow from the stored accuracies (P1 sparsity, best score, P2 counts, target, controls, collapse)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tapir-results-'));
  try {
    const d = syntheticReport(dir, CONFIG);
    const f = computeFindings(d, DEFAULT_THRESHOLDS);
    assert.deepEqual(
      f.map((x) => x.id),
      ['dense', 'p1', 'p2', 'controls', 'collapse', 'target'],
    );
    // Dense 0.5 vs pixels 0.25 on src and cifar-b; clipart 0.25 vs 0.25 is not ahead.
    // One binomial s.e. over dense: src sqrt(.5·.5/4)/.5 = 50%, clipart sqrt(.25·.75/4)/.25 = 86.6%.
    assert.equal(
      byId(f, 'dense').sentences[1],
      'The test sets are small (4 images per task): one binomial standard error of the dense accuracy is 50.0% of dense (src) to 86.6% (clipart) in retained terms, so retained accuracies a few points above 100% and differences of a few points between configurations are within sampling noise.',
    );
    assert.deepEqual(
      byId(f, 'dense')
        .table!.rows.find((r) => r[0] === 'clipart')!
        .slice(-2),
      ['4', '86.6%'],
    );
    assert.equal(
      byId(f, 'dense').sentences[0],
      'The dense pre-trained features (m) beat the raw-pixel ridge baseline on 2 of 3 tasks; they are within 5 points of the pixels (or below) on clipart (25.0% vs 25.0%), where the task says little about pre-training.',
    );
    const p1 = byId(f, 'p1');
    // magnitude: mean retained 95% / 91.5% / 81.5% → holds up to 50%; random: 82.5% at 30% → never.
    assert.equal(
      p1.sentences[0],
      'P1 (dense head: held-out zero-shot accuracy ≥ 90% of dense at every sparsity up to the one named) holds for magnitude up to 50% sparsity; it fails already at 30% for random.',
    );
    // refit: magnitude 100% / 96.5% / 88% → 50%; random 87.5% at 30% → never.
    assert.equal(
      p1.sentences[1],
      'P1 (refit head: held-out zero-shot accuracy ≥ 90% of dense at every sparsity up to the one named) holds for magnitude up to 50% sparsity; it fails already at 30% for random.',
    );
    assert.equal(
      p1.sentences[2],
      'Best configuration by held-out zero-shot retained accuracy (dense head) at each sparsity: 30%: magnitude (95.0%); 50%: magnitude (91.5%); 70%: magnitude (81.5%).',
    );
    assert.deepEqual(p1.table!.rows[0], ['magnitude', 'dense', '95.0%', '91.5%', '81.5%']);
    assert.deepEqual(p1.table!.rows[3], ['random', 'refit', '87.5%', '70.0%', '40.0%']);
    // P2: magnitude gains 2 / 2 / 10 points, random loses 5 at every sparsity; magnitude 70% goes 81.5% → 91.5%.
    assert.equal(
      byId(f, 'p2').sentences[0],
      'P2 (dense head: fine-tuning on the source raised held-out retained accuracy by ≥ 1.0 points) holds for 3 of 6 configuration × sparsity cells; it lowered it by as much in 3; mean change −0.2 points; fine-tuning brought 1 cell(s) from below 90% back to ≥ 90% (magnitude at 70%).',
    );
    // Target: dense head misses it (clipart 78% < 80% at 70%); the refit head reaches it (96% and 86%).
    const target = byId(f, 'target');
    // Each worst value carries its 95 % interval (4 test images: wide, so every threshold lies inside it).
    const ci = (r: number) =>
      retainedInterval(r * 0.25, 0.25, 4)
        .map((x) => `${(100 * x).toFixed(0)}%`)
        .join('–');
    assert.equal(
      target.sentences[0],
      `Target (held-out zero-shot accuracy ≥ 90% of dense at 50% and ≥ 80% of dense at 70% sparsity on every held-out target task: cifar-b, clipart), dense head: not reached by any configuration of this study; closest: magnitude (worst target task 91.0% [${ci(0.91)}] (clipart) at 50%, 78.0% [${ci(0.78)}] (clipart) at 70%).`,
    );
    assert.equal(
      target.sentences[1],
      "dense head: the threshold lies inside the worst task's 95 % interval for magnitude (50%, 70%), so at these test-set sizes reached and missed cannot be told apart there.",
    );
    assert.equal(
      target.sentences[2],
      'Target (held-out zero-shot accuracy ≥ 90% of dense at 50% and ≥ 80% of dense at 70% sparsity on every held-out target task: cifar-b, clipart), refit head: reached by magnitude.',
    );
    assert.match(
      target.sentences[3]!,
      /^refit head: the threshold lies inside the worst task's 95 % interval for magnitude \(50%, 70%\)/,
    );
    assert.match(target.sentences[4]!, /^With a refitted head the target is reached but not with the dense head/);
    // Shuffled mask at 50%: 0.4 retained → accuracies 0.2 / 0.1 vs magnitude's 0.46 / 0.2275: −19.4 points on average.
    // Shuffled: retained 0.4 on both tasks → (0.2 + 0.1) / 2 = 15%; own magnitude mask at 50%: dense (0.46 + 0.2275) / 2.
    assert.equal(
      byId(f, 'controls').sentences[0],
      "Layer-wise shuffled masks (same density per tensor, random positions), dense head: held-out zero-shot accuracy vs the pre-trained model pruned with the score's own mask: lower in 1 and higher in 0 of 1 cells, mean difference −19.4 points (control − own mask): which weights the score keeps matters, not only how many per layer.",
    );
    assert.match(
      byId(f, 'controls').sentences[1]!,
      /^Layer-wise shuffled masks \(.*\), refit head: .*lower in 1 and higher in 0 of 1 cells/,
    );
    assert.equal(
      byId(f, 'collapse').sentences[0]!.split('.')[0],
      'Pruning empties tensors (< 1% of weights kept) in 1 configuration × sparsity cell(s); first at 70% (magnitude)',
    );
    assert.deepEqual(byId(f, 'collapse').table!.rows, [['magnitude', '70%', 'w1 (0.00%)']]);
    // A stricter P1 threshold moves the sentence: at 95% magnitude holds only at 30%.
    const strict = computeFindings(d, { ...DEFAULT_THRESHOLDS, p1: 0.95 });
    assert.match(
      byId(strict, 'p1').sentences[0]!,
      /holds for magnitude up to 30% sparsity; it fails already at 30% for random\.$/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an ablation axis gets its best value per sparsity; the config label carries it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tapir-results-axis-'));
  try {
    const yaml = CONFIG.replace(
      'controls: {shuffled_mask: {scores: [magnitude], sparsities: [0.5]}}',
      'prune: {bn: [none, match-dense]}',
    ).replace('sparsities: [0.3, 0.5, 0.7]', 'sparsities: [0.5, 0.7]');
    const d = syntheticReport(dir, yaml);
    const f = computeFindings(d, DEFAULT_THRESHOLDS);
    const ax = byId(f, 'axis-bn');
    // Mean over the two scores, dense head: 50%: none (91.5 + 60.5) / 2 = 76%, match-dense 81%; 70%: (81.5 + 30.5) / 2 = 56% / 61%.
    assert.equal(
      ax.sentences[0],
      'Best bn by held-out zero-shot retained accuracy (dense head, mean over scores) at each sparsity: 50%: match-dense (81.0%; then none 76.0%); 70%: match-dense (61.0%; then none 56.0%).',
    );
    assert.deepEqual(
      ax.table!.rows.map((r) => r.slice(0, 2)),
      [
        ['none', 'dense'],
        ['none', 'refit'],
        ['match-dense', 'dense'],
        ['match-dense', 'refit'],
      ],
    );
    assert.ok(byId(f, 'p1').table!.rows.some((r) => r[0] === 'magnitude [bn=match-dense]'));
    // Both values are reached by the same scores: no caution.
    assert.equal(ax.sentences.length, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an ablation axis whose values come from different scores says so, naming each value's scores", () => {
  const dir = mkdtempSync(join(tmpdir(), 'tapir-results-axis-pin-'));
  try {
    const yaml = CONFIG.replace('scores: [magnitude, random]', 'scores: [magnitude, {name: random, bn: match-dense}]')
      .replace('controls: {shuffled_mask: {scores: [magnitude], sparsities: [0.5]}}', '')
      .replace('sparsities: [0.3, 0.5, 0.7]', 'sparsities: [0.5, 0.7]');
    const d = syntheticReport(dir, yaml);
    const ax = byId(computeFindings(d, DEFAULT_THRESHOLDS), 'axis-bn');
    assert.equal(
      ax.sentences.at(-1),
      "The bn values are not reached by the same scores (none: magnitude; match-dense: random(bn=match-dense)), so differences between them also carry those scores' other options.",
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a held-out task used as calibration data is left out of every held-out mean', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tapir-results-calib-'));
  try {
    const yaml = CONFIG.replace(
      'controls: {shuffled_mask: {scores: [magnitude], sparsities: [0.5]}}',
      'calib_data: [source, cifar-b]',
    ).replace('sparsities: [0.3, 0.5, 0.7]', 'sparsities: [0.5, 0.7]');
    const d = syntheticReport(dir, yaml);
    const f = computeFindings(d, DEFAULT_THRESHOLDS);
    assert.equal(f[0]!.id, 'excluded');
    assert.match(f[0]!.sentences[0]!, /^cifar-b is the calibration data of some cells/);
    // clipart only: 50%: source (91 + 61) / 2 = 76%, cifar-b 78%; 70%: (78 + 31) / 2 = 54.5%, 56.5%. With cifar-b's +10 it would be far higher.
    assert.equal(
      byId(f, 'axis-calibData').sentences[0],
      'Best calib_data by held-out zero-shot retained accuracy (dense head, mean over scores) at each sparsity: 50%: cifar-b (78.0%; then source 76.0%); 70%: cifar-b (56.5%; then source 54.5%).',
    );
    assert.match(byId(f, 'target').sentences[0]!, /on every held-out target task: clipart\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('diagnostics findings: pre-trained vs random alignment and Taylor error per sparsity', () => {
  const f = diagnosticsFindings({
    wallS: 10,
    pairs: [
      { model: 'm@64', a: 'x', b: 'y', cosine: 0.2, spearman: 0.1, overlap: 0.3 },
      { model: 'm@64', a: 'x', b: 'z', cosine: 0.4, spearman: 0.3, overlap: 0.5 },
      { model: 'random:m@64', a: 'x', b: 'y', cosine: 0.5, spearman: 0.2, overlap: 0.1 },
      { model: 'random:m@64', a: 'x', b: 'z', cosine: 0.5, spearman: 0.2, overlap: 0.1 },
    ],
    loss: [
      { model: 'm@64', kind: 'cell', score: 'magnitude', target: 0.1, task: 'x', first: 1, second: 1.5, measured: 2 },
      { model: 'm@64', kind: 'cell', score: 'magnitude', target: 0.1, task: 'y', first: 0, second: 3, measured: 2 },
      { model: 'm@64', kind: 'obd', score: 'obd', target: 0.1, task: 'y', first: 0, second: 100, measured: 2 },
    ],
  });
  assert.deepEqual(
    f.map((x) => x.id),
    ['alignment', 'taylor'],
  );
  assert.equal(
    f[0]!.sentences[0],
    'Curvature alignment across tasks is lower for the pre-trained model than for random init: mean cross-task diagonal cosine 0.300 vs 0.500; gap −0.200 [−0.300, −0.100] (2 task pairs); Spearman 0.200 vs 0.200 (not separable; gap ±0.000 [−0.100, +0.100]); top-k eigen-subspace overlap 0.400 vs 0.100 (higher; gap +0.300 [+0.200, +0.400]). Brackets: 95 % bootstrap interval of the gap (pre-trained − random init), resampling the 3 tasks; "higher" or "lower" only where it excludes zero.',
  );
  // Per pair gaps: cosine −0.3 (x,y) and −0.1 (x,z); a resampled task set holds one, the other or both pairs, so the
  // interval runs between the two. Spearman gaps −0.1 and +0.1 straddle zero: not separable.
  assert.deepEqual(f[0]!.table!.rows.at(-1), [
    'gap: pre-trained − random init [95 %]',
    '2',
    '−0.200 [−0.300, −0.100]',
    '±0.000 [−0.100, +0.100]',
    '+0.300 [+0.200, +0.400]',
  ]);
  // Relative errors: second order |1.5−2|/2 = 25%, |3−2|/2 = 50% → median 37.5%; first order 50%, 100% → 75%. OBD rows are not the study's masks.
  assert.equal(
    f[1]!.sentences[0],
    "Second-order prediction of the loss change of the study's masks on m@64 (median relative error |predicted − measured| / |measured| over tasks and scores): 37.5% at 10% sparsity (first order 75.0%).",
  );
  // Gaps of −0.1 and +0.1 straddle zero: the sentence does not call either model more aligned.
  const even = diagnosticsFindings({
    wallS: 1,
    pairs: [
      { model: 'm', a: 'x', b: 'y', cosine: 0.2, spearman: 0, overlap: 0 },
      { model: 'm', a: 'x', b: 'z', cosine: 0.4, spearman: 0, overlap: 0 },
      { model: 'random:m', a: 'x', b: 'y', cosine: 0.3, spearman: 0, overlap: 0 },
      { model: 'random:m', a: 'x', b: 'z', cosine: 0.3, spearman: 0, overlap: 0 },
    ],
    loss: [],
  });
  assert.match(
    even[0]!.sentences[0]!,
    /^Curvature alignment across tasks cannot be told apart between the pre-trained model and random init: mean cross-task diagonal cosine 0\.300 vs 0\.300; gap ±0\.000 \[−0\.100, \+0\.100\]/,
  );
  assert.deepEqual(diagnosticsFindings(null), []);
  // From the report data: self-pairs and masks without a target sparsity are dropped; run wall times add up.
  const sum = diagSummaryOf({
    diagnostics: {
      models: [
        { model: 'm', wallS: 5 },
        { model: 'random:m', wallS: 7 },
      ],
      pairs: [
        { model: 'm', a: 'x', b: 'x', cosine: 1, spearman: 1, overlap: 1 },
        { model: 'm', a: 'x', b: 'y', cosine: 0.5, spearman: 0.5, overlap: 0.5 },
      ],
      lossChange: [
        { model: 'm', kind: 'cell', score: 's', target: null, task: 'x', first: 0, second: 0, measured: 1 },
        { model: 'm', kind: 'cell', score: 's', target: 0.5, task: 'x', first: 0, second: 0, measured: 1 },
      ],
    },
  } as unknown as ReportData)!;
  assert.deepEqual([sum.pairs.length, sum.loss.length, sum.wallS], [1, 1, 12]);
  assert.equal(diagSummaryOf({ diagnostics: null } as unknown as ReportData), null);
});

test('tapir results: reproduce command, computed findings, SVG plots, not-run-yet section, foreign cells left out', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tapir-results-doc-'));
  try {
    const cfg = join(dir, 'syn.yaml');
    writeFileSync(cfg, CONFIG);
    const missing = join(dir, 'later.yaml');
    writeFileSync(missing, CONFIG.replace('name: syn', 'name: later'));
    const dbDir = join(dir, 'results');
    mkdirSync(dbDir);
    const s = new StudyStore(join(dbDir, 'syn.sqlite'));
    fill(s, CONFIG);
    s.close();
    const out = join(dir, 'docs', 'RESULTS.md');
    const lines: string[] = [];
    await makeProgram({ out: (x) => lines.push(x), err: (x) => lines.push(x) }).parseAsync([
      'node',
      'tapir',
      'results',
      cfg,
      missing,
      '--out',
      out,
      '--plots',
      join(dir, 'docs', 'results'),
      '--db-dir',
      dbDir,
    ]);
    assert.match(lines.join('\n'), /syn: complete, 7\/7 cells, 6 findings, 4 plots/);
    assert.match(lines.join('\n'), /later: not run yet/);
    const md = readFileSync(out, 'utf8');
    // 6 main cells + 1 control, 30 s each; the foreign cell is not counted.
    assert.match(md, /Status: complete: 7 of 7 cells\. Wall time: 3\.5 min, the sum of the stored per-cell wall times/);
    assert.match(
      md,
      /- P1 \(dense head: .*\) holds for magnitude up to 50% sparsity; it fails already at 30% for random\./,
    );
    // The target across studies: each sentence once with its studies, then the closest configuration per head.
    assert.match(md, /\n- \[syn\]\(#syn\): Target \(.*\), dense head: not reached by any configuration of this study/);
    assert.match(
      md,
      /\n- Across studies, dense head: reached in none of 1 studies; largest worst-case margin: magnitude in \[syn\]\(#syn\) \(worst target task 91\.0% \[\d+%–\d+%\] \(clipart\) at 50%, 78\.0% \[\d+%–\d+%\] \(clipart\) at 70%; each study's own target tasks\)\./,
    );
    assert.match(
      md,
      /\n- Across studies, refit head: reached in 1 of 1 studies \(syn\); largest worst-case margin: magnitude in \[syn\]/,
    );
    // The questions section repeats each study's finding sentences with a link; one with no answering study says so.
    const qs = md.slice(md.indexOf('## The questions, answered across studies'), md.indexOf('\n## syn'));
    assert.match(
      qs,
      /### Does P1 hold[^\n]*\n\n- \[syn\]\(#syn\): P1 \(dense head: .*\) holds for magnitude up to 50% sparsity; it fails already at 30% for random\./,
    );
    assert.match(qs, /### Does P2 hold[^\n]*\n\n- \[syn\]\(#syn\): P2 \(dense head/);
    assert.match(qs, /### Is curvature more aligned[^\n]*\n\n- No study that answers this has run yet\./);
    assert.match(md, /\*\*Not run yet:\*\* `bin\/tapir study \S*later\.yaml --db \S*results\/later\.sqlite`/);
    assert.match(md, /> A synthetic study \(test fixture\)\./);
    assert.match(md, /\| \[syn\]\(#syn\) \| .* \| complete \| 7 \/ 7 \| 3\.5 min \|/);
    const svgs = readdirSync(join(dir, 'docs', 'results', 'syn')).sort();
    assert.equal(svgs.length, 4);
    for (const f of svgs) {
      assert.ok(md.includes(`](results/syn/${f})`), `${f} is referenced relative to RESULTS.md`);
      assert.match(readFileSync(join(dir, 'docs', 'results', 'syn', f), 'utf8'), /^<svg[\s\S]*<\/svg>\s*$/);
    }
    assert.ok(!md.includes('foreign-cell'));
    // Same data, same bytes (no timestamps); a stale plot from an earlier run is removed.
    writeFileSync(join(dir, 'docs', 'results', 'syn', '99-stale.svg'), '<svg/>');
    await writeResults({ configs: [cfg, missing], out, plots: join(dir, 'docs', 'results'), dbDir });
    assert.equal(readFileSync(out, 'utf8'), md);
    assert.ok(!existsSync(join(dir, 'docs', 'results', 'syn', '99-stale.svg')));
    assert.ok(!readdirSync(join(dir, 'docs')).some((f) => f.includes('.tmp')), 'atomic write leaves no temp file');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tapir results: studies sharing a pool get one pooled section whose findings lead the answers', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tapir-results-pool-'));
  try {
    const dbDir = join(dir, 'results');
    mkdirSync(dbDir);
    const cfgs = ['a', 'b'].map((x, i) => {
      const yaml = CONFIG.replace('name: syn', `name: syn-${x}\npool: syn-pool\nseeds: [${i}]`);
      const file = join(dir, `syn-${x}.yaml`);
      writeFileSync(file, yaml);
      const s = new StudyStore(join(dbDir, `syn-${x}.sqlite`));
      fill(s, yaml);
      s.close();
      return file;
    });
    const out = join(dir, 'docs', 'RESULTS.md');
    const plots = join(dir, 'docs', 'results');
    const r = await writeResults({ configs: cfgs, out, plots, dbDir });
    assert.deepEqual(
      r.studies.map((s) => s.name),
      ['syn-a', 'syn-b'],
      'the summary lists the studies; the pool is a section',
    );
    const md = readFileSync(out, 'utf8');
    assert.match(md, /\n## syn-pool\n\nPooled over \[syn-a\]\(#syn-a\), \[syn-b\]\(#syn-b\): 14 of 14 cells/);
    assert.ok(md.indexOf('\n## syn-pool\n') < md.indexOf('\n## syn-a\n'), 'the pooled section comes first');
    // Same accuracies in both members: the pooled P1 is the members' P1, listed first among the answers.
    const qs = md.slice(md.indexOf('## The questions, answered across studies'), md.indexOf('\n## syn-pool'));
    assert.match(
      qs,
      /### Does P1 hold[^\n]*\n\n- \[syn-pool\]\(#syn-pool\): P1 \(dense head: .*\) holds for magnitude up to 50% sparsity; it fails already at 30% for random\.\n/,
    );
    assert.ok(qs.lastIndexOf('- [syn-pool](#syn-pool): Best configuration') < qs.indexOf('- [syn-a](#syn-a): P1'));
    assert.ok(readdirSync(join(plots, 'syn-pool')).length >= 3, 'the pool has its own plots');
    // One member alone is no pool.
    await writeResults({ configs: [cfgs[0]!], out, plots, dbDir });
    assert.ok(!readFileSync(out, 'utf8').includes('## syn-pool'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tapir results: bad input is a clear error', async () => {
  await assert.rejects(writeResults({ configs: [] }), /no study config given/);
  await assert.rejects(
    writeResults({ configs: ['/nonexistent/x.yaml'] }),
    /study config \/nonexistent\/x\.yaml does not exist/,
  );
  const prog = makeProgram({ out: () => {}, err: () => {} });
  await assert.rejects(
    prog.parseAsync(['node', 'tapir', 'results', 'studies/smoke.yaml', '--target', '0.5-0.9']),
    /--target: '0\.5-0\.9' is not sparsity:retained/,
  );
});

test('controls: pairs where control and own mask both sit at chance are left out, not read as evidence', () => {
  // Two held-out tasks with 4 and 10 classes: chance = (1/4 + 1/10) / 2 = 17.5%.
  const cell = (key: string, control: string, sparsity: number): CellRow =>
    ({
      key,
      study: 's',
      protocol: 'p',
      model: 'm',
      control,
      score: 'magnitude',
      sparsity,
      source: 'src',
      seed: 0,
      achieved: sparsity,
      wallS: 1,
      info: {},
    }) as unknown as CellRow;
  const acc = (c: CellRow, a: number, b: number): AccRow[] =>
    [
      ['t4', a],
      ['t10', b],
    ].map(
      ([task, accuracy]) =>
        ({
          cell: c.key,
          model: 'm',
          control: c.control,
          score: c.score,
          sparsity: c.sparsity,
          source: 'src',
          seed: 0,
          task,
          heldout: true,
          phase: 'zero-shot',
          head: 'dense',
          accuracy,
          dense: 0.5,
          retained: (accuracy as number) / 0.5,
          pixels: null,
        }) as unknown as AccRow,
    );
  const cells = [
    cell('o5', 'none', 0.5),
    cell('s5', 'shuffled-mask', 0.5),
    cell('o9', 'none', 0.9),
    cell('s9', 'shuffled-mask', 0.9),
  ];
  const d = {
    cells,
    // 50%: own 40%/30% (35%), shuffled 20%/16% (18%, at chance); 90%: both at chance (own 18%/17% = 17.5%, shuffled 16.5%).
    acc: [
      ...acc(cells[0]!, 0.4, 0.3),
      ...acc(cells[1]!, 0.2, 0.16),
      ...acc(cells[2]!, 0.18, 0.17),
      ...acc(cells[3]!, 0.18, 0.15),
    ],
    dense: [
      { model: 'm', task: 't4', accuracy: 0.5, nTrain: 1, nTest: 1, classes: ['a', 'b', 'c', 'd'] },
      { model: 'm', task: 't10', accuracy: 0.5, nTrain: 1, nTest: 1, classes: [...'abcdefghij'] },
    ],
  } as unknown as ReportData;
  const f = controlsFinding(d)!;
  assert.deepEqual(f.sentences, [
    "Layer-wise shuffled masks (same density per tensor, random positions), dense head: held-out zero-shot accuracy vs the pre-trained model pruned with the score's own mask: lower in 1 and higher in 0 of 1 cells, mean difference −17.0 points (control − own mask); 1 more cell(s) have both within 2 points of chance and are left out: which weights the score keeps matters, not only how many per layer.",
  ]);
  assert.deepEqual(
    f.table!.rows.map((r) => r.at(-1)),
    ['17.5%', '17.5%'],
  );
  // Only the at-chance pair: the control cannot tell.
  const g = controlsFinding({ ...d, cells: [cells[2]!, cells[3]!] })!;
  assert.match(
    g.sentences[0]!,
    /both within 2 points of chance in all 1 cells \(constant features\), so the control cannot tell here\.$/,
  );
  // With per-image results (100 test images per task, the accuracies above): the gap gets a bootstrap interval. At 50 %
  // the shuffled mask is right on a subset of the images the own mask gets right, so every draw's gap is negative.
  const ones = (n: number) => packBits(Array.from({ length: 100 }, (_, i) => (i < n ? 1 : 0)));
  const hits: Record<string, [number, number]> = { o5: [40, 30], s5: [20, 16], o9: [18, 17], s9: [18, 15] };
  const withBits = {
    ...d,
    dense: d.dense.map((r) => ({ ...r, nTest: 100 })),
    correct: new Map(
      Object.entries(hits).flatMap(([k, [a, b]]) => [
        [`${k}\tt4\tzero-shot\tdense`, ones(a)],
        [`${k}\tt10\tzero-shot\tdense`, ones(b)],
      ]),
    ),
    denseCorrect: new Map([
      ['m\tp\tt4\tdense', ones(50)],
      ['m\tp\tt10\tdense', ones(50)],
    ]),
  } as ReportData;
  const h = controlsFinding(withBits)!;
  assert.match(
    h.sentences[0]!,
    /lower in 1 and higher in 0 of 1 cells \(95 % interval below zero in 1, above in 0\), mean difference −17\.0 points/,
  );
  const gap = h.table!.rows[0]!.at(-2)!;
  const m = /^−17\.0 \[−([\d.]+), −([\d.]+)\]$/.exec(gap);
  assert.ok(m, gap);
  // The gap per task is binomial: t4 flips 20 of 100 images, t10 14; the mean is −17 with a standard error of about
  // √(0.2·0.8/100 + 0.14·0.86/100) / 2 ≈ 2.6 points, so the interval is about −17 ± 5.
  assert.ok(Number(m[1]) > 20 && Number(m[1]) < 24 && Number(m[2]) > 10 && Number(m[2]) < 14.5, gap);
});

test("the paper's order: best configuration per score family, plain and ablation labels alike", () => {
  const v: Record<string, number> = { magnitude: 0.5, 'block-hessian(16,fisher)': 0.4, 'diag-hessian(fisher)': 0.45 };
  assert.equal(
    paperOrder(Object.keys(v), (l) => v[l] ?? null),
    "The paper's order (magnitude and block-Hessian ahead of diagonal Hessian) does not hold here: mean retained over the grid's sparsities: magnitude 50.0%, block-hessian(16,fisher) 40.0% vs diag-hessian(fisher) 45.0%.",
  );
  const a: Record<string, number> = {
    'magnitude [bn=none]': 0.3,
    'magnitude [bn=match-dense]': 0.6,
    'block-hessian(16,fisher) [bn=none]': 0.5,
    'diag-hessian(fisher) [bn=none]': 0.2,
    'diag-hessian(fisher) [bn=match-dense]': 0.4,
  };
  assert.equal(
    paperOrder(Object.keys(a), (l) => a[l] ?? null),
    "The paper's order (magnitude and block-Hessian ahead of diagonal Hessian) holds here: mean retained over the grid's sparsities, each score family at its best configuration: magnitude [bn=match-dense] 60.0%, block-hessian(16,fisher) [bn=none] 50.0% vs diag-hessian(fisher) [bn=match-dense] 40.0%.",
  );
  assert.equal(
    paperOrder(['magnitude', 'snip'], () => 0.5),
    null,
  );
});

test("the paper's order per sparsity by interval: ahead, behind, not separable", () => {
  const iv: Record<string, [number, number][]> = {
    // 30 %: magnitude clear of diag; 50 %: overlap; 70 %: below it.
    magnitude: [
      [0.8, 0.9],
      [0.5, 0.6],
      [0.1, 0.2],
    ],
    'diag-hessian(fisher)': [
      [0.6, 0.7],
      [0.55, 0.65],
      [0.3, 0.4],
    ],
  };
  const sps = [0.3, 0.5, 0.7];
  const get = (l: string, sp: number) => {
    const x = iv[l]?.[sps.indexOf(sp)];
    return x ? { value: (x[0] + x[1]) / 2, lo: x[0], hi: x[1] } : null;
  };
  assert.equal(
    orderIntervals(['magnitude', 'diag-hessian(fisher)', 'random'], sps, get),
    'magnitude vs diag-hessian(fisher): ahead at 30%; behind at 70%; not separable at 50%',
  );
  assert.equal(orderIntervals(['magnitude', 'random'], sps, get), null, 'no diagonal Hessian: nothing to order');
  assert.equal(
    orderIntervals(['magnitude', 'diag-hessian(fisher)'], sps, () => null),
    null,
    'no intervals',
  );
});
