/**
 * Opening the models that transfer commands accept, and the fine-tuned model directory.
 *
 * `--model` is a zoo spec (`mobilenet_v2@96`, `random:resnet18`), an `.onnx` file, a TF.js model.json / model.min.js (or
 * its folder),
 * `random:<file>` (that file's architecture with fresh weights: the random-init control of an imported model), a directory written by
 * `tapir prune` (`prune.json` + `model.safetensors` + `mask.safetensors`, + `model.onnx` for other runtimes), a
 * directory written by `tapir finetune` (`finetune.json` + `model.safetensors` + `mask.safetensors`), or any directory
 * holding a `model.onnx`. The dense reference of a pruned or fine-tuned directory is its base model, without mask;
 * of anything else, the same model without mask.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { TapirError } from '../engine/index.js';
import { dataPath } from '../data/index.js';
import type { Graph } from '../graph/index.js';
import { loadMaskFile, writeMaskFile } from '../graph/mask-file.js';
import { importOnnx } from '../graph/onnx/index.js';
import { loadStateDict, readSafetensors, writeSafetensors } from '../graph/safetensors.js';
import { loadModel, reinitialize } from '../graph/zoo/index.js';
import { loadTfjsModel } from '../graph/tfjs/index.js';
import { readJson, writeDirAtomic, writeJsonAtomic } from './checkpoint.js';
import { exportOnnx } from '../graph/onnx/index.js';
import type { FinetuneResult } from './finetune.js';
import { TASK_HEAD_BIAS, TASK_HEAD_WEIGHT, type LinearHead } from '../graph/index.js';

export const FINETUNE_FORMAT = 'tapir-finetune/1';
export const PRUNE_FORMAT = 'tapir-prune/1';
export const MASK_FILE = 'mask.safetensors';

export interface OpenedModel {
  graph: Graph;
  /** What was asked for. */
  spec: string;
  kind: 'zoo' | 'onnx' | 'tfjs' | 'pruned' | 'finetuned';
  /** Spec of the dense reference model. */
  base: string;
  /** For a fine-tuned directory: its finetune.json and the trained task head (caller owns it). */
  finetune?: FinetuneInfo;
  head?: LinearHead;
}

export interface FinetuneInfo extends Omit<FinetuneResult, 'head'> {
  format: string;
  model: string;
  mask: string | null;
  weights: string;
  /** Shared with the weights and mask files of the same run (absent in directories written before run ids). */
  runId?: string;
}

const isDir = (p: string) => existsSync(p) && statSync(p).isDirectory();

/** Opens a model by zoo spec or path (see the file comment). */
export async function openModel(spec: string, o: { seed?: number } = {}): Promise<OpenedModel> {
  // `random:<path>`: the file's architecture with fresh weights (zoo specs handle `random:` themselves).
  const t = spec.trim();
  if (t.startsWith('random:') && !/^random:[A-Za-z0-9_]+(@\d+)?$/.test(t)) {
    const path = t.slice('random:'.length);
    const rooted = process.env.TAPIR_DATA ? dataPath(path) : path;
    for (const p of new Set([path, rooted]))
      if (isDir(p) && (existsSync(join(p, 'finetune.json')) || existsSync(join(p, 'prune.json'))))
        throw new TapirError(
          'E_ARG',
          `${spec}: random init of a pruned or fine-tuned model directory is not a control`,
          {
            context: { model: spec },
            fix: 'use random:<the base model> (its zoo id, .onnx or TF.js file)',
          },
        );
    const inner = await openModel(path, o);
    reinitialize(inner.graph, o.seed ?? 0);
    inner.graph.meta = { ...inner.graph.meta, spec };
    return { graph: inner.graph, spec, kind: inner.kind, base: spec };
  }
  // Relative model paths live under the data root (TAPIR_DATA, default the current directory); zoo ids stay as given.
  // Without TAPIR_DATA nothing changes: the path is used as given (relative to the current directory).
  const rooted = process.env.TAPIR_DATA ? dataPath(spec) : spec;
  return openModelAt(rooted !== spec && (existsSync(rooted) || /[\\/]|\.(onnx|json)$/i.test(spec)) ? rooted : spec, o);
}

