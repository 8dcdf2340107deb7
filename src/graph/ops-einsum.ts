/**
 * Einsum over the engine's permute / reshape / matmul / sum (the engine has no einsum kernel), so autograd and
 * double backward come for free. Operands are contracted left to right; each pairwise contraction is one batched
 * matmul: A → [batch, freeA, contracted], B → [batch, contracted, freeB]. Letters that only one operand holds and
 * the output does not are summed out first. Not supported (a clear error): '...' ellipsis and a letter repeated
 * inside one operand (a diagonal).
 *
 * ```ts
 * einsum('bhqd,bhkd->bhqk', [q, k]);   // attention scores
 * ```
 */
import { scope, ShapeError, type Tensor } from '../engine/index.js';

interface Term {
  t: Tensor;
  letters: string;
}

/** Parses 'ab,bc->ac' (or the implicit form 'ab,bc': the letters seen once, sorted) into operand and output letters. */
export function parseEinsum(equation: string, operands: number): { inputs: string[]; output: string } {
  const eq = equation.replace(/\s+/g, '');
  if (eq.includes('.'))
    throw new ShapeError(`einsum '${equation}': '...' (ellipsis) is not supported; write every axis as a letter`);
  const [lhs, rhs] = eq.split('->') as [string, string | undefined];
  const inputs = lhs.split(',');
  if (inputs.length !== operands)
    throw new ShapeError(`einsum '${equation}': ${inputs.length} operand terms for ${operands} inputs`);
  for (const s of [...inputs, rhs ?? '']) {
    if (!/^[a-zA-Z]*$/.test(s)) throw new ShapeError(`einsum '${equation}': term '${s}' must be letters only`);
    if (new Set(s).size !== s.length)
      throw new ShapeError(`einsum '${equation}': a letter repeated inside term '${s}' (a diagonal) is not supported`);
  }
  const count = new Map<string, number>();
  for (const ch of inputs.join('')) count.set(ch, (count.get(ch) ?? 0) + 1);
  const output =
    rhs ??
    [...count]
      .filter(([, n]) => n === 1)
      .map(([c]) => c)
      .sort()
      .join('');
  for (const ch of output)
    if (!count.has(ch)) throw new ShapeError(`einsum '${equation}': output letter '${ch}' is in no operand`);
  return { inputs, output };
}

/** Sums out the letters of `a` that are not in `keep`. */
function sumOut(a: Term, keep: string): Term {
  const drop = [...a.letters].flatMap((ch, i) => (keep.includes(ch) ? [] : [i]));
  if (drop.length === 0) return a;
  return { t: a.t.sum(drop), letters: [...a.letters].filter((ch) => keep.includes(ch)).join('') };
}

function permuteTo(a: Term, order: string): Tensor {
  const perm = [...order].map((ch) => a.letters.indexOf(ch));
  return perm.every((p, i) => p === i) ? a.t : a.t.permute(perm);
}

function contract(a0: Term, b0: Term, out: string): Term {
  const a = sumOut(a0, b0.letters + out);
  const b = sumOut(b0, a.letters + out);
  const size = new Map<string, number>();
  for (const x of [a, b])
    [...x.letters].forEach((ch, i) => {
      const d = x.t.shape[i]!;
      const prev = size.get(ch);
      if (prev !== undefined && prev !== d)
        throw new ShapeError(`einsum: letter '${ch}' has size ${prev} in one operand and ${d} in the other`);
      size.set(ch, d);
    });
  const batch = [...a.letters].filter((ch) => b.letters.includes(ch) && out.includes(ch)).join('');
  const contr = [...a.letters].filter((ch) => b.letters.includes(ch) && !out.includes(ch)).join('');
  const freeA = [...a.letters].filter((ch) => !b.letters.includes(ch)).join('');
  const freeB = [...b.letters].filter((ch) => !a.letters.includes(ch)).join('');
  const prod = (s: string) => [...s].reduce((p, ch) => p * size.get(ch)!, 1);
  const at = permuteTo(a, batch + freeA + contr).reshape([prod(batch), prod(freeA), prod(contr)]);
  const bt = permuteTo(b, batch + contr + freeB).reshape([prod(batch), prod(contr), prod(freeB)]);
  const y = at.matmul(bt).reshape([...(batch + freeA + freeB)].map((ch) => size.get(ch)!));
  return { t: y, letters: batch + freeA + freeB };
}

/** torch.einsum / ONNX Einsum for letter-only equations. */
export function einsum(equation: string, xs: readonly Tensor[]): Tensor {
  const { inputs, output } = parseEinsum(equation, xs.length);
  return scope(() => {
    xs.forEach((x, i) => {
      if (x.ndim !== inputs[i]!.length)
        throw new ShapeError(
          `einsum '${equation}': operand ${i} has rank ${x.ndim}, term '${inputs[i]}' names ${inputs[i]!.length} axes`,
        );
    });
    let acc: Term = { t: xs[0]!, letters: inputs[0]! };
    for (let i = 1; i < xs.length; i++) {
      // keep what a later operand or the output still needs
      const later = inputs.slice(i + 1).join('') + output;
      acc = contract(
        acc,
        { t: xs[i]!, letters: inputs[i]! },
        [...new Set(acc.letters + inputs[i]!)].filter((ch) => later.includes(ch)).join(''),
      );
    }
    acc = sumOut(acc, output);
    const y = permuteTo(acc, output);
    return y === xs[0] ? y.clone() : y;
  });
}
