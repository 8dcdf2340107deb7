/**
 * Memory format of a forward pass (docs/GRAPH.md, "Memory format"): libtorch runs convolutions on NHWC
 * (channels-last) activations through oneDNN, on NCHW ones through its own im2col + GEMM path. Measured here
 * (bench/memory-format.ts, docs/BENCH.md): channels-last is faster for every conv net of
 * the zoo, in eval and in train mode, so the interpreter lays a 4-D input out channels-last when the graph has a
 * convolution (rule `auto`). Only the memory order changes: values, shapes and gradients are the same tensors up to
 * float rounding. `TAPIR_MEMORY_FORMAT=nchw` turns it off, `channels-last` forces it for every 4-D input.
 */
import type { Tensor } from '../engine/index.js';
import { TapirError } from '../engine/index.js';
import type { Graph } from './ir.js';

export type MemoryFormat = 'auto' | 'nchw' | 'channels-last';
export const MEMORY_FORMATS: readonly MemoryFormat[] = ['auto', 'nchw', 'channels-last'];

const raw = process.env.TAPIR_MEMORY_FORMAT?.trim();
const envFormat: MemoryFormat =
  raw && (MEMORY_FORMATS as readonly string[]).includes(raw) ? (raw as MemoryFormat) : 'auto';

/** A bad TAPIR_MEMORY_FORMAT (then `auto` is used): the CLI refuses to start with it. */
export function memoryFormatError(): TapirError | null {
  if (!raw || (MEMORY_FORMATS as readonly string[]).includes(raw)) return null;
  return new TapirError('E_ENV', `TAPIR_MEMORY_FORMAT must be one of ${MEMORY_FORMATS.join(', ')}, got '${raw}'`, {
    context: { TAPIR_MEMORY_FORMAT: raw },
    fix: 'unset it (auto: channels-last for conv nets) or set TAPIR_MEMORY_FORMAT=nchw or channels-last',
  });
}

/** The process's memory-format rule (TAPIR_MEMORY_FORMAT, default auto). */
export function memoryFormat(): MemoryFormat {
  return envFormat;
}

/** Whether `forward` lays the 4-D input `x` of `g` out channels-last under `rule`. */
export function useChannelsLast(g: Graph, x: Tensor, rule: MemoryFormat = envFormat): boolean {
  if (rule === 'nchw' || x.ndim !== 4 || x.device !== 'cpu' || (x.dtype !== 'float32' && x.dtype !== 'float64'))
    return false;
  if (rule === 'channels-last') return true;
  return g.nodes.some((n) => n.op === 'conv2d');
}
