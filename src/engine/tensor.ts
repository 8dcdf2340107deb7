/**
 * The typed Tensor over a libtorch handle, and memory scopes.
 *
 * Memory rule (docs/ENGINE.md): a tensor is freed by `dispose()` or by the scope it was created in.
 * `scope(fn)` frees everything created inside except what `fn` returns or `keep()`s; returned
 * tensors move to the enclosing scope. GC finalizers in the addon are only a safety net.
 */
import { native, type Handle } from './native.js';
import { DTypeError, ShapeError } from './errors.js';

export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'uint8' | 'bool';
export type FloatDType = 'float32' | 'float64' | 'float16' | 'bfloat16';
/** dtype → TypedArray returned by `data()`. */
export interface DTypeArrayMap {
  float32: Float32Array;
  float64: Float64Array;
  float16: never;
  bfloat16: never;
  int64: BigInt64Array;
  int32: Int32Array;
  uint8: Uint8Array;
  bool: Uint8Array;
}
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;
export type Shape = readonly number[];
export type Reduction = 'mean' | 'sum' | 'none';

type Scope = Set<Tensor>;
const scopes: Scope[] = [];

export class Tensor {
  readonly #h: Handle;
  #shape: Shape | undefined;

  /** Wraps a native handle; the tensor joins the innermost open scope. Internal. */
  constructor(h: Handle) {
    this.#h = h;
    scopes[scopes.length - 1]?.add(this);
  }

  /** The native handle. Internal to src/engine. A disposed handle makes the next op throw naming itself. */
  get handle(): Handle {
    return this.#h;
  }

