/**
 * Study configs (the paper's protocol as a grid, docs/STUDY.md): models × scores × sparsities × sources × seeds, evaluated on the
 * sources and held-out tasks, with controls. Parsed from YAML and validated by one zod schema (`StudySchema`), which
 * also maps the snake_case YAML keys to the camelCase config and fills the defaults; the config types are inferred
 * from it. Every error names the file and the field path (`studies.yaml: sparsities[2]: must be in [0, 1), got 1.2`),
 * so a typo fails before any model is loaded.
 */
import { readFileSync, existsSync } from 'node:fs';
import { basename } from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { TapirError } from '../engine/index.js';
import {
  ACTIVATION_STORES,
  ALLOCATIONS,
  BN_REPAIRS,
  ESTIMATOR_NAMES,
  parseAllocation,
  parseCalibData,
  RECONSTRUCT_TARGETS,
  SCORE_NAMES as PRUNE_SCORE_NAMES,
  SCORES,
  type BnRepair as PruneBnRepair,
  type ScoreName as PruneScoreName,
} from '../prune/index.js';

/** The score, estimator, allocation and BN-repair names are the pruning registries' own. */
export const SCORE_NAMES: readonly PruneScoreName[] = PRUNE_SCORE_NAMES;
export type ScoreName = PruneScoreName;
export const ESTIMATOR_CHOICES = ESTIMATOR_NAMES;
/** Named allocations; `N:M` strings (e.g. '2:4') are allocations too. */
export const ALLOCATION_CHOICES = ALLOCATIONS;
/** BN repair after masking (src/prune `repairBatchNorm`): none, re-estimate on the calibration images, match the dense statistics. */
export const BN_REPAIR_CHOICES = BN_REPAIRS;
export type BnRepair = PruneBnRepair;
/** Calibration data: 'source', 'noise', 'all' (every study task), 'mix:A+B' or a task id (that task's images and labels). */
export type CalibData = 'source' | 'noise' | 'all' | (string & {});

