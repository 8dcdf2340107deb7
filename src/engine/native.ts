/**
 * Loads the libtorch addon (build/Release/tapir_native.node) and types its op table.
 * Handles are opaque; only src/engine touches them.
 */
// First: sets OpenMP's wait policy in the environment before libgomp loads with the addon.
import './wait.js';
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TapirError } from './errors.js';

export type Handle = { readonly __tapirHandle: unique symbol };
type H = Handle;
type N = number;
type Nil = null | undefined;
type TorN = H | number | boolean;
type Ints = number | readonly number[];

/** The native op table: one entry per C++ op (native/*.cc), same names. */
export interface NativeOps {
  fromArray(data: ArrayBufferView, shape: readonly number[], dtype: string, device?: string | Nil): H;
  toArray(t: H): Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;
  item(t: H): number;
  dispose(t: H): void;
  isDisposed(t: H): boolean;
  liveCount(): number;
  shape(t: H): number[];
  dtype(t: H): string;
  device(t: H): string;
  requiresGrad(t: H): boolean;
  isLeaf(t: H): boolean;
  setRequiresGrad(t: H, v: boolean): void;
  gradOf(t: H): H | null;
  clearGrad(t: H): void;
  sameData(a: H, b: H): boolean;
  zeros(shape: Ints, dtype?: string | Nil, device?: string | Nil): H;
  ones(shape: Ints, dtype?: string | Nil, device?: string | Nil): H;
  full(shape: Ints, value: number | boolean, dtype?: string | Nil, device?: string | Nil): H;
  randn(shape: Ints, dtype?: string | Nil, device?: string | Nil): H;
  rand(shape: Ints, dtype?: string | Nil, device?: string | Nil): H;
  randint(low: N, high: N, shape: Ints, device?: string | Nil): H;
  randperm(n: N, device?: string | Nil): H;
  bernoulli(p: H): H;
  arange(start: N, end: N, step: N, dtype?: string | Nil, device?: string | Nil): H;
  eye(n: N, dtype?: string | Nil, device?: string | Nil): H;
  to(t: H, dtype?: string | Nil, device?: string | Nil): H;
  backward(t: H, grad?: H | Nil, retainGraph?: boolean | Nil, createGraph?: boolean | Nil): void;
  grad(
    outputs: H[],
    inputs: H[],
    gradOutputs?: H[] | Nil,
    retainGraph?: boolean | Nil,
    createGraph?: boolean | Nil,
    allowUnused?: boolean | Nil,
  ): (H | null)[];
  setGradEnabled(v: boolean): boolean;
  isGradEnabled(): boolean;
  setNumThreads(n: N): void;
  getNumThreads(): number;
  releaseFreeMemory(): 'tcmalloc' | 'glibc';
  manualSeed(seed: N): void;
  cudaAvailable(): boolean;
  cudaDeviceCount(): number;
  cudaSynchronize(): void;
  buildInfo(): { torchVersion: string; config: string; parallel: string };

  add(a: H, b: TorN, alpha?: N | Nil): H;
  sub(a: H, b: TorN, alpha?: N | Nil): H;
  mul(a: H, b: TorN): H;
  div(a: H, b: TorN): H;
  pow(a: H | number, b: TorN): H;
  remainder(a: H, b: TorN): H;
  maximum(a: H, b: H): H;
  minimum(a: H, b: H): H;
  eq(a: H, b: TorN): H;
  ne(a: H, b: TorN): H;
  lt(a: H, b: TorN): H;
  le(a: H, b: TorN): H;
  gt(a: H, b: TorN): H;
  ge(a: H, b: TorN): H;
  logicalAnd(a: H, b: H): H;
  logicalOr(a: H, b: H): H;
  logicalNot(a: H): H;
  isfinite(a: H): H;
  isnan(a: H): H;
  neg(a: H): H;
  abs(a: H): H;
  sqrt(a: H): H;
  rsqrt(a: H): H;
  exp(a: H): H;
  log(a: H): H;
  square(a: H): H;
  sign(a: H): H;
  reciprocal(a: H): H;
  erf(a: H): H;
  floor(a: H): H;
  round(a: H): H;
  sin(a: H): H;
  cos(a: H): H;
  clamp(a: H, min?: N | Nil, max?: N | Nil): H;
  where(c: H, a: TorN, b: TorN): H;
  maskedFill(a: H, mask: H, v: TorN): H;
  sum(a: H, dims?: Ints | Nil, keepdim?: boolean | Nil, dtype?: string | Nil): H;
  mean(a: H, dims?: Ints | Nil, keepdim?: boolean | Nil): H;
  var(a: H, dims?: Ints | Nil, keepdim?: boolean | Nil, correction?: N | Nil): H;
  norm(a: H, p?: N | Nil): H;
  logsumexp(a: H, dims: Ints, keepdim?: boolean | Nil): H;
  cumsum(a: H, dim: N): H;
  all(a: H): H;
  any(a: H): H;
  amax(a: H, dims?: Ints | Nil, keepdim?: boolean | Nil): H;
  amin(a: H, dims?: Ints | Nil, keepdim?: boolean | Nil): H;
  maxDim(a: H, dim: N, keepdim?: boolean | Nil): [H, H];
  minDim(a: H, dim: N, keepdim?: boolean | Nil): [H, H];
  argmax(a: H, dim?: N | Nil, keepdim?: boolean | Nil): H;
  topk(a: H, k: N, dim?: N | Nil, largest?: boolean | Nil): [H, H];
  kthvalue(a: H, k: N, dim?: N | Nil, keepdim?: boolean | Nil): [H, H];
  sort(a: H, dim?: N | Nil, descending?: boolean | Nil, stable?: boolean | Nil): [H, H];
  trace(a: H): H;
  contiguous(a: H, channelsLast?: boolean | Nil): H;
  isChannelsLast(a: H): boolean;
  clone(a: H): H;
  detach(a: H): H;
  t(a: H): H;
  nonzero(a: H): H;
  reshape(a: H, shape: Ints): H;
  view(a: H, shape: Ints): H;
  permute(a: H, dims: Ints): H;
  transpose(a: H, d0: N, d1: N): H;
  flatten(a: H, start?: N | Nil, end?: N | Nil): H;
  squeeze(a: H, dim?: N | Nil): H;
  unsqueeze(a: H, dim: N): H;
  expand(a: H, shape: Ints): H;
  repeat(a: H, reps: Ints): H;
  flip(a: H, dims: Ints): H;
  cat(ts: H[], dim?: N | Nil): H;
  stack(ts: H[], dim?: N | Nil): H;
  split(a: H, sizes: Ints, dim?: N | Nil): H[];
  narrow(a: H, dim: N, start: N, length: N): H;
  slice(a: H, dim: N, start?: N | Nil, end?: N | Nil, step?: N | Nil): H;
  selectIndex(a: H, dim: N, index: N): H;
  indexSelect(a: H, dim: N, index: H): H;
  gather(a: H, dim: N, index: H): H;
  scatter(a: H, dim: N, index: H, src: TorN): H;
  scatterAdd(a: H, dim: N, index: H, src: H): H;
  maskedSelect(a: H, mask: H): H;
  diag(a: H, k?: N | Nil): H;
  diagonal(a: H, offset?: N | Nil, d1?: N | Nil, d2?: N | Nil): H;
  triu(a: H, k?: N | Nil): H;
  tril(a: H, k?: N | Nil): H;
  matmul(a: H, b: H): H;
  mm(a: H, b: H): H;
  bmm(a: H, b: H): H;
  dot(a: H, b: H): H;
  outer(a: H, b: H): H;
  addmm(c: H, a: H, b: H, beta?: N | Nil, alpha?: N | Nil): H;
  cholesky(a: H): H;
  choleskyInverse(l: H): H;
  solve(a: H, b: H): H;
  inv(a: H): H;
  eigh(a: H): [H, H];
  qr(a: H): [H, H];
  addInplace(a: H, b: TorN, alpha?: N | Nil): H;
  mulInplace(a: H, b: TorN): H;
  addcmulInplace(a: H, b: H, c: H, value?: N | Nil): H;
  addcdivInplace(a: H, b: H, c: H, value?: N | Nil): H;
  copyInplace(a: H, src: H): H;
  fillInplace(a: H, v: number | boolean): H;
  zeroInplace(a: H): H;

