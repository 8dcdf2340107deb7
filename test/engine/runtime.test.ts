// Process-wide engine settings: threads, build info, device queries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  availableMemory,
  buildInfo,
  cudaAvailable,
  defaultDevice,
  getNumThreads,
  setNumThreads,
  synchronize,
  zeros,
} from '../../src/engine/index.js';
import { native } from '../../src/engine/native.js';

test('setNumThreads / getNumThreads round trip; 0 threads is refused', () => {
  const before = getNumThreads();
  assert.ok(before >= 1);
  setNumThreads(1);
  assert.equal(getNumThreads(), 1);
  setNumThreads(2);
  assert.equal(getNumThreads(), 2);
  assert.throws(() => setNumThreads(0), /setNumThreads: thread count must be >= 1/);
  setNumThreads(before);
});

test('availableMemory hands the allocator cached free pages back to the OS (tcmalloc keeps freed tensors)', () => {
  const tcmalloc = (process.env.LD_PRELOAD ?? '').includes('libtcmalloc');
  assert.equal(native.releaseFreeMemory(), tcmalloc ? 'tcmalloc' : 'glibc');
  const rss = () => process.memoryUsage().rss;
  const MiB = 2 ** 20;
  // 64 tensors of 8 MiB, written (so resident), then freed.
  const ts = Array.from({ length: 64 }, () => zeros([2 * MiB]).add_(1));
  const held = rss();
  for (const t of ts) t.dispose();
  const freed = rss();
  assert.ok(availableMemory() > 0);
  const released = rss();
  if (tcmalloc) {
    // tcmalloc keeps the freed 512 MiB resident for reuse; the release returns (nearly) all of it.
    assert.ok(held - freed < 128 * MiB, `tcmalloc returned ${(held - freed) / MiB} MiB on its own`);
    assert.ok(freed - released > 384 * MiB, `released ${(freed - released) / MiB} MiB`);
  } else assert.ok(released <= freed + 16 * MiB);
});

test('buildInfo reports the libtorch version and configuration', () => {
  const b = buildInfo();
  assert.match(b.torchVersion, /^\d+\.\d+/);
  assert.ok(b.config.length > 0);
  assert.match(b.parallel, /thread/i);
});

test('cuda queries agree with each other; synchronize is safe without a GPU', () => {
  const available = cudaAvailable();
  const count = native.cudaDeviceCount();
  assert.equal(available, count > 0);
  synchronize();
  assert.equal(defaultDevice(), process.env.TAPIR_DEVICE ?? 'cpu');
});