async function openModelAt(spec: string, o: { seed?: number }): Promise<OpenedModel> {
  if (isDir(spec) && existsSync(join(spec, 'finetune.json'))) return loadFinetuned(spec, o);
  if (isDir(spec) && existsSync(join(spec, 'prune.json'))) return loadPruned(spec, o);
  // A TF.js layers / graph model: its model.json or nsfwjs-style model.min.js, or the folder holding one (as Teachable
  // Machine and nsfwjs exports are shaped).
  const tfjs = /\.(json|min\.js)$/i.test(spec)
    ? spec
    : isDir(spec) && !existsSync(join(spec, 'model.onnx'))
      ? (['model.json', 'model.min.js'].map((f) => join(spec, f)).find((f) => existsSync(f)) ?? null)
      : null;
  if (tfjs) {
    if (!existsSync(tfjs))
      throw new TapirError('E_FILE', `TF.js model file ${tfjs} does not exist`, {
        context: { model: spec },
        fix: 'check the path (the folder of a TF.js export holds model.json and its weight shards)',
      });
    return { graph: await loadTfjsModel(tfjs), spec, kind: 'tfjs', base: spec };
  }
  if (isDir(spec) && existsSync(join(spec, 'model.onnx')))
    return { graph: await importOnnx(join(spec, 'model.onnx')), spec, kind: 'onnx', base: join(spec, 'model.onnx') };
  if (/\.onnx$/i.test(spec)) {
    if (!existsSync(spec))
      throw new TapirError('E_FILE', `ONNX file ${spec} does not exist`, {
        context: { model: spec },
        fix: 'check the path',
      });
    const graph = await importOnnx(spec);
    // A file `tapir prune` wrote names the model it was pruned from: that is its dense reference, not itself.
    const base = typeof graph.meta.baseModel === 'string' ? graph.meta.baseModel : spec;
    return { graph, spec, kind: 'onnx', base };
  }
  if (!existsSync(spec) && /[\\/]|^\./.test(spec))
    throw new TapirError('E_FILE', `no file or directory at ${spec}`, {
      context: { model: spec },
      fix: 'check the path, or pass a zoo id (tapir models lists them, e.g. mobilenet_v2@96)',
    });
  if (isDir(spec))
    throw new TapirError('E_FILE', `${spec} is a directory without finetune.json or model.onnx`, {
      context: { model: spec },
      fix: 'pass a zoo id (e.g. mobilenet_v2@96), an .onnx file, or a directory written by `tapir finetune`',
    });
  return {
    graph: await loadModel(spec, { cache: true, ...(o.seed !== undefined ? { seed: o.seed } : {}) }),
    spec,
    kind: 'zoo',
    base: spec,
  };
}

/** What a pruned-model directory's prune.json must hold to be opened (the rest is the pruning report). */
export interface PrunedInfo {
  format: string;
  /** The base model spec (zoo id, or an absolute path). */
  model: string;
  /** Identifies the run: model.safetensors and mask.safetensors carry the same id in their metadata. */
  runId: string;
  files: { weights: string; mask: string; model: string | null };
}

/**
 * Writes a pruned model as one directory, replaced as a unit: `model.safetensors` (every parameter, after any weight
 * update, pruned weights 0), `mask.safetensors`, `model.onnx` (unless `onnx: false`) and `prune.json` (`doc` plus the
 * base model and a run id that the two safetensors files carry too, so a reader can refuse a mixed directory).
 */
