/** Builds the `tapir` command tree. A fresh program per call so tests can drive it in-process. */
import { Command } from 'commander';
import { doctorCommand } from './commands/doctor.js';
import { selftestCommand } from './commands/selftest.js';
import { dataCommand } from './commands/data.js';
import { modelsCommand } from './commands/models.js';
import { infoCommand } from './commands/info.js';
import { evalCommand } from './commands/eval.js';
import { finetuneCommand } from './commands/finetune.js';
import { pruneCommand } from './commands/prune.js';
import { hessianCommand } from './commands/hessian.js';
import { studyCommand } from './commands/study.js';
import { workerCommand } from './commands/worker.js';
import { reportCommand } from './commands/report.js';
import { demoCommand } from './commands/demo.js';
import { resultsCommand } from './commands/results.js';
import { processIo, type Io } from './output.js';

export const VERSION = '0.1.0';

export function makeProgram(io: Io = processIo): Command {
  const program = new Command('tapir')
    .description('prune pre-trained image classifiers before fine-tuning, and measure what it does to every other task')
    .version(VERSION)
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .exitOverride();
  for (const c of [doctorCommand(io), selftestCommand(io), dataCommand(io)]) program.addCommand(c.exitOverride());
  for (const c of [modelsCommand(io), infoCommand(io)]) program.addCommand(c.exitOverride());
  for (const c of [evalCommand(io), finetuneCommand(io)]) program.addCommand(c.exitOverride());
  program.addCommand(hessianCommand(io).exitOverride());
  program.addCommand(pruneCommand(io).exitOverride());
  for (const c of [studyCommand(io), workerCommand(io), reportCommand(io), resultsCommand(io), demoCommand(io)])
    program.addCommand(c.exitOverride());
  return program;
}
