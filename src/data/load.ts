/**
 * Pixels for a task's splits, through the cache: cached images are read back (checksum-verified), missing
 * ones decoded with sharp and written back, corrupt cache files rebuilt. Unreadable images are skipped and
 * reported, and remembered in the cache so a warm load reports the same skips.
 */
import type { Size } from './decode.js';
import type { Example, SkippedFile } from './dataset.js';
import { DataError } from './errors.js';
import { classFile, readClassFile, writeClassFile, type ClassEntry } from './cache.js';
import { SPLIT_NAMES, type SplitName, type Task } from './task.js';

/** Decoded images of one split: `images` holds `n` images of `[3, h, w]` uint8, back to back. */
export interface ImageSet {
  readonly task: string;
  readonly split: SplitName;
  readonly classes: readonly string[];
  readonly size: Size;
  readonly n: number;
  readonly images: Uint8Array;
  /** Task labels 0..K-1. */
  readonly labels: Int32Array;
  readonly keys: readonly string[];
  /** Selected images that could not be decoded (left out of `images`). */
  readonly skipped: readonly SkippedFile[];
}

export interface LoadStats {
  /** Images decoded now (cold). */
  decoded: number;
  /** Images read from the cache (warm). */
  cached: number;
  /** Cache files found corrupt and rebuilt. */
  rebuilt: string[];
  /** Distinct selected files that could not be decoded. */
  skipped: SkippedFile[];
}

export interface LoadOptions {
  /** Called as images are read or decoded, with the number done so far and the total. */
  onProgress?: (done: number, total: number) => void;
  /** Images decoded at once (default 4). */
  concurrency?: number;
}

/** Loads several splits of `task` at `size` ([h, w]); each cache file is read once. */
export async function loadSplits(
  task: Task,
  size: Size,
  splits: readonly SplitName[] = SPLIT_NAMES,
  o: LoadOptions = {},
): Promise<{ sets: Partial<Record<SplitName, ImageSet>>; stats: LoadStats }> {
  checkSize(size);
  const ds = task.dataset;
  const need = new Map<number, Example[]>();
  for (const s of splits)
    for (const e of task.splits[s].examples) {
      if (!need.has(e.label)) need.set(e.label, []);
      need.get(e.label)!.push(e);
    }
  const total = [...need.values()].reduce((a, xs) => a + xs.length, 0);
  const stats: LoadStats = { decoded: 0, cached: 0, rebuilt: [], skipped: [] };
  const entries = new Map<number, ClassEntry>();
  let done = 0;
  for (const [label, exs] of need) {
    const path = classFile(ds, size, label);
    const meta = { dataset: ds.name, cls: ds.classes[label]!, size };
    const read = await readClassFile(path, meta);
    if (read === 'corrupt') stats.rebuilt.push(path);
    const entry: ClassEntry = typeof read === 'string' ? { images: new Map(), bad: new Map() } : read;
    const todo = exs.filter((e) => !entry.images.has(e.key) && !entry.bad.has(e.key));
    stats.cached += exs.length - todo.length;
    done += exs.length - todo.length;
    o.onProgress?.(done, total);
    await pool(todo, o.concurrency ?? 4, async (e) => {
      try {
        entry.images.set(e.key, await ds.decode(e, size));
        stats.decoded++;
      } catch (err) {
        entry.bad.set(e.key, firstLine(err));
      }
      o.onProgress?.(++done, total);
    });
    if (todo.length > 0 || read === 'corrupt') await writeClassFile(path, meta, entry);
    for (const e of exs) {
      const why = entry.bad.get(e.key);
      if (why !== undefined && !stats.skipped.some((s) => s.file === e.key))
        stats.skipped.push({ file: e.key, reason: why });
    }
    entries.set(label, entry);
  }
  const sets: Partial<Record<SplitName, ImageSet>> = {};
  for (const s of splits) sets[s] = assemble(task, s, size, entries);
  return { sets, stats };
}

/** Loads one split of `task` at `size` ([h, w]). */
export async function loadSplit(task: Task, split: SplitName, size: Size, o: LoadOptions = {}): Promise<ImageSet> {
  return (await loadSplits(task, size, [split], o)).sets[split]!;
}

function assemble(task: Task, split: SplitName, size: Size, entries: Map<number, ClassEntry>): ImageSet {
  const sp = task.splits[split];
  const per = 3 * size[0] * size[1];
  const keep: number[] = [];
  const skipped: SkippedFile[] = [];
  sp.examples.forEach((e, i) => {
    const ent = entries.get(e.label)!;
    if (ent.images.has(e.key)) keep.push(i);
    else skipped.push({ file: e.key, reason: ent.bad.get(e.key) ?? 'not decoded' });
  });
  const images = new Uint8Array(keep.length * per);
  const labels = new Int32Array(keep.length);
  const keys: string[] = [];
  keep.forEach((i, j) => {
    const e = sp.examples[i]!;
    images.set(entries.get(e.label)!.images.get(e.key)!, j * per);
    labels[j] = sp.labels[i]!;
    keys.push(e.key);
  });
  return { task: task.id, split, classes: task.classes, size, n: keep.length, images, labels, keys, skipped };
}

function checkSize(size: Size): void {
  if (size.length !== 2 || !size.every((x) => Number.isInteger(x) && x >= 1 && x <= 4096)) {
    throw new DataError(`image size [${size.join(', ')}] is not [height, width] in 1..4096 pixels`, {
      context: { size },
      fix: 'pass the model input resolution, e.g. [96, 96]',
    });
  }
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e)
    .split('\n')[0]!
    .slice(0, 200);
}

async function pool<T>(xs: readonly T[], n: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < xs.length) await fn(xs[next++]!);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, xs.length)) }, worker));
}

/** The first `perClass` images of each class of one split (split order), e.g. for a montage. */
export async function loadSample(
  task: Task,
  split: SplitName,
  size: Size,
  perClass: number,
  o: LoadOptions = {},
): Promise<ImageSet> {
  const sp = task.splits[split];
  const seen = new Map<number, number>();
  const keep: number[] = [];
  sp.labels.forEach((l, i) => {
    const k = seen.get(l) ?? 0;
    if (k < perClass) keep.push(i);
    seen.set(l, k + 1);
  });
  const sub = {
    name: split,
    examples: keep.map((i) => sp.examples[i]!),
    labels: Int32Array.from(keep, (i) => sp.labels[i]!),
  };
  const t: Task = { ...task, splits: { ...task.splits, [split]: sub } };
  return loadSplit(t, split, size, o);
}
