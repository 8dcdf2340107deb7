/**
 * Study configs (the paper's protocol as a grid, docs/STUDY.md): models × scores × sparsities × sources × seeds, evaluated on the
 * sources and held-out tasks, with controls. Parsed from YAML and validated field by field: every error names the
 * file and the field path (`studies.yaml: sparsities[2]: must be in [0, 1), got 1.2`), so a typo fails before any
 * model is loaded.
 */
import { readFileSync, existsSync } from 'node:fs';
import { basename } from 'node:path';
import { parseDocument } from 'yaml';
import { TapirError } from '../engine/index.js';
import {
  ALLOCATIONS, BN_REPAIRS, ESTIMATOR_NAMES, parseAllocation, parseCalibData, RECONSTRUCT_TARGETS, SCORE_NAMES as PRUNE_SCORE_NAMES,
  type BnRepair as PruneBnRepair, type ReconstructTarget, type ScoreName as PruneScoreName,
} from '../prune/index.js';

/** The score, estimator, allocation and BN-repair names are the pruning registries' own. */
export const SCORE_NAMES: readonly PruneScoreName[] = PRUNE_SCORE_NAMES;
export type ScoreName = PruneScoreName;
export const ESTIMATOR_CHOICES = ESTIMATOR_NAMES;
/** Named allocations; `N:M` strings (e.g. '2:4') are allocations too. */
export const ALLOCATION_CHOICES = ALLOCATIONS;
export type AllocationName = (typeof ALLOCATIONS)[number] | `${number}:${number}`;
/** BN repair after masking (src/prune `repairBatchNorm`): none, re-estimate on the calibration images, match the dense statistics. */
export const BN_REPAIR_CHOICES = BN_REPAIRS;
export type BnRepair = PruneBnRepair;
/** Calibration data: 'source', 'noise', 'all' (every study task), 'mix:A+B' or a task id (that task's images and labels). */
export type CalibData = 'source' | 'noise' | 'all' | (string & {});

/** A score and its options (estimator, probes, block size, damping, OBS compensation). */
export interface ScoreSpec {
  name: ScoreName;
  estimator?: (typeof ESTIMATOR_CHOICES)[number];
  probes?: number;
  /** ggn estimator: exact over outputs or 1-sample Monte-Carlo. */
  ggn?: 'exact' | 'mc';
  /** block-hessian: weights per block (along each row / filter), curvature factors, relative damping, OBS update. */
  blockSize?: number;
  curvature?: 'fisher' | 'ggn';
  damping?: number;
  compensate?: boolean;
  /** sparsegpt: what each layer is reconstructed toward. */
  target?: ReconstructTarget;
  /**
   * Ablation-axis values this score always runs with (its recipe), replacing the study's axis values for its cells,
   * e.g. a reconstruction pruner with its own allocation and calibration data next to baselines on the study's.
   */
  pin?: { allocation?: AllocationName; calibData?: CalibData; calibration?: number; bn?: BnRepair };
}

export interface FinetuneRecipe {
  epochs: number;
  steps?: number;
  batchSize: number;
  lr: number;
  optimizer: 'sgd' | 'adamw';
  momentum: number;
  weightDecay: number;
  schedule: 'cosine' | 'constant';
  loss: 'ce' | 'mse';
  bn: 'frozen' | 'train';
}

export interface ControlSpec {
  /** Scores the control runs with (default: every score of the study). */
  scores: ScoreSpec[];
  /** Sparsities it runs at (default: every sparsity of the study). */
  sparsities: number[];
}

