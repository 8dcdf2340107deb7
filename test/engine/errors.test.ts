// Bad input throws a JS Error naming the op and the shapes; it never takes the process down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  cudaAvailable,
  DTypeError,
  linalg,
  nn,
  ones,
  randn,
  scope,
  ShapeError,
  TapirError,
  tensor,
  zeros,
  type Tensor,
} from '../../src/engine/index.js';

const t = (name: string, fn: () => void) => test(name, () => scope(fn));

/** Asserts `fn` throws an Error (of `kind`) whose message matches every pattern. */
function throwsNaming(
  fn: () => unknown,
  patterns: readonly RegExp[],
  kind: new (...a: never[]) => Error = Error,
): Error {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof kind, `expected a ${kind.name}, got ${String(caught)}`);
  for (const p of patterns) assert.match(caught.message, p);
  return caught;
}

t('wrong dtype: matmul float32 × float64 names the op, both shapes and dtypes', () => {
  throwsNaming(
    () => randn([2, 3]).matmul(randn([3, 2], { dtype: 'float64' })),
    [/^matmul:/, /\[2,3\] float32/, /\[3,2\] float64/],
  );
});

t('shape mismatch: add [3] + [2], matmul [2,3] × [4,5], reshape', () => {
  throwsNaming(() => zeros([3]).add(zeros([2])), [/^add:/, /arg0 \[3\] float32/, /arg1 \[2\] float32/]);
  throwsNaming(() => zeros([2, 3]).matmul(zeros([4, 5])), [/^matmul:/, /2x3 and 4x5/, /\[2,3\]/, /\[4,5\]/]);
  throwsNaming(() => zeros([6]).reshape([4]), [/^reshape:/, /\[4\]/, /size 6/]);
  throwsNaming(() => zeros([3]).index(0, 5), [/index 5 out of range/, /\[3\]/]);
});

t('conv2d / linear / batchNorm with the wrong channels throw ShapeError with both shapes', () => {
  const e = throwsNaming(
    () => nn.conv2d(zeros([1, 3, 4, 4]), zeros([2, 2, 3, 3])),
    [/^conv2d:/, /\[1, 3, 4, 4\]/, /\[2, 2, 3, 3\]/],
    ShapeError,
  );
  assert.ok(e instanceof TapirError);
  assert.equal((e as TapirError).code, 'E_SHAPE');
  throwsNaming(() => nn.conv2d(zeros([3, 4, 4]), zeros([2, 3, 3, 3])), [/^conv2d:/, /\[3, 4, 4\]/], ShapeError);
  throwsNaming(() => nn.linear(zeros([2, 5]), zeros([3, 4])), [/^linear:/, /\[2, 5\]/, /\[3, 4\]/], ShapeError);
  throwsNaming(
    () => nn.batchNorm(zeros([2, 3, 2, 2]), { weight: zeros([4]), training: true }),
    [/^batchNorm:/, /\[4\]/, /\[2, 3, 2, 2\]/],
    ShapeError,
  );
  throwsNaming(
    () => nn.batchNorm(zeros([4]), { training: false }),
    [/^batchNorm:/, /\[N, C, \.\.\.\]/, /\[4\]/],
    ShapeError,
  );
});

t('batchNorm training with one value per channel throws instead of writing NaN running variance', () => {
  const rv = ones([3]);
  throwsNaming(
    () => nn.batchNorm(randn([1, 3, 1, 1]), { runningMean: zeros([3]), runningVar: rv, training: true }),
    [/^batchNorm:/, /more than 1 value per channel/, /\[1, 3, 1, 1\]/],
    ShapeError,
  );
  assert.deepEqual(rv.toArray(), [1, 1, 1]);
  // Two values per channel (batch 1, 2 pixels), or evaluation mode, are fine.
  nn.batchNorm(randn([1, 3, 1, 2]), { training: true });
  nn.batchNorm(randn([1, 3, 1, 1]), { runningMean: zeros([3]), runningVar: rv, training: false });
});

t('a disposed tensor used as receiver or argument names the op and the position', () => {
  const a = zeros([2]);
  a.dispose();
  throwsNaming(() => a.add(1), [/^add:/, /argument 0 is a disposed tensor/, /<disposed>/], TypeError);
  throwsNaming(() => zeros([2]).mul(a), [/^mul:/, /argument 1 is a disposed tensor/, /arg0 \[2\] float32/], TypeError);
  throwsNaming(() => a.shape, [/disposed/]);
  throwsNaming(() => nn.relu(a), [/^relu:/, /disposed/]);
});