export async function savePruned(
  dir: string,
  g: Graph,
  doc: Record<string, unknown>,
  o: { model: string; onnx: boolean; maskInfo: Parameters<typeof writeMaskFile>[2] },
): Promise<PrunedInfo & Record<string, unknown>> {
  const runId = randomBytes(8).toString('hex');
  const model = isDir(o.model) || /\.onnx$/i.test(o.model) ? resolve(o.model) : o.model;
  const info = {
    format: PRUNE_FORMAT,
    ...doc,
    model,
    runId,
    files: { weights: 'model.safetensors', mask: MASK_FILE, model: o.onnx ? 'model.onnx' : null },
  };
  await writeDirAtomic(dir, async (tmp) => {
    await writeSafetensors(join(tmp, 'model.safetensors'), new Map([...g.params].map(([n, p]) => [n, p.tensor])), {
      format: PRUNE_FORMAT,
      model,
      runId,
    });
    await writeMaskFile(join(tmp, MASK_FILE), g, { ...o.maskInfo, runId });
    if (o.onnx) await exportOnnx(g, join(tmp, 'model.onnx'), { baseModel: model });
    await writeJsonAtomic(join(tmp, 'prune.json'), info);
  });
  return info;
}

/** Opens a directory written by `savePruned`: the base model with the pruned weights and the mask; refuses a mixed directory. */
export async function loadPruned(dir: string, o: { seed?: number } = {}): Promise<OpenedModel> {
  const info = await readJson<PrunedInfo>(join(dir, 'prune.json'));
  const bad = (what: string) =>
    new TapirError('E_FILE', `${dir} is not a complete pruned-model directory: ${what}`, {
      context: { model: dir },
      fix: 're-run `tapir prune --out <dir>` (its outputs are written as a unit), or pass the base model with --mask',
    });
  if (info.format !== PRUNE_FORMAT || typeof info.model !== 'string' || typeof info.runId !== 'string' || !info.files)
    throw bad(`prune.json is not ${PRUNE_FORMAT} with model, runId and files`);
  const base = await openModel(info.model, o);
  const g = base.graph;
  const st = await readSafetensors(join(dir, info.files.weights));
  if (st.metadata.runId !== info.runId)
    throw bad(`${info.files.weights} belongs to run ${st.metadata.runId ?? '(none)'}, prune.json to ${info.runId}`);
  const r = await loadStateDict(g, st, { strict: true });
  if (r.missing.length > 0) throw bad(`${info.files.weights} lacks ${r.missing.length} parameters of '${info.model}'`);
  const mask = await loadMaskFile(g, join(dir, info.files.mask));
  if (mask.metadata.runId !== info.runId)
    throw bad(`${info.files.mask} belongs to run ${mask.metadata.runId ?? '(none)'}, prune.json to ${info.runId}`);
  return { graph: g, spec: dir, kind: 'pruned', base: info.model };
}

/** Sets the masks of `g` from `<dir>/mask.safetensors` (or a mask file path). */
export async function applyMaskDir(
  g: Graph,
  dirOrFile: string,
): Promise<{ file: string; count: number; metadata: Record<string, string> }> {
  const file = isDir(dirOrFile) ? join(dirOrFile, MASK_FILE) : dirOrFile;
  // A pruning that changed weights (reconstruction, OBS compensation) is a model, not a mask: its mask alone would
  // silently give other weights.
  const pj = isDir(dirOrFile) ? join(dirOrFile, 'prune.json') : null;
  if (pj && existsSync(pj)) {
    const doc = await readJson<{ weightsChanged?: boolean }>(pj);
    if (doc.weightsChanged)
      throw new TapirError(
        'E_ARG',
        `${dirOrFile} changed weights when pruning (reconstruction or OBS compensation): its mask alone is not the pruned model`,
        {
          context: { mask: dirOrFile },
          fix: `pass the directory as the model: --model ${dirOrFile}`,
        },
      );
  }
  if (!existsSync(file))
    throw new TapirError('E_FILE', `no mask file at ${file}`, {
      context: { mask: dirOrFile },
      fix: 'pass the --out directory of `tapir prune` (it holds mask.safetensors)',
    });
  return { file, ...(await loadMaskFile(g, file)) };
}

