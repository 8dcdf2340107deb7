/** What `tapir data list` shows: each dataset, whether its files are present, its classes and counts. */
import { TapirError } from '../engine/errors.js';
import { classCounts } from './dataset.js';
import { openDataset } from './registry.js';
import { ASSETS, BUILTIN_NAMES, type BuiltinName } from './paths.js';

export interface DatasetInfo {
  name: string;
  present: boolean;
  path: string;
  /** Command that installs the files. */
  install: string | null;
  /** Whether `test` comes from the source's own test set. */
  officialTest: boolean;
  classes: { name: string; train: number; test: number }[];
  total: number;
  /** Files left out while listing, by reason. */
  skipped: Record<string, number>;
  error?: { code: string; message: string; fix?: string };
}

/** Describes the built-in datasets plus any extra names (e.g. `folder:/data/x`); missing ones are listed, not thrown. */
export async function describeDatasets(extra: readonly string[] = []): Promise<DatasetInfo[]> {
  const out: DatasetInfo[] = [];
  for (const name of [...BUILTIN_NAMES, ...extra]) {
    const builtin = (BUILTIN_NAMES as string[]).includes(name) ? ASSETS[name as BuiltinName] : null;
    try {
      const ds = await openDataset(name);
      const c = classCounts(ds);
      const skipped: Record<string, number> = {};
      for (const s of ds.skipped) {
        const r = s.reason.replace(/ \(.*\)$/, '');
        skipped[r] = (skipped[r] ?? 0) + 1;
      }
      out.push({
        name: ds.name,
        present: true,
        path: ds.root,
        install: builtin?.install ?? null,
        officialTest: ds.officialTest,
        classes: ds.classes.map((n, i) => ({ name: n, train: c.train[i]!, test: c.test[i]! })),
        total: ds.examples.length,
        skipped,
      });
    } catch (e) {
      if (!(e instanceof TapirError)) throw e;
      out.push({
        name,
        present: false,
        path: builtin?.path() ?? name.replace(/^folder:/, ''),
        install: builtin?.install ?? null,
        officialTest: false,
        classes: [],
        total: 0,
        skipped: {},
        error: { code: e.code, message: e.message, ...(e.fix ? { fix: e.fix } : {}) },
      });
    }
  }
  return out;
}
