/**
 * ONNX → IR. Shape arithmetic (Shape, Constant, ConstantOfShape, Gather/Concat/Unsqueeze of shape vectors,
 * Equal/Where for `expand(-1)`, Cast) is evaluated here over symbolic dims, so the IR holds only real compute
 * with attributes; a batch size fixed at export never leaks into the IR (symbols become 0/-1 in reshapes, or an
 * `expanddyn` that reads the size from the input at run time).
 *
 * Initializers become parameters when a compute node uses them: Conv/Gemm/MatMul weights → 'weight' (MatMul
 * weights transposed once to the IR's [out, in]; a MatMul followed by a bias Add becomes one `linear`), BN scale
 * and shift → 'norm', running statistics → 'buffer', LayerNorm → 'norm', class token / position table →
 * 'embedding'. The last linear layer feeding the output is the head (role 'head', not prunable) and its input
 * is the default feature tap. Scalars and Constant-node tensors become graph constants.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { tensor, TapirError, type Tensor } from '../../engine/index.js';
import { ModelFormatError, UnsupportedOpError, type UnsupportedOp } from '../errors.js';
import type { AttrValue, Graph, Node, ParamRole, Preprocessing } from '../ir.js';
import { makeParam } from '../params.js';
import { attrs, decodeModel, readTensor, toNum, type NodeProto, type TensorValue } from './proto.js';
import { isNum, type Dim, type IntValue } from './shapes.js';
import { FOLD, RUNTIME } from './import-ops.js';
import { CONST_EVAL, fromArr, toArr, type Arr } from './import-const.js';
import { applyTapirMetadata, TAPIR_METADATA_KEY } from './metadata.js';

export interface FloatValue {
  kind: 'float';
  dims: number[];
  data: Float32Array | Float64Array;
}
export type Known = IntValue | FloatValue;

export interface ImportOnnxOptions {
  /** Graph name (default: the file name without extension). */
  name?: string;
  /** Shown in errors and recorded in `meta.file`. */
  file?: string;
  /** Overrides the recorded preprocessing (ONNX files do not carry it; torchvision's ImageNet defaults are assumed). */
  preprocessing?: Preprocessing;
}

/** Newest opset read: 18 moved every reduction's axes to an input, 20 added Gelu; nothing the importer reads changed after. */
const MAX_OPSET = 20;

/** Every ONNX op the importer understands (folded shape ops and compute ops). */
export const ONNX_SUPPORTED_OPS: readonly string[] = [
  ...new Set([...Object.keys(FOLD), ...Object.keys(RUNTIME), ...Object.keys(CONST_EVAL)]),
].sort();

export async function importOnnx(path: string, o: ImportOnnxOptions = {}): Promise<Graph> {
  let b: Buffer;
  try {
    b = await readFile(path);
  } catch (e) {
    throw new TapirError('E_FILE', `cannot read ONNX file ${path}: ${(e as Error).message}`, {
      context: { file: path },
      fix: 'check the path',
    });
  }
  return importOnnxBytes(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), {
    name: basename(path).replace(/\.onnx$/i, ''),
    file: path,
    ...o,
  });
}

/** The state of one import; op handlers (import-ops.ts) read inputs and emit IR nodes through it. */
export class Importer {
  readonly shapes = new Map<string, Dim[]>();
  readonly known = new Map<string, Known>();
  /** Names of known floats that came from initializers (trainable in the source model). */
  readonly fromInit = new Set<string>();
  /** Known tensors used by IR nodes → their role, or 'constant'. */
  readonly uses = new Map<string, ParamRole | 'constant'>();
  /** Symbol → a value and axis whose size it is at run time. */
  readonly symSource = new Map<string, { value: string; dim: number }>();
  readonly consumers = new Map<string, NodeProto[]>();
  /** Folded Transpose outputs → the constant matrix they transpose. */
  readonly transposedFrom = new Map<string, string>();
  readonly skip = new Set<NodeProto>();
  readonly nodes: Node[] = [];
  readonly nodeNames = new Set<string>();
  opset = 13;
  constructor(readonly file: string) {}

