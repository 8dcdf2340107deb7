/**
 * The dataset abstraction: class names, a labelled list of examples (labels only, no pixels), and a
 * `decode` that turns one example into pixels. Opening a dataset never decodes an image, so counting
 * and splitting are cheap; pixels come through the cache (load.ts).
 */
import { basename } from 'node:path';
import type { Size } from './decode.js';

/** The source's own train/test partition; datasets without one put everything in `train`. */
export type PoolName = 'train' | 'test';

export interface Example {
  /** Stable id inside the dataset, used as the cache key: `train/123` or a file path relative to the root. */
  readonly key: string;
  /** Index into the dataset's `classes`. */
  readonly label: number;
  readonly pool: PoolName;
}

/** A file left out while listing or decoding, and why. */
export interface SkippedFile {
  readonly file: string;
  readonly reason: string;
}

export interface Dataset {
  /** Canonical name: `mnist`, `fashion-mnist`, `clipart`, `emoji`, `digits` or `folder:<absolute path>`. */
  readonly name: string;
  /** Where the files are. */
  readonly root: string;
  readonly classes: readonly string[];
  readonly examples: readonly Example[];
  /** True when `examples` holds the source's own test set (pool `test`); splits then take `test` from it. */
  readonly officialTest: boolean;
  /** Changes when the source files change; part of the cache key. */
  readonly fingerprint: string;
  /** Files dropped while listing (zero-byte, ambiguous category, …). */
  readonly skipped: readonly SkippedFile[];
  /** Decodes one example to `[3, h, w]` uint8. Rejects for unreadable files. */
  decode(ex: Example, size: Size): Promise<Uint8Array>;
}

/**
 * What a task's split draw hashes: a built-in dataset's name, a folder's base name. Never the absolute path, so the
 * same folder gives the same train/calib/test split from any checkout, data root or machine (a study resumed elsewhere
 * or spread over workers would otherwise mix draws under one cell key).
 */
export function drawKey(ds: Dataset): string {
  return ds.name.startsWith('folder:') ? `folder:${basename(ds.root)}` : ds.name;
}

/** Per-class example counts by pool. */
export function classCounts(ds: Dataset): { train: number[]; test: number[] } {
  const train = new Array<number>(ds.classes.length).fill(0);
  const test = new Array<number>(ds.classes.length).fill(0);
  for (const e of ds.examples) (e.pool === 'train' ? train : test)[e.label]!++;
  return { train, test };
}
