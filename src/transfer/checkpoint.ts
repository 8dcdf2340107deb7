/**
 * Fine-tuning checkpoints: one safetensors file per run directory holding every parameter the training touches
 * (`param/<name>`: trainable weights, BN buffers, the task head), the optimizer state (`opt/<param>::<key>`) and,
 * in its metadata, the recipe and the progress as JSON. One file written by temp-file + rename, so a kill at any
 * moment leaves either the previous checkpoint or the new one, never a mix. `progress.json` beside it is a
 * human-readable copy and is never read back.
 */
import { mkdir, mkdtemp, readFile, rename, rm, unlink } from 'node:fs/promises';
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { writeFileAtomic, noGrad, scope, ShapeError, TapirError, type Tensor } from '../engine/index.js';
import type { Param } from '../graph/index.js';
import { readSafetensors, writeSafetensors, type SafetensorsFile } from '../graph/safetensors.js';
import type { MaskedOptimizer } from './optim.js';

export const CHECKPOINT_FORMAT = 'tapir-finetune-checkpoint/1';

export interface Progress {
  /** Optimizer steps taken. */
  step: number;
  /** Epochs completed. */
  epoch: number;
  history: { epoch: number; step: number; loss: number; lr: number }[];
  before: { loss: number; accuracy: number };
}

export function checkpointPath(dir: string): string {
  return join(dir, 'checkpoint.safetensors');
}

/**
 * Writes a directory as a unit: `fill(tmp)` writes every file into a fresh sibling temp directory, which then takes
 * the place of `dir` (an earlier `dir` is moved aside first and removed after), so a reader never sees new files
 * mixed with old ones, and a killed run leaves the earlier directory or the new one, never a mix.
 */
export async function writeDirAtomic(dir: string, fill: (tmp: string) => Promise<void>): Promise<void> {
  const parent = dirname(resolve(dir));
  await mkdir(parent, { recursive: true });
  const tmp = await mkdtemp(join(parent, `.${basename(dir)}.tmp-`));
  try {
    await fill(tmp);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  let old: string | null = null;
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) {
      await rm(tmp, { recursive: true, force: true });
      throw new TapirError('E_FILE', `${dir} exists and is not a directory`, {
        context: { out: dir },
        fix: 'pass a directory path for --out',
      });
    }
    old = `${tmp}.old`;
    await rename(dir, old);
  }
  await rename(tmp, dir);
  if (old) await rm(old, { recursive: true, force: true });
}

/** Writes JSON atomically (temp file, then rename). */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

export async function writeCheckpoint(
  path: string,
  recipe: Record<string, unknown>,
  progress: Progress,
  params: readonly Param[],
  opt: MaskedOptimizer,
): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tensors = new Map<string, Tensor>();
  const tmp: Tensor[] = [];
  noGrad(() => {
    for (const p of params) {
      const t = p.tensor.detach();
      tmp.push(t);
      tensors.set(`param/${p.name}`, t);
    }
  });
  for (const [k, t] of opt.stateDict()) tensors.set(`opt/${k}`, t);
  try {
    await writeSafetensors(path, tensors, {
      format: CHECKPOINT_FORMAT,
      recipe: JSON.stringify(recipe),
      progress: JSON.stringify(progress),
      stepCount: String(opt.stepCount),
    });
  } finally {
    for (const t of tmp) t.dispose();
  }
  await writeJsonAtomic(path.replace(/\.safetensors$/, '') + '-progress.json', { recipe, progress });
}

export interface LoadedCheckpoint {
  file: SafetensorsFile;
  progress: Progress;
  /** Copies the saved parameters and optimizer state into place. */
  load(params: readonly Param[], opt: MaskedOptimizer): void;
}

/** Reads the checkpoint at `path` (null when there is none) and checks it was written by the same recipe. */
export async function readCheckpoint(path: string, recipe: Record<string, unknown>): Promise<LoadedCheckpoint | null> {
  if (!existsSync(path)) return null;
  const file = await readSafetensors(path);
  const md = file.metadata;
  const fail = (msg: string, fix = 'start again without --resume (or use another --out directory)') =>
    new TapirError('E_CHECKPOINT', `${path}: ${msg}`, { context: { file: path }, fix });
  if (md.format !== CHECKPOINT_FORMAT)
    throw fail(`not a tapir fine-tuning checkpoint (format '${md.format ?? 'missing'}')`);
  let saved: Record<string, unknown>;
  let progress: Progress;
  try {
    saved = JSON.parse(md.recipe ?? '') as Record<string, unknown>;
    progress = JSON.parse(md.progress ?? '') as Progress;
  } catch {
    throw fail('its recipe/progress metadata is not JSON');
  }
  const differ = [...new Set([...Object.keys(saved), ...Object.keys(recipe)])].filter(
    (k) => JSON.stringify(saved[k]) !== JSON.stringify(recipe[k]),
  );
  if (differ.length > 0)
    throw fail(
      `it was written by a different run: ${differ.map((k) => `${k} ${JSON.stringify(saved[k])} → ${JSON.stringify(recipe[k])}`).join('; ')}`,
      'resume with the same model, mask, task and options, or start again without --resume',
    );
  const stepCount = Number(md.stepCount);
  return {
    file,
    progress,
    load(params, opt) {
      for (const p of params) {
        const e = file.entries.get(`param/${p.name}`);
        if (!e) throw fail(`parameter '${p.name}' is missing`);
        if (e.shape.length !== p.tensor.ndim || e.shape.some((d, i) => d !== p.tensor.shape[i]))
          throw new ShapeError(
            `${path}: parameter '${p.name}' is [${e.shape.join(', ')}], the model has [${p.tensor.shape.join(', ')}]`,
            { context: { file: path, tensor: p.name } },
          );
      }
      scope(() =>
        noGrad(() => {
          for (const p of params) p.tensor.copy_(file.tensor(`param/${p.name}`));
          opt.loadStateDict(
            (k) => (file.entries.has(`opt/${k}`) ? file.tensor(`opt/${k}`) : undefined),
            stepCount,
            path,
          );
        }),
      );
    },
  };
}

/** Removes a finished run's checkpoint files. */
export async function removeCheckpoint(dir: string): Promise<void> {
  const p = checkpointPath(dir);
  await unlink(p).catch(() => undefined);
  await unlink(p.replace(/\.safetensors$/, '') + '-progress.json').catch(() => undefined);
}

export async function readJson<T>(path: string): Promise<T> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (e) {
    throw new TapirError('E_FILE', `cannot read ${path}: ${(e as Error).message}`, {
      context: { file: path },
      fix: 'check the path (a directory written by `tapir finetune`)',
    });
  }
}
