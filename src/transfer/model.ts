/**
 * Opening the models that transfer commands accept, and the fine-tuned model directory.
 *
 * `--model` is a zoo spec (`mobilenet_v2@96`, `random:resnet18`), an `.onnx` file, a directory holding `model.onnx`
 * (as `tapir prune` writes), or a directory written by `tapir finetune` (`finetune.json` + `model.safetensors` +
 * `mask.safetensors`). The dense reference of a fine-tuned directory is its base model, without mask; of anything
 * else, the same model without mask.
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { TapirError } from '../engine/index.js';
import type { Graph } from '../graph/index.js';
import { loadMaskFile, writeMaskFile } from '../graph/mask-file.js';
import { importOnnx } from '../graph/onnx/index.js';
import { loadStateDict, readSafetensors, writeSafetensors } from '../graph/safetensors.js';
import { loadModel } from '../graph/zoo/index.js';
import { readJson, writeJsonAtomic } from './checkpoint.js';
import type { FinetuneResult } from './finetune.js';
import { TASK_HEAD_BIAS, TASK_HEAD_WEIGHT, type LinearHead } from '../graph/index.js';

export const FINETUNE_FORMAT = 'tapir-finetune/1';
export const MASK_FILE = 'mask.safetensors';

export interface OpenedModel {
  graph: Graph;
  /** What was asked for. */
  spec: string;
  kind: 'zoo' | 'onnx' | 'finetuned';
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
}

const isDir = (p: string) => existsSync(p) && statSync(p).isDirectory();

/** Opens a model by zoo spec or path (see the file comment). */
export async function openModel(spec: string, o: { seed?: number } = {}): Promise<OpenedModel> {
  if (isDir(spec) && existsSync(join(spec, 'finetune.json'))) return loadFinetuned(spec, o);
  if (isDir(spec) && existsSync(join(spec, 'model.onnx'))) return { graph: await importOnnx(join(spec, 'model.onnx')), spec, kind: 'onnx', base: join(spec, 'model.onnx') };
  if (/\.onnx$/i.test(spec)) {
    if (!existsSync(spec)) throw new TapirError('E_FILE', `ONNX file ${spec} does not exist`, { context: { model: spec }, fix: 'check the path' });
    return { graph: await importOnnx(spec), spec, kind: 'onnx', base: spec };
  }
  if (isDir(spec)) throw new TapirError('E_FILE', `${spec} is a directory without finetune.json or model.onnx`, { context: { model: spec }, fix: 'pass a zoo id (e.g. mobilenet_v2@96), an .onnx file, or a directory written by `tapir finetune`' });
  return { graph: await loadModel(spec, { cache: true, ...(o.seed !== undefined ? { seed: o.seed } : {}) }), spec, kind: 'zoo', base: spec };
}

/** Sets the masks of `g` from `<dir>/mask.safetensors` (or a mask file path). */
export async function applyMaskDir(g: Graph, dirOrFile: string): Promise<{ file: string; count: number; metadata: Record<string, string> }> {
  const file = isDir(dirOrFile) ? join(dirOrFile, MASK_FILE) : dirOrFile;
  if (!existsSync(file)) throw new TapirError('E_FILE', `no mask file at ${file}`, { context: { mask: dirOrFile }, fix: 'pass the --out directory of `tapir prune` (it holds mask.safetensors)' });
  return { file, ...(await loadMaskFile(g, file)) };
}

/** Writes a fine-tuned model: weights (backbone + task head), mask and finetune.json, each atomically. */
export async function saveFinetuned(dir: string, g: Graph, r: FinetuneResult, o: { model: string; mask: string | null }): Promise<FinetuneInfo> {
  await mkdir(dir, { recursive: true });
  const tensors = new Map([...g.params].map(([n, p]) => [n, p.tensor]));
  tensors.set(TASK_HEAD_WEIGHT, r.head.weight);
  tensors.set(TASK_HEAD_BIAS, r.head.bias);
  await writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: FINETUNE_FORMAT, model: o.model, task: r.task });
  if (g.masks.size > 0) await writeMaskFile(join(dir, MASK_FILE), g, { sourceTask: r.task, finetuned: true });
  const { head: _head, ...rest } = r;
  const info: FinetuneInfo = { format: FINETUNE_FORMAT, model: o.model, mask: o.mask, weights: 'model.safetensors', ...rest };
  await writeJsonAtomic(join(dir, 'finetune.json'), info);
  return info;
}

/** Opens a directory written by `saveFinetuned`: the base model with the fine-tuned weights and the mask. */
export async function loadFinetuned(dir: string, o: { seed?: number } = {}): Promise<OpenedModel> {
  const info = await readJson<FinetuneInfo>(join(dir, 'finetune.json'));
  if (info.format !== FINETUNE_FORMAT) throw new TapirError('E_FILE', `${dir}/finetune.json has format '${info.format}', expected '${FINETUNE_FORMAT}'`, { fix: 'pass a directory written by `tapir finetune`' });
  const base = await openModel(info.model, o);
  const g = base.graph;
  const st = await readSafetensors(join(dir, info.weights));
  const r = await loadStateDict(g, st, { strict: false });
  if (r.missing.length > 0)
    throw new TapirError('E_STATE_DICT', `${dir}/${info.weights} lacks ${r.missing.length} parameters of '${info.model}' (e.g. ${r.missing.slice(0, 3).join(', ')})`, { fix: 'the directory was written for another model; re-run `tapir finetune`' });
  if (existsSync(join(dir, MASK_FILE))) await loadMaskFile(g, join(dir, MASK_FILE));
  const head = st.entries.has(TASK_HEAD_WEIGHT) ? { weight: st.tensor(TASK_HEAD_WEIGHT), bias: st.tensor(TASK_HEAD_BIAS) } : undefined;
  return { graph: g, spec: dir, kind: 'finetuned', base: base.base, finetune: info, ...(head ? { head } : {}) };
}
