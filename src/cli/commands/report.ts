/** `tapir report`: tables (markdown to stdout) and a self-contained HTML report with SVG plots from a results database. */
import { Command } from 'commander';
import { htmlReport, markdownReport, readReport, reportTables, StudyStore, writeAtomic } from '../../study/index.js';
import { emit, type Io } from '../output.js';

/** Writes the HTML report of `db` to `out`; returns the markdown, the tables and the plot count. */
export async function writeReport(
  db: string,
  out: string | null,
): Promise<{ markdown: string; tables: ReturnType<typeof reportTables>; plots: number }> {
  const store = new StudyStore(db, { readonly: true });
  try {
    const data = readReport(store);
    let plots = 0;
    if (out) {
      const r = await htmlReport(data);
      writeAtomic(out, r.html);
      plots = r.plots;
    }
    return { markdown: markdownReport(data), tables: reportTables(data), plots };
  } finally {
    store.close();
  }
}

export function reportCommand(io: Io): Command {
  return new Command('report')
    .description(
      'report a study: accuracy vs sparsity, retained accuracy, per-layer densities, mask overlap, efficiency (HTML + markdown)',
    )
    .option('--db <file>', 'results database written by `tapir study`', 'results.sqlite')
    .option('--out <file>', 'HTML report to write', 'report.html')
    .option('--no-html', 'print the tables only')
    .option('--json', 'print one JSON document')
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .action(async (o: { db: string; out: string; html: boolean; json?: boolean }) => {
      const r = await writeReport(o.db, o.html ? o.out : null);
      emit(
        io,
        !!o.json,
        { db: o.db, html: o.html ? o.out : null, plots: r.plots, tables: r.tables },
        () => r.markdown + (o.html ? `\nwrote ${o.out} (${r.plots} plots)` : ''),
      );
    });
}
