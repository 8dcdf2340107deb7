/**
 * Which test exercises each native op: `op → ['<file> › <test title>', ...]` (file = test/engine/<file>.test.ts).
 * op-coverage.test.ts fails when a native op has no row, a row names no op, or a title no longer exists,
 * so a new op cannot land untested. Add a row (and the test) with every new op.
 */
const E = 'ops-elementwise';
const R = 'ops-reduce';
const S = 'ops-shape';
const L = 'ops-linalg';
const N = 'ops-nn';
const A = 'ops-activation-loss';
const D = 'double-backward';
const X = 'ops-nondiff';
const T = 'tensor';
const G = 'autograd';
const RT = 'runtime';
const ER = 'errors';
const at = (file: string, title: string) => `${file} › ${title}`;

const tensorData = at(T, 'TypedArray round trips keep dtype, shape and bits for every dtype');
const nested = at(T, 'nested-number creation, dtype conversion, toArray and item');
const creation = at(T, 'creation functions: zeros/ones/full/eye/arange/rand/randn and *Like');
const seeding = at(T, 'manualSeed: the same seed repeats randn/rand, a different seed differs');
const disposeTwice = at(T, 'dispose twice is safe; liveTensors counts creation and disposal exactly');
const inplace = at(
  T,
  'in-place ops: add_, mul_, copy_, zero_, fill_, addcmul_, addcdiv_ write through and return this',
);
const meta = at(T, 'autograd metadata: requiresGrad_, isLeaf, backward, grad accumulation, zeroGrad');
const gradOpts = at(G, 'grad: several inputs, gradOutputs seeds, allowUnused, createGraph for a second derivative');
const noGradModes = at(G, 'noGrad / enableGrad nest and restore the previous mode, even on throw');
const cuda = at(RT, 'cuda queries agree with each other; synchronize is safe without a GPU');
const memory =
  'memory › 1000 SGD steps on conv → BN(train) → relu → maxpool → linear: flat live-tensor count, falling loss';
const hvpMlp = 'hvp › hvp equals the exact Hessian times v on a tiny MLP (linear → tanh → linear → cross-entropy)';
const hvpConv = 'hvp › hvp equals the exact Hessian times v on a tiny conv + batch-norm (train) net';
const nnDispose = at(ER, 'a disposed tensor used as receiver or argument names the op and the position');
const cmp = at(X, 'comparisons eq/ne/lt/le/gt/ge: tensor, scalar, NaN and ±inf');
const logical = at(X, 'logicalAnd / logicalOr / logicalNot, all / any (with empty tensors)');
const rounding = at(X, 'floor / round (half to even) / sign, and their zero gradients');
const sortVals = at(R, 'topk / kthvalue / sort: values differentiable');
const sortIdx = at(X, 'topk / kthvalue / sort: indices (largest, smallest, descending, stable)');
const unary1 = at(E, 'neg, abs, square, reciprocal');
const unary2 = at(E, 'sqrt, rsqrt, exp, log');
const unary3 = at(E, 'erf, sin, cos');
const acts = at(A, 'relu, relu6, hardtanh, leakyRelu (away from kinks)');
const smooth = at(A, 'gelu (exact and tanh), silu, sigmoid, tanh');
const smoothDD = at(D, 'gelu (exact and tanh), silu, sigmoid, tanh');
const shape1 = at(S, 'reshape, view, flatten');
const shape2 = at(S, 'permute, transpose, t');
const shape3 = at(S, 'squeeze, unsqueeze, expand, repeat');
const slicing = at(S, 'split (equal chunks and sizes), narrow, slice, index');
const diag = at(S, 'diag (vector → matrix, matrix → vector, offsets), diagonal');
const tri = at(S, 'triu, tril with offsets');
const mmEtc = at(L, 'mm, bmm, dot, outer');

