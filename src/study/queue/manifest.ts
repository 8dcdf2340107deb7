/**
 * What a study spread over machines agrees on before any cell runs, and what travels through Redis (docs/SCALING.md).
 *
 * The coordinator writes one manifest per study protocol: the tapir build (package version + a hash of the compiled
 * code and the native addon), the config, its protocol hash and a fingerprint of the data and model files as the
 * coordinator sees them. A worker recomputes all three on its own machine and refuses the study's cells when any
 * differs. Jobs carry the cell spec only; results come back as the rows the store writes (accuracies, densities,
 * bit-packed masks, layer errors, the cell's info). No tensor goes through Redis.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TapirError } from '../../engine/index.js';
import { dataPath, drawKey, openTask } from '../../data/index.js';
import type { StudyConfig } from '../config.js';
import { expandGrid, studyTasks, taskOptionsFor, type CellSpec } from '../grid.js';
import { calibTaskIds } from '../resolve.js';
import type { CellOutput } from '../runner.js';

/** The queue every `tapir study --redis` and `tapir worker` use unless `--queue` names another. */
export const DEFAULT_QUEUE = 'tapir';
/** BullMQ job id of a cell (custom ids may not be integers nor hold ':'). */
export const jobId = (key: string) => `cell-${key}`;
export const keyOfJob = (id: string) => id.replace(/^cell-/, '');
export const manifestKey = (queue: string, protocol: string) => `tapir:${queue}:manifest:${protocol}`;
export const refusalsKey = (queue: string) => `tapir:${queue}:refusals`;
/** Version of the job data and result layout. */
export const WIRE_VERSION = 2;

export interface Manifest {
  wire: number;
  /** `tapir <version>+<code hash>` of the coordinator. */
  build: string;
  name: string;
  protocol: string;
  config: StudyConfig;
  /** Per task id / model spec, a hash of what the coordinator sees (see `dataFingerprint`). */
  data: Record<string, string>;
  createdAt: string;
}

export interface JobData {
  wire: number;
  protocol: string;
  study: string;
  cell: CellSpec;
}

/** A cell's output as JSON: masks as base64 of the packed bits. */
export interface WireOutput {
  wire: number;
  record: CellOutput['record'];
  /** Per-image correctness as base64 of the packed bits. */
  results: (Omit<CellOutput['results'][number], 'correct'> & { correct?: string })[];
  densities: CellOutput['densities'];
  masks: [string, string][];
  layerErrors: CellOutput['layerErrors'];
  worker: WorkerIdentity;
}

export interface WorkerIdentity {
  name: string;
  host: string;
  pid: number;
  build: string;
  threads: number;
}

// dist/src/study/queue/manifest.js → dist/src, and the repository root three levels above it.
const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ROOT = join(SRC, '..', '..');

function jsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .flatMap((e) => (e.isDirectory() ? jsFiles(join(dir, e.name)) : e.name.endsWith('.js') ? [join(dir, e.name)] : []));
}

const bytes = (f: string) => new Uint8Array(readFileSync(f));

let build: string | null = null;
/**
 * `tapir <version>+<12 hex>`: the package version and a hash of every compiled source file and the native addon. Two
 * checkouts of the same version built from different code give different builds (their numbers could differ).
 */
export function buildStamp(): string {
  if (build) return build;
  const h = createHash('sha256');
  for (const f of jsFiles(SRC)) h.update(relative(SRC, f)).update('\0').update(bytes(f));
  const addon = join(ROOT, 'build', 'Release', 'tapir_native.node');
  if (existsSync(addon)) h.update(bytes(addon));
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  build = `tapir ${pkg.version}+${h.digest('hex').slice(0, 12)}`;
  return build;
}

const sha = (v: unknown) =>
  createHash('sha256')
    .update(typeof v === 'string' ? v : JSON.stringify(v))
    .digest('hex')
    .slice(0, 16);

function fileHash(p: string): string {
  if (!statSync(p).isDirectory()) return createHash('sha256').update(bytes(p)).digest('hex').slice(0, 16);
  const h = createHash('sha256');
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const q = join(d, e.name);
      if (e.isDirectory()) walk(q);
      else h.update(relative(p, q)).update('\0').update(bytes(q));
    }
  };
  walk(p);
  return h.digest('hex').slice(0, 16);
}

/**
 * What a machine sees of a study's data, one hash per task and per model file. A task: its split draw key, classes,
 * the members of each split (file names relative to the dataset root) and, for folders, each member's size in bytes.
 * A model given as a path: the bytes of the file (or of every file in the directory). Zoo models come with the code,
 * which the build stamp covers. Pixel contents of datasets are not read (too slow for 50k images): a same-named,
 * same-sized file with other pixels goes unnoticed.
 */
