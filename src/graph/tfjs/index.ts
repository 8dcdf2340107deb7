/** TF.js importers: layers models (Keras topology), graph models, and nsfwjs's JS-module packaging of both. */
import type { Graph } from '../ir.js';
import { readTfjsArtifacts, type TfjsArtifacts } from './artifacts.js';
import { importTfjsLayers } from './layers.js';
import { importTfjsGraph } from './graph-model.js';

export {
  readTfjsArtifacts,
  decodeWeights,
  decodeWeightList,
  type TfjsArtifacts,
  type WeightSpec,
  type DecodedWeight,
  type NamedWeight,
} from './artifacts.js';
export { importTfjsLayers, SUPPORTED_LAYERS } from './layers.js';
export { importTfjsGraph, SUPPORTED_TF_OPS } from './graph-model.js';
export { readExportedLiteral } from './js-literal.js';
export { inputRangeOf, type InputRange } from './input-range.js';
export { findClassifierHead, type ClassifierHead } from './classifier-head.js';

/** Imports already-read artifacts, choosing the layers or graph importer by `format` / topology shape. */
export function importTfjs(a: TfjsArtifacts): Graph {
  const topo = a.json.modelTopology as Record<string, unknown>;
  return a.json.format === 'graph-model' || Array.isArray(topo.node) ? importTfjsGraph(a) : importTfjsLayers(a);
}

/** Reads and imports a TF.js model (model.json, nsfwjs model.min.js, or their folder). */
export async function loadTfjsModel(path: string): Promise<Graph> {
  return importTfjs(await readTfjsArtifacts(path));
}
