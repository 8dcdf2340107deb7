/**
 * A study config resolved against the machine before anything is written: every model opens, every task (sources,
 * held-out, calibration data) exists with its cap and split seed, and the grid's size is known. Errors name the
 * config field, so a typo in a model path or a task id fails at once instead of after the database was created.
 */
import { TapirError } from '../engine/index.js';
import { disposeGraph } from '../graph/index.js';
import { openTask } from '../data/index.js';
import { parseCalibData } from '../prune/index.js';
import { openModel } from '../transfer/index.js';
import { StudyConfigError, type StudyConfig } from './config.js';
import { effectiveModel } from './grid.js';
import { taskOptionsFor } from './grid.js';

const why = (e: unknown) =>
  e instanceof TapirError ? `${e.message}${e.fix ? ` (${e.fix})` : ''}` : (e as Error).message;

export async function resolveStudy(c: StudyConfig, file: string): Promise<void> {
  for (const [i, m] of c.models.entries()) {
    try {
      disposeGraph((await openModel(effectiveModel(m, c, false))).graph);
    } catch (e) {
      throw new StudyConfigError(
        file,
        `models[${i}]`,
        `'${m}' does not open: ${why(e)}`,
        'a zoo id (tapir models) or a path to a model file or directory',
      );
    }
  }
  const calibTasks = calibTaskIds(c);
  const fields: [string, string[]][] = [
    ['sources', c.sources],
    ['heldout', c.heldout],
    ['calib_data', calibTasks],
  ];
  for (const [field, ids] of fields)
    for (const [i, id] of ids.entries()) {
      try {
        await openTask(id, taskOptionsFor(c, id));
      } catch (e) {
        throw new StudyConfigError(
          file,
          `${field}[${i}]`,
          `task '${id}' cannot be opened: ${why(e)}`,
          'check the task id (tapir data list) and its cap in data.caps',
        );
      }
    }
}

/** Task ids that calibration data names (calib_data entries and score pins), besides the study's own tasks. */
export function calibTaskIds(c: StudyConfig): string[] {
  return [...c.calibData, ...c.scores.map((s) => s.pin?.calibData).filter((x): x is string => x !== undefined)]
    .filter((d) => d !== 'source' && d !== 'noise' && d !== 'all')
    .flatMap((d) => {
      const p = parseCalibData(d);
      return p.kind === 'task' ? [p.task] : p.kind === 'mix' ? p.tasks : [];
    });
}
