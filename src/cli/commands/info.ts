/** `tapir info <model|path>`: parameters, prunable tensors and input of a zoo model or a model file. */
import { Command } from 'commander';
import { countParams, disposeGraph, loadModel, UnsupportedOpError, type Graph } from '../../graph/index.js';
import { openModel as openAnyModel } from '../../transfer/index.js';
import { emit, table, type Io } from '../output.js';

export interface ModelInfo {
  name: string;
  source: string;
  inputSize: readonly [number, number];
  inputRange: readonly [number, number];
  inputShape: readonly (number | null)[];
  featureTap: string;
  totalParameters: number;
  trainableParameters: number;
  prunableParameters: number;
  nodes: number;
  parameters: { name: string; shape: number[]; role: string; trainable: boolean; prunable: boolean }[];
  prunable: { name: string; shape: number[]; numel: number }[];
}

/**
 * Loads `<model|path>` as every command does (transfer's openModel: zoo spec, `random:` spec or file, TF.js, ONNX,
 * pruned or fine-tuned directory); `--weights` loads a state dict into a built-in architecture.
 */
export async function openModel(spec: string, o: { size?: number; weights?: string } = {}): Promise<Graph> {
  if (o.weights || o.size !== undefined) return loadModel(spec, o);
  return (await openAnyModel(spec)).graph;
}

export function modelInfo(g: Graph, source: string): ModelInfo {
  const params = [...g.params.values()];
  return {
    name: g.name,
    source,
    inputSize: g.preprocessing.size,
    inputRange: g.preprocessing.range,
    inputShape: g.inputs[0]?.shape ?? [],
    featureTap: g.featureTap,
    ...countParams(g),
    nodes: g.nodes.length,
    parameters: params.map((p) => ({
      name: p.name,
      shape: [...p.tensor.shape],
      role: p.role,
      trainable: p.trainable,
      prunable: p.prunable,
    })),
    prunable: params
      .filter((p) => p.prunable)
      .map((p) => ({ name: p.name, shape: [...p.tensor.shape], numel: p.tensor.numel })),
  };
}

export function infoCommand(io: Io): Command {
  return new Command('info')
    .description('show a model: parameters, prunable tensors with shapes, totals, input size')
    .argument(
      '<model>',
      'zoo id (`tapir models`), `random:<id>`, `<id>@<size>`, a path to model.json / model.min.js / .onnx (`random:<path>`: fresh weights), or a pruned / fine-tuned directory',
    )
    .option('--weights <file>', 'safetensors state dict for a built-in architecture')
    .option('--json', 'print one JSON document')
    .action(async (spec: string, o: { json?: boolean; weights?: string }) => {
      let g: Graph;
      try {
        g = await openModel(spec, o.weights ? { weights: o.weights } : {});
      } catch (e) {
        // every unsupported op of the model at once (the ONNX importer scans the whole file), then the usual error
        if (e instanceof UnsupportedOpError && !o.json)
          io.out(
            table(
              ['unsupported op', 'nodes', 'first node'],
              e.unsupported.map((u) => [u.op, u.nodes.length, u.nodes[0]!]),
            ),
          );
        throw e;
      }
      const r = modelInfo(g, spec);
      disposeGraph(g);
      emit(io, !!o.json, r, () =>
        [
          `model       ${r.name} (${r.source})`,
          `input       [${r.inputShape.map((d) => d ?? 'N').join(', ')}] at ${r.inputSize.join('×')}, range [${r.inputRange.join(', ')}]`,
          `parameters  ${r.totalParameters} total, ${r.trainableParameters} trainable, ${r.prunableParameters} prunable`,
          `feature tap ${r.featureTap}`,
          '',
          table(
            ['prunable tensor', 'shape', 'numel'],
            r.prunable.map((p) => [p.name, `[${p.shape.join(', ')}]`, p.numel]),
          ),
        ].join('\n'),
      );
    });
}
