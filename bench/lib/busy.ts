/** One busy-looping process beside a bench (the "loaded" measurements), given a moment to start spinning. */
import { spawn, type ChildProcess } from 'node:child_process';

export async function busy(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 300));
  return child;
}
