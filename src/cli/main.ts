/** Entry point of bin/tapir: the only place that calls process.exit. */
import { CommanderError } from 'commander';
import { makeProgram } from './program.js';
import { processIo, renderError } from './output.js';
import { environmentError, TapirError } from '../engine/index.js';
import { dataRootError } from '../data/index.js';
import { memoryFormatError } from '../graph/index.js';

const json = process.argv.includes('--json');
try {
  const bad = environmentError() ?? memoryFormatError() ?? dataRootError();
  if (bad) throw bad;
  await makeProgram(json ? { ...processIo, err: () => undefined } : processIo).parseAsync(process.argv);
} catch (e) {
  // Usage errors (unknown option, missing argument): commander printed them, except under --json, where the one
  // JSON document on stdout says what was wrong.
  if (e instanceof CommanderError) {
    if (json && e.exitCode !== 0)
      process.stdout.write(
        renderError(
          new TapirError('E_USAGE', e.message.replace(/^error: /, ''), { fix: 'see tapir <command> --help' }),
          true,
        ) + '\n',
      );
    process.exit(e.exitCode);
  }
  (json ? process.stdout : process.stderr).write(renderError(e, json) + '\n');
  process.exit(1);
}
