/** `tapir selftest`: gradients and HVPs against finite differences, SGD, leak check. */
import { Command } from 'commander';
import { TapirError, type Device } from '../../engine/index.js';
import { selfCheck } from '../../engine/selfcheck.js';
import { emit, table, type Io } from '../output.js';

export function selftestCommand(io: Io): Command {
  return new Command('selftest')
    .description(
      'check the engine on this machine: gradient and Hessian-vector product vs finite differences (float64), SGD, no leaks',
    )
    .option('--seed <n>', 'random seed', '0')
    .option('--device <device>', "device to check: 'cpu', 'cuda' or 'cuda:N'", 'cpu')
    .option('--json', 'print one JSON document')
    .action((o: { seed: string; device: string; json?: boolean }) => {
      const r = selfCheck(Number(o.seed), o.device as Device);
      emit(io, !!o.json, r, () =>
        table(
          ['check', 'value', 'pass'],
          [
            ['gradient rel. error vs FD', r.gradRelErr, r.gradRelErr < 1e-6 ? 'yes' : 'NO'],
            ['HVP rel. error vs FD', r.hvpRelErr, r.hvpRelErr < 1e-5 ? 'yes' : 'NO'],
            ['SGD loss before', r.lossBefore, ''],
            ['SGD loss after 20 steps', r.lossAfter, r.lossAfter < r.lossBefore ? 'yes' : 'NO'],
            ['live tensors leaked', r.liveTensorDrift, r.liveTensorDrift === 0 ? 'yes' : 'NO'],
          ],
        ),
      );
      if (!r.ok)
        throw new TapirError('E_SELFTEST', 'engine self-check failed', {
          context: { ...r },
          fix: 'run `tapir doctor` and report the output with the failing check',
        });
    });
}