  get shape(): Shape {
    return (this.#shape ??= Object.freeze(native.shape(this.handle)));
  }
  get ndim(): number {
    return this.shape.length;
  }
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  get dtype(): DType {
    return native.dtype(this.handle) as DType;
  }
  get device(): Device {
    return native.device(this.handle) as Device;
  }
  get requiresGrad(): boolean {
    return native.requiresGrad(this.handle);
  }
  get isLeaf(): boolean {
    return native.isLeaf(this.handle);
  }
  get isDisposed(): boolean {
    return native.isDisposed(this.#h);
  }
  /** The accumulated `.grad` of a leaf after `backward()`, as a new tensor (or null). */
  get grad(): Tensor | null {
    const g = native.gradOf(this.handle);
    return g === null ? null : new Tensor(g);
  }
  size(dim: number): number {
    const s = this.shape;
    const d = dim < 0 ? dim + s.length : dim;
    if (d < 0 || d >= s.length) throw new ShapeError(`size: dim ${dim} out of range for shape [${s.join(', ')}]`);
    return s[d]!;
  }

  /** Frees the native memory now. Safe to call twice. */
  dispose(): void {
    native.dispose(this.#h);
    for (let i = scopes.length - 1; i >= 0; i--) if (scopes[i]!.delete(this)) break;
  }

  /** Marks this tensor as a leaf that accumulates gradients (in place). */
  requiresGrad_(v = true): this {
    native.setRequiresGrad(this.handle, v);
    return this;
  }
  /** Drops the accumulated gradient. */
  zeroGrad(): void {
    native.clearGrad(this.handle);
  }
  backward(grad?: Tensor, opts: { retainGraph?: boolean; createGraph?: boolean } = {}): void {
    native.backward(this.handle, grad?.handle, opts.retainGraph, opts.createGraph);
  }

  // ---- data out ----
  /** A copy of the elements in row-major order, as the dtype's TypedArray. */
  data<D extends DType = DType>(): DTypeArrayMap[D] {
    return native.toArray(this.handle) as DTypeArrayMap[D];
  }
  /** Elements as plain numbers (int64 converted with Number()). */
  toArray(): number[] {
    const d = native.toArray(this.handle);
    return d instanceof BigInt64Array ? Array.from(d, Number) : Array.from(d as ArrayLike<number>);
  }
  item(): number {
    return native.item(this.handle);
  }
  toString(): string {
    return this.isDisposed
      ? 'Tensor(<disposed>)'
      : `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device})`;
  }

  // ---- conversion ----
  to(dtype?: DType | null, device?: Device | null): Tensor {
    return new Tensor(native.to(this.handle, dtype, device));
  }
  float(): Tensor {
    return this.to('float32');
  }
  double(): Tensor {
    return this.to('float64');
  }
  long(): Tensor {
    return this.to('int64');
  }
  clone(): Tensor {
    return new Tensor(native.clone(this.handle));
  }
  detach(): Tensor {
    return new Tensor(native.detach(this.handle));
  }
  /** A dense copy in row-major order, or with `channelsLast` (4-D only) in NHWC memory order: same values. */
  contiguous(channelsLast = false): Tensor {
    return new Tensor(native.contiguous(this.handle, channelsLast));
  }
  /** Whether a 4-D tensor is laid out channels-last (NHWC) in memory rather than NCHW. */
  get isChannelsLast(): boolean {
    return native.isChannelsLast(this.handle);
  }

  // ---- elementwise ----
  add(b: Tensor | number, alpha?: number): Tensor {
    return new Tensor(native.add(this.handle, operand(b), alpha));
  }
  sub(b: Tensor | number, alpha?: number): Tensor {
    return new Tensor(native.sub(this.handle, operand(b), alpha));
  }
  mul(b: Tensor | number): Tensor {
    return new Tensor(native.mul(this.handle, operand(b)));
  }
  div(b: Tensor | number): Tensor {
    return new Tensor(native.div(this.handle, operand(b)));
  }
  pow(b: Tensor | number): Tensor {
    return new Tensor(native.pow(this.handle, operand(b)));
  }
  remainder(b: Tensor | number): Tensor {
    return new Tensor(native.remainder(this.handle, operand(b)));
  }
  maximum(b: Tensor): Tensor {
    return new Tensor(native.maximum(this.handle, b.handle));
  }
  minimum(b: Tensor): Tensor {
    return new Tensor(native.minimum(this.handle, b.handle));
  }
  neg(): Tensor {
    return new Tensor(native.neg(this.handle));
  }
  abs(): Tensor {
    return new Tensor(native.abs(this.handle));
  }
  sqrt(): Tensor {
    return new Tensor(native.sqrt(this.handle));
  }
  rsqrt(): Tensor {
    return new Tensor(native.rsqrt(this.handle));
  }
  exp(): Tensor {
    return new Tensor(native.exp(this.handle));
  }
  log(): Tensor {
    return new Tensor(native.log(this.handle));
  }
  square(): Tensor {
    return new Tensor(native.square(this.handle));
  }
  sign(): Tensor {
    return new Tensor(native.sign(this.handle));
  }
  reciprocal(): Tensor {
    return new Tensor(native.reciprocal(this.handle));
  }
  erf(): Tensor {
    return new Tensor(native.erf(this.handle));
  }
  floor(): Tensor {
    return new Tensor(native.floor(this.handle));
  }
  round(): Tensor {
    return new Tensor(native.round(this.handle));
  }
  sin(): Tensor {
    return new Tensor(native.sin(this.handle));
  }
  cos(): Tensor {
    return new Tensor(native.cos(this.handle));
  }
  clamp(min?: number | null, max?: number | null): Tensor {
    return new Tensor(native.clamp(this.handle, min, max));
  }
  eq(b: Tensor | number): Tensor {
    return new Tensor(native.eq(this.handle, operand(b)));
  }
  ne(b: Tensor | number): Tensor {
    return new Tensor(native.ne(this.handle, operand(b)));
  }
  lt(b: Tensor | number): Tensor {
    return new Tensor(native.lt(this.handle, operand(b)));
  }
  le(b: Tensor | number): Tensor {
    return new Tensor(native.le(this.handle, operand(b)));
  }
  gt(b: Tensor | number): Tensor {
    return new Tensor(native.gt(this.handle, operand(b)));
  }
  ge(b: Tensor | number): Tensor {
    return new Tensor(native.ge(this.handle, operand(b)));
  }
  logicalAnd(b: Tensor): Tensor {
    return new Tensor(native.logicalAnd(this.handle, b.handle));
  }
  logicalOr(b: Tensor): Tensor {
    return new Tensor(native.logicalOr(this.handle, b.handle));
  }
  logicalNot(): Tensor {
    return new Tensor(native.logicalNot(this.handle));
  }
  isfinite(): Tensor {
    return new Tensor(native.isfinite(this.handle));
  }
  isnan(): Tensor {
    return new Tensor(native.isnan(this.handle));
  }
  maskedFill(mask: Tensor, value: Tensor | number): Tensor {
    return new Tensor(native.maskedFill(this.handle, mask.handle, operand(value)));
  }

  // ---- reductions (dims omitted = all) ----
  sum(dims?: number | readonly number[] | null, keepdim = false, dtype?: DType): Tensor {
    return new Tensor(native.sum(this.handle, dims, keepdim, dtype));
  }
  mean(dims?: number | readonly number[] | null, keepdim = false): Tensor {
    return new Tensor(native.mean(this.handle, dims, keepdim));
  }
  /** Variance with `correction` (1 = unbiased, as torch; 0 = population). */
  var(dims?: number | readonly number[] | null, keepdim = false, correction = 1): Tensor {
    return new Tensor(native.var(this.handle, dims, keepdim, correction));
  }
  norm(p = 2): Tensor {
    return new Tensor(native.norm(this.handle, p));
  }
  logsumexp(dims: number | readonly number[], keepdim = false): Tensor {
    return new Tensor(native.logsumexp(this.handle, dims, keepdim));
  }
  cumsum(dim: number): Tensor {
    return new Tensor(native.cumsum(this.handle, dim));
  }
  all(): Tensor {
    return new Tensor(native.all(this.handle));
  }
  any(): Tensor {
    return new Tensor(native.any(this.handle));
  }
  /** Max over all elements, or over `dims`. */
  max(dims?: number | readonly number[] | null, keepdim = false): Tensor {
    return new Tensor(native.amax(this.handle, dims, keepdim));
  }
  min(dims?: number | readonly number[] | null, keepdim = false): Tensor {
    return new Tensor(native.amin(this.handle, dims, keepdim));
  }
  maxDim(dim: number, keepdim = false): { values: Tensor; indices: Tensor } {
    return pair(native.maxDim(this.handle, dim, keepdim));
  }
  minDim(dim: number, keepdim = false): { values: Tensor; indices: Tensor } {
    return pair(native.minDim(this.handle, dim, keepdim));
  }
  argmax(dim?: number | null, keepdim = false): Tensor {
    return new Tensor(native.argmax(this.handle, dim, keepdim));
  }
  topk(k: number, dim = -1, largest = true): { values: Tensor; indices: Tensor } {
    return pair(native.topk(this.handle, k, dim, largest));
  }
  /** k-th smallest (1-based, as torch.kthvalue) along `dim`. */
  kthvalue(k: number, dim = -1, keepdim = false): { values: Tensor; indices: Tensor } {
    return pair(native.kthvalue(this.handle, k, dim, keepdim));
  }
  sort(dim = -1, descending = false, stable = false): { values: Tensor; indices: Tensor } {
    return pair(native.sort(this.handle, dim, descending, stable));
  }
  trace(): Tensor {
    return new Tensor(native.trace(this.handle));
  }

  // ---- shape ----
  reshape(shape: readonly number[]): Tensor {
    return new Tensor(native.reshape(this.handle, shape));
  }
  view(shape: readonly number[]): Tensor {
    return new Tensor(native.view(this.handle, shape));
  }
  permute(dims: readonly number[]): Tensor {
    return new Tensor(native.permute(this.handle, dims));
  }
  transpose(d0: number, d1: number): Tensor {
    return new Tensor(native.transpose(this.handle, d0, d1));
  }
  t(): Tensor {
    return new Tensor(native.t(this.handle));
  }
  flatten(start = 0, end = -1): Tensor {
    return new Tensor(native.flatten(this.handle, start, end));
  }
  squeeze(dim?: number): Tensor {
    return new Tensor(native.squeeze(this.handle, dim));
  }
  unsqueeze(dim: number): Tensor {
    return new Tensor(native.unsqueeze(this.handle, dim));
  }
  expand(shape: readonly number[]): Tensor {
    return new Tensor(native.expand(this.handle, shape));
  }
  repeat(reps: readonly number[]): Tensor {
    return new Tensor(native.repeat(this.handle, reps));
  }
  flip(dims: number | readonly number[]): Tensor {
    return new Tensor(native.flip(this.handle, dims));
  }
  /** Splits into chunks of `size` (number) or of the given sizes along `dim`. */
  split(size: number | readonly number[], dim = 0): Tensor[] {
    return native.split(this.handle, size, dim).map((h) => new Tensor(h));
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return new Tensor(native.narrow(this.handle, dim, start, length));
  }
  slice(dim: number, start?: number | null, end?: number | null, step = 1): Tensor {
    return new Tensor(native.slice(this.handle, dim, start, end, step));
  }
  /** The sub-tensor at `index` along `dim` (torch.select). */
  index(dim: number, index: number): Tensor {
    return new Tensor(native.selectIndex(this.handle, dim, index));
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return new Tensor(native.indexSelect(this.handle, dim, index.handle));
  }
  gather(dim: number, index: Tensor): Tensor {
    return new Tensor(native.gather(this.handle, dim, index.handle));
  }
  scatter(dim: number, index: Tensor, src: Tensor | number): Tensor {
    return new Tensor(native.scatter(this.handle, dim, index.handle, operand(src)));
  }
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor {
    return new Tensor(native.scatterAdd(this.handle, dim, index.handle, src.handle));
  }
  maskedSelect(mask: Tensor): Tensor {
    return new Tensor(native.maskedSelect(this.handle, mask.handle));
  }
  nonzero(): Tensor {
    return new Tensor(native.nonzero(this.handle));
  }
  diag(k = 0): Tensor {
    return new Tensor(native.diag(this.handle, k));
  }
  diagonal(offset = 0, d1 = 0, d2 = 1): Tensor {
    return new Tensor(native.diagonal(this.handle, offset, d1, d2));
  }
  triu(k = 0): Tensor {
    return new Tensor(native.triu(this.handle, k));
  }
  tril(k = 0): Tensor {
    return new Tensor(native.tril(this.handle, k));
  }

  // ---- linear algebra ----
  matmul(b: Tensor): Tensor {
    return new Tensor(native.matmul(this.handle, b.handle));
  }
  mm(b: Tensor): Tensor {
    return new Tensor(native.mm(this.handle, b.handle));
  }
  bmm(b: Tensor): Tensor {
    return new Tensor(native.bmm(this.handle, b.handle));
  }
  dot(b: Tensor): Tensor {
    return new Tensor(native.dot(this.handle, b.handle));
  }
  outer(b: Tensor): Tensor {
    return new Tensor(native.outer(this.handle, b.handle));
  }

  // ---- in place (run under noGrad for parameters) ----
  add_(b: Tensor | number, alpha?: number): this {
    native.addInplace(this.handle, operand(b), alpha);
    return this;
  }
  mul_(b: Tensor | number): this {
    native.mulInplace(this.handle, operand(b));
    return this;
  }
  addcmul_(a: Tensor, b: Tensor, value = 1): this {
    native.addcmulInplace(this.handle, a.handle, b.handle, value);
    return this;
  }
  addcdiv_(a: Tensor, b: Tensor, value = 1): this {
    native.addcdivInplace(this.handle, a.handle, b.handle, value);
    return this;
  }
  copy_(src: Tensor): this {
    native.copyInplace(this.handle, src.handle);
    return this;
  }
  fill_(v: number | boolean): this {
    native.fillInplace(this.handle, v);
    return this;
  }
  zero_(): this {
    native.zeroInplace(this.handle);
    return this;
  }
}

function operand(b: Tensor | number | boolean): Handle | number | boolean {
  return typeof b === 'number' || typeof b === 'boolean' ? b : b.handle;
}
function pair([v, i]: [Handle, Handle]): { values: Tensor; indices: Tensor } {
  return { values: new Tensor(v), indices: new Tensor(i) };
}

// ---- scopes ------------------------------------------------------------------------------------

/**
 * Runs `fn`, then disposes every tensor created inside it except those reachable from its result
 * (a Tensor, or arrays / Maps / plain objects holding tensors) and those passed to `keep()`.
 * Returned tensors move to the enclosing scope. `fn` must be synchronous.
 */
export function scope<T>(fn: () => T): T {
  const s: Scope = new Set();
  scopes.push(s);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of s) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) {
    for (const t of s) t.dispose();
    throw new TypeError(
      'scope(fn): fn returned a Promise; scopes are synchronous (run the async part outside and scope each step)',
    );
  }
  const out = new Set<Tensor>();
  collect(result, out, 0);
  const parent = scopes[scopes.length - 1];
  for (const t of s) {
    if (out.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

/** Removes `t` from scope tracking: the caller now owns it and must dispose it. */
export function keep<T extends Tensor>(t: T): T {
  for (let i = scopes.length - 1; i >= 0; i--) if (scopes[i]!.delete(t)) break;
  return t;
}

function collect(v: unknown, out: Set<Tensor>, depth: number): void {
  if (depth > 8 || v === null || typeof v !== 'object') return;
  if (v instanceof Tensor) {
    out.add(v);
  } else if (Array.isArray(v)) {
    for (const x of v) collect(x, out, depth + 1);
  } else if (v instanceof Map) {
    for (const x of v.values()) collect(x, out, depth + 1);
  } else if (Object.getPrototypeOf(v) === Object.prototype) {
    for (const x of Object.values(v)) collect(x, out, depth + 1);
  }
}

/** Native tensors alive now (created and not yet freed), for leak tests. */
export function liveTensors(): number {
  return native.liveCount();
}

/** Disposes every tensor found in `v` (Tensor, arrays, Maps, plain objects). */
export function disposeAll(v: unknown): void {
  const s = new Set<Tensor>();
  collect(v, s, 0);
  for (const t of s) t.dispose();
}

// ---- creation ----------------------------------------------------------------------------------

type NestedNumbers = number | readonly NestedNumbers[];
export interface CreateOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

function finish(t: Tensor, o: CreateOptions): Tensor {
  return o.requiresGrad ? t.requiresGrad_(true) : t;
}

function inferShape(v: NestedNumbers): number[] {
  const s: number[] = [];
  let x: NestedNumbers = v;
  while (Array.isArray(x)) {
    s.push(x.length);
    x = (x as readonly NestedNumbers[])[0]!;
  }
  return s;
}

const ARRAY_DTYPE = new Map<unknown, DType>([
  [Float32Array, 'float32'],
  [Float64Array, 'float64'],
  [BigInt64Array, 'int64'],
  [Int32Array, 'int32'],
  [Uint8Array, 'uint8'],
]);

/**
 * Creates a tensor from a TypedArray (with `shape`) or from nested numbers.
 * `tensor([[1, 2], [3, 4]])` → float32 [2, 2]; `tensor(new Float64Array(6), [2, 3])`.
 */
export function tensor(data: NestedNumbers | ArrayBufferView, shape?: Shape | null, o: CreateOptions = {}): Tensor {
  if (ArrayBuffer.isView(data)) {
    const src = ARRAY_DTYPE.get(data.constructor);
    if (!src) throw new DTypeError(`tensor: unsupported array type ${data.constructor.name}`);
    const n = (data as unknown as { length: number }).length;
    const shp = shape ?? [n];
    const dtype = o.dtype ?? src;
    // Bytes other than 0/1 are not valid bools: uint8 → bool goes through a conversion (nonzero → true).
    if (dtype === src) return finish(new Tensor(native.fromArray(data, shp, dtype, o.device)), o);
    const t = new Tensor(native.fromArray(data, shp, src, o.device));
    const c = t.to(dtype);
    t.dispose();
    return finish(c, o);
  }
  const shp = shape ?? inferShape(data);
  const flat = (Array.isArray(data) ? (data as unknown[]).flat(Infinity) : [data]) as number[];
  const expect = shp.reduce((a, b) => a * b, 1);
  if (flat.length !== expect)
    throw new ShapeError(`tensor: ragged or mismatched data: ${flat.length} values for shape [${shp.join(', ')}]`);
  const dtype = o.dtype ?? 'float32';
  let arr: ArrayBufferView;
  let src: DType = dtype;
  switch (dtype) {
    case 'float64':
      arr = Float64Array.from(flat);
      break;
    case 'int64':
      arr = BigInt64Array.from(flat, (x) => {
        if (!Number.isFinite(x))
          throw new DTypeError(`tensor: ${x} cannot be stored as int64`, {
            fix: 'use a float dtype, or replace non-finite values first',
          });
        return BigInt(Math.trunc(x));
      });
      break;
    case 'int32':
      arr = Int32Array.from(flat);
      break;
    case 'uint8':
      arr = Uint8Array.from(flat);
      break;
    case 'bool':
      arr = Uint8Array.from(flat, (x) => (x !== 0 ? 1 : 0));
      break;
    default:
      arr = Float32Array.from(flat);
      src = 'float32';
  }
  const t = new Tensor(native.fromArray(arr, shp, src, o.device));
  if (src === dtype) return finish(t, o);
  const c = t.to(dtype);
  t.dispose();
  return finish(c, o);
}

export function zeros(shape: Shape, o: CreateOptions = {}): Tensor {
  return finish(new Tensor(native.zeros(shape, o.dtype, o.device)), o);
}
export function ones(shape: Shape, o: CreateOptions = {}): Tensor {
  return finish(new Tensor(native.ones(shape, o.dtype, o.device)), o);
}
export function full(shape: Shape, value: number | boolean, o: CreateOptions = {}): Tensor {
  return finish(new Tensor(native.full(shape, value, o.dtype, o.device)), o);
}
/** Standard normal samples from the global generator (see `manualSeed`). */
export function randn(shape: Shape, o: CreateOptions = {}): Tensor {
  return finish(new Tensor(native.randn(shape, o.dtype, o.device)), o);
}
/** Uniform [0, 1) samples. */
export function rand(shape: Shape, o: CreateOptions = {}): Tensor {
  return finish(new Tensor(native.rand(shape, o.dtype, o.device)), o);
}
/** Integers uniform in [low, high), int64. */
export function randint(low: number, high: number, shape: Shape, o: { device?: Device } = {}): Tensor {
  return new Tensor(native.randint(low, high, shape, o.device));
}
export function randperm(n: number, o: { device?: Device } = {}): Tensor {
  return new Tensor(native.randperm(n, o.device));
}
/** Samples 0/1 with probabilities `p` (same shape and dtype as `p`). */
export function bernoulli(p: Tensor): Tensor {
  return new Tensor(native.bernoulli(p.handle));
}
/** `arange(end)` or `arange(start, end, step)`; int64 when all three are integers (as torch), else float32, unless `dtype` is given. */
export function arange(start: number, end?: number, step = 1, o: CreateOptions = {}): Tensor {
  const [a, b] = end === undefined ? [0, start] : [start, end];
  // An int64 default with a fractional step truncated the step to 0 ("step must be nonzero").
  const dtype = o.dtype ?? ([a, b, step].every(Number.isInteger) ? undefined : 'float32');
  return finish(new Tensor(native.arange(a, b, step, dtype, o.device)), o);
}
export function eye(n: number, o: CreateOptions = {}): Tensor {
  return finish(new Tensor(native.eye(n, o.dtype, o.device)), o);
}
export function zerosLike(t: Tensor, o: CreateOptions = {}): Tensor {
  return zeros(t.shape, { dtype: t.dtype, device: t.device, ...o });
}
export function onesLike(t: Tensor, o: CreateOptions = {}): Tensor {
  return ones(t.shape, { dtype: t.dtype, device: t.device, ...o });
}
export function randnLike(t: Tensor, o: CreateOptions = {}): Tensor {
  return randn(t.shape, { dtype: t.dtype, device: t.device, ...o });
}
export function fullLike(t: Tensor, v: number, o: CreateOptions = {}): Tensor {
  return full(t.shape, v, { dtype: t.dtype, device: t.device, ...o });
}

export function cat(ts: readonly Tensor[], dim = 0): Tensor {
  return new Tensor(
    native.cat(
      ts.map((t) => t.handle),
      dim,
    ),
  );
}
export function stack(ts: readonly Tensor[], dim = 0): Tensor {
  return new Tensor(
    native.stack(
      ts.map((t) => t.handle),
      dim,
    ),
  );
}
export function where(cond: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  return new Tensor(native.where(cond.handle, operand(a), operand(b)));
}