  conv2d(x: H, w: H, b: H | Nil, stride?: Ints | Nil, padding?: Ints | Nil, dilation?: Ints | Nil, groups?: N | Nil): H;
  unfold(x: H, kernel: Ints, dilation: Ints, padding: Ints, stride: Ints): H;
  linear(x: H, w: H, b?: H | Nil): H;
  maxPool2d(
    x: H,
    k: Ints,
    stride?: Ints | Nil,
    padding?: Ints | Nil,
    dilation?: Ints | Nil,
    ceilMode?: boolean | Nil,
  ): H;
  avgPool2d(
    x: H,
    k: Ints,
    stride?: Ints | Nil,
    padding?: Ints | Nil,
    ceilMode?: boolean | Nil,
    countIncludePad?: boolean | Nil,
  ): H;
  adaptiveAvgPool2d(x: H, out: Ints): H;
  batchNorm(x: H, w: H | Nil, b: H | Nil, rm: H | Nil, rv: H | Nil, training: boolean, momentum: N, eps: N): H;
  layerNorm(x: H, shape: Ints, w?: H | Nil, b?: H | Nil, eps?: N | Nil): H;
  relu(x: H): H;
  relu6(x: H): H;
  silu(x: H): H;
  sigmoid(x: H): H;
  tanh(x: H): H;
  hardtanh(x: H, min: N, max: N): H;
  leakyRelu(x: H, slope?: N | Nil): H;
  gelu(x: H, approximate?: string | Nil): H;
  softmax(x: H, dim: N): H;
  logSoftmax(x: H, dim: N): H;
  crossEntropy(logits: H, target: H, reduction?: string | Nil, labelSmoothing?: N | Nil): H;
  mseLoss(a: H, b: H, reduction?: string | Nil): H;
  nllLoss(logp: H, target: H, reduction?: string | Nil): H;
  dropout(x: H, p: N, train: boolean): H;
  oneHot(t: H, numClasses: N): H;
  pad(x: H, pads: Ints, mode?: string | Nil, value?: N | Nil): H;
  interpolateBilinear(x: H, size: Ints, alignCorners?: boolean | Nil, antialias?: boolean | Nil): H;
  interpolateNearest(x: H, size: Ints): H;
}

function locate(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // dist/src/engine → repo root is three levels up; src/engine (ts-node style) is two.
  for (const up of ['../../..', '../..']) {
    const p = join(here, up, 'build', 'Release', 'tapir_native.node');
    if (existsSync(p)) return p;
  }
  throw new TapirError('E_NATIVE_MISSING', 'tapir native addon not found (build/Release/tapir_native.node)', {
    fix: 'run `make setup` (or `npm run build:native`) in the tapir checkout',
  });
}

const require = createRequire(import.meta.url);
export const native: NativeOps = require(locate()) as NativeOps;

/** Names of every native op, for `make size` and the op-coverage test. */
export const NATIVE_OP_NAMES: readonly string[] = Object.keys(native).sort();
