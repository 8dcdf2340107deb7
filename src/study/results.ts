/**
 * `tapir results`: docs/RESULTS.md generated from committed study configs and their result databases. For each
 * config: the command that reproduces it, its stored wall time, findings computed from the data (results-findings.ts)
 * each next to the table that backs it, the report's plots as SVG files, and the report's markdown tables. A study
 * whose database is missing gets a "not run yet" section, so the document can be generated before every study ran.
 * Only the cells of the config as committed are counted (its grid's cell keys), so a database that also holds
 * cells of an edited config does not mix them in. No timestamps: the same data gives the same bytes.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { TapirError } from '../engine/index.js';
import { loadStudy, type StudyConfig } from './config.js';
import { expandGrid } from './grid.js';
import { reportPlots, renderSvg } from './plots.js';
import { mergeReports, readReport, type ReportData } from './report-data.js';
import { markdownTable, reportTables, writeAtomic } from './report.js';
import { computeFindings, DEFAULT_THRESHOLDS, pct, type Finding, type Thresholds } from './results-findings.js';
import { layerErrorFindings } from './results-layers.js';
import { calibrationNote } from './results-calibration.js';
import { diagnosticsFindings, diagSummaryOf, type DiagSummary } from './results-diagnostics.js';
import { StudyStore } from './store.js';

export interface ResultsOptions {
  /** Study configs (YAML), in document order. */
  configs: readonly string[];
  /** The markdown file to write (default docs/RESULTS.md). */
  out?: string;
  /** Folder for the plots, one sub-folder per study (default docs/results). */
  plots?: string;
  /** Folder of the databases, `<dbDir>/<study name>.sqlite` (default results). */
  dbDir?: string;
  thresholds?: Partial<Thresholds>;
  /** How the document names the CLI in its commands (default bin/tapir). */
  bin?: string;
}

export interface StudyResult {
  name: string;
  config: string;
  db: string;
  status: 'missing' | 'empty' | 'partial' | 'complete';
  cells: number;
  gridCells: number;
  wallS: number;
  plots: string[];
  findings: Finding[];
}

export interface ResultsSummary {
  out: string;
  studies: StudyResult[];
}

/** The cells of `config`'s grid only (a database may also hold cells of an edited config). */
export function restrictToConfig(d: ReportData, config: StudyConfig): ReportData {
  const keys = new Set(expandGrid(config).map((c) => c.key));
  const cells = d.cells.filter((c) => keys.has(c.key));
  const protocols = new Set(cells.map((c) => c.protocol));
  return {
    ...d,
    studies: d.studies.filter((s) => protocols.has(s.protocol)),
    cells,
    acc: d.acc.filter((a) => keys.has(a.cell)),
    layers: d.layers.filter((l) => keys.has(l.cell)),
    layerErrors: d.layerErrors.filter((l) => keys.has(l.cell)),
    efficiency: d.efficiency.filter((e) => keys.has(e.cell)),
  };
}