/** Second-order diagnostics run once per model after its cells (src/study/diagnostics.ts, docs/ANALYSIS.md). */
export interface DiagnosticsSpec {
  /** Tasks analysed (default: every study task, sources then held-out). */
  tasks: string[];
  /** Calibration images per task (the curvature's data). */
  images: number;
  /** Training images per class each task's scale-free ridge head is fitted on. */
  headImages: number;
  /** Head ridge penalty: a number, 'images' (= the number of head training images, the default) or 'auto' (from 100, 1000, 10000). */
  alpha: number | 'images' | 'auto';
  probes: number;
  k: number;
  /** Lanczos steps (null: max(2k + 10, 20)). */
  steps: number | null;
  loss: 'mse' | 'ce';
  /** OBD-mask IoU and loss-change sparsities; the study's cell masks at these sparsities are evaluated too. */
  sparsities: number[];
  /** Also run on each model's `random:` control. */
  control: boolean;
  /** Seed of probes and the Lanczos start. */
  seed: number;
}

export interface StudyConfig {
  name: string;
  models: string[];
  scores: ScoreSpec[];
  sparsities: number[];
  sources: string[];
  heldout: string[];
  seeds: number[];
  /** The base calibration size: `calibrations[0]` (the protocol hash holds it; other sizes go into cell keys). */
  calibration: number;
  /** Calibration sizes (a grid axis when there are several; a scalar in YAML is a one-value list). */
  calibrations: number[];
  /** Calibration data per cell (grid axis): 'source' (default), 'noise', or a task id. */
  calibData: CalibData[];
  /** Input resolution every model is rebuilt at (overrides `@size`). */
  resolution: number | null;
  /** Images per class over all splits: default and per-task overrides. */
  cap: number | null;
  caps: Record<string, number>;
  dataSeed: number;
  heads: ('dense' | 'refit')[];
  alpha: number;
  /**
   * `allocation` is the base allocation (`allocations[0]`, part of the protocol hash); `allocations` and `bns` are
   * grid axes (BN repair after masking; default ['none']).
   */
  prune: { loss: 'mse' | 'ce'; allocation: AllocationName; minDensity: number; allocations: AllocationName[]; bns: BnRepair[] };
  finetune: FinetuneRecipe | null;
  controls: { randomInit: ControlSpec | null; shuffledMask: ControlSpec | null };
  diagnostics: DiagnosticsSpec | null;
  /** Held-out tasks the results page checks the target on (a regular expression over task ids); null: the default. */
  targetTasks: string | null;
}

export class StudyConfigError extends TapirError {
  constructor(file: string, path: string, message: string, fix?: string) {
    super('E_STUDY_CONFIG', `${file}: ${path ? `${path}: ` : ''}${message}`, { context: { file, field: path }, ...(fix ? { fix } : {}) });
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (v: unknown) => (typeof v === 'string' ? `'${v}'` : JSON.stringify(v));

/** Field readers that throw with the field path. */
class Reader {
  constructor(readonly file: string) {}
  fail(path: string, msg: string, fix?: string): never {
    throw new StudyConfigError(this.file, path, msg, fix);
  }
  keys(o: Obj, path: string, allowed: readonly string[]): void {
    for (const k of Object.keys(o)) {
      if (allowed.includes(k)) continue;
      const near = allowed.find((a) => a.replace(/[-_]/g, '') === k.replace(/[-_]/g, '').toLowerCase() || a.startsWith(k.slice(0, 4)));
      this.fail(path ? `${path}.${k}` : k, `unknown field`, near ? `did you mean '${near}'?` : `allowed here: ${allowed.join(', ')}`);
    }
  }
  num(v: unknown, path: string, o: { int?: boolean; min?: number; max?: number; maxOpen?: number; positive?: boolean } = {}): number {
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(path, `must be a number, got ${show(v)}`);
    if (o.int && !Number.isInteger(v)) this.fail(path, `must be an integer, got ${v}`);
    if (o.positive && !(v > 0)) this.fail(path, `must be > 0, got ${v}`);
    if (o.maxOpen !== undefined && !(v >= (o.min ?? -Infinity) && v < o.maxOpen)) this.fail(path, `must be in [${o.min}, ${o.maxOpen}), got ${v}`);
    if (o.min !== undefined && v < o.min) this.fail(path, `must be >= ${o.min}, got ${v}`);
    if (o.max !== undefined && v > o.max) this.fail(path, `must be <= ${o.max}, got ${v}`);
    return v;
  }
  str(v: unknown, path: string): string {
    if (typeof v !== 'string' || v.trim() === '') this.fail(path, `must be a non-empty string, got ${show(v)}`);
    return v.trim();
  }
  bool(v: unknown, path: string): boolean {
    if (typeof v !== 'boolean') this.fail(path, `must be true or false, got ${show(v)}`);
    return v;
  }
  oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[]): T {
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) this.fail(path, `must be one of ${allowed.join(', ')}, got ${show(v)}`);
    return v as T;
  }
  list<T>(v: unknown, path: string, item: (x: unknown, p: string) => T, o: { nonEmpty?: boolean; unique?: boolean } = {}): T[] {
    const xs = v === undefined ? [] : Array.isArray(v) ? v : [v];
    if (o.nonEmpty !== false && xs.length === 0) this.fail(path, 'must list at least one value');
    const out = xs.map((x, i) => item(x, `${path}[${i}]`));
    if (o.unique !== false) {
      const seen = new Map<string, number>();
      out.forEach((x, i) => {
        const k = JSON.stringify(x);
        if (seen.has(k)) this.fail(`${path}[${i}]`, `duplicates ${path}[${seen.get(k)}] (${k})`, 'list each value once');
        seen.set(k, i);
      });
    }
    return out;
  }
}

