/**
 * Runs a PyTorch peer script (Debian python3-torch) as a child process with the same allocator as the
 * tapir side, and returns the JSON object it prints as its last stdout line.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { TapirError } from '../../src/engine/errors.js';

/** Debian's interpreter: the `python3` on PATH may be a pyenv shim without torch. */
export const PYTHON = process.env.TAPIR_PYTHON ?? '/usr/bin/python3';
export const TCMALLOC = '/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4';

export class PeerError extends TapirError {
  constructor(message: string, fix: string, context: Record<string, unknown> = {}) {
    super('E_BENCH_PEER', message, { context, fix });
  }
}

/** True when tcmalloc is preloaded into this process (it cannot be added after start-up). */
export function tcmallocPreloaded(): boolean {
  return (process.env.LD_PRELOAD ?? '').split(/[: ]/).some((p) => p.includes('libtcmalloc'));
}

/** Environment for the child: tcmalloc preloaded (as for tapir), one thread pool size given by the caller. */
function peerEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  if (existsSync(TCMALLOC) && !(env.LD_PRELOAD ?? '').includes(TCMALLOC))
    env.LD_PRELOAD = env.LD_PRELOAD ? `${TCMALLOC}:${env.LD_PRELOAD}` : TCMALLOC;
  return env;
}

/** Checks that the interpreter exists and imports `modules` (torch first); returns torch's version. */
export function checkTorch(modules: readonly string[] = ['torch', 'numpy']): string {
  const fix =
    'install the PyTorch peer with `apt-get install python3-torch` (Debian; run as root), or point TAPIR_PYTHON at a python with torch';
  if (!existsSync(PYTHON))
    throw new PeerError(`PyTorch peer: interpreter ${PYTHON} not found`, fix, { python: PYTHON });
  const r = spawnSync(PYTHON, ['-c', `import ${modules.join(', ')}; print(torch.__version__)`], {
    encoding: 'utf8',
    env: peerEnv(),
  });
  if (r.status !== 0)
    throw new PeerError(
      `PyTorch peer: ${PYTHON} cannot import ${modules.join('/')}: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}`,
      fix,
      { python: PYTHON },
    );
  return r.stdout.trim();
}

/** Runs `script args…`, streaming its stderr (progress) through, and parses the last stdout line as JSON. */
export function runPeer(script: string, args: readonly string[], timeoutMs = 3_600_000): unknown {
  const r = spawnSync(PYTHON, [script, ...args], {
    encoding: 'utf8',
    env: peerEnv(),
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: timeoutMs,
    maxBuffer: 64 << 20,
  });
  if (r.error)
    throw new PeerError(
      `PyTorch peer ${script} failed to run: ${r.error.message}`,
      'check the interpreter and the script path',
      { script },
    );
  if (r.status !== 0)
    throw new PeerError(
      `PyTorch peer ${script} exited with ${r.status ?? r.signal} (its error is printed above)`,
      'fix the error above; rerun with fewer --models/--cases to isolate it',
      { script },
    );
  const last = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last);
  } catch {
    throw new PeerError(
      `PyTorch peer ${script} did not end its output with a JSON line (got '${last.slice(0, 200)}')`,
      'the peer must print one JSON object as its last stdout line',
      { script },
    );
  }
}

/**
 * A long-lived peer answering one JSON request per stdin line with one JSON reply per stdout line.
 * Lets a benchmark alternate tapir and peer runs, so load from other processes hits both sides alike.
 */
export class PeerSession {
  readonly #child: ChildProcess;
  readonly #lines: AsyncIterator<string>;
  readonly #script: string;
  #exit: string | null = null;

  constructor(script: string, args: readonly string[]) {
    this.#script = script;
    this.#child = spawn(PYTHON, [script, ...args], { env: peerEnv(), stdio: ['pipe', 'pipe', 'inherit'] });
    this.#child.on('exit', (code, signal) => {
      this.#exit = `exited with ${code ?? signal}`;
    });
    this.#child.on('error', (e) => {
      this.#exit = `failed to start: ${e.message}`;
    });
    this.#lines = createInterface({ input: this.#child.stdout! })[Symbol.asyncIterator]();
  }

  /** Sends `msg`, waits for the reply line, and returns it parsed. */
  async request<T>(msg: Record<string, unknown>): Promise<T> {
    if (this.#exit === null) this.#child.stdin!.write(JSON.stringify(msg) + '\n');
    const next = await this.#lines.next();
    if (next.done) {
      await new Promise((r) => setTimeout(r, 50)); // let 'exit' arrive so the message names the code
      throw new PeerError(
        `PyTorch peer ${this.#script} ${this.#exit ?? 'closed its output'} during ${JSON.stringify(msg)} (its error is printed above)`,
        'fix the error above; rerun with fewer --models/--cases to isolate it',
        { script: this.#script },
      );
    }
    try {
      return JSON.parse(next.value) as T;
    } catch {
      throw new PeerError(
        `PyTorch peer ${this.#script} replied with a non-JSON line '${next.value.slice(0, 200)}'`,
        'the peer must print only JSON replies on stdout',
        { script: this.#script },
      );
    }
  }

  /** Asks the peer to quit and waits for it to exit. */
  async close(): Promise<void> {
    if (this.#exit !== null) return;
    const done = new Promise((r) => this.#child.once('exit', r));
    this.#child.stdin!.end(JSON.stringify({ cmd: 'quit' }) + '\n');
    await done;
  }
}