export class StudyConfigError extends TapirError {
  constructor(file: string, path: string, message: string, fix?: string) {
    super('E_STUDY_CONFIG', `${file}: ${path ? `${path}: ` : ''}${message}`, {
      context: { file, field: path },
      ...(fix ? { fix } : {}),
    });
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (v: unknown) => (typeof v === 'string' ? `'${v}'` : JSON.stringify(v));

// ---- Building blocks -------------------------------------------------------------------------------------------
// Messages of zod's own issues are worded by `wording` (below); the blocks here word only what is particular to them.
// A custom issue carries its fix in `params.fix`.

/**
 * A mapping with exactly the keys of `shape`: an unknown key fails first, with the nearest allowed key as the fix;
 * `before` checks the input next, before the fields (used for checks across fields that must come first).
 * `notMapping` words the error for a value that is not a mapping (followed by `, got …` when a string).
 */
function fields<S extends z.ZodRawShape>(
  shape: S,
  notMapping: string | ((v: unknown) => string),
  before?: (v: Obj, ctx: z.RefinementCtx) => void,
) {
  const allowed = Object.keys(shape);
  return z.preprocess(
    (v, ctx) => {
      if (!isObj(v)) return v;
      const unknown = Object.keys(v).filter((k) => !allowed.includes(k));
      for (const k of unknown) {
        const near = allowed.find(
          (a) => a.replace(/[-_]/g, '') === k.replace(/[-_]/g, '').toLowerCase() || a.startsWith(k.slice(0, 4)),
        );
        ctx.addIssue({
          code: 'custom',
          path: [k],
          message: 'unknown field',
          params: { fix: near ? `did you mean '${near}'?` : `allowed here: ${allowed.join(', ')}` },
        });
      }
      if (unknown.length === 0) before?.(v, ctx);
      return v;
    },
    z.object(shape, {
      error: (iss) =>
        iss.code !== 'invalid_type'
          ? undefined
          : typeof notMapping === 'string'
            ? `${notMapping}, got ${show(iss.input)}`
            : notMapping(iss.input),
    }),
  );
}

/**
 * A list: a scalar is a one-value list, an absent field an empty one; values must be unique (compared after
 * parsing) and, unless `nonEmpty` is false, there must be at least one.
 */
function list<T extends z.ZodType>(item: T, { nonEmpty = true } = {}) {
  const array = nonEmpty ? z.array(item).min(1) : z.array(item);
  return z.preprocess(
    (v) => (v === undefined ? [] : Array.isArray(v) ? v : [v]),
    array.superRefine((xs, ctx) => {
      const seen = new Map<string, number>();
      xs.forEach((x, i) => {
        const k = JSON.stringify(x);
        const first = seen.get(k);
        if (first !== undefined)
          ctx.addIssue({
            code: 'custom',
            path: [i],
            message: `duplicates [${first}] (${k})`,
            params: { duplicateOf: first, value: k, fix: 'list each value once' },
          });
        else seen.set(k, i);
      });
    }),
  );
}

/**
 * `schema` for the inputs `applies` holds for. Unions below are made of such cases, one per kind of input, so an
 * error is the error of the case the input is (a plain union reports every branch); a union whose input is no case
 * gives its own message.
 */
const when = <T extends z.ZodType>(applies: (v: unknown) => boolean, schema: T) =>
  z.preprocess((v, ctx) => {
    if (!applies(v)) ctx.addIssue({ code: 'custom', message: 'not this case', params: { notThisCase: true } });
    return v;
  }, schema);
const isString = (v: unknown): v is string => typeof v === 'string';

const Num = z.number();
const Int = Num.refine(Number.isInteger, { error: (iss) => `must be an integer, got ${String(iss.input)}` });
const Positive = Num.gt(0);
/** A fraction in [0, 1): sparsities, momentum. */
const Fraction = Num.refine((v) => v >= 0 && v < 1, { error: (iss) => `must be in [0, 1), got ${String(iss.input)}` });
/** A non-empty string, trimmed. */
const Text = z
  .string()
  .refine((s) => s.trim() !== '', { error: (iss) => `must be a non-empty string, got ${show(iss.input)}` })
  .transform((s) => s.trim());

const TASK_ID = /^[A-Za-z0-9_:./\-]+(\[[0-9,\- ]+\])?$/;
const notATaskId = (s: string) => ({
  code: 'custom' as const,
  message: `'${s}' is not a task id`,
  params: { fix: 'e.g. mnist, fashion-mnist[0-4], folder:/data/x' },
});
const TaskId = Text.superRefine((s, ctx) => {
  if (!TASK_ID.test(s)) ctx.addIssue(notATaskId(s));
});

/** One allocation: a name or `N:M` (whose sparsity 1 − N/M must be one of the study's: checked by StudySchema). */
const isNM = (v: unknown): v is string => isString(v) && /^\d+:\d+$/.test(v.trim());
const AllocationItem = z.union([
  when(
    isNM,
    z
      .string()
      .superRefine((x, ctx) => {
        try {
          parseAllocation(x);
        } catch (e) {
          ctx.addIssue({
            code: 'custom',
            message: (e as Error).message,
            params: { fix: 'e.g. 2:4 (keep 2 of every 4 weights)' },
          });
        }
      })
      .transform((x) => x.trim() as `${number}:${number}`),
  ),
  when((v) => !isNM(v), z.enum(ALLOCATIONS)),
]);
export type AllocationName = z.output<typeof AllocationItem>;

/** One `calib_data` value: 'source', 'noise', 'all', 'mix:A+B' (of task ids) or a task id. */
const isMix = (v: unknown): v is string => isString(v) && v.startsWith('mix:');
const CALIB_KINDS = ['source', 'noise', 'all'] as const;
const isCalibKind = (v: unknown) => (CALIB_KINDS as readonly unknown[]).includes(v);
const CalibDataItem: z.ZodType<CalibData> = z.union(
  [
    when(isCalibKind, z.enum(CALIB_KINDS)),
    when(
      isMix,
      z
        .string()
        .superRefine((x, ctx) => {
          try {
            const d = parseCalibData(x);
            if (d.kind === 'mix')
              d.tasks.forEach((t, i) => {
                if (!TASK_ID.test(t)) ctx.addIssue({ ...notATaskId(t), path: ['mix', i] });
              });
          } catch (e) {
            ctx.addIssue({
              code: 'custom',
              message: (e as Error).message,
              params: { fix: "list tasks after 'mix:', joined by '+', e.g. mix:mnist+emoji" },
            });
          }
        })
        .transform((x) => x.trim()),
    ),
    when((v) => isString(v) && !isCalibKind(v) && !isMix(v), TaskId),
  ],
  { error: (iss) => `must be 'source', 'noise', 'all', 'mix:A+B' or a task id, got ${show(iss.input)}` },
);

// ---- Scores ----------------------------------------------------------------------------------------------------

/** Scores that measure the per-layer error curves the `error` allocation needs. */
const ERROR_CURVE_SCORES: readonly ScoreName[] = SCORE_NAMES.filter((n) => SCORES[n].errorCurves);

/** Score options only some scores take (the others refuse them). */
const ONLY: Record<string, { scores: readonly ScoreName[]; message?: (score: string) => string; fix?: string }> = {
  estimator: {
    scores: ['diag-hessian'],
    message: (s) => `only diag-hessian takes an estimator (score is '${s}')`,
    fix: 'block-hessian takes curvature: fisher|ggn',
  },
  block_size: { scores: ['block-hessian', 'sparsegpt'] },
  curvature: { scores: ['block-hessian'] },
  damping: { scores: ['block-hessian', 'sparsegpt'] },
  compensate: { scores: ['block-hessian'] },
  target: { scores: ['sparsegpt'] },
  activations: { scores: ['sparsegpt'] },
};

/** A score and its options (estimator, probes, block size, damping, OBS compensation) as a mapping. */
const ScoreFields = fields(
  {
    name: z.enum(SCORE_NAMES),
    estimator: z.enum(ESTIMATOR_CHOICES).optional(),
    probes: Int.gte(1).optional(),
    /** ggn estimator: exact over outputs or 1-sample Monte-Carlo. */
    ggn: z.enum(['exact', 'mc']).optional(),
    /** block-hessian: weights per block (along each row / filter), curvature factors, relative damping, OBS update. */
    block_size: Int.gte(1).optional(),
    curvature: z.enum(['fisher', 'ggn']).optional(),
    damping: Positive.optional(),
    compensate: z.boolean().optional(),
    /** sparsegpt: what each layer is reconstructed toward. */
    target: z.enum(RECONSTRUCT_TARGETS).optional(),
    /** sparsegpt: how its layer walks hold activations (half: float16, half the memory). */
    activations: z.enum(ACTIVATION_STORES).optional(),
    /** Pruning rounds (any score): 1 is one-shot; R > 1 prunes in R rounds toward the target (prune/schedule.ts). */
    rounds: Int.gte(1).optional(),
    // Pins (below).
    allocation: AllocationItem.optional(),
    calib_data: CalibDataItem.optional(),
    calibration: Int.gte(1).optional(),
    bn: z.enum(BN_REPAIR_CHOICES).optional(),
  },
  'must be a score name or {name: …, options}',
  (v, ctx) => {
    // An option the score does not take is refused before its value is read (a valid name first).
    const name = v.name as ScoreName;
    if (!SCORE_NAMES.includes(name)) return;
    for (const [k, only] of Object.entries(ONLY)) {
      if (v[k] === undefined || only.scores.includes(name)) continue;
      const names = only.scores;
      ctx.addIssue({
        code: 'custom',
        path: [k],
        message:
          only.message?.(name) ??
          `only ${names.join(' and ')} take${names.length > 1 ? '' : 's'} ${k} (score is '${name}')`,
        ...(only.fix ? { params: { fix: only.fix } } : {}),
      });
    }
  },
).transform((o) => {
  /**
   * Ablation-axis values this score always runs with (its recipe), replacing the study's axis values for its cells,
   * e.g. a reconstruction pruner with its own allocation and calibration data next to baselines on the study's.
   */
  const pin = {
    ...(o.allocation !== undefined ? { allocation: o.allocation } : {}),
    ...(o.calib_data !== undefined ? { calibData: o.calib_data } : {}),
    ...(o.calibration !== undefined ? { calibration: o.calibration } : {}),
    ...(o.bn !== undefined ? { bn: o.bn } : {}),
  };
  return {
    name: o.name,
    ...(o.estimator !== undefined ? { estimator: o.estimator } : {}),
    ...(o.probes !== undefined ? { probes: o.probes } : {}),
    ...(o.ggn !== undefined ? { ggn: o.ggn } : {}),
    ...(o.block_size !== undefined ? { blockSize: o.block_size } : {}),
    ...(o.curvature !== undefined ? { curvature: o.curvature } : {}),
    ...(o.damping !== undefined ? { damping: o.damping } : {}),
    ...(o.compensate !== undefined ? { compensate: o.compensate } : {}),
    ...(o.target !== undefined ? { target: o.target } : {}),
    // `full` is the default: the same cells as leaving it out.
    ...(o.activations === 'half' ? { activations: o.activations } : {}),
    ...(o.rounds !== undefined && o.rounds > 1 ? { rounds: o.rounds } : {}),
    ...(Object.keys(pin).length > 0 ? { pin } : {}),
  };
});
/** A score and its options (estimator, probes, block size, damping, OBS compensation, target, pins). */
export type ScoreSpec = z.output<typeof ScoreFields>;

/** A score name or a mapping with its options. */
const Score = z.union(
  [
    when(
      isString,
      z.enum(SCORE_NAMES).transform((name): ScoreSpec => ({ name })),
    ),
    when(isObj, ScoreFields),
  ],
  { error: (iss) => `must be a score name or {name: …, options}, got ${show(iss.input)}` },
);

// ---- Sections --------------------------------------------------------------------------------------------------

/** Fine-tuning after pruning: a mapping (defaults for what it leaves out), `true` (all defaults) or `false` / null (none). */
const Finetune = z.preprocess(
  (v) => (v === undefined || v === true ? {} : v === false ? null : v),
  fields(
    {
      epochs: Int.gte(1).default(1),
      steps: Int.gte(1).optional(),
      batch_size: Int.gte(1).default(32),
      lr: Positive.optional(),
      optimizer: z.enum(['sgd', 'adamw']).default('sgd'),
      momentum: Fraction.default(0.9),
      weight_decay: Num.gte(0).optional(),
      schedule: z.enum(['cosine', 'constant']).default('cosine'),
      loss: z.enum(['ce', 'mse']).default('ce'),
      bn: z.enum(['frozen', 'train']).default('frozen'),
    },
    'must be a mapping or false',
  )
    .transform((o) => ({
      epochs: o.epochs,
      ...(o.steps !== undefined ? { steps: o.steps } : {}),
      batchSize: o.batch_size,
      lr: o.lr ?? (o.optimizer === 'adamw' ? 1e-3 : 0.01),
      optimizer: o.optimizer,
      momentum: o.momentum,
      weightDecay: o.weight_decay ?? (o.optimizer === 'adamw' ? 0.01 : 5e-4),
      schedule: o.schedule,
      loss: o.loss,
      bn: o.bn,
    }))
    .nullable(),
);
export type FinetuneRecipe = NonNullable<z.output<typeof Finetune>>;

/** A control: `true` (every score and sparsity of the study), `false` / null (none) or `{scores, sparsities}`. */
const Control = z.preprocess(
  (v) => (v === undefined || v === false ? null : v === true ? {} : v),
  fields(
    {
      /** Scores the control runs with (default: every score of the study). */
      scores: list(Score).optional(),
      /** Sparsities it runs at (default: every sparsity of the study). */
      sparsities: list(Fraction).optional(),
    },
    'must be true, false or {scores: […], sparsities: […]}',
  ).nullable(),
);

const ALPHA = "must be a number > 0, 'images' or 'auto'";
/** Second-order diagnostics run once per model after its cells (src/study/diagnostics.ts, docs/ANALYSIS.md). */
const Diagnostics = z.preprocess(
  (v) => (v === undefined || v === false ? null : v === true ? {} : v),
  fields(
    {
      tasks: list(TaskId).optional(),
      images: Int.gte(1).default(32),
      head_images: Int.gte(1).default(30),
      alpha: z
        .union([
          when(isString, z.enum(['images', 'auto'], { error: (iss) => `${ALPHA}, got ${show(iss.input)}` })),
          when((v) => !isString(v), Positive),
        ])
        .default('images'),
      probes: Int.gte(2).default(16),
      k: Int.gte(1).default(4),
      steps: Int.gte(1).optional(),
      loss: z.enum(['mse', 'ce']).optional(),
      sparsities: list(Fraction).optional(),
      control: z.boolean().default(true),
      seed: Int.gte(0).default(0),
    },
    'must be true, false or a mapping',
  )
    .transform((o) => ({
      /** Tasks analysed (default: every study task, sources then held-out; filled in by StudySchema). */
      tasks: o.tasks,
      /** Calibration images per task (the curvature's data). */
      images: o.images,
      /** Training images per class each task's scale-free ridge head is fitted on. */
      headImages: o.head_images,
      /** Head ridge penalty: a number, 'images' (= the number of head training images, the default) or 'auto' (from 100, 1000, 10000). */
      alpha: o.alpha,
      probes: o.probes,
      k: o.k,
      /** Lanczos steps (null: max(2k + 10, 20)). */
      steps: o.steps ?? null,
      /** Default: the study's prune.loss. */
      loss: o.loss,
      /** OBD-mask IoU and loss-change sparsities (default: the study's); the study's cell masks at these sparsities are evaluated too. */
      sparsities: o.sparsities,
      /** Also run on each model's `random:` control. */
      control: o.control,
      /** Seed of probes and the Lanczos start. */
      seed: o.seed,
    }))
    .nullable(),
);

// ---- The study -------------------------------------------------------------------------------------------------

const Cap = Int.gte(3);

/** The fields of a study config (the YAML document). */
const STUDY_FIELDS = {
  name: Text.optional(),
  models: list(Text),
  scores: list(Score),
  sparsities: list(Fraction),
  sources: list(TaskId),
  heldout: list(TaskId, { nonEmpty: false }),
  seeds: list(Int.gte(0)).default([0]),
  calibration: list(Int.gte(1)).default([64]),
  calib_data: list(CalibDataItem).default(['source']),
  resolution: Int.gte(16).lte(1024).optional(),
  data: fields(
    {
      cap: Cap.optional(),
      caps: z
        .record(z.string(), Cap, {
          error: (iss) =>
            iss.code === 'invalid_type' ? `must map task ids to caps, got ${show(iss.input)}` : undefined,
        })
        .default({}),
      seed: Int.gte(0).default(0),
    },
    'must be a mapping',
  ).prefault({}),
  heads: list(z.enum(['dense', 'refit'])).default(['dense', 'refit']),
  alpha: Positive.default(1),
  prune: fields(
    {
      loss: z.enum(['mse', 'ce']).default('mse'),
      allocation: list(AllocationItem).default(['global']),
      min_density: Num.gte(0).lte(1).default(0),
      bn: list(z.enum(BN_REPAIR_CHOICES)).default(['none']),
    },
    'must be a mapping',
  ).prefault({}),
  finetune: Finetune,
  controls: fields({ random_init: Control, shuffled_mask: Control }, 'must be a mapping').prefault({}),
  diagnostics: Diagnostics,
  runtime: z.enum(['auto', 'torch', 'ort']).default('auto'),
  target_tasks: Text.superRefine((s, ctx) => {
    try {
      new RegExp(s, 'i');
    } catch (e) {
      ctx.addIssue({
        code: 'custom',
        message: `is not a regular expression: ${(e as Error).message}`,
        params: { fix: "e.g. 'cifar|clipart', or '.' for every held-out task" },
      });
    }
  }).optional(),
  pool: Text.superRefine((s, ctx) => {
    if (!/^[a-z0-9][a-z0-9-]*$/.test(s))
      ctx.addIssue({
        code: 'custom',
        message: `'${s}' is not a pool name`,
        params: { fix: 'lower-case letters, digits and dashes, e.g. paper-imagenet' },
      });
  }).optional(),
};
/** A whole study config; `name` is left undefined when absent (validateStudy names it after the file). */
const StudySchema = fields(
  STUDY_FIELDS,
  () => `the top level must be a mapping with fields ${Object.keys(STUDY_FIELDS).join(', ')}`,
).transform((o, ctx) => {
  // Checks across fields.
  const fail = (path: (string | number)[], message: string, fix: string) =>
    ctx.addIssue({ code: 'custom', path, message, params: { fix } });
  const nmCheck = (a: AllocationName, path: (string | number)[]) => {
    const nm = /^(\d+):(\d+)$/.exec(a);
    if (!nm) return;
    const q = 1 - Number(nm[1]) / Number(nm[2]);
    if (o.sparsities.some((s) => Math.abs(s - q) < 1e-9)) return;
    const r = +q.toFixed(6);
    fail(
      path,
      `allocation ${a} prunes ${r}, which is not one of the sparsities`,
      `add ${r} to sparsities (N:M cells run only at sparsity 1 − N/M)`,
    );
  };
  o.scores.forEach((s, i) => {
    if (s.pin?.allocation) nmCheck(s.pin.allocation, ['scores', i, 'allocation']);
    // The error allocation reads per-layer error curves that only the reconstruction pruner measures, once.
    const allocs = s.pin?.allocation ? [s.pin.allocation] : o.prune.allocation;
    const a = allocs.find((x) => x === 'error' || x === 'error-layer');
    if (!a) return;
    if (!ERROR_CURVE_SCORES.includes(s.name))
      fail(
        ['scores', i, s.pin?.allocation ? 'allocation' : 'name'],
        `allocation '${a}' needs per-layer error curves, which ${s.name} does not measure`,
        `pin another allocation on this score (e.g. {name: ${s.name}, allocation: erk}) or use ${ERROR_CURVE_SCORES.join(', ')}`,
      );
    else if ((s.rounds ?? 1) > 1)
      fail(['scores', i, 'rounds'], `allocation '${a}' is one-shot`, 'drop rounds, or pin another allocation');
  });
  o.heldout.forEach((t, i) => {
    if (o.sources.includes(t))
      fail(
        ['heldout', i],
        `'${t}' is also a source task`,
        'a held-out task must not be a source; sources are evaluated anyway',
      );
  });
  const pinnedData = o.scores.map((s) => s.pin?.calibData).filter((x) => x !== undefined);
  for (const k of Object.keys(o.data.caps))
    if (!o.sources.includes(k) && !o.heldout.includes(k) && !o.calib_data.includes(k) && !pinnedData.includes(k))
      fail(
        ['data', 'caps', k],
        `'${k}' is neither a source nor a held-out task`,
        'cap only tasks listed in sources, heldout or calib_data',
      );
  o.prune.allocation.forEach((a, i) => nmCheck(a, ['prune', 'allocation', i]));
  for (const c of ['random_init', 'shuffled_mask'] as const)
    o.controls[c]?.scores?.forEach((s, i) => {
      if (s.pin?.allocation) nmCheck(s.pin.allocation, ['controls', c, 'scores', i, 'allocation']);
    });
  const tasks = [...new Set([...o.sources, ...o.heldout])];
  o.diagnostics?.tasks?.forEach((t, i) => {
    if (!tasks.includes(t))
      fail(['diagnostics', 'tasks', i], `'${t}' is not a task of this study`, `use one of ${tasks.join(', ')}`);
  });

  const control = (c: z.output<typeof Control>) =>
    c === null ? null : { scores: c.scores ?? o.scores, sparsities: c.sparsities ?? o.sparsities };
  return {
    name: o.name,
    models: o.models,
    scores: o.scores,
    sparsities: o.sparsities,
    sources: o.sources,
    heldout: o.heldout,
    seeds: o.seeds,
    /** The base calibration size: `calibrations[0]` (the protocol hash holds it; other sizes go into cell keys). */
    calibration: o.calibration[0]!,
    /** Calibration sizes (a grid axis when there are several; a scalar in YAML is a one-value list). */
    calibrations: o.calibration,
    /** Calibration data per cell (grid axis): 'source' (default), 'noise', 'all', 'mix:A+B' or a task id. */
    calibData: o.calib_data,
    /** Input resolution every model is rebuilt at (overrides `@size`). */
    resolution: o.resolution ?? null,
    /** Images per class over all splits: default and per-task overrides. */
    cap: o.data.cap ?? null,
    caps: o.data.caps,
    dataSeed: o.data.seed,
    heads: o.heads,
    alpha: o.alpha,
    /**
     * `allocation` is the base allocation (`allocations[0]`, part of the protocol hash); `allocations` and `bns` are
     * grid axes (BN repair after masking; default ['none']).
     */
    prune: {
      loss: o.prune.loss,
      allocation: o.prune.allocation[0]!,
      minDensity: o.prune.min_density,
      allocations: o.prune.allocation,
      bns: o.prune.bn,
    },
    finetune: o.finetune,
    controls: { randomInit: control(o.controls.random_init), shuffledMask: control(o.controls.shuffled_mask) },
    /**
     * Inference runtime of the feature and eval passes (graph/inference.ts). Not in the protocol hash: both runtimes
     * give the same features within 1e-5 relative, so a store's cells are valid whichever ran them.
     */
    runtime: o.runtime,
    /** Held-out tasks the results page checks the target on (a regular expression over task ids); null: the default. */
    targetTasks: o.target_tasks ?? null,
    /**
     * Studies sharing a pool name are also reported together (`tapir results`: one pooled section whose intervals
     * resample the cells of every member, e.g. one config per source split). Not in the protocol hash.
     */
    pool: o.pool ?? null,
    /** Second-order diagnostics run once per model after its cells (src/study/diagnostics.ts, docs/ANALYSIS.md). */
    diagnostics: o.diagnostics && {
      ...o.diagnostics,
      tasks: o.diagnostics.tasks ?? tasks,
      loss: o.diagnostics.loss ?? o.prune.loss,
      sparsities: o.diagnostics.sparsities ?? o.sparsities,
    },
  };
});

export type StudyConfig = Omit<z.output<typeof StudySchema>, 'name'> & { name: string };
export type ControlSpec = NonNullable<StudyConfig['controls']['randomInit']>;
export type DiagnosticsSpec = NonNullable<StudyConfig['diagnostics']>;

/**
 * A short stable label for a score spec, e.g. `diag-hessian(fisher)`, `sparsegpt(dense-output,rounds=3; allocation=erk)`.
 */
export function scoreLabel(s: ScoreSpec): string {
  const opts = Object.entries(s)
    .filter(([k]) => k !== 'name' && k !== 'pin')
    .map(([k, v]) => (k === 'rounds' || k === 'activations' ? `${k}=${String(v)}` : String(v)));
  const pins = Object.entries(s.pin ?? {}).map(
    ([k, v]) => `${k === 'calibData' ? 'calib_data' : k}=${String(v).replace(/^folder:(.*[\\/])?/, '')}`,
  );
  const inner = [opts.join(','), pins.join(', ')].filter((x) => x !== '').join('; ');
  return inner ? `${s.name}(${inner})` : s.name;
}

// ---- Errors ----------------------------------------------------------------------------------------------------

/** The wording of zod's own issues (the schema words its custom ones). */
const wording: z.core.$ZodErrorMap = (iss) => {
  const got = show(iss.input);
  switch (iss.code) {
    case 'invalid_type':
      return iss.expected === 'number'
        ? `must be a number, got ${got}`
        : iss.expected === 'string'
          ? `must be a non-empty string, got ${got}`
          : iss.expected === 'boolean'
            ? `must be true or false, got ${got}`
            : iss.expected === 'object'
              ? `must be a mapping, got ${got}`
              : undefined;
    case 'invalid_value':
      return `must be one of ${iss.values.join(', ')}, got ${got}`;
    case 'too_small':
      return iss.origin === 'array'
        ? 'must list at least one value'
        : `must be ${iss.inclusive ? '>=' : '>'} ${iss.minimum}, got ${String(iss.input)}`;
    case 'too_big':
      return `must be ${iss.inclusive ? '<=' : '<'} ${iss.maximum}, got ${String(iss.input)}`;
    default:
      return undefined;
  }
};

const fieldPath = (path: readonly PropertyKey[]) =>
  path.map((k, i) => (typeof k === 'number' ? `[${k}]` : `${i > 0 ? '.' : ''}${String(k)}`)).join('');

/** The first issue as a StudyConfigError; a union's issue is that of the case its input is. */
function configError(file: string, issues: readonly z.core.$ZodIssue[]): StudyConfigError {
  let iss = issues[0]!;
  let path = [...iss.path];
  while (iss.code === 'invalid_union') {
    const cases = iss.errors.filter((e) => !e.some((x) => x.code === 'custom' && x.params?.notThisCase));
    if (cases.length !== 1 || cases[0]!.length === 0) break;
    iss = cases[0]![0]!;
    path = [...path, ...iss.path];
  }
  const params = iss.code === 'custom' ? (iss.params ?? {}) : {};
  const message =
    typeof params.duplicateOf === 'number'
      ? `duplicates ${fieldPath([...path.slice(0, -1), params.duplicateOf])} (${params.value})`
      : iss.message;
  return new StudyConfigError(file, fieldPath(path), message, params.fix);
}

/** Validates a parsed YAML/JSON value; `file` names the source in errors. */
export function validateStudy(raw: unknown, file = 'study'): StudyConfig {
  const r = StudySchema.safeParse(raw, { error: wording });
  if (!r.success) throw configError(file, r.error.issues);
  return { ...r.data, name: r.data.name ?? basename(file).replace(/\.(ya?ml|json)$/i, '') };
}

/** Parses and validates YAML text; YAML syntax errors carry the line and column. */
export function parseStudy(text: string, file = 'study.yaml'): StudyConfig {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const pos = e.linePos?.[0];
    throw new StudyConfigError(
      file,
      pos ? `line ${pos.line}, column ${pos.col}` : '',
      `YAML syntax error: ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`,
      'fix the YAML syntax (indentation, colons, quotes)',
    );
  }
  return validateStudy(doc.toJS(), file);
}

export function loadStudy(path: string): StudyConfig {
  if (!existsSync(path))
    throw new TapirError('E_FILE', `study config ${path} does not exist`, {
      context: { file: path },
      fix: 'pass a YAML file, e.g. studies/demo.yaml',
    });
  return parseStudy(readFileSync(path, 'utf8'), basename(path));
}
