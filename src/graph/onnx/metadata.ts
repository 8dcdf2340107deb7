/**
 * What ONNX cannot say about a tapir graph (parameter roles and prunable/trainable flags, the feature tap,
 * preprocessing) travels in the model's metadata_props, so tapir's own exports import back unchanged.
 */
import type { Graph, ParamRole } from '../ir.js';

/** ONNX metadata key under which tapir keeps what ONNX cannot say: roles, prunable flags, feature tap, preprocessing. */
export const TAPIR_METADATA_KEY = 'tapir.graph';
export interface TapirMetadata {
  featureTap: string;
  preprocessing: Graph['preprocessing'];
  params: Record<string, { role: string; prunable: boolean; trainable: boolean }>;
  /** Set by `tapir prune`: the unpruned model the file was pruned from. */
  baseModel?: string;
}
export function tapirMetadata(g: Graph): TapirMetadata {
  const params: TapirMetadata['params'] = {};
  for (const [n, p] of g.params) params[n] = { role: p.role, prunable: p.prunable, trainable: p.trainable };
  return { featureTap: g.featureTap, preprocessing: g.preprocessing, params };
}

const ROLES = new Set<ParamRole>(['weight', 'bias', 'norm', 'buffer', 'embedding', 'head']);

/** A file tapir exported carries the parameters' roles and flags, the feature tap and preprocessing: restore them. */
export function applyTapirMetadata(g: Graph, json: string, o: { preprocessing?: Graph['preprocessing'] }): Graph {
  let md: Partial<TapirMetadata>;
  try {
    md = JSON.parse(json) as Partial<TapirMetadata>;
  } catch {
    return g; // foreign or damaged metadata: the structural defaults stand
  }
  const produced = new Set([...g.nodes.flatMap((n) => n.outputs), ...g.inputs.map((i) => i.name)]);
  if (typeof md.featureTap === 'string' && produced.has(md.featureTap)) g.featureTap = md.featureTap;
  if (md.preprocessing && !o.preprocessing) g.preprocessing = md.preprocessing;
  for (const [name, v] of Object.entries(md.params ?? {})) {
    const p = g.params.get(name);
    if (!p || !v || !ROLES.has(v.role as ParamRole)) continue;
    g.params.set(name, { ...p, role: v.role as ParamRole, prunable: !!v.prunable, trainable: !!v.trainable });
    if (!v.trainable && p.tensor.requiresGrad) p.tensor.requiresGrad_(false);
  }
  g.meta = {
    ...g.meta,
    exportedByTapir: true,
    preprocessingAssumed: false,
    ...(typeof md.baseModel === 'string' ? { baseModel: md.baseModel } : {}),
  };
  return g;
}
