/** Runs the `tapir` program in-process (a fresh program per call, as commander's maintainers advise) and returns what it wrote. */
import { makeProgram } from '../../src/cli/program.js';

export async function runCli(args: readonly string[]): Promise<{ out: string; err: string }> {
  let out = '';
  let err = '';
  await makeProgram({
    out: (s) => {
      out += s;
    },
    err: (s) => {
      err += s;
    },
  }).parseAsync(['node', 'tapir', ...args]);
  return { out, err };
}