function score(r: Reader, v: unknown, path: string, sparsities: readonly number[]): ScoreSpec {
  if (typeof v === 'string') return { name: r.oneOf(v, path, SCORE_NAMES) };
  if (!isObj(v)) r.fail(path, `must be a score name or {name: …, options}, got ${show(v)}`);
  r.keys(v, path, ['name', 'estimator', 'probes', 'ggn', 'block_size', 'curvature', 'damping', 'compensate', 'target', 'allocation', 'calib_data', 'calibration', 'bn']);
  const s: ScoreSpec = { name: r.oneOf(v.name, `${path}.name`, SCORE_NAMES) };
  if (v.estimator !== undefined) {
    if (s.name !== 'diag-hessian') r.fail(`${path}.estimator`, `only diag-hessian takes an estimator (score is '${s.name}')`, 'block-hessian takes curvature: fisher|ggn');
    s.estimator = r.oneOf(v.estimator, `${path}.estimator`, ESTIMATOR_CHOICES);
  }
  if (v.probes !== undefined) s.probes = r.num(v.probes, `${path}.probes`, { int: true, min: 1 });
  if (v.ggn !== undefined) s.ggn = r.oneOf(v.ggn, `${path}.ggn`, ['exact', 'mc'] as const);
  const only = (k: string, names: readonly string[]) => { if (!names.includes(s.name)) r.fail(`${path}.${k}`, `only ${names.join(' and ')} take${names.length > 1 ? '' : 's'} ${k} (score is '${s.name}')`); };
  if (v.block_size !== undefined) { only('block_size', ['block-hessian', 'sparsegpt']); s.blockSize = r.num(v.block_size, `${path}.block_size`, { int: true, min: 1 }); }
  if (v.curvature !== undefined) { only('curvature', ['block-hessian']); s.curvature = r.oneOf(v.curvature, `${path}.curvature`, ['fisher', 'ggn'] as const); }
  if (v.damping !== undefined) { only('damping', ['block-hessian', 'sparsegpt']); s.damping = r.num(v.damping, `${path}.damping`, { positive: true }); }
  if (v.compensate !== undefined) { only('compensate', ['block-hessian']); s.compensate = r.bool(v.compensate, `${path}.compensate`); }
  if (v.target !== undefined) { only('target', ['sparsegpt']); s.target = r.oneOf(v.target, `${path}.target`, RECONSTRUCT_TARGETS); }
  const pin: NonNullable<ScoreSpec['pin']> = {};
  if (v.allocation !== undefined) pin.allocation = allocationItem(r, v.allocation, `${path}.allocation`, sparsities);
  if (v.calib_data !== undefined) pin.calibData = calibDataItem(r, v.calib_data, `${path}.calib_data`);
  if (v.calibration !== undefined) pin.calibration = r.num(v.calibration, `${path}.calibration`, { int: true, min: 1 });
  if (v.bn !== undefined) pin.bn = r.oneOf(v.bn, `${path}.bn`, BN_REPAIR_CHOICES);
  if (Object.keys(pin).length > 0) s.pin = pin;
  return s;
}

