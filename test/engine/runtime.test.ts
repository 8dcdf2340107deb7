// Process-wide engine settings: threads, build info, device queries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildInfo,
  cudaAvailable,
  defaultDevice,
  getNumThreads,
  setNumThreads,
  synchronize,
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