  fail(n: NodeProto, why: string, fix?: string): never {
    throw new ModelFormatError(`${this.file}: node '${n.name}' (${n.opType}): ${why}`, {
      context: { file: this.file, node: n.name, op: n.opType },
      fix: fix ?? 'export the model with static shapes for this part, or report the pattern',
    });
  }
  shapeOf(name: string): Dim[] | undefined {
    return this.shapes.get(name) ?? this.known.get(name)?.dims;
  }
  /** Registers a known tensor as used by an IR node; a stronger role replaces 'constant'. */
  use(name: string, role: ParamRole | 'constant'): string {
    const prev = this.uses.get(name);
    if (prev === undefined || prev === 'constant') this.uses.set(name, role);
    return name;
  }
  /** Adds a new known float (e.g. a transposed weight) under a fresh name. */
  addKnown(name: string, v: Known, role: ParamRole): string {
    let n = name;
    for (let i = 1; this.known.has(n) || this.shapes.has(n); i++) n = `${name}_${i}`;
    this.known.set(n, v);
    this.fromInit.add(n);
    return this.use(n, role);
  }
  emit(
    n: NodeProto,
    op: string,
    inputs: string[],
    a: Record<string, AttrValue>,
    outShapes: Dim[][],
    outputs = [...(n.output ?? [])],
  ): void {
    let name = n.name || `${n.opType}_${this.nodes.length}`;
    for (let i = 1; this.nodeNames.has(name); i++) name = `${n.name || n.opType}_${i}`;
    this.nodeNames.add(name);
    this.nodes.push({ name, op, inputs, outputs: outputs.slice(0, Math.max(1, outShapes.length)), attrs: a });
    outShapes.forEach((s, i) => {
      if (outputs[i]) this.shapes.set(outputs[i]!, s);
    });
  }
}

/** Context for one ONNX node: typed access to its inputs and attributes. */
export class Ctx {
  readonly a: ReturnType<typeof attrs>;
  constructor(
    readonly im: Importer,
    readonly n: NodeProto,
  ) {
    this.a = attrs(n);
  }
  get inputs(): string[] {
    return [...(this.n.input ?? [])];
  }
  has(i: number): boolean {
    return (this.n.input?.[i] ?? '') !== '';
  }
  name(i: number): string {
    return this.n.input?.[i] ?? '';
  }
  k(i: number): Known | undefined {
    return this.has(i) ? this.im.known.get(this.name(i)) : undefined;
  }
  /** The shape of input i (symbolic), or a clear error. */
  sh(i: number): Dim[] {
    const s = this.im.shapeOf(this.name(i));
    if (!s) this.im.fail(this.n, `input '${this.name(i)}' has no known shape`);
    return s;
  }
  /** A runtime input name; a known tensor used here becomes a constant unless `role` names a parameter role. */
  in(i: number, role?: ParamRole): string {
    if (!this.has(i)) return '';
    const nm = this.name(i);
    const kv = this.im.known.get(nm);
    if (kv) {
      const numel = kv.dims.reduce((p, d) => p * d, 1);
      const r: ParamRole | 'constant' =
        role ?? (kv.kind === 'float' && this.im.fromInit.has(nm) && numel > 1 ? guessRole(nm, kv.dims) : 'constant');
      this.im.use(nm, r);
    } else if (!this.im.shapes.has(nm)) this.im.fail(this.n, `input '${nm}' is not produced by any earlier node`);
    return nm;
  }
  /** An integer input known at import (shape vectors, axes, indices), or an error naming the input. */
  ints(i: number, what: string): Dim[] {
    const kv = this.k(i);
    if (!kv || kv.kind !== 'int')
      this.im.fail(this.n, `'${what}' (input ${i}) must be computable at import (a constant or shape arithmetic)`);
    return kv.data;
  }
  nums(i: number, what: string): number[] {
    const d = this.ints(i, what);
    if (!d.every(isNum)) this.im.fail(this.n, `'${what}' depends on a free dimension (${d.join(', ')})`);
    return d as number[];
  }
  scalar(i: number, what: string): number {
    const kv = this.k(i);
    if (!kv || kv.data.length !== 1 || !isNum(kv.data[0]!))
      this.im.fail(this.n, `'${what}' (input ${i}) must be a constant scalar`);
    return kv.data[0] as number;
  }
  num(k: string, dflt: number): number {
    const v = this.a.get(k);
    return typeof v === 'number' ? v : dflt;
  }
  list(k: string): number[] | undefined {
    const v = this.a.get(k);
    return Array.isArray(v) ? (v as number[]) : typeof v === 'number' ? [v] : undefined;
  }
  str(k: string, dflt: string): string {
    const v = this.a.get(k);
    return typeof v === 'string' ? v : dflt;
  }
  /** Fails when an optional extra output (BN statistics, MaxPool indices, Dropout mask) is actually read. */
  onlyFirstOutput(): void {
    for (const o of (this.n.output ?? []).slice(1))
      if (o && (this.im.consumers.get(o)?.length ?? 0) > 0)
        this.im.fail(this.n, `output '${o}' (training-only extra output) is not supported`);
  }
}

function guessRole(name: string, dims: readonly number[]): ParamRole {
  // per-channel scales (ConvNeXt's layer_scale [C, 1, 1], CaiT/timm's ls.gamma) are norm-like, not embeddings
  if (/(^|[._])(layer_scale|gamma)$/i.test(name) && dims.filter((d) => d > 1).length <= 1) return 'norm';
  if (dims.length >= 2) return 'embedding';
  if (/(^|[._/])(norm|ln|bn|layernorm|batchnorm)/i.test(name)) return 'norm';
  return /bias$/i.test(name) ? 'bias' : 'norm';
}

