/**
 * `tapir doctor` and the threads' wait policy (src/engine/wait.ts): what doctor reports is what libgomp actually
 * read when it loaded (OMP_DISPLAY_ENV=verbose makes libgomp print its settings: GOMP_SPINCOUNT 0 is passive waiting,
 * 300000 its own spin-then-sleep default); auto turns passive beside a busy process; a user's own OpenMP variables
 * win; a bad TAPIR_WAIT stops the CLI.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
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

test('doctor: auto waits passively beside a busy process, and libgomp loaded with it (no spinning)', async () => {
  const hog = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 300));
    const d = doctor({});
    assert.equal(d.status, 0);
    assert.equal(d.report.wait.source, 'auto');
    assert.ok(d.report.wait.busyCores >= 0.5, `a busy loop beside: ${d.report.wait.busyCores} busy cores`);
    assert.equal(d.report.wait.policy, 'passive');
    assert.equal(d.report.wait.openmp, 'OMP_WAIT_POLICY=PASSIVE');
    assert.equal(spinCount(d.stderr), '0');
  } finally {
    hog.kill();
  }
});

test('doctor: auto follows the measured load, and OpenMP got what doctor says', () => {
  const d = doctor({});
  assert.equal(d.status, 0);
  const expected = d.report.wait.busyCores >= 0.5 ? 'passive' : 'spin';
  assert.equal(d.report.wait.policy, expected);
  assert.equal(spinCount(d.stderr), expected === 'passive' ? '0' : '300000');
  assert.equal(d.report.threadsSource, 'every core');
});

test("doctor: TAPIR_WAIT fixes the policy (libgomp's own spin-then-sleep, or none); TAPIR_THREADS is the source", () => {
  const spin = doctor({ TAPIR_WAIT: 'spin', TAPIR_THREADS: '1' });
  assert.equal(spin.status, 0);
  assert.deepEqual(spin.report.wait, {
    policy: 'spin',
    source: 'TAPIR_WAIT',
    busyCores: null,
    openmp: "libgomp's default (spin, then sleep)",
  });
  assert.deepEqual([spin.report.threads, spin.report.threadsSource], [1, 'TAPIR_THREADS']);
  assert.equal(spinCount(spin.stderr), '300000');
  const passive = doctor({ TAPIR_WAIT: 'passive' });
  assert.equal(passive.report.wait.policy, 'passive');
  assert.equal(spinCount(passive.stderr), '0');
});

test("doctor: the user's own GOMP_SPINCOUNT wins over the policy and is reported as theirs", () => {
  const d = doctor({ GOMP_SPINCOUNT: '12345', TAPIR_WAIT: 'passive' });
  assert.equal(d.status, 0);
  assert.equal(d.report.wait.openmp, 'GOMP_SPINCOUNT=12345 (set by the user)');
  assert.equal(spinCount(d.stderr), '12345');
});

test('doctor: a bad TAPIR_WAIT stops the CLI and names the variable and its values', () => {
  const d = doctor({ TAPIR_WAIT: 'fast' });
  assert.equal(d.status, 1);
  assert.equal(d.report.error.code, 'E_ENV');
  assert.match(d.report.error.message, /TAPIR_WAIT must be one of auto, spin, passive, got 'fast'/);
});

test('doctor: the memory format rule (auto by default, TAPIR_MEMORY_FORMAT); a bad value stops the CLI', () => {
  assert.equal(doctor({}).report.memoryFormat, 'auto');
  assert.equal(doctor({ TAPIR_MEMORY_FORMAT: 'nchw' }).report.memoryFormat, 'nchw');
  const bad = doctor({ TAPIR_MEMORY_FORMAT: 'nhwc' });
  assert.equal(bad.status, 1);
  assert.match(bad.report.error.message, /TAPIR_MEMORY_FORMAT must be one of auto, nchw, channels-last, got 'nhwc'/);
});