export async function dataFingerprint(c: StudyConfig): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const id of [...new Set([...studyTasks(c), ...calibTaskIds(c)])]) {
    const t = await openTask(id, taskOptionsFor(c, id));
    const folder = t.dataset.name.startsWith('folder:');
    const splits = Object.fromEntries(
      Object.values(t.splits).map((s) => [
        s.name,
        s.examples.map((e) => (folder ? `${e.key}:${statSync(join(t.dataset.root, e.key)).size}` : e.key)),
      ]),
    );
    out[`task ${id}`] = sha({ draw: drawKey(t.dataset), classes: t.classes, splits });
  }
  for (const m of [...new Set(expandGrid(c).map((x) => x.model))]) {
    const spec = m.replace(/^random:/, '');
    const p = dataPath(spec);
    if (/[\\/]|\.(onnx|json)$/i.test(spec) && existsSync(p)) out[`model ${spec}`] = fileHash(p);
  }
  return out;
}

/** Why a worker cannot run this manifest's cells (empty: it can). Each entry names what differs and the fix. */
export function manifestProblems(
  m: Manifest,
  mine: { build: string; protocol: string; data: Record<string, string> },
): string[] {
  const why: string[] = [];
  if (m.wire !== WIRE_VERSION)
    why.push(
      `job layout v${m.wire}, this worker reads v${WIRE_VERSION}: run the same tapir build on the coordinator and every worker`,
    );
  if (m.build !== mine.build)
    why.push(
      `the coordinator runs ${m.build}, this worker ${mine.build}: check out and build the same commit on every machine (git checkout + make setup)`,
    );
  else if (m.protocol !== mine.protocol)
    why.push(
      `the config hashes to ${mine.protocol} here, ${m.protocol} on the coordinator: run the same tapir build on every machine`,
    );
  const keys = [...new Set([...Object.keys(m.data), ...Object.keys(mine.data)])].sort();
  for (const k of keys) {
    if (m.data[k] === mine.data[k]) continue;
    const where =
      mine.data[k] === undefined
        ? 'missing here'
        : m.data[k] === undefined
          ? 'not on the coordinator'
          : 'different here';
    why.push(
      `${k}: ${where} (data root ${process.env.TAPIR_DATA ? `TAPIR_DATA=${process.env.TAPIR_DATA}` : `${process.cwd()}, TAPIR_DATA unset`}): put the ` +
        `same files under this worker's TAPIR_DATA as under the coordinator's`,
    );
  }
  return why;
}

/** The cell of `config` with this key, checked against the spec the job carries (same code must expand it the same). */
export function cellOf(config: StudyConfig, shipped: CellSpec): CellSpec {
  const cell = expandGrid(config).find((c) => c.key === shipped.key);
  if (!cell || JSON.stringify(cell) !== JSON.stringify(shipped))
    throw new TapirError(
      'E_QUEUE_MISMATCH',
      `cell ${shipped.key} does not expand from the study config on this worker`,
      { fix: 'run the same tapir build on the coordinator and every worker' },
    );
  return cell;
}

const base64 = (v: Uint8Array): string => Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
const fromBase64 = (b: string): Uint8Array => new Uint8Array(Buffer.from(b, 'base64'));

export function toWire(out: CellOutput, worker: WorkerIdentity): WireOutput {
  return {
    wire: WIRE_VERSION,
    record: out.record,
    results: out.results.map(({ correct, ...r }) => (correct ? { ...r, correct: base64(correct) } : r)),
    densities: out.densities,
    masks: [...out.masks].map(([k, v]) => [k, base64(v)]),
    layerErrors: out.layerErrors,
    worker,
  };
}

export function fromWire(w: WireOutput): CellOutput {
  if (w.wire !== WIRE_VERSION)
    throw new TapirError('E_QUEUE_MISMATCH', `result layout v${w.wire}, this coordinator reads v${WIRE_VERSION}`, {
      fix: 'run the same tapir build on the coordinator and every worker',
    });
  // JSON has no NaN: a non-finite layer error arrives as null, which the store writes as NULL just as it does locally.
  return {
    record: w.record,
    results: w.results.map(({ correct, ...r }) => (correct ? { ...r, correct: fromBase64(correct) } : r)),
    densities: w.densities,
    masks: new Map(w.masks.map(([k, b]) => [k, fromBase64(b)])),
    layerErrors: w.layerErrors.map((e) => ({ tensor: e.tensor, relError: e.relError ?? Number.NaN })),
  };
}

/** ioredis options from a redis:// URL, refusing anything else with the fix. */
export function redisUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TapirError('E_USAGE', `--redis ${url} is not a URL`, {
      fix: 'pass e.g. --redis redis://host:6379 (the machine running redis-server)',
    });
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw new TapirError('E_USAGE', `--redis ${url}: expected a redis:// or rediss:// URL`, {
      fix: 'pass e.g. --redis redis://host:6379',
    });
  return url;
}