/** A short stable label for a score spec, e.g. `diag-hessian(fisher)`, `sparsegpt(dense-output; allocation=erk)`. */
export function scoreLabel(s: ScoreSpec): string {
  const opts = Object.entries(s).filter(([k]) => k !== 'name' && k !== 'pin').map(([, v]) => String(v));
  const pins = Object.entries(s.pin ?? {}).map(([k, v]) => `${k === 'calibData' ? 'calib_data' : k}=${String(v).replace(/^folder:(.*[\\/])?/, '')}`);
  const inner = [opts.join(','), pins.join(', ')].filter((x) => x !== '').join('; ');
  return inner ? `${s.name}(${inner})` : s.name;
}

/** One `calib_data` value: 'source', 'noise', 'all', 'mix:A+B' or a task id. */
function calibDataItem(r: Reader, x: unknown, p: string): CalibData {
  if (x === 'source' || x === 'noise' || x === 'all') return x;
  if (typeof x !== 'string') r.fail(p, `must be 'source', 'noise', 'all', 'mix:A+B' or a task id, got ${show(x)}`);
  if (x.startsWith('mix:')) {
    const d = parseCalibData(x);
    if (d.kind === 'mix') d.tasks.forEach((t, i) => taskId(r, t, `${p}.mix[${i}]`));
    return x.trim();
  }
  return taskId(r, x, p);
}

/** One allocation: a name or `N:M` (whose sparsity 1 − N/M must be one of the study's). */
function allocationItem(r: Reader, x: unknown, p: string, sparsities: readonly number[]): AllocationName {
  if (typeof x === 'string' && /^\d+:\d+$/.test(x.trim())) {
    const a = parseAllocationAt(r, x, p);
    if (a.kind === 'nm' && !sparsities.some((q) => Math.abs(q - (1 - a.n / a.m)) < 1e-9))
      { const q = +(1 - a.n / a.m).toFixed(6); r.fail(p, `allocation ${x} prunes ${q}, which is not one of the sparsities`, `add ${q} to sparsities (N:M cells run only at sparsity 1 − N/M)`); }
    return x.trim() as AllocationName;
  }
  return r.oneOf(x, p, ALLOCATION_CHOICES);
}

function taskId(r: Reader, v: unknown, path: string): string {
  const s = r.str(v, path);
  if (!/^[A-Za-z0-9_:./\-]+(\[[0-9,\- ]+\])?$/.test(s)) r.fail(path, `'${s}' is not a task id`, 'e.g. mnist, fashion-mnist[0-4], folder:/data/x');
  return s;
}

