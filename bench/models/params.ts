/**
 * Parameters of the benchmark models: a declared list of (name, shape, init) that both the tapir and
 * the PyTorch side build from, so the two sides run the same weights (bench/engine.ts ships them over).
 */
import { noGrad, randn, full, type Tensor } from '../../src/engine/index.js';
import { ShapeError } from '../../src/engine/errors.js';

export type Init =
  { readonly kind: 'normal'; readonly std: number } | { readonly kind: 'const'; readonly value: number };
export interface ParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly init: Init;
}
export type Params = ReadonlyMap<string, Tensor>;

export const normal = (std: number): Init => ({ kind: 'normal', std });
export const constant = (value: number): Init => ({ kind: 'const', value });
/** He-normal for a weight whose fan-in is the product of all dims but the first (conv and linear). */
export const he = (shape: readonly number[]): Init => normal(Math.sqrt(2 / shape.slice(1).reduce((a, b) => a * b, 1)));

/** Fresh leaf tensors (requiresGrad) for every spec, from libtorch's global generator (seed it first). */
export function initParams(specs: readonly ParamSpec[]): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  noGrad(() => {
    for (const s of specs) {
      let t: Tensor;
      if (s.init.kind === 'const') t = full(s.shape, s.init.value);
      else {
        const r = randn(s.shape);
        t = r.mul(s.init.std);
        r.dispose();
      }
      out.set(s.name, t.requiresGrad_(true));
    }
  });
  return out;
}

/** The parameter `name`, or an error naming it and the model. */
export function param(params: Params, name: string, model: string): Tensor {
  const t = params.get(name);
  if (t === undefined)
    throw new ShapeError(`${model}: parameter '${name}' missing (got ${params.size} parameters)`, {
      context: { name },
      fix: 'build params with initParams(model.specs)',
    });
  return t;
}

export function numParams(specs: readonly ParamSpec[]): number {
  return specs.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
}

/**
 * `f(t)`, then frees `t`'s handle. Forward passes release each intermediate as soon as it is consumed:
 * autograd keeps what backward needs by itself, while JS handles held to the end of a scope keep
 * activations alive through backward (10–50% slower, 2–3× memory; FACTS, Engines).
 */
export function consume(t: Tensor, f: (t: Tensor) => Tensor): Tensor {
  const r = f(t);
  t.dispose();
  return r;
}