function tensorValue(v: TensorValue): Known {
  return v.kind === 'float'
    ? { kind: 'float', dims: v.dims, data: v.data }
    : { kind: 'int', dims: v.dims, data: v.data };
}

/** Decodes and converts an ONNX model held in memory. */
export function importOnnxBytes(bytes: Uint8Array, o: ImportOnnxOptions = {}): Graph {
  const file = o.file ?? '<onnx>';
  const m = decodeModel(bytes, file);
  const gp = m.graph!;
  const im = new Importer(file);
  const ai = (m.opsetImport ?? []).find((s) => !s.domain || s.domain === 'ai.onnx');
  im.opset = ai ? toNum(ai.version as number) : 13;
  if (im.opset < 11 || im.opset > MAX_OPSET)
    throw new ModelFormatError(
      `${file}: opset ${im.opset} is not supported (supported: 11–${MAX_OPSET}; torch exports tested at 13–17, opset 18 reductions and opset 20 Gelu ` +
        `by hand-built files)`,
      { context: { file }, fix: 'export with opset_version between 13 and 17' },
    );

  for (const t of gp.initializer ?? []) {
    const name = t.name ?? '';
    im.known.set(name, tensorValue(readTensor(t, 'initializer', file)));
    im.fromInit.add(name);
  }
  const inputs: Graph['inputs'] = [];
  for (const vi of gp.input ?? []) {
    const name = vi.name ?? '';
    if (im.known.has(name)) continue;
    const dims = vi.type?.tensorType?.shape?.dim ?? [];
    const shape: Dim[] = dims.map((d, i) =>
      d.dimValue !== undefined && d.dimValue !== null && toNum(d.dimValue as number) > 0
        ? toNum(d.dimValue as number)
        : d.dimParam || `${name}:${i}`,
    );
    shape.forEach((d, i) => {
      if (!isNum(d) && !im.symSource.has(d)) im.symSource.set(d, { value: name, dim: i });
    });
    im.shapes.set(name, shape);
    inputs.push({ name, shape: shape.map((d) => (isNum(d) ? d : null)) });
  }
  if (inputs.length === 0)
    throw new ModelFormatError(`${file}: the ONNX graph has no data input`, { context: { file } });
  for (const n of gp.node ?? [])
    for (const i of n.input ?? []) if (i) im.consumers.set(i, [...(im.consumers.get(i) ?? []), n]);
  const unknown = unsupportedOnnxOps(gp.node ?? []);
  if (unknown.length > 0)
    throw new UnsupportedOpError(
      unknown[0]!.op,
      unknown[0]!.nodes[0]!,
      ONNX_SUPPORTED_OPS,
      `ONNX import of ${file}`,
      unknown,
    );

  for (const n of gp.node ?? []) {
    if (im.skip.has(n)) continue;
    const op = n.opType ?? '';
    if (n.domain && n.domain !== 'ai.onnx')
      throw new UnsupportedOpError(`${n.domain}.${op}`, n.name ?? '', ONNX_SUPPORTED_OPS, `ONNX import of ${file}`);
    const c = new Ctx(im, n);
    const present = c.inputs.filter((x) => x !== '');
    const fold = FOLD[op];
    const allKnown = present.length > 0 && present.every((x) => im.known.has(x));
    let foldError: string | undefined;
    if (fold && (op === 'Shape' || op === 'Constant' || allKnown)) {
      let vals: Known[] | null = null;
      try {
        vals = fold(c);
      } catch (e) {
        if (e instanceof TapirError) throw e;
        foldError = (e as Error).message;
      }
      if (vals) {
        vals.forEach((v, i) => {
          if (n.output?.[i]) im.known.set(n.output[i]!, v);
        });
        if (op === 'Identity' && im.fromInit.has(c.name(0))) im.fromInit.add(n.output![0]!);
        continue;
      }
    }
    const evaluated = allKnown ? evalConst(im, c, op) : null;
    if (evaluated) {
      evaluated.forEach((v, i) => {
        if (n.output?.[i]) im.known.set(n.output[i]!, v);
      });
      continue;
    }
    if (foldError !== undefined) im.fail(n, `shape arithmetic could not be folded: ${foldError}`);
    const run = RUNTIME[op];
    if (!run) {
      if (fold || CONST_EVAL[op])
        im.fail(
          n,
          `'${op}' on a tensor computed at run time is not supported (only shape arithmetic and constants are folded)`,
        );
      throw new UnsupportedOpError(op, n.name ?? '', ONNX_SUPPORTED_OPS, `ONNX import of ${file}`);
    }
    try {
      run(c);
    } catch (e) {
      if (e instanceof TapirError) throw e;
      im.fail(
        n,
        `cannot convert: ${(e as Error).message}`,
        'the ONNX graph is malformed here (a damaged file or an unusual export)',
      );
    }
  }
  const g = finish(
    im,
    (gp.output ?? []).map((v) => v.name ?? ''),
    inputs,
    o,
    file,
  );
  const md = (m.metadataProps ?? []).find((p) => p.key === TAPIR_METADATA_KEY)?.value;
  return md ? applyTapirMetadata(g, md, o) : g;
}