function recipe(r: Reader, v: unknown, path: string): FinetuneRecipe | null {
  if (v === false || v === null) return null;
  const o = v === undefined || v === true ? {} : v;
  if (!isObj(o)) r.fail(path, `must be a mapping or false, got ${show(v)}`);
  r.keys(o, path, ['epochs', 'steps', 'batch_size', 'lr', 'optimizer', 'momentum', 'weight_decay', 'schedule', 'loss', 'bn']);
  const optimizer = o.optimizer === undefined ? 'sgd' : r.oneOf(o.optimizer, `${path}.optimizer`, ['sgd', 'adamw'] as const);
  return {
    epochs: o.epochs === undefined ? 1 : r.num(o.epochs, `${path}.epochs`, { int: true, min: 1 }),
    ...(o.steps !== undefined ? { steps: r.num(o.steps, `${path}.steps`, { int: true, min: 1 }) } : {}),
    batchSize: o.batch_size === undefined ? 32 : r.num(o.batch_size, `${path}.batch_size`, { int: true, min: 1 }),
    lr: o.lr === undefined ? (optimizer === 'adamw' ? 1e-3 : 0.01) : r.num(o.lr, `${path}.lr`, { positive: true }),
    optimizer,
    momentum: o.momentum === undefined ? 0.9 : r.num(o.momentum, `${path}.momentum`, { min: 0, maxOpen: 1 }),
    weightDecay: o.weight_decay === undefined ? (optimizer === 'adamw' ? 0.01 : 5e-4) : r.num(o.weight_decay, `${path}.weight_decay`, { min: 0 }),
    schedule: o.schedule === undefined ? 'cosine' : r.oneOf(o.schedule, `${path}.schedule`, ['cosine', 'constant'] as const),
    loss: o.loss === undefined ? 'ce' : r.oneOf(o.loss, `${path}.loss`, ['ce', 'mse'] as const),
    bn: o.bn === undefined ? 'frozen' : r.oneOf(o.bn, `${path}.bn`, ['frozen', 'train'] as const),
  };
}

function diagnosticsSection(r: Reader, v: unknown, d: { tasks: string[]; sparsities: number[]; loss: 'mse' | 'ce' }): DiagnosticsSpec | null {
  const path = 'diagnostics';
  if (v === undefined || v === false || v === null) return null;
  const o = v === true ? {} : v;
  if (!isObj(o)) r.fail(path, `must be true, false or a mapping, got ${show(v)}`);
  r.keys(o, path, ['tasks', 'images', 'head_images', 'alpha', 'probes', 'k', 'steps', 'loss', 'sparsities', 'control', 'seed']);
  const tasks = o.tasks === undefined ? d.tasks : r.list(o.tasks, `${path}.tasks`, (x, p) => {
    const t = taskId(r, x, p);
    if (!d.tasks.includes(t)) r.fail(p, `'${t}' is not a task of this study`, `use one of ${d.tasks.join(', ')}`);
    return t;
  });
  return {
    tasks,
    images: o.images === undefined ? 32 : r.num(o.images, `${path}.images`, { int: true, min: 1 }),
    headImages: o.head_images === undefined ? 30 : r.num(o.head_images, `${path}.head_images`, { int: true, min: 1 }),
    alpha: o.alpha === undefined || o.alpha === 'images' ? 'images' : o.alpha === 'auto' ? 'auto'
      : typeof o.alpha === 'string' ? r.fail(`${path}.alpha`, `must be a number > 0, 'images' or 'auto', got ${show(o.alpha)}`) : r.num(o.alpha, `${path}.alpha`, { positive: true }),
    probes: o.probes === undefined ? 16 : r.num(o.probes, `${path}.probes`, { int: true, min: 2 }),
    k: o.k === undefined ? 4 : r.num(o.k, `${path}.k`, { int: true, min: 1 }),
    steps: o.steps === undefined ? null : r.num(o.steps, `${path}.steps`, { int: true, min: 1 }),
    loss: o.loss === undefined ? d.loss : r.oneOf(o.loss, `${path}.loss`, ['mse', 'ce'] as const),
    sparsities: o.sparsities === undefined ? d.sparsities : r.list(o.sparsities, `${path}.sparsities`, (x, p) => r.num(x, p, { min: 0, maxOpen: 1 })),
    control: o.control === undefined ? true : r.bool(o.control, `${path}.control`),
    seed: o.seed === undefined ? 0 : r.num(o.seed, `${path}.seed`, { int: true, min: 0 }),
  };
}