/** Writes a fine-tuned model: weights (backbone + task head), mask and finetune.json, each atomically. */
/**
 * Writes a fine-tuned model as one directory, replaced as a unit (the run's checkpoint inside it goes with the old
 * directory): weights (backbone + task head), mask and finetune.json, all three carrying the same run id.
 */
export async function saveFinetuned(
  dir: string,
  g: Graph,
  r: FinetuneResult,
  o: { model: string; mask: string | null },
): Promise<FinetuneInfo> {
  const runId = randomBytes(8).toString('hex');
  const tensors = new Map([...g.params].map(([n, p]) => [n, p.tensor]));
  tensors.set(TASK_HEAD_WEIGHT, r.head.weight);
  tensors.set(TASK_HEAD_BIAS, r.head.bias);
  const { head: _head, ...rest } = r;
  const info: FinetuneInfo = {
    format: FINETUNE_FORMAT,
    model: o.model,
    mask: o.mask,
    weights: 'model.safetensors',
    runId,
    ...rest,
  };
  await writeDirAtomic(dir, async (tmp) => {
    await writeSafetensors(join(tmp, 'model.safetensors'), tensors, {
      format: FINETUNE_FORMAT,
      model: o.model,
      task: r.task,
      runId,
    });
    if (g.masks.size > 0) await writeMaskFile(join(tmp, MASK_FILE), g, { sourceTask: r.task, finetuned: true, runId });
    await writeJsonAtomic(join(tmp, 'finetune.json'), info);
  });
  return info;
}

/** Opens a directory written by `saveFinetuned`: the base model with the fine-tuned weights and the mask. */
export async function loadFinetuned(dir: string, o: { seed?: number } = {}): Promise<OpenedModel> {
  const info = await readJson<FinetuneInfo>(join(dir, 'finetune.json'));
  if (info.format !== FINETUNE_FORMAT)
    throw new TapirError('E_FILE', `${dir}/finetune.json has format '${info.format}', expected '${FINETUNE_FORMAT}'`, {
      fix: 'pass a directory written by `tapir finetune`',
    });
  const base = await openModel(info.model, o);
  const g = base.graph;
  const st = await readSafetensors(join(dir, info.weights));
  // Directories written before run ids existed have none: nothing to compare then.
  if (info.runId && st.metadata.runId !== info.runId)
    throw new TapirError(
      'E_FILE',
      `${dir} is not a complete fine-tuned directory: ${info.weights} belongs to run ${st.metadata.runId ?? '(none)'}, finetune.json to ${info.runId}`,
      { fix: 're-run `tapir finetune --out <dir>`' },
    );
  const r = await loadStateDict(g, st, { strict: false });
  if (r.missing.length > 0)
    throw new TapirError(
      'E_STATE_DICT',
      `${dir}/${info.weights} lacks ${r.missing.length} parameters of '${info.model}' (e.g. ${r.missing.slice(0, 3).join(', ')})`,
      { fix: 'the directory was written for another model; re-run `tapir finetune`' },
    );
  if (existsSync(join(dir, MASK_FILE))) {
    const mf = await loadMaskFile(g, join(dir, MASK_FILE));
    if (info.runId && mf.metadata.runId !== info.runId)
      throw new TapirError(
        'E_FILE',
        `${dir} is not a complete fine-tuned directory: ${MASK_FILE} belongs to run ${mf.metadata.runId ?? '(none)'}, finetune.json to ${info.runId}`,
        { fix: 're-run `tapir finetune --out <dir>`' },
      );
  }
  const head = st.entries.has(TASK_HEAD_WEIGHT)
    ? { weight: st.tensor(TASK_HEAD_WEIGHT), bias: st.tensor(TASK_HEAD_BIAS) }
    : undefined;
  return { graph: g, spec: dir, kind: 'finetuned', base: base.base, finetune: info, ...(head ? { head } : {}) };
}
