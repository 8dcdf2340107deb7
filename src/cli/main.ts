/** Entry point of bin/tapir: the only place that calls process.exit. */
import { CommanderError } from 'commander';
import { makeProgram } from './program.js';
import { renderError } from './output.js';

const json = process.argv.includes('--json');
try {
  await makeProgram().parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode);
  (json ? process.stdout : process.stderr).write(renderError(e, json) + '\n');
  process.exit(1);
}
