/** Shared set-up of the transfer tests: a tiny conv net built with GraphBuilder and a generated folder: task. */
import { mulberry32 } from '../../src/data/rng.js';
import { after } from 'node:test';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { manualSeed, noGrad, ones, randn, scope, zeros, type Tensor } from '../../src/engine/index.js';
import { GraphBuilder, setMask, type Graph } from '../../src/graph/index.js';

export const REAL_ASSETS = resolve(
  process.env.TAPIR_ASSETS || join(process.env.TAPIR_CACHE || join(homedir(), '.cache', 'tapir'), 'assets'),
);

/** A fresh temp dir removed after the file's tests. */
export function tempDir(prefix = 'tapir-transfer-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Points TAPIR_CACHE at a temp dir for this test file. */
export function useTempCache(): string {
  const dir = tempDir('tapir-transfer-cache-');
  process.env.TAPIR_CACHE = dir;
  process.env.TAPIR_ASSETS = REAL_ASSETS;
  return dir;
}

/**
 * conv3x3(3→6) → BN → ReLU → conv3x3/2(6→8) → BN → ReLU → global average pool (feature tap, 8-d) → linear(8→5).
 * BN has non-trivial running statistics so `eval` and `train` differ.
 */
export function tinyNet(seed = 0, size = 16, fixedInput = false): Graph {
  // scope: the init arithmetic's temporaries are freed now, not by GC later (tests count live tensors).
  return scope(() => buildTiny(seed, size, fixedInput));
}

function buildTiny(seed: number, size: number, fixedInput: boolean): Graph {
  manualSeed(seed);
  const b = new GraphBuilder();
  const p = (name: string, t: Tensor, role: Parameters<GraphBuilder['param']>[2], o: { trainable?: boolean } = {}) =>
    b.param(
      name,
      noGrad(() => t),
      role,
      o,
    );
  const bn = (x: string, name: string, c: number) =>
    b.op(
      'batchnorm',
      [
        x,
        p(
          `${name}.weight`,
          noGrad(() => randn([c]).mul(0.1).add(1)),
          'norm',
        ),
        p(
          `${name}.bias`,
          noGrad(() => randn([c]).mul(0.1)),
          'norm',
        ),
        p(
          `${name}.running_mean`,
          noGrad(() => randn([c]).mul(0.1)),
          'buffer',
          { trainable: false },
        ),
        p(
          `${name}.running_var`,
          noGrad(() => ones([c]).mul(0.8)),
          'buffer',
          { trainable: false },
        ),
      ],
      { eps: 1e-5, momentum: 0.1 },
      name,
    );
  let x = b.op(
    'conv2d',
    [
      'input',
      p(
        'conv1.weight',
        noGrad(() => randn([6, 3, 3, 3]).mul(0.4)),
        'weight',
      ),
    ],
    { stride: 1, padding: 1 },
    'conv1',
  );
  x = b.op('relu', [bn(x, 'bn1', 6)], {}, 'relu1');
  x = b.op(
    'conv2d',
    [
      x,
      p(
        'conv2.weight',
        noGrad(() => randn([8, 6, 3, 3]).mul(0.25)),
        'weight',
      ),
    ],
    { stride: 2, padding: 1 },
    'conv2',
  );
  x = b.op('relu', [bn(x, 'bn2', 8)], {}, 'relu2');
  const feats = b.op('globalavgpool', [x], { keepdims: false }, 'pool');
  const logits = b.op(
    'linear',
    [
      feats,
      p(
        'fc.weight',
        noGrad(() => randn([5, 8]).mul(0.3)),
        'head',
      ),
      p('fc.bias', zeros([5]), 'bias'),
    ],
    {},
    'fc',
  );
  return b.build({
    name: 'tiny',
    inputs: [{ name: 'input', shape: fixedInput ? [null, 3, size, size] : [null, 3, null, null] }],
    outputs: [logits],
    featureTap: feats,
    preprocessing: { size: [size, size], range: [0, 1] },
  });
}

/** Masks about half of every conv weight (deterministic pattern) WITHOUT zeroing the weights. */
export function maskHalf(g: Graph): void {
  scope(() => maskHalfIn(g));
}
function maskHalfIn(g: Graph): void {
  for (const name of ['conv1.weight', 'conv2.weight']) {
    const t = g.params.get(name)!.tensor;
    const m = noGrad(() => randn(t.shape).gt(0).to('float32'));
    setMask(g, name, m);
    m.dispose();
  }
}

/**
 * A `folder:` dataset of 3 classes × `perClass` PNGs of 16×16: horizontal stripes, vertical stripes, blobs,
 * with random colours, phase and noise (learnable, not trivially separable by mean colour).
 */
export async function makeFolderTask(name: string, perClass = 20, size = 16): Promise<string> {
  // A fixed folder name: a folder task's splits are seeded by its base name (data/dataset.ts drawKey), so a random temp
  // dir name would give every run different splits (and loss curves). Built in a temp dir and renamed into place.
  const root = join(tmpdir(), `tapir-transfer-fixture-${name}-${perClass}-${size}-v1`);
  if (!existsSync(root)) {
    const tmp = mkdtempSync(`${root}.tmp-`);
    await writeFolder(tmp, perClass, size);
    try {
      renameSync(tmp, root);
    } catch {
      rmSync(tmp, { recursive: true, force: true }); // another process won the race; its copy is identical
    }
  }
  return `folder:${root}`;
}

async function writeFolder(root: string, perClass: number, size: number): Promise<void> {
  const r = mulberry32(42);
  const classes = ['hstripes', 'vstripes', 'blob'];
  for (const [c, name] of classes.entries()) {
    mkdirSync(join(root, name), { recursive: true });
    for (let k = 0; k < perClass; k++) {
      const px = Buffer.alloc(size * size * 3);
      const fg = [r() * 255, r() * 255, r() * 255];
      const bg = [r() * 255, r() * 255, r() * 255];
      const phase = Math.floor(r() * 4);
      const cx = 4 + r() * 8;
      const cy = 4 + r() * 8;
      for (let y = 0; y < size; y++)
        for (let x = 0; x < size; x++) {
          const on =
            c === 0
              ? ((y + phase) >> 1) % 2 === 0
              : c === 1
                ? ((x + phase) >> 1) % 2 === 0
                : (x - cx) ** 2 + (y - cy) ** 2 < 12;
          for (let ch = 0; ch < 3; ch++)
            px[(y * size + x) * 3 + ch] = Math.max(0, Math.min(255, (on ? fg[ch]! : bg[ch]!) + (r() - 0.5) * 40));
        }
      await sharp(px, { raw: { width: size, height: size, channels: 3 } })
        .png()
        .toFile(join(root, name, `${k}.png`));
    }
  }
}
