/**
 * `tapir doctor` and the threads' wait policy (src/engine/wait.ts): what doctor reports is what libgomp actually
 * read when it loaded (OMP_DISPLAY_ENV=verbose makes libgomp print its settings: GOMP_SPINCOUNT 0 is passive waiting,
 * 300000 its own spin-then-sleep default), a user's own OpenMP variables win, and a bad TAPIR_WAIT stops the CLI.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

const MAIN = new URL('../../src/cli/main.js', import.meta.url).pathname;

function doctor(env: Record<string, string>): { status: number | null; report: any; stdout: string; stderr: string } {
  const base = { ...process.env };
  for (const k of ['TAPIR_WAIT', 'TAPIR_THREADS', 'TAPIR_MEMORY_FORMAT', 'OMP_WAIT_POLICY', 'GOMP_SPINCOUNT'])
    delete base[k];
  const r = spawnSync(process.execPath, [MAIN, 'doctor', '--json'], {
    env: { ...base, OMP_DISPLAY_ENV: 'verbose', ...env },
    encoding: 'utf8',
  });
  return { status: r.status, report: JSON.parse(r.stdout), stdout: r.stdout, stderr: r.stderr };
}

const spinCount = (stderr: string) => /GOMP_SPINCOUNT = '(\d+)'/.exec(stderr)?.[1];

test('doctor: the default wait policy is passive, and libgomp loaded with it (no spinning)', () => {
  const d = doctor({});
  assert.equal(d.status, 0);
  assert.deepEqual(d.report.wait, { policy: 'passive', source: 'default', openmp: 'OMP_WAIT_POLICY=PASSIVE' });
  assert.equal(d.report.threadsSource, 'every core');
  assert.equal(spinCount(d.stderr), '0');
});

test("doctor: TAPIR_WAIT=spin leaves libgomp's own spin-then-sleep; TAPIR_THREADS is reported as the source", () => {
  const d = doctor({ TAPIR_WAIT: 'spin', TAPIR_THREADS: '1' });
  assert.equal(d.status, 0);
  assert.equal(d.report.wait.policy, 'spin');
  assert.equal(d.report.wait.source, 'TAPIR_WAIT');
  assert.deepEqual([d.report.threads, d.report.threadsSource], [1, 'TAPIR_THREADS']);
  assert.equal(spinCount(d.stderr), '300000');
});

test("doctor: the user's own GOMP_SPINCOUNT wins over the policy and is reported as theirs", () => {
  const d = doctor({ GOMP_SPINCOUNT: '12345' });
  assert.equal(d.status, 0);
  assert.equal(d.report.wait.openmp, 'GOMP_SPINCOUNT=12345 (set by the user)');
  assert.equal(spinCount(d.stderr), '12345');
});

test('doctor: a bad TAPIR_WAIT stops the CLI and names the variable and its values', () => {
  const d = doctor({ TAPIR_WAIT: 'fast' });
  assert.equal(d.status, 1);
  assert.equal(d.report.error.code, 'E_ENV');
  assert.match(d.report.error.message, /TAPIR_WAIT must be one of spin, passive, got 'fast'/);
});

test('doctor: the memory format rule (auto by default, TAPIR_MEMORY_FORMAT); a bad value stops the CLI', () => {
  assert.equal(doctor({}).report.memoryFormat, 'auto');
  assert.equal(doctor({ TAPIR_MEMORY_FORMAT: 'nchw' }).report.memoryFormat, 'nchw');
  const bad = doctor({ TAPIR_MEMORY_FORMAT: 'nhwc' });
  assert.equal(bad.status, 1);
  assert.match(bad.report.error.message, /TAPIR_MEMORY_FORMAT must be one of auto, nchw, channels-last, got 'nhwc'/);
});