function control(r: Reader, v: unknown, path: string, scores: ScoreSpec[], sparsities: number[]): ControlSpec | null {
  if (v === undefined || v === false || v === null) return null;
  if (v === true) return { scores, sparsities };
  if (!isObj(v)) r.fail(path, `must be true, false or {scores: […], sparsities: […]}, got ${show(v)}`);
  r.keys(v, path, ['scores', 'sparsities']);
  return {
    scores: v.scores === undefined ? scores : r.list(v.scores, `${path}.scores`, (x, p) => score(r, x, p, sparsities)),
    sparsities: v.sparsities === undefined ? sparsities : r.list(v.sparsities, `${path}.sparsities`, (x, p) => r.num(x, p, { min: 0, maxOpen: 1 })),
  };
}

const TOP = ['name', 'models', 'scores', 'sparsities', 'sources', 'heldout', 'seeds', 'calibration', 'calib_data', 'resolution', 'data', 'heads', 'alpha', 'prune', 'finetune', 'controls', 'diagnostics', 'target_tasks'] as const;

function regexField(r: Reader, v: unknown, path: string): string {
  const s = r.str(v, path);
  try {
    new RegExp(s, 'i');
  } catch (e) {
    r.fail(path, `is not a regular expression: ${(e as Error).message}`, "e.g. 'cifar|clipart', or '.' for every held-out task");
  }
  return s;
}

function parseAllocationAt(r: Reader, x: string, path: string) {
  try {
    return parseAllocation(x);
  } catch (e) {
    return r.fail(path, (e as Error).message, 'e.g. 2:4 (keep 2 of every 4 weights)');
  }
}