const slug = (s: string) =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 60);
const minutes = (s: number) => (s >= 90 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(1)} s`);
/** Markdown headings one level down (the report's `###` tables sit under a study's `###` sections). */
const demote = (md: string) => md.replace(/^(#+) /gm, '$1# ');

/** The config file's leading comment block (its description), without the `# ` markers. */
export function configDescription(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('#')) break;
    out.push(line.replace(/^# ?/, ''));
  }
  return out;
}

function findingMd(f: Finding): string {
  return [
    `#### ${f.title}`,
    '',
    ...f.sentences.map((s) => `- ${s}`),
    ...(f.table ? ['', demote(demote(markdownTable(f.table)))] : []),
  ].join('\n');
}

/** A section's findings, then its plots (paths relative to the document `out`). */
function findingsAndPlotsMd(
  findings: readonly Finding[],
  plots: readonly { file: string; title: string; caption: string }[],
  out: string,
): string[] {
  const rel = (f: string) => relative(dirname(out), f).split('\\').join('/');
  return [
    '### Findings',
    '',
    ...findings.map((f) => findingMd(f) + '\n'),
    '### Plots',
    '',
    ...plots.map((p) => `#### ${p.title}\n\n![${p.title}](${rel(p.file)})\n\n${p.caption}\n`),
  ];
}

/** Writes one study's plots under `dir` (stale SVGs there removed); returns the file paths in plot order. */
async function writePlots(d: ReportData, dir: string): Promise<{ file: string; title: string; caption: string }[]> {
  const plots = reportPlots(d);
  mkdirSync(dir, { recursive: true });
  const out: { file: string; title: string; caption: string }[] = [];
  for (const [i, p] of plots.entries()) {
    const file = join(dir, `${String(i + 1).padStart(2, '0')}-${slug(p.title)}.svg`);
    // White background: the SVGs are viewed outside the HTML report too (dark-mode markdown viewers).
    writeAtomic(file, await renderSvg({ ...p.spec, background: 'white' } as typeof p.spec));
    out.push({ file, title: p.title, caption: p.caption });
  }
  const keep = new Set(out.map((o) => basename(o.file)));
  for (const f of readdirSync(dir)) if (f.endsWith('.svg') && !keep.has(f)) rmSync(join(dir, f));
  return out;
}

/** One study's section of RESULTS.md, and what it found. */
export async function studySection(
  configPath: string,
  o: Required<Omit<ResultsOptions, 'configs' | 'thresholds'>> & { thresholds: Thresholds },
): Promise<{ md: string; result: StudyResult; data: ReportData | null; config: StudyConfig }> {
  const config = loadStudy(configPath);
  const description = configDescription(readFileSync(configPath, 'utf8'));
  const db = join(o.dbDir, `${config.name}.sqlite`);
  const cfg = relative(process.cwd(), configPath) || configPath;
  const runCmd = `${o.bin} study ${cfg} --db ${db}`;
  const gridCells = expandGrid(config).length;
  const result: StudyResult = {
    name: config.name,
    config: cfg,
    db,
    status: 'missing',
    cells: 0,
    gridCells,
    wallS: 0,
    plots: [],
    findings: [],
  };
  const head = [
    `## ${config.name}`,
    '',
    `Config: \`${cfg}\`. Reproduce: \`${runCmd}\` (or \`make study-${config.name}\`), then \`make results-doc\` to regenerate this page.`,
    '',
    ...(description.length ? [...description.map((l) => `> ${l}`), ''] : []),
  ];
  if (!existsSync(db)) {
    return { md: [...head, `**Not run yet:** \`${runCmd}\``, ''].join('\n'), result, data: null, config };
  }
  const store = new StudyStore(db, { readonly: true });
  let d: ReportData;
  let denseWall: number | null = null;
  let diag: DiagSummary | null = null;
  try {
    let raw: ReportData;
    try {
      raw = readReport(store);
    } catch (e) {
      if (e instanceof TapirError && e.code === 'E_DB')
        return {
          md: [...head, `**Not run yet** (\`${db}\` holds no study): \`${runCmd}\``, ''].join('\n'),
          result: { ...result, status: 'empty' },
          data: null,
          config,
        };
      throw e;
    }
    d = restrictToConfig(raw, config);
    diag = diagSummaryOf(d);
    const infos = store.denseInfos();
    const walls = infos.map((i) => i.wallS ?? i.wall_s).filter((x): x is number => typeof x === 'number');
    if (walls.length) denseWall = walls.reduce((a, b) => a + b, 0);
  } finally {
    store.close();
  }
  result.cells = d.cells.length;
  result.wallS = d.cells.reduce((a, c) => a + c.wallS, 0) + (denseWall ?? 0) + (diag?.wallS ?? 0);
  result.status = d.cells.length === 0 ? 'empty' : d.cells.length < gridCells ? 'partial' : 'complete';
  const status =
    result.status === 'complete'
      ? `complete: ${d.cells.length} of ${gridCells} cells`
      : `**incomplete: ${d.cells.length} of ${gridCells} cells** (re-run \`${runCmd}\` to finish; it resumes)`;
  const wall =
    `Wall time: ${minutes(result.wallS)}, the sum of the stored per-cell wall times (prune, zero-shot evaluation, fine-tuning)` +
    (diag ? ` and of the diagnostics runs (${minutes(diag.wallS)})` : '') +
    (denseWall !== null
      ? ` plus ${minutes(denseWall)} of dense reference and pixel baseline`
      : '; the dense reference, the raw-pixel baseline and model loading are not timed by the store and come on top') +
    '.';
  if (d.cells.length === 0) {
    return { md: [...head, `${status}. **Not run yet:** \`${runCmd}\``, ''].join('\n'), result, data: null, config };
  }
  const thresholds = config.targetTasks
    ? { ...o.thresholds, targetTasks: new RegExp(config.targetTasks, 'i') }
    : o.thresholds;
  const note = calibrationNote(d);
  result.findings = [
    ...(note ? [note] : []),
    ...computeFindings(d, thresholds),
    ...layerErrorFindings(d),
    ...diagnosticsFindings(diag),
  ];
  const plotDir = join(o.plots, config.name);
  const plots = await writePlots(d, plotDir);
  result.plots = plots.map((p) => p.file);
  const md = [
    ...head,
    `Status: ${status}. ${wall}`,
    '',
    ...findingsAndPlotsMd(result.findings, plots, o.out),
    '### Tables (`tapir report`)',
    '',
    ...reportTables(d).map((t) => demote(markdownTable(t)) + '\n'),
  ];
  return { md: md.join('\n'), result, data: d, config };
}

/**
 * The pooled section of studies sharing a `pool` name: their report data merged (mergeReports), so every finding,
 * interval and plot treats all members' cells as replicates (cells differing only by seed or source split).
 */
async function poolSection(
  name: string,
  members: readonly { result: StudyResult; data: ReportData; config: StudyConfig }[],
  o: Required<Omit<ResultsOptions, 'configs' | 'thresholds'>> & { thresholds: Thresholds },
): Promise<{ md: string; result: StudyResult }> {
  const d = mergeReports(members.map((m) => m.data));
  const targetTasks = members[0]!.config.targetTasks;
  const thresholds = targetTasks ? { ...o.thresholds, targetTasks: new RegExp(targetTasks, 'i') } : o.thresholds;
  const cells = members.reduce((a, m) => a + m.result.cells, 0);
  const gridCells = members.reduce((a, m) => a + m.result.gridCells, 0);
  const result: StudyResult = {
    name,
    config: members.map((m) => m.result.config).join(' + '),
    db: members.map((m) => m.result.db).join(' + '),
    status: cells < gridCells ? 'partial' : 'complete',
    cells,
    gridCells,
    wallS: members.reduce((a, m) => a + m.result.wallS, 0),
    plots: [],
    findings: computeFindings(d, thresholds),
  };
  const plots = await writePlots(d, join(o.plots, name));
  result.plots = plots.map((p) => p.file);
  const links = members.map((m) => `[${m.result.name}](#${slug(m.result.name)})`).join(', ');
  const md = [
    `## ${name}`,
    '',
    `Pooled over ${links}: ${cells} of ${gridCells} cells (${minutes(result.wallS)} of stored wall time). Every finding ` +
      'and plot below treats the members as one study: cells that differ only by seed or source split are averaged, ' +
      "and the 95 % intervals resample them as well as the test images. Each member's own section has its tables.",
    '',
    ...findingsAndPlotsMd(result.findings, plots, o.out),
  ];
  return { md: md.join('\n'), result };
}

/**
 * The target across studies: one line per distinct sentence (the studies that share it named together), studies
 * that cannot check it left out, then per head the configuration closest to the target over every study.
 */
function targetMd(studies: readonly StudyResult[]): string[] {
  const found = studies.flatMap((s) => s.findings.filter((f) => f.id === 'target').map((f) => ({ s, f })));
  const checkable = found.filter(({ f }) => f.closest !== undefined);
  if (checkable.length === 0)
    return ['- No study with cells at the target sparsities on held-out target tasks has run yet.'];
  const bySentence = new Map<string, string[]>();
  for (const { s, f } of checkable)
    for (const x of f.sentences) bySentence.set(x, [...(bySentence.get(x) ?? []), s.name]);
  const lines = [...bySentence].map(([x, names]) => `- ${names.map((n) => `[${n}](#${slug(n)})`).join(', ')}: ${x}`);
  const heads = [...new Set(checkable.flatMap(({ f }) => f.closest!.map((c) => c.head)))];
  for (const head of heads) {
    const all = checkable.flatMap(({ s, f }) => f.closest!.filter((c) => c.head === head).map((c) => ({ s, c })));
    const best = [...all].sort((a, b) => b.c.margin - a.c.margin)[0]!;
    const reached = all.filter((x) => x.c.reached).map((x) => x.s.name);
    lines.push(
      `- Across studies, ${head} head: ${
        reached.length
          ? `reached in ${reached.length} of ${all.length} studies (${reached.join(', ')}); `
          : `reached ` + `in none of ${all.length} studies; `
      }` +
        `largest worst-case margin: ${best.c.label} in [${best.s.name}](#${slug(best.s.name)}) (${best.c.worst}; each study's own target tasks).`,
    );
  }
  const skipped = found.filter(({ f }) => f.closest === undefined).map(({ s }) => s.name);
  if (skipped.length) lines.push(`- Not checked (no cell at a target sparsity): ${skipped.join(', ')}.`);
  return lines;
}

/** The issue's questions, each answered by the matching findings of every study (sentences only; the tables that
 * back them are in the study sections, linked). Finding ids: results-findings.ts and results-diagnostics.ts. */
export const QUESTIONS: readonly { q: string; ids: (id: string) => boolean }[] = [
  {
    q: 'Does P1 hold (zero-shot transfer after pruning), for which scores and up to which sparsity; which score preserves transfer best?',
    ids: (id) => id === 'p1',
  },
  { q: 'Does P2 hold (masked fine-tuning on the source recovers the held-out tasks)?', ids: (id) => id === 'p2' },
  {
    q: 'What BN repair, allocation, calibration size and calibration data change',
    ids: (id) => id.startsWith('axis-'),
  },
  {
    q: 'Where does the pruned network drift from the dense one, layer by layer (and how much does reconstruction remove)?',
    ids: (id) => id === 'layer-errors',
  },
  { q: 'Controls: random init, shuffled masks, raw pixels', ids: (id) => id === 'controls' },
  {
    q: 'Is curvature more aligned across tasks for the pre-trained model than for random init; does the second-order model predict the loss change?',
    ids: (id) => id === 'alignment' || id === 'taylor',
  },
];

function questionsMd(studies: readonly StudyResult[]): string[] {
  const out = [
    '## The questions, answered across studies',
    '',
    'Each line is a finding of the linked study, repeated from its section (where the table behind it is).',
    '',
  ];
  for (const { q, ids } of QUESTIONS) {
    const lines = studies.flatMap((s) =>
      s.findings
        .filter((f) => ids(f.id))
        .flatMap((f) => f.sentences.map((x) => `- [${s.name}](#${slug(s.name)}): ${x}`)),
    );
    out.push(`### ${q}`, '', ...(lines.length ? lines : ['- No study that answers this has run yet.']), '');
  }
  return out;
}

/** Generates the whole document and writes it atomically. */
export async function writeResults(o: ResultsOptions): Promise<ResultsSummary> {
  if (o.configs.length === 0)
    throw new TapirError('E_ARG', 'tapir results: no study config given', {
      fix: 'pass one or more configs, e.g. tapir results studies/*.yaml',
    });
  for (const c of o.configs)
    if (!existsSync(c))
      throw new TapirError('E_FILE', `study config ${c} does not exist`, {
        context: { file: c },
        fix: 'pass YAML files under studies/',
      });
  const thresholds: Thresholds = { ...DEFAULT_THRESHOLDS, ...o.thresholds };
  const opts = {
    out: o.out ?? 'docs/RESULTS.md',
    plots: o.plots ?? 'docs/results',
    dbDir: o.dbDir ?? 'results',
    bin: o.bin ?? 'bin/tapir',
    thresholds,
  };
  const sections: string[] = [];
  const studies: StudyResult[] = [];
  const members = new Map<string, { result: StudyResult; data: ReportData; config: StudyConfig }[]>();
  for (const c of o.configs) {
    const s = await studySection(c, opts);
    sections.push(s.md);
    studies.push(s.result);
    if (s.config.pool && s.data)
      members.set(s.config.pool, [...(members.get(s.config.pool) ?? []), { ...s, data: s.data }]);
  }
  // Pooled sections (two or more members with data) lead the document and the answers across studies.
  const pools: StudyResult[] = [];
  const poolMd: string[] = [];
  for (const [name, ms] of members) {
    if (ms.length < 2) continue;
    const p = await poolSection(name, ms, opts);
    pools.push(p.result);
    poolMd.push(p.md);
  }
  const cmd = `${opts.bin} results ${studies.map((s) => s.config).join(' ')}`;
  const t = thresholds;
  const doc = [
    '# Results',
    '',
    `Generated by \`${cmd}\` (\`make results\` runs every study first) from the committed configs under \`studies/\` and their result databases ` +
      `(\`${opts.dbDir}/<study>.sqlite\`; \`make results-save\` keeps compressed copies in git under \`docs/results/db/\`, and ` +
      `\`make results-doc\` unpacks them where ${opts.dbDir}/ lacks one, so this page regenerates from a clean clone). ` +
      'Do not edit by hand: every number below is computed from the databases, and every sentence under "Findings" is generated from the table below it.',
    '',
    `Thresholds: P1 holds where held-out zero-shot accuracy is ≥ ${pct(t.p1, 0)} of dense; P2 counts a rise of ≥ ${(100 * t.p2Gain).toFixed(1)} points ` +
      `of retained accuracy; ` +
      `target: ${t.target.map((x) => `≥ ${pct(x.retained, 0)} of dense at ${pct(x.sparsity, 0)}`).join(' and ')} on every held-out task (a study's ` +
      `\`target_tasks\` narrows that; each study section says which tasks); a tensor counts as emptied below ${pct(t.collapse, 0)} density.`,
    '',
    'How to read it:',
    '',
    '- *retained* = accuracy / dense accuracy of the same model on the same task. *dense head*: the ridge head ' +
      "fitted on the unpruned model's features, attached to the pruned backbone (the paper's zero-shot); *refit " +
      "head*: refitted on the pruned backbone's features (no backbone training either).",
    "- *held-out* = mean over the study's held-out tasks (a task some cell calibrated on is left out); cells " +
      'differing only by source or seed are averaged. A *configuration* is a score plus the value of every ablation ' +
      'axis that varies in the study.',
    '- "P1 holds up to s" means at every sparsity of the grid up to s. The target is checked on the WORST held-out target task, not the mean.',
    '- Wall time is what the database stores (per cell, and per diagnostics run); the dense reference, the pixel baseline and model loading are not ' +
      'timed and come on top. Studies ran on whatever machine ran them: the times say that, not the cost on an idle one.',
    '',
    '| study | config | status | cells | stored wall time |',
    '|---|---|---|---|---|',
    ...studies.map(
      (s) =>
        `| [${s.name}](#${slug(s.name)}) | \`${s.config}\` | ${s.status === 'missing' || s.status === 'empty' ? 'not run yet' : s.status} | ` +
        `${s.cells} / ${s.gridCells} | ${s.cells ? minutes(s.wallS) : '–'} |`,
    ),
    '',
    '## The target across studies',
    '',
    ...targetMd([...pools, ...studies]),
    '',
    ...questionsMd([...pools, ...studies]),
    ...poolMd,
    ...sections,
  ].join('\n');
  writeAtomic(opts.out, doc.replace(/\n{3,}/g, '\n\n').replace(/\n*$/, '\n'));
  return { out: opts.out, studies };
}