export const OP_TESTS: Readonly<Record<string, readonly string[]>> = {
  // data, metadata, memory
  fromArray: [tensorData, nested],
  toArray: [tensorData, nested],
  item: [nested, at(ER, 'item() on a multi-element tensor')],
  dispose: [disposeTwice],
  isDisposed: [disposeTwice, at(T, 'an exception frees the scope and propagates')],
  liveCount: [disposeTwice, memory],
  shape: [tensorData],
  dtype: [tensorData],
  device: [tensorData],
  requiresGrad: [meta],
  isLeaf: [meta],
  setRequiresGrad: [meta],
  gradOf: [meta, memory],
  clearGrad: [meta, memory],
  sameData: [meta],
  // creation and sampling
  zeros: [creation],
  ones: [creation],
  full: [creation],
  randn: [creation, seeding],
  rand: [creation, seeding],
  randint: [at(X, 'randint: range, dtype, seeded repeatability')],
  randperm: [at(X, 'randperm: a permutation, seeded')],
  bernoulli: [at(X, 'bernoulli: p = 0 and 1 are exact, p = 0.3 has the right rate, seeded')],
  arange: [creation],
  eye: [creation],
  to: [at(E, 'to float64 (identity) and float64 → float32 → float64 (rounding only)'), nested],
  // autograd and runtime
  backward: [meta, memory],
  grad: [gradOpts, hvpMlp],
  setGradEnabled: [noGradModes],
  isGradEnabled: [noGradModes],
  setNumThreads: [at(RT, 'setNumThreads / getNumThreads round trip; 0 threads is refused')],
  getNumThreads: [at(RT, 'setNumThreads / getNumThreads round trip; 0 threads is refused')],
  releaseFreeMemory: [
    at(RT, 'availableMemory hands the allocator cached free pages back to the OS (tcmalloc keeps freed tensors)'),
  ],
  manualSeed: [seeding],
  cudaAvailable: [cuda],
  cudaDeviceCount: [cuda],
  cudaSynchronize: [cuda],
  buildInfo: [at(RT, 'buildInfo reports the libtorch version and configuration')],
  // elementwise
  add: [at(E, 'add: tensor, broadcast, scalar and alpha')],
  sub: [at(E, 'sub: tensor, broadcast, scalar and alpha')],
  mul: [at(E, 'mul: tensor, broadcast and scalar')],
  div: [at(E, 'div: tensor, broadcast and scalar')],
  pow: [at(E, 'pow: tensor^scalar, tensor^tensor')],
  remainder: [at(X, 'remainder: sign follows the divisor (Python semantics), floats and ints, scalar')],
  maximum: [at(E, 'maximum, minimum')],
  minimum: [at(E, 'maximum, minimum')],
  neg: [unary1],
  abs: [unary1],
  square: [unary1],
  reciprocal: [unary1],
  sqrt: [unary2],
  rsqrt: [unary2],
  exp: [unary2],
  log: [unary2],
  erf: [unary3],
  sin: [unary3],
  cos: [unary3],
  sign: [rounding],
  floor: [rounding],
  round: [rounding],
  clamp: [at(E, 'clamp: both bounds, min only, max only')],
  where: [at(E, 'where: tensor/tensor, tensor/scalar')],
  maskedFill: [at(E, 'maskedFill: scalar and 0-d tensor value')],
  eq: [cmp],
  ne: [cmp],
  lt: [cmp],
  le: [cmp],
  gt: [cmp],
  ge: [cmp],
  logicalAnd: [logical],
  logicalOr: [logical],
  logicalNot: [logical],
  all: [logical],
  any: [logical],
  isfinite: [at(X, 'isfinite / isnan')],
  isnan: [at(X, 'isfinite / isnan')],
  clone: [at(E, 'clone, contiguous, detach')],
  contiguous: [
    at(E, 'clone, contiguous, detach'),
    at(E, 'contiguous(channelsLast), isChannelsLast: NHWC memory order, same values and gradients'),
  ],
  isChannelsLast: [at(E, 'contiguous(channelsLast), isChannelsLast: NHWC memory order, same values and gradients')],
  detach: [at(E, 'clone, contiguous, detach')],
  // reductions
  sum: [at(R, 'sum: all, one dim, several dims, keepdim, dtype')],
  mean: [at(R, 'mean: all, dims, keepdim')],
  var: [at(R, 'var: unbiased and population, all and over dims')],
  norm: [at(R, 'norm: p = 2, 1, 3')],
  logsumexp: [at(R, 'logsumexp over dims')],
  cumsum: [at(R, 'cumsum along each dim')],
  amax: [at(R, 'max / min (amax, amin): all and over dims')],
  amin: [at(R, 'max / min (amax, amin): all and over dims')],
  maxDim: [at(R, 'maxDim / minDim: values differentiable, indices exact')],
  minDim: [at(R, 'maxDim / minDim: values differentiable, indices exact')],
  argmax: [at(X, 'argmax: all, over a dim, keepdim, first of ties, NaN wins')],
  topk: [sortVals, sortIdx],
  kthvalue: [sortVals, sortIdx],
  sort: [sortVals, sortIdx],
  trace: [at(R, 'trace')],
  // shape and indexing
  reshape: [shape1],
  view: [shape1],
  flatten: [shape1],
  permute: [shape2],
  transpose: [shape2],
  t: [shape2],
  squeeze: [shape3],
  unsqueeze: [shape3],
  expand: [shape3],
  repeat: [shape3],
  flip: [at(S, 'flip')],
  cat: [at(S, 'cat, stack')],
  stack: [at(S, 'cat, stack')],
  split: [slicing],
  narrow: [slicing],
  slice: [slicing],
  selectIndex: [slicing],
  indexSelect: [at(S, 'indexSelect, gather')],
  gather: [at(S, 'indexSelect, gather')],
  scatter: [at(S, 'scatter (tensor and scalar source), scatterAdd')],
  scatterAdd: [at(S, 'scatter (tensor and scalar source), scatterAdd')],
  maskedSelect: [at(S, 'maskedSelect')],
  nonzero: [at(X, 'nonzero: coordinates, one row per nonzero element')],
  diag: [diag],
  diagonal: [diag],
  triu: [tri],
  tril: [tri],
  // linear algebra
  matmul: [at(L, 'matmul: 2-D, batched, broadcast, vector'), at(D, 'linear and matmul')],
  mm: [mmEtc],
  bmm: [mmEtc],
  dot: [mmEtc],
  outer: [mmEtc],
  addmm: [at(L, 'addmm with beta and alpha')],
  linear: [at(L, 'linear with and without bias, batched input'), at(D, 'linear and matmul')],
  cholesky: [at(L, 'cholesky of X Xᵀ + nI: L Lᵀ = A, gradient'), at(ER, 'cholesky of a non-SPD matrix')],
  choleskyInverse: [at(L, 'choleskyInverse: (L Lᵀ)⁻¹ and its gradient')],
  solve: [at(L, 'solve: A X = B for matrix and vector B')],
  inv: [at(L, 'inv')],
  eigh: [at(L, 'eigh: eigenvalues and V diag(w) Vᵀ (sign-invariant) gradients')],
  qr: [at(L, 'qr: Q R = A, Qᵀ Q = I, R upper; gradients of Q and R')],
  // in place
  addInplace: [inplace, memory],
  mulInplace: [inplace],
  addcmulInplace: [inplace],
  addcdivInplace: [inplace],
  copyInplace: [inplace],
  fillInplace: [inplace],
  zeroInplace: [inplace],
  // neural-network ops
  unfold: [at(N, 'unfold (im2col): W·unfold(x) is the convolution; gradient'), at(D, 'unfold (im2col)')],
  conv2d: [
    at(N, 'conv2d: bias, stride, padding, dilation'),
    at(N, 'conv2d: groups = 2 and depthwise (groups = channels)'),
    at(D, 'conv2d (bias, stride, padding, dilation, groups)'),
  ],
  maxPool2d: [
    at(N, 'maxPool2d: kernel, stride, padding, dilation, ceil mode'),
    at(D, 'maxPool2d (alone and after a parameterised conv)'),
  ],
  avgPool2d: [
    at(N, 'avgPool2d: padding with and without counting it, ceil mode'),
    at(D, 'avgPool2d and adaptiveAvgPool2d'),
  ],
  adaptiveAvgPool2d: [
    at(N, 'adaptiveAvgPool2d: global, divisible and overlapping windows'),
    at(D, 'avgPool2d and adaptiveAvgPool2d'),
    hvpConv,
  ],
  batchNorm: [
    at(N, 'batchNorm train: gradient wrt input, weight, bias; running stats updated exactly'),
    at(N, 'batchNorm eval: uses running stats, gradient wrt input, weight, bias'),
    at(D, 'batchNorm train'),
    at(D, 'batchNorm eval (running stats)'),
    hvpConv,
  ],
  layerNorm: [at(N, 'layerNorm: last dim and last two dims, affine'), at(D, 'layerNorm')],
  relu: [acts, at(D, 'relu (alone and between two parameters)'), nnDispose],
  relu6: [acts],
  hardtanh: [acts],
  leakyRelu: [acts],
  gelu: [smooth, smoothDD, hvpConv],
  silu: [smooth, smoothDD],
  sigmoid: [smooth, smoothDD],
  tanh: [smooth, smoothDD, hvpMlp],
  softmax: [at(A, 'softmax, logSoftmax over each dim'), at(D, 'softmax and logSoftmax')],
  logSoftmax: [at(A, 'softmax, logSoftmax over each dim'), at(D, 'softmax and logSoftmax')],
  crossEntropy: [
    at(A, 'crossEntropy: class indices (mean, sum, none), label smoothing, probability targets'),
    at(D, 'crossEntropy (indices, label smoothing, probabilities)'),
  ],
  mseLoss: [at(A, 'mseLoss: mean, sum, none; gradient wrt both sides'), at(D, 'mseLoss')],
  nllLoss: [at(A, 'nllLoss on log-probabilities')],
  dropout: [at(A, 'dropout: p = 0 in train and eval are identity; p = 0.5 masks and rescales')],
  oneHot: [at(X, 'oneHot')],
  pad: [at(N, 'pad: constant (value), reflect, replicate')],
  interpolateBilinear: [at(N, 'interpolate: bilinear (align corners or not, up and down, antialias), nearest')],
  interpolateNearest: [at(N, 'interpolate: bilinear (align corners or not, up and down, antialias), nearest')],
};
