/** `tapir study <config.yaml>`: runs a study grid into a SQLite file (resumable), then prints its summary table. */
import { Command } from 'commander';
import cliProgress from 'cli-progress';
import { TapirError } from '../../engine/index.js';
import { defaultSteps, expandGrid, loadStudy, markdownTable, phaseProfile, readReport, reportTables, resolveStudy, runStudy, StudyStore, type RunSummary, type StudyConfig, type StudyProgress } from '../../study/index.js';
import { emit, type Io } from '../output.js';
import { parseNumber } from './eval.js';

/**
 * Progress with ETA on stderr (units: cells; the running cell advances by its stages): a bar on a terminal, one
 * line per stage otherwise (logs, CI, the resume test reads these lines).
 */
export function studyBar(enabled: boolean, stream: NodeJS.WriteStream = process.stderr): { update(p: StudyProgress): void; stop(): void } {
  let bar: cliProgress.SingleBar | null = null;
  const t0 = Date.now();
  let last = '';
  return {
    update(p) {
      if (!enabled || p.total === 0) return;
      if (!stream.isTTY) {
        if (p.what === last) return;
        last = p.what;
        const el = (Date.now() - t0) / 1000;
        const eta = p.done > 0 ? `${Math.round((el / p.done) * (p.total - p.done))} s` : '?';
        stream.write(`study ${p.done.toFixed(2)}/${p.total} cells | ${el.toFixed(0)} s | ETA ${eta} | ${p.what}\n`);
        return;
      }
      if (!bar) {
        bar = new cliProgress.SingleBar({ stream, format: 'study {bar} {percentage}% | {value}/{total} cells | ETA {eta_formatted} | {what}', etaBuffer: 50, fps: 2 }, cliProgress.Presets.shades_classic);
        bar.start(p.total, 0, { what: p.what });
      }
      bar.update(Math.round(p.done * 100) / 100, { what: p.what.slice(0, 60) });
    },
    stop() {
      bar?.stop();
    },
  };
}

/** Grids larger than this need --yes; the estimate uses a rough per-cell time (MobileNetV2 at 96 px, no fine-tuning). */
const BIG_GRID = 1000;
const SECONDS_PER_CELL = 60;

/** Runs `config` into `db` with a progress bar; returns the run summary and the summary table rows. */
export async function runWithProgress(config: StudyConfig, db: string, o: { progress: boolean; maxCells?: number }): Promise<{ run: RunSummary; store: StudyStore }> {
  const store = new StudyStore(db);
  const bar = studyBar(o.progress);
  try {
    const run = await runStudy(config, store, { steps: defaultSteps, onProgress: (p) => bar.update(p), ...(o.maxCells ? { maxCells: o.maxCells } : {}) });
    return { run, store };
  } catch (e) {
    store.close();
    throw e;
  } finally {
    bar.stop();
  }
}

export function studyCommand(io: Io): Command {
  return new Command('study')
    .description('run a study grid (models × scores × sparsities × sources × seeds) into SQLite; re-running skips finished cells')
    .argument('<config>', 'study config (YAML); see docs/STUDY.md and studies/demo.yaml')
    .option('--db <file>', 'results database', 'results.sqlite')
    .option('--max-cells <n>', 'stop after this many new cells')
    .option('--no-progress', 'no progress bar')
    .option('--profile', 'also print where the time went: seconds per phase over the study\'s cells')
    .option('--yes', `start a grid of more than ${BIG_GRID} cells (without it, tapir prints the grid's size and estimated time and stops)`)
    .option('--json', 'print one JSON document')
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .action(async (file: string, o: { db: string; maxCells?: string; progress: boolean; profile?: boolean; yes?: boolean; json?: boolean }) => {
      const config = loadStudy(file);
      const maxCells = o.maxCells === undefined ? undefined : parseNumber('--max-cells', o.maxCells, { int: true, min: 1 });
      // Everything the grid needs must resolve before the database is created or touched.
      await resolveStudy(config, file);
      const cells = expandGrid(config).length;
      if (cells > BIG_GRID && !o.yes)
        throw new TapirError('E_BIG_GRID', `${file} expands to ${cells} cells, about ${(cells * SECONDS_PER_CELL / 3600).toFixed(1)} h at ~${SECONDS_PER_CELL} s a cell on 2 cores`, {
          context: { cells }, fix: 'pass --yes to start it (it resumes if stopped), or shrink the grid (fewer scores, sparsities, sources, seeds or axis values)',
        });
      const { run, store } = await runWithProgress(config, o.db, { progress: o.progress && !o.json, ...(maxCells ? { maxCells } : {}) });
      try {
        const data = readReport(store);
        const summary = reportTables(data)[0]!;
        const prof = o.profile ? phaseProfile(data) : null;
        const profText = prof ? `\n\n${markdownTable({ title: `Time per phase (${prof.cells} cells)`, header: ['phase', 'seconds', 'share', 'per cell (s)'],
          rows: prof.rows.map((r) => [r.phase, r.seconds.toFixed(1), `${(100 * r.share).toFixed(1)}%`, r.perCell.toFixed(1)]) })}` : '';
        emit(io, !!o.json, { db: o.db, run, summary: { header: summary.header, rows: summary.rows }, ...(prof ? { profile: prof } : {}) },
          () => `${markdownTable(summary)}${profText}\n\n${run.ran} cells run, ${run.skipped} already done, ${run.wallS.toFixed(1)} s; results in ${o.db}`);
      } finally {
        store.close();
      }
    });
}