/** Validates a parsed YAML/JSON value; `file` names the source in errors. */
export function validateStudy(raw: unknown, file = 'study'): StudyConfig {
  const r: Reader = new Reader(file);
  if (!isObj(raw)) r.fail('', `the top level must be a mapping with fields ${TOP.join(', ')}`);
  r.keys(raw, '', TOP);
  const sparsities = r.list(raw.sparsities, 'sparsities', (x, p) => r.num(x, p, { min: 0, maxOpen: 1 }));
  const scores = r.list(raw.scores, 'scores', (x, p) => score(r, x, p, sparsities));
  const data = raw.data === undefined ? {} : raw.data;
  if (!isObj(data)) r.fail('data', `must be a mapping, got ${show(data)}`);
  r.keys(data, 'data', ['cap', 'caps', 'seed']);
  const caps: Record<string, number> = {};
  if (data.caps !== undefined) {
    if (!isObj(data.caps)) r.fail('data.caps', `must map task ids to caps, got ${show(data.caps)}`);
    for (const [k, v] of Object.entries(data.caps)) caps[k] = r.num(v, `data.caps.${k}`, { int: true, min: 3 });
  }
  const prune = raw.prune === undefined ? {} : raw.prune;
  if (!isObj(prune)) r.fail('prune', `must be a mapping, got ${show(prune)}`);
  r.keys(prune, 'prune', ['loss', 'allocation', 'min_density', 'bn']);
  const controls = raw.controls === undefined ? {} : raw.controls;
  if (!isObj(controls)) r.fail('controls', `must be a mapping, got ${show(controls)}`);
  r.keys(controls, 'controls', ['random_init', 'shuffled_mask']);
  const sources = r.list(raw.sources, 'sources', (x, p) => taskId(r, x, p));
  const heldout = r.list(raw.heldout, 'heldout', (x, p) => taskId(r, x, p), { nonEmpty: false });
  heldout.forEach((t, i) => { if (sources.includes(t)) r.fail(`heldout[${i}]`, `'${t}' is also a source task`, 'a held-out task must not be a source; sources are evaluated anyway'); });
  const calibData = raw.calib_data === undefined ? ['source'] : r.list(raw.calib_data, 'calib_data', (x, p) => calibDataItem(r, x, p));
  const pinnedData = scores.map((x) => x.pin?.calibData).filter((x): x is string => x !== undefined);
  for (const k of Object.keys(caps)) if (!sources.includes(k) && !heldout.includes(k) && !calibData.includes(k) && !pinnedData.includes(k)) r.fail(`data.caps.${k}`, `'${k}' is neither a source nor a held-out task`, 'cap only tasks listed in sources, heldout or calib_data');
  const calibrations = raw.calibration === undefined ? [64] : r.list(raw.calibration, 'calibration', (x, p) => r.num(x, p, { int: true, min: 1 }));
  const allocations = prune.allocation === undefined ? ['global' as const] : r.list(prune.allocation, 'prune.allocation', (x, p) => allocationItem(r, x, p, sparsities));
  return {
    name: raw.name === undefined ? basename(file).replace(/\.(ya?ml|json)$/i, '') : r.str(raw.name, 'name'),
    models: r.list(raw.models, 'models', (x, p) => r.str(x, p)),
    scores,
    sparsities,
    sources,
    heldout,
    seeds: raw.seeds === undefined ? [0] : r.list(raw.seeds, 'seeds', (x, p) => r.num(x, p, { int: true, min: 0 })),
    calibration: calibrations[0]!,
    calibrations,
    calibData,
    resolution: raw.resolution === undefined ? null : r.num(raw.resolution, 'resolution', { int: true, min: 16, max: 1024 }),
    cap: data.cap === undefined ? null : r.num(data.cap, 'data.cap', { int: true, min: 3 }),
    caps,
    dataSeed: data.seed === undefined ? 0 : r.num(data.seed, 'data.seed', { int: true, min: 0 }),
    heads: raw.heads === undefined ? ['dense', 'refit'] : r.list(raw.heads, 'heads', (x, p) => r.oneOf(x, p, ['dense', 'refit'] as const)),
    alpha: raw.alpha === undefined ? 1 : r.num(raw.alpha, 'alpha', { positive: true }),
    prune: {
      loss: prune.loss === undefined ? 'mse' : r.oneOf(prune.loss, 'prune.loss', ['mse', 'ce'] as const),
      allocation: allocations[0]!,
      minDensity: prune.min_density === undefined ? 0 : r.num(prune.min_density, 'prune.min_density', { min: 0, max: 1 }),
      allocations,
      bns: prune.bn === undefined ? ['none'] : r.list(prune.bn, 'prune.bn', (x, p) => r.oneOf(x, p, BN_REPAIR_CHOICES)),
    },
    finetune: recipe(r, raw.finetune, 'finetune'),
    controls: {
      randomInit: control(r, controls.random_init, 'controls.random_init', scores, sparsities),
      shuffledMask: control(r, controls.shuffled_mask, 'controls.shuffled_mask', scores, sparsities),
    },
    targetTasks: raw.target_tasks === undefined ? null : regexField(r, raw.target_tasks, 'target_tasks'),
    // After `prune` above: prune.loss is validated by then.
    diagnostics: diagnosticsSection(r, raw.diagnostics, { tasks: [...new Set([...sources, ...heldout])], sparsities, loss: (prune.loss as 'mse' | 'ce' | undefined) ?? 'mse' }),
  };
}

/** Parses and validates YAML text; YAML syntax errors carry the line and column. */
export function parseStudy(text: string, file = 'study.yaml'): StudyConfig {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const pos = e.linePos?.[0];
    throw new StudyConfigError(file, pos ? `line ${pos.line}, column ${pos.col}` : '', `YAML syntax error: ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`, 'fix the YAML syntax (indentation, colons, quotes)');
  }
  return validateStudy(doc.toJS(), file);
}

export function loadStudy(path: string): StudyConfig {
  if (!existsSync(path)) throw new TapirError('E_FILE', `study config ${path} does not exist`, { context: { file: path }, fix: 'pass a YAML file, e.g. studies/demo.yaml' });
  return parseStudy(readFileSync(path, 'utf8'), basename(path));
}