t('wrong argument kind: a number or string where a tensor or a list is required', () => {
  const x = zeros([2, 2]);
  throwsNaming(
    () => x.matmul(3 as unknown as Tensor),
    [/^matmul:/, /argument 1 must be a tensor/, /\[2,2\]/],
    TypeError,
  );
  throwsNaming(
    () => x.reshape('abc' as unknown as number[]),
    [/^reshape:/, /argument 1 must be an integer or an array of integers/],
    TypeError,
  );
  throwsNaming(() => x.reshape([1.5, 2]), [/^reshape:/, /must be an integer/], TypeError);
  throwsNaming(() => x.transpose(0, 0.5), [/^transpose:/, /must be an integer, got 0.5/], TypeError);
  throwsNaming(
    () => nn.crossEntropy(x, x, { reduction: 'avg' as 'mean' }),
    [/^crossEntropy:/, /reduction must be 'mean', 'sum' or 'none', got 'avg'/],
    TypeError,
  );
  throwsNaming(() => nn.pad(x, [1, 1], 'wrap' as 'reflect'), [/^pad:/, /4-D input/]);
});

t('item() on a multi-element tensor', () => {
  throwsNaming(() => zeros([2, 3]).item(), [/^item:/, /one element, got 6/, /\[2,3\]/], TypeError);
});

t('crossEntropy with the wrong target shape (indices and probabilities)', () => {
  const idx = tensor([1, 2], null, { dtype: 'int64' });
  throwsNaming(() => nn.crossEntropy(zeros([4, 3]), idx), [/^crossEntropy:/, /\[4, 3\]/, /got \[2\]/], ShapeError);
  throwsNaming(() => nn.crossEntropy(zeros([4, 3]), zeros([4, 2])), [/^crossEntropy:/, /\[4,3\]/, /\[4,2\]/]);
  throwsNaming(
    () => nn.crossEntropy(zeros([4, 3]), tensor([0, 1, 2, 3], null, { dtype: 'int64' })),
    [/crossEntropy/, /3/],
  );
});

t('cholesky of a non-SPD matrix', () => {
  throwsNaming(
    () =>
      linalg.cholesky(
        tensor(
          [
            [1, 2],
            [2, 1],
          ],
          null,
          { dtype: 'float64' },
        ),
      ),
    [/^cholesky:/, /not positive-definite/, /\[2,2\] float64/],
  );
  throwsNaming(() => linalg.cholesky(zeros([2, 3])), [/^cholesky:/, /\[2,3\]/]);
  throwsNaming(() => linalg.inv(zeros([2, 2])), [/^inv:/, /\[2,2\]/]);
});

t('unknown dtype and device strings', () => {
  throwsNaming(
    () => zeros([2], { dtype: 'float8' as 'float32' }),
    [/^zeros:/, /unknown dtype 'float8'/, /float32, float64/],
    TypeError,
  );
  throwsNaming(
    () => zeros([2]).to('complex' as 'float32'),
    [/^to:/, /unknown dtype 'complex'/, /\[2\] float32/],
    TypeError,
  );
  throwsNaming(() => zeros([2], { device: 'tpu' as 'cpu' }), [/^zeros:/, /unknown device 'tpu'/], TypeError);
  if (!cudaAvailable())
    throwsNaming(() => zeros([2], { device: 'cuda' }), [/^zeros:/, /device 'cuda' requested/, /LIBTORCH=/], TypeError);
  throwsNaming(() => tensor(new Float32Array(3), [2, 2]), [/^fromArray:/, /4 elements but the array has 3/], TypeError);
  throwsNaming(() => tensor(new Int16Array(2) as unknown as Float32Array), [/unsupported array type Int16Array/]);
  // Regression: used to surface as a bare RangeError from BigInt().
  throwsNaming(
    () => tensor([1, NaN], null, { dtype: 'int64' }),
    [/^tensor: NaN cannot be stored as int64/],
    DTypeError,
  );
});

test('a bad op never crashes the process: caught errors let node exit 0, an uncaught one exits 1 without a signal', () => {
  const engine = fileURLToPath(new URL('../../src/engine/index.js', import.meta.url));
  const env = { ...process.env, LD_PRELOAD: '/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4', TAPIR_THREADS: '1' };
  const caught = `
    const E = await import(${JSON.stringify(engine)});
    const bad = [
      () => E.randn([2, 3]).matmul(E.randn([3, 2], { dtype: 'float64' })),
      () => { const a = E.zeros([2]); a.dispose(); a.add(1); },
      () => E.linalg.cholesky(E.tensor([[1, 2], [2, 1]], null, { dtype: 'float64' })),
      () => E.zeros([2]).item(),
    ];
    let n = 0;
    for (const f of bad) { try { f(); } catch (e) { n++; console.log(e.message.split(' ')[0]); } }
    console.log('caught', n, 'still computing', E.ones([2]).sum().item());
  `;
  const ok = spawnSync(process.execPath, ['--input-type=module', '-e', caught], {
    env,
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(ok.signal, null, ok.stderr);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /matmul:\nadd:\ncholesky:\nitem:\ncaught 4 still computing 2/);
  const uncaught = `const E = await import(${JSON.stringify(engine)}); E.zeros([3]).add(E.zeros([2]));`;
  const bad = spawnSync(process.execPath, ['--input-type=module', '-e', uncaught], {
    env,
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(bad.signal, null, 'no SIGSEGV / SIGABRT');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /Error: add: The size of tensor a \(3\) must match the size of tensor b \(2\)/);
});
