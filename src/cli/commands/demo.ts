/** `tapir demo`: the built-in study (studies/demo.yaml) end to end: results.sqlite, report.html and the summary table. */
import { Command } from 'commander';
import { join } from 'node:path';
import { demoConfig, markdownTable } from '../../study/index.js';
import { emit, type Io } from '../output.js';
import { writeReport } from './report.js';
import { runWithProgress } from './study.js';

export function demoCommand(io: Io): Command {
  return new Command('demo')
    .description(
      'run the built-in study (MobileNetV2 at 64 px; source clipart; held out fashion-mnist, mnist, emoji, digits) and write its report',
    )
    .option('--out <dir>', 'where results.sqlite and report.html go', '.')
    .option('--no-progress', 'no progress bar')
    .option('--json', 'print one JSON document')
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .action(async (o: { out: string; progress: boolean; json?: boolean }) => {
      const t0 = Date.now();
      const db = join(o.out, 'results.sqlite');
      const html = join(o.out, 'report.html');
      const { run, store } = await runWithProgress(demoConfig(), db, { progress: o.progress && !o.json });
      store.close();
      const r = await writeReport(db, html);
      const wallS = (Date.now() - t0) / 1000;
      emit(
        io,
        !!o.json,
        { db, html, run, wallS, tables: r.tables },
        () =>
          `${r.tables.map(markdownTable).join('\n\n')}\n\n${run.ran} cells run, ${run.skipped} already done; ${wallS.toFixed(0)} s. Wrote ${db} and ` +
          `${html} (${r.plots} plots).`,
      );
    });
}
