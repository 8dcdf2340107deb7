/**
 * One pruning path: `tapir prune` and a one-cell study with the same settings must give the same mask, bit for bit
 * (both run transfer's pruneOnTask). Settings are drawn at random (seeded) over scores, sparsities, allocations,
 * calibration data and sizes, BN repairs, losses and seeds.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { disposeGraph, exportOnnx, readSafetensors } from '../../src/graph/index.js';
import { mulberry32 } from '../../src/data/rng.js';
import { makeProgram } from '../../src/cli/program.js';
import { loadStudy, runStudy, StudyStore, defaultSteps } from '../../src/study/index.js';
import { makeFolderTask, tempDir, tinyNet, useTempCache } from '../transfer/fixtures.js';

useTempCache();
const WORK = tempDir('tapir-same-path-');
const MODEL = join(WORK, 'tiny.onnx');
let TASK = '';
let OTHER = '';

before(async () => {
  TASK = await makeFolderTask('same-path-s', 20);
  OTHER = await makeFolderTask('same-path-o', 16);
  const g = tinyNet(7, 16, true);
  await exportOnnx(g, MODEL);
  disposeGraph(g);
});

const SCORES = [
  { cli: ['--score', 'magnitude'], yaml: 'magnitude' },
  { cli: ['--score', 'random'], yaml: 'random' },
  { cli: ['--score', 'snip'], yaml: 'snip' },
  { cli: ['--score', 'diag-hessian', '--estimator', 'fisher'], yaml: '{name: diag-hessian, estimator: fisher}' },
  {
    cli: ['--score', 'diag-hessian', '--estimator', 'hutchinson', '--probes', '2'],
    yaml: '{name: diag-hessian, estimator: hutchinson, probes: 2}',
  },
  {
    cli: ['--score', 'block-hessian', '--curvature', 'fisher', '--block-size', '8', '--compensate'],
    yaml: '{name: block-hessian, curvature: fisher, block_size: 8, compensate: true}',
  },
];

test(
  'tapir prune and a one-cell study give the same mask bit for bit (8 random settings)',
  { timeout: 600_000 },
  async () => {
    const rand = mulberry32(2024);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    for (let draw = 0; draw < 8; draw++) {
      const s = {
        score: SCORES[draw % SCORES.length]!,
        sparsity: pick([0.3, 0.5, 0.8]),
        allocation: pick(['global', 'layerwise', 'erk']),
        calibData: pick(['source', 'noise', 'other']),
        bn: pick(['none', 'match-dense']),
        loss: pick(['mse', 'ce']),
        seed: Math.floor(rand() * 4),
        n: 4 + Math.floor(rand() * 7),
        alpha: pick([1, 10]),
      };
      const calibData = s.calibData === 'other' ? OTHER : s.calibData;
      const what = JSON.stringify({ ...s, score: s.score.yaml });
      const out = join(WORK, `cli-${draw}`);
      await makeProgram({ out: () => undefined, err: () => undefined }).parseAsync([
        'node',
        'tapir',
        'prune',
        '--model',
        MODEL,
        ...s.score.cli,
        '--sparsity',
        String(s.sparsity),
        '--allocation',
        s.allocation,
        '--source',
        TASK,
        '--cap',
        '12',
        '--calib',
        String(s.n),
        '--calib-data',
        calibData,
        '--bn',
        s.bn,
        '--loss',
        s.loss,
        '--seed',
        String(s.seed),
        '--alpha',
        String(s.alpha),
        '--out',
        out,
        '--no-progress',
        '--no-onnx',
      ]);
      const file = join(WORK, `study-${draw}.yaml`);
      writeFileSync(
        file,
        `name: same-${draw}\nmodels: ['${MODEL}']\nscores: [${s.score.yaml}]\nsparsities: [${s.sparsity}]\nsources: ['${TASK}']\n` +
          `heldout: []\nseeds: [${s.seed}]\ncalibration: ${s.n}\ncalib_data: ['${calibData}']\ndata: {cap: 12}\nheads: [dense]\nalpha: ${s.alpha}\n` +
          `prune: {loss: ${s.loss}, allocation: ${s.allocation}, bn: ${s.bn}}\nfinetune: false\n`,
      );
      const store = new StudyStore(join(WORK, `study-${draw}.sqlite`));
      try {
        const sum = await runStudy(loadStudy(file), store, { steps: defaultSteps });
        assert.equal(sum.ran, 1, what);
        const studyMasks = new Map(
          store
            .all<{ tensor: string; bits: Uint8Array }>('SELECT tensor, bits FROM masks')
            .map((r) => [r.tensor, Buffer.from(r.bits).toString('hex')]),
        );
        const st = await readSafetensors(join(out, 'mask.safetensors'));
        assert.deepEqual([...studyMasks.keys()].sort(), [...st.entries.keys()].sort(), `${what}: same masked tensors`);
        for (const name of st.entries.keys()) {
          assert.equal(
            Buffer.from(st.bytes(name)).toString('hex'),
            studyMasks.get(name),
            `${what}: mask of ${name} differs`,
          );
        }
        // The masks are not trivial: some weights pruned, some kept.
        const kept = JSON.parse(readFileSync(join(out, 'prune.json'), 'utf8')) as {
          keptParameters: number;
          prunableParameters: number;
        };
        assert.ok(kept.keptParameters > 0 && kept.keptParameters < kept.prunableParameters, what);
      } finally {
        store.close();
      }
    }
  },
);

// Per-task caps are keyed by the config's spelling of a task; the scoring head must be fitted on the source as capped
// there, not on the source's resolved id (which no cap names). Regression: a relative folder path with its own cap.
test(
  'a study cell fits the scoring head on the source as its per-task cap says (relative spelling)',
  { timeout: 300_000 },
  async () => {
    const spec = `folder:${relative(process.cwd(), TASK.slice('folder:'.length))}`;
    assert.notEqual(spec, TASK);
    const out = join(WORK, 'cli-caps');
    await makeProgram({ out: () => undefined, err: () => undefined }).parseAsync([
      'node',
      'tapir',
      'prune',
      '--model',
      MODEL,
      '--score',
      'snip',
      '--sparsity',
      '0.5',
      '--source',
      spec,
      '--cap',
      '6',
      '--calib',
      '6',
      '--alpha',
      '1',
      '--loss',
      'mse',
      '--out',
      out,
      '--no-progress',
      '--no-onnx',
    ]);
    const file = join(WORK, 'study-caps.yaml');
    writeFileSync(
      file,
      `name: same-caps\nmodels: ['${MODEL}']\nscores: [snip]\nsparsities: [0.5]\nsources: ['${spec}']\nheldout: []\nseeds: [0]\n` +
        `calibration: 6\ndata: {cap: 20, caps: {'${spec}': 6}}\nheads: [dense]\nalpha: 1\nprune: {loss: mse}\nfinetune: false\n`,
    );
    const store = new StudyStore(join(WORK, 'study-caps.sqlite'));
    try {
      assert.equal((await runStudy(loadStudy(file), store, { steps: defaultSteps })).ran, 1);
      const studyMasks = new Map(
        store
          .all<{ tensor: string; bits: Uint8Array }>('SELECT tensor, bits FROM masks')
          .map((r) => [r.tensor, Buffer.from(r.bits).toString('hex')]),
      );
      const st = await readSafetensors(join(out, 'mask.safetensors'));
      for (const name of st.entries.keys())
        assert.equal(Buffer.from(st.bytes(name)).toString('hex'), studyMasks.get(name), `mask of ${name} differs`);
    } finally {
      store.close();
    }
  },
);