/** Every op type of `nodes` the importer has no rule for (other domains included), with the nodes using it, in graph order. */
export function unsupportedOnnxOps(nodes: readonly NodeProto[]): UnsupportedOp[] {
  const found = new Map<string, string[]>();
  nodes.forEach((n, i) => {
    const op = n.opType ?? '';
    const name = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${op}` : op;
    if (name === op && (FOLD[op] || RUNTIME[op] || CONST_EVAL[op])) return;
    found.set(name, [...(found.get(name) ?? []), n.name || `${op}_${i}`]);
  });
  return [...found].map(([op, ns]) => ({ op, nodes: ns }));
}

/**
 * Evaluates a node over known, fully numeric inputs (import-const.ts), or returns null: when an input holds a free
 * dimension, when an input is a trainable initializer (folding it would turn a parameter into a constant), or when the
 * op has no constant rule.
 */
function evalConst(im: Importer, c: Ctx, op: string): Known[] | null {
  const rule = CONST_EVAL[op];
  if (!rule) return null;
  const ins: (Arr | null)[] = [];
  for (let i = 0; i < c.inputs.length; i++) {
    if (!c.has(i)) {
      ins.push(null);
      continue;
    }
    const k = im.known.get(c.name(i))!;
    if (k.kind === 'float' && im.fromInit.has(c.name(i)) && k.data.length > 1) return null;
    const a = toArr(k);
    if (!a) return null;
    ins.push(a);
  }
  try {
    return rule(ins, c).map(fromArr);
  } catch (e) {
    if (e instanceof TapirError) throw e;
    return im.fail(c.n, `constant could not be evaluated at import: ${(e as Error).message}`);
  }
}

function finish(im: Importer, outputs: string[], inputs: Graph['inputs'], o: ImportOnnxOptions, file: string): Graph {
  for (const out of outputs)
    if (!im.shapes.has(out))
      throw new ModelFormatError(`${file}: graph output '${out}' is not computed by any supported node`, {
        context: { file },
      });
  // The head: the last linear node the outputs depend on.
  const producer = new Map<string, Node>();
  for (const n of im.nodes) for (const x of n.outputs) producer.set(x, n);
  const needed = new Set<Node>();
  const stack = [...outputs];
  while (stack.length) {
    const p = producer.get(stack.pop()!);
    if (p && !needed.has(p)) {
      needed.add(p);
      stack.push(...p.inputs);
    }
  }
  const head = [...im.nodes].reverse().find((n) => n.op === 'linear' && needed.has(n));
  if (head) for (const x of head.inputs.slice(1)) if (x && im.uses.has(x)) im.uses.set(x, 'head');

  const params: Graph['params'] = new Map();
  const constants = new Map<string, Tensor>();
  for (const [name, role] of im.uses) {
    const kv = im.known.get(name)!;
    if (kv.kind === 'float') {
      const t = tensor(kv.data instanceof Float32Array ? kv.data : Float32Array.from(kv.data), kv.dims);
      if (role === 'constant') constants.set(name, t);
      else params.set(name, makeParam(name, t, role));
    } else {
      if (!kv.data.every(isNum))
        throw new ModelFormatError(`${file}: integer tensor '${name}' depends on a free dimension at run time`, {
          context: { file },
        });
      constants.set(
        name,
        tensor(
          BigInt64Array.from(kv.data as number[], (v) => BigInt(v)),
          kv.dims,
        ),
      );
    }
  }
  const in0 = inputs[0]!.shape;
  const hw: [number, number] = [in0[2] ?? 224, in0[3] ?? 224];
  return {
    name: o.name ?? 'onnx-model',
    inputs,
    outputs,
    nodes: im.nodes,
    params,
    constants,
    masks: new Map(),
    featureTap: head ? head.inputs[0]! : outputs[0]!,
    preprocessing: o.preprocessing ?? {
      size: hw,
      range: [0, 1],
      mean: [0.485, 0.456, 0.406],
      std: [0.229, 0.224, 0.225],
    },
    meta: {
      format: 'onnx',
      file,
      opset: im.opset,
      preprocessingAssumed: o.preprocessing === undefined,
      head: head?.name ?? null,
    },
  };
}
