/**
 * The process a `tapir worker` runs its cells in (one per concurrency slot, reused across cells). Cells are long
 * stretches of synchronous native work; in the worker's own process they would starve the event loop that renews
 * BullMQ's job locks, and a healthy worker would look stalled. Here they run through the same `runCell` as the
 * single-machine runner; the parent only talks to Redis. The child exits when its parent goes away.
 */
import { getNumThreads, TapirError } from '../../engine/index.js';
import { disposeGraph, type Graph } from '../../graph/index.js';
import { FeatureCache } from '../../transfer/index.js';
import type { StudyConfig } from '../config.js';
import { protocolHash, studyTasks, type CellSpec } from '../grid.js';
import { loadStudyModel, runCell } from '../runner.js';
import { cellOf, dataFingerprint, toWire, type WorkerIdentity } from './manifest.js';

export type ToChild =
  | { type: 'check'; id: number; config: StudyConfig }
  | {
      type: 'run';
      id: number;
      protocol: string;
      config: StudyConfig;
      cell: CellSpec;
      worker: Omit<WorkerIdentity, 'threads'>;
    };
export type FromChild =
  | { type: 'checked'; id: number; protocol: string; data: Record<string, string> }
  | { type: 'progress'; id: number; frac: number; what: string }
  | { type: 'done'; id: number; output: unknown }
  | { type: 'error'; id: number; error: { code: string; message: string; fix?: string } };

const send = (m: FromChild) => process.send?.(m);
let loaded: { protocol: string; model: string; dense: Graph; work: Graph; cache: FeatureCache } | null = null;

function release(): void {
  if (!loaded) return;
  disposeGraph(loaded.dense);
  disposeGraph(loaded.work);
  loaded.cache.dispose();
  loaded = null;
}

async function handle(m: ToChild): Promise<void> {
  if (m.type === 'check') {
    send({ type: 'checked', id: m.id, protocol: protocolHash(m.config), data: await dataFingerprint(m.config) });
    return;
  }
  const cell = cellOf(m.config, m.cell);
  if (protocolHash(m.config) !== m.protocol)
    throw new TapirError(
      'E_QUEUE_MISMATCH',
      `the config hashes to ${protocolHash(m.config)} here, ${m.protocol} on the coordinator`,
      { fix: 'run the same tapir build on every machine' },
    );
  // The models of the last cell stay loaded: a worker usually takes several cells of one model in a row.
  if (!loaded || loaded.protocol !== m.protocol || loaded.model !== cell.model) {
    release();
    const dense = await loadStudyModel(cell.model);
    const work = await loadStudyModel(cell.model);
    loaded = {
      protocol: m.protocol,
      model: cell.model,
      dense,
      work,
      cache: new FeatureCache({ maxEntries: 4 * studyTasks(m.config).length + 8, runtime: m.config.runtime }),
    };
  }
  const out = await runCell(
    cell,
    { config: m.config, tasks: studyTasks(m.config), dense: loaded.dense, work: loaded.work, cache: loaded.cache },
    (frac, what) => send({ type: 'progress', id: m.id, frac, what }),
  );
  send({ type: 'done', id: m.id, output: toWire(out, { ...m.worker, threads: getNumThreads() }) });
}

process.on('disconnect', () => process.exit(0));
process.on('message', (m: ToChild) => {
  handle(m).catch((e: unknown) => {
    if (!(e instanceof TapirError)) process.stderr.write(`${(e as Error)?.stack ?? String(e)}\n`);
    const err =
      e instanceof TapirError
        ? { code: e.code, message: e.message, ...(e.fix ? { fix: e.fix } : {}) }
        : { code: 'E_INTERNAL', message: `${(e as Error)?.name ?? 'Error'}: ${(e as Error)?.message ?? String(e)}` };
    send({ type: 'error', id: m.id, error: err });
  });
});
