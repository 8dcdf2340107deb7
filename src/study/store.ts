/**
 * The study results store: one SQLite file (better-sqlite3 12, WAL). A cell's rows (accuracies, per-tensor
 * densities, packed masks, fine-tuning summary) are written in ONE transaction together with the cell's `done`
 * marker, so a process killed at any point leaves either the whole cell or none of it: re-running recomputes
 * exactly the missing cells, and UNIQUE keys make a duplicate row impossible rather than merely unlikely.
 *
 * Identity before any write: the file's SQLite `application_id` is 'tapr' and its `user_version` the store version.
 * A file that is another program's database (another application id, or tables of its own without tapir's), or a
 * newer tapir's, is refused untouched. One writer at a time: a writable open takes the `writer` row (pid, host,
 * since); a second process gets "held by pid N since …" while that process lives, and takes over a stale row.
 */
import { existsSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { createRequire } from 'node:module';
import { TapirError } from '../engine/index.js';
import { DIAGNOSTICS_SCHEMA, type DiagnosticsRecord } from './diagnostics-store.js';

/** The part of better-sqlite3's API used here (the package ships no types). */
interface Statement {
  run(...params: unknown[]): { changes: number; lastInsertRowid: number | bigint };
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}
interface Db {
  prepare(sql: string): Statement;
  exec(sql: string): void;
  pragma(s: string, o?: { simple?: boolean }): unknown;
  transaction<A extends unknown[]>(fn: (...a: A) => void): (...a: A) => void;
  close(): void;
}
const Database = createRequire(import.meta.url)('better-sqlite3') as new (
  file: string,
  o?: { readonly?: boolean; fileMustExist?: boolean },
) => Db;

export const STORE_VERSION = 1;
/** SQLite application_id of a tapir study database: 'tapr' in ASCII. */
export const APPLICATION_ID = 0x74617072;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS studies (name TEXT NOT NULL, protocol TEXT NOT NULL, config TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (name, protocol));
CREATE TABLE IF NOT EXISTS cells (
  key TEXT PRIMARY KEY, study TEXT NOT NULL, protocol TEXT NOT NULL, model TEXT NOT NULL, control TEXT NOT NULL,
  score TEXT NOT NULL, score_spec TEXT NOT NULL, sparsity REAL NOT NULL, source TEXT NOT NULL, seed INTEGER NOT NULL,
  achieved_sparsity REAL NOT NULL, info TEXT NOT NULL, wall_s REAL NOT NULL, finished_at TEXT NOT NULL,
  allocation TEXT, bn TEXT NOT NULL DEFAULT 'none', calibration INTEGER, calib_data TEXT NOT NULL DEFAULT 'source');
CREATE TABLE IF NOT EXISTS results (
  cell TEXT NOT NULL REFERENCES cells(key), task TEXT NOT NULL, phase TEXT NOT NULL, head TEXT NOT NULL,
  accuracy REAL NOT NULL, n_train INTEGER NOT NULL, n_test INTEGER NOT NULL, PRIMARY KEY (cell, task, phase, head));
CREATE TABLE IF NOT EXISTS densities (
  cell TEXT NOT NULL REFERENCES cells(key), tensor TEXT NOT NULL, ord INTEGER NOT NULL, numel INTEGER NOT NULL, kept INTEGER NOT NULL,
  PRIMARY KEY (cell, tensor));
CREATE TABLE IF NOT EXISTS masks (cell TEXT NOT NULL REFERENCES cells(key), tensor TEXT NOT NULL, bits BLOB NOT NULL, PRIMARY KEY (cell, tensor));
CREATE TABLE IF NOT EXISTS layer_errors (
  cell TEXT NOT NULL REFERENCES cells(key), tensor TEXT NOT NULL, ord INTEGER NOT NULL, rel_error REAL, PRIMARY KEY (cell, tensor));
CREATE TABLE IF NOT EXISTS dense (
  model TEXT NOT NULL, protocol TEXT NOT NULL, task TEXT NOT NULL, head TEXT NOT NULL, accuracy REAL NOT NULL,
  n_train INTEGER NOT NULL, n_test INTEGER NOT NULL, classes TEXT NOT NULL, PRIMARY KEY (model, protocol, task, head));
CREATE TABLE IF NOT EXISTS layers (
  model TEXT NOT NULL, tensor TEXT NOT NULL, ord INTEGER NOT NULL, op TEXT NOT NULL, shape TEXT NOT NULL, numel INTEGER NOT NULL,
  macs INTEGER NOT NULL, prunable INTEGER NOT NULL, PRIMARY KEY (model, tensor));
CREATE TABLE IF NOT EXISTS dense_done (model TEXT NOT NULL, protocol TEXT NOT NULL, info TEXT NOT NULL, PRIMARY KEY (model, protocol));
CREATE TABLE IF NOT EXISTS correct (
  cell TEXT NOT NULL REFERENCES cells(key), task TEXT NOT NULL, phase TEXT NOT NULL, head TEXT NOT NULL, bits BLOB NOT NULL,
  PRIMARY KEY (cell, task, phase, head));
CREATE TABLE IF NOT EXISTS dense_correct (
  model TEXT NOT NULL, protocol TEXT NOT NULL, task TEXT NOT NULL, head TEXT NOT NULL, bits BLOB NOT NULL,
  PRIMARY KEY (model, protocol, task, head));
CREATE TABLE IF NOT EXISTS cell_errors (
  key TEXT PRIMARY KEY, study TEXT NOT NULL, protocol TEXT NOT NULL, model TEXT NOT NULL, control TEXT NOT NULL, score TEXT NOT NULL,
  sparsity REAL NOT NULL, source TEXT NOT NULL, seed INTEGER NOT NULL, error TEXT NOT NULL, worker TEXT, attempts INTEGER NOT NULL, failed_at TEXT NOT NULL);
`;

/**
 * Ablation-axis columns of `cells`, added to databases written before they existed (ALTER TABLE … ADD COLUMN):
 * such cells ran with BN repair none and source calibration images; allocation and calibration stay NULL there,
 * meaning "the study config's value" (the report reads it from `studies.config`).
 */
const CELL_AXIS_COLUMNS: readonly [string, string][] = [
  ['allocation', 'TEXT'],
  ['bn', "TEXT NOT NULL DEFAULT 'none'"],
  ['calibration', 'INTEGER'],
  ['calib_data', "TEXT NOT NULL DEFAULT 'source'"],
];

export interface CellRecord {
  key: string;
  study: string;
  protocol: string;
  model: string;
  control: string;
  score: string;
  scoreSpec: unknown;
  sparsity: number;
  source: string;
  seed: number;
  achievedSparsity: number;
  info: Record<string, unknown>;
  wallS: number;
  /** Ablation axes (absent: NULL / the defaults, as for cells written before the axes existed). */
  allocation?: string;
  bn?: string;
  calibration?: number;
  calibData?: string;
}
/** What names a cell in every table that has one: its key and the grid coordinates it was made from. */
export interface CellIdentity {
  key: string;
  study: string;
  protocol: string;
  model: string;
  control: string;
  score: string;
  sparsity: number;
  source: string;
  seed: number;
}
/** A cell that failed on a worker (`tapir study --redis`): its spec, the error as the worker reported it, and who ran it. */
export interface CellErrorRow extends CellIdentity {
  error: string;
  worker: string | null;
  attempts: number;
  failed_at?: string;
}
export interface ResultRow {
  task: string;
  phase: string;
  head: string;
  accuracy: number;
  nTrain: number;
  nTest: number;
  /** Per test image, packed bits (LSB first, test-split order): 1 where the prediction was right. Absent for rows
   * without per-image predictions (the fine-tuned trained head) and in stores written before they were kept. */
  correct?: Uint8Array;
}
export interface DensityRow {
  tensor: string;
  numel: number;
  kept: number;
}
/** ‖f_dense − f_pruned‖² / ‖f_dense‖² at a pruned layer's output on the cell's calibration images (after BN repair). */
export interface LayerErrorRow {
  tensor: string;
  relError: number;
}
export interface DenseRow {
  task: string;
  head: string;
  accuracy: number;
  nTrain: number;
  nTest: number;
  classes: readonly string[];
  /** As ResultRow.correct. */
  correct?: Uint8Array;
}
export interface LayerRow {
  tensor: string;
  op: string;
  shape: readonly number[];
  numel: number;
  macs: number;
  prunable: boolean;
}

const blob = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

export class StudyStore {
  readonly #db: Db;
  /** Whether this store holds the writer row (see the file comment). */
  #writer = false;
  readonly file: string;

  constructor(file: string, o: { readonly?: boolean } = {}) {
    this.file = file;
    if (o.readonly && !existsSync(file))
      throw new TapirError('E_DB', `results database ${file} does not exist`, {
        context: { db: file },
        fix: 'run `tapir study <config.yaml> --db <file>` first, or pass the right --db',
      });
    if (existsSync(file) && statSync(file).isDirectory())
      throw new TapirError('E_DB', `${file} is a directory, not a results database`, {
        context: { db: file },
        fix: 'pass a file path, e.g. --db results.sqlite',
      });
    try {
      this.#db = new Database(file, o.readonly ? { readonly: true, fileMustExist: true } : {});
    } catch (e) {
      throw new TapirError('E_DB', `cannot open results database ${file}: ${(e as Error).message}`, {
        context: { db: file },
        fix: o.readonly ? 'run `tapir study` first, or pass the right --db' : 'check the path and permissions',
      });
    }
    this.#checkIdentity(o.readonly ?? false);
    if (o.readonly) return;
    this.#takeWriter();
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = NORMAL');
    this.#db.pragma('foreign_keys = ON');
    this.#db.exec(SCHEMA);
    const have = new Set((this.#db.prepare('PRAGMA table_info(cells)').all() as { name: string }[]).map((r) => r.name));
    for (const [col, type] of CELL_AXIS_COLUMNS)
      if (!have.has(col)) this.#db.exec(`ALTER TABLE cells ADD COLUMN ${col} ${type}`);
    this.#db.exec(DIAGNOSTICS_SCHEMA);
    const v = this.#db.prepare('SELECT value FROM meta WHERE key = ?').get('store_version') as
      { value: string } | undefined;
    if (v && Number(v.value) !== STORE_VERSION)
      throw new TapirError('E_DB', `${file} has store version ${v.value}, this tapir writes ${STORE_VERSION}`, {
        fix: 'write to a new --db file',
      });
    this.#db
      .prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)')
      .run('store_version', String(STORE_VERSION));
  }

  /** Tables of the file (throws a clear error when the file is not a SQLite database at all). */
  #tables(): string[] {
    try {
      return (this.#db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map(
        (r) => r.name,
      );
    } catch (e) {
      this.#db.close();
      throw new TapirError('E_DB', `${this.file} is not a SQLite database (${(e as Error).message})`, {
        context: { db: this.file },
        fix: 'pass the results database `tapir study` wrote (--db), or a new file name',
      });
    }
  }

  /** Refuses, before anything is written, a file that is not a tapir store of a version this tapir reads. */
  #checkIdentity(readonly: boolean): void {
    const tables = this.#tables();
    const appId = Number(this.#db.pragma('application_id', { simple: true }));
    const version = Number(this.#db.pragma('user_version', { simple: true }));
    const fail = (why: string, fix: string) => {
      this.#db.close();
      throw new TapirError('E_DB', `${this.file} ${why}; it was left untouched`, { context: { db: this.file }, fix });
    };
    // Written by tapir before the identity existed: tapir's own tables and a store_version row.
    const legacy = appId === 0 && tables.includes('meta') && tables.includes('cells') && tables.includes('studies');
    if (appId !== APPLICATION_ID && !legacy) {
      if (appId !== 0)
        fail(
          `is another program's database (SQLite application id 0x${appId.toString(16)}, tapir's is 0x${APPLICATION_ID.toString(16)})`,
          'pass a new file name with --db',
        );
      if (tables.length > 0)
        fail(
          `is another program's database (tables ${tables.slice(0, 5).join(', ')}${tables.length > 5 ? ', …' : ''}, not a tapir study store)`,
          'pass a new file name with --db',
        );
      if (readonly) fail('holds no study yet (an empty database)', 'run `tapir study <config.yaml> --db <file>` first');
    }
    if (version > STORE_VERSION)
      fail(
        `was written by a newer tapir (store version ${version}, this tapir reads up to ${STORE_VERSION})`,
        'update tapir, or write to a new --db file',
      );
    if (readonly) return;
    this.#db.pragma(`application_id = ${APPLICATION_ID}`);
    this.#db.pragma(`user_version = ${STORE_VERSION}`);
  }

  /** One writer at a time (see the file comment); the row goes when the store is closed. */
  #takeWriter(): void {
    this.#db.exec(
      'CREATE TABLE IF NOT EXISTS writer (id INTEGER PRIMARY KEY CHECK (id = 1), pid INTEGER NOT NULL, host TEXT NOT NULL, since TEXT NOT NULL)',
    );
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch (e) {
        return (e as NodeJS.ErrnoException).code === 'EPERM';
      }
    };
    const take = this.#db.transaction(() => {
      const w = this.#db.prepare('SELECT pid, host, since FROM writer WHERE id = 1').get() as
        { pid: number; host: string; since: string } | undefined;
      if (w && w.pid !== process.pid && (w.host !== hostname() || alive(w.pid)))
        throw new TapirError(
          'E_DB_BUSY',
          `${this.file} is held by pid ${w.pid} on ${w.host} since ${w.since}: another tapir study is writing to it`,
          {
            context: { db: this.file, pid: w.pid, host: w.host, since: w.since },
            fix: `wait for that run to finish (it resumes the same cells), or stop it (kill ${w.pid}); for a parallel run pass another --db`,
          },
        );
      this.#db
        .prepare('INSERT OR REPLACE INTO writer (id, pid, host, since) VALUES (1, ?, ?, ?)')
        .run(process.pid, hostname(), new Date().toISOString());
    });
    try {
      take();
    } catch (e) {
      this.#db.close();
      throw e;
    }
    this.#writer = true;
  }

  close(): void {
    if (this.#writer) {
      try {
        this.#db.prepare('DELETE FROM writer WHERE id = 1 AND pid = ?').run(process.pid);
      } catch {
        /* closing anyway */
      }
      this.#writer = false;
    }
    this.#db.close();
  }

  recordStudy(name: string, protocol: string, config: unknown): void {
    this.#db
      .prepare('INSERT OR IGNORE INTO studies (name, protocol, config, created_at) VALUES (?, ?, ?, ?)')
      .run(name, protocol, JSON.stringify(config), new Date().toISOString());
  }

  doneKeys(): Set<string> {
    return new Set((this.#db.prepare('SELECT key FROM cells').all() as { key: string }[]).map((r) => r.key));
  }

  denseDone(model: string, protocol: string): boolean {
    return (
      this.#db.prepare('SELECT 1 FROM dense_done WHERE model = ? AND protocol = ?').get(model, protocol) !== undefined
    );
  }

  /** The dense reference rows and layer table of a model, in one transaction. */
  writeDense(
    model: string,
    protocol: string,
    rows: readonly DenseRow[],
    layers: readonly LayerRow[],
    info: Record<string, unknown>,
  ): void {
    const insDense = this.#db.prepare(
      'INSERT INTO dense (model, protocol, task, head, accuracy, n_train, n_test, classes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    );
    const insLayer = this.#db.prepare(
      'INSERT OR REPLACE INTO layers (model, tensor, ord, op, shape, numel, macs, prunable) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    );
    const insCorrect = this.#db.prepare(
      'INSERT INTO dense_correct (model, protocol, task, head, bits) VALUES (?, ?, ?, ?, ?)',
    );
    const done = this.#db.prepare('INSERT INTO dense_done (model, protocol, info) VALUES (?, ?, ?)');
    this.#db.transaction(() => {
      for (const r of rows) {
        insDense.run(model, protocol, r.task, r.head, r.accuracy, r.nTrain, r.nTest, JSON.stringify(r.classes));
        if (r.correct) insCorrect.run(model, protocol, r.task, r.head, blob(r.correct));
      }
      layers.forEach((l, i) =>
        insLayer.run(model, l.tensor, i, l.op, JSON.stringify(l.shape), l.numel, l.macs, l.prunable ? 1 : 0),
      );
      done.run(model, protocol, JSON.stringify(info));
    })();
  }

  /** Everything a cell produced, committed at once (see the file comment). */
  writeCell(
    c: CellRecord,
    results: readonly ResultRow[],
    densities: readonly DensityRow[],
    masks: ReadonlyMap<string, Uint8Array>,
    layerErrors: readonly LayerErrorRow[] = [],
  ): void {
    const insCell = this.#db.prepare(
      `INSERT INTO cells (key, study, protocol, model, control, score, score_spec, sparsity, source, seed, achieved_sparsity, info, wall_s, ` +
        `finished_at,
      allocation, bn, calibration, calib_data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const insRes = this.#db.prepare(
      'INSERT INTO results (cell, task, phase, head, accuracy, n_train, n_test) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    const insCorrect = this.#db.prepare('INSERT INTO correct (cell, task, phase, head, bits) VALUES (?, ?, ?, ?, ?)');
    const insDen = this.#db.prepare('INSERT INTO densities (cell, tensor, ord, numel, kept) VALUES (?, ?, ?, ?, ?)');
    const insMask = this.#db.prepare('INSERT INTO masks (cell, tensor, bits) VALUES (?, ?, ?)');
    const insErr = this.#db.prepare('INSERT INTO layer_errors (cell, tensor, ord, rel_error) VALUES (?, ?, ?, ?)');
    const clearError = this.#db.prepare('DELETE FROM cell_errors WHERE key = ?');
    this.#db.transaction(() => {
      clearError.run(c.key);
      insCell.run(
        c.key,
        c.study,
        c.protocol,
        c.model,
        c.control,
        c.score,
        JSON.stringify(c.scoreSpec),
        c.sparsity,
        c.source,
        c.seed,
        c.achievedSparsity,
        JSON.stringify(c.info),
        c.wallS,
        new Date().toISOString(),
        c.allocation ?? null,
        c.bn ?? 'none',
        c.calibration ?? null,
        c.calibData ?? 'source',
      );
      for (const r of results) {
        insRes.run(c.key, r.task, r.phase, r.head, r.accuracy, r.nTrain, r.nTest);
        if (r.correct) insCorrect.run(c.key, r.task, r.phase, r.head, blob(r.correct));
      }
      densities.forEach((d, i) => insDen.run(c.key, d.tensor, i, d.numel, d.kept));
      for (const [t, bits] of masks) insMask.run(c.key, t, blob(bits));
      layerErrors.forEach((e, i) => insErr.run(c.key, e.tensor, i, Number.isFinite(e.relError) ? e.relError : null));
    })();
  }

  /** Records (or replaces) a cell's failure; a later successful write of the cell removes it. */
  writeCellError(e: CellErrorRow): void {
    this.#db
      .prepare(
        `INSERT OR REPLACE INTO cell_errors (key, study, protocol, model, control, score, sparsity, source, seed, error, worker, attempts, failed_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        e.key,
        e.study,
        e.protocol,
        e.model,
        e.control,
        e.score,
        e.sparsity,
        e.source,
        e.seed,
        e.error,
        e.worker,
        e.attempts,
        new Date().toISOString(),
      );
  }

  clearCellError(key: string): void {
    this.#db.prepare('DELETE FROM cell_errors WHERE key = ?').run(key);
  }

  /** Failed cells, oldest first (none in databases that predate the table). */
  cellErrors(): CellErrorRow[] {
    if (!this.#hasTable('cell_errors')) return [];
    return this.#db.prepare('SELECT * FROM cell_errors ORDER BY failed_at, rowid').all() as CellErrorRow[];
  }

  /** Whether the study diagnostics of `model` with this settings hash are stored (src/study/diagnostics.ts). */
  diagnosticsDone(model: string, settings: string): boolean {
    return (
      this.#db.prepare('SELECT 1 FROM diag_done WHERE model = ? AND settings = ?').get(model, settings) !== undefined
    );
  }

  /** One model's diagnostics and their done marker, in one transaction (NaN → NULL: SQLite has no NaN). */
  writeDiagnostics(r: DiagnosticsRecord): void {
    const n = (x: number) => (Number.isFinite(x) ? x : null);
    const ins = (table: string, cols: number) =>
      this.#db.prepare(`INSERT INTO ${table} VALUES (${new Array(cols).fill('?').join(', ')})`);
    const [spec, pair, loss, done] = [
      ins('diag_spectra', 14),
      ins('diag_pairs', 8),
      ins('diag_loss_change', 11),
      ins('diag_done', 7),
    ];
    this.#db.transaction(() => {
      r.spectra.forEach((t, i) =>
        spec.run(
          r.model,
          r.settings,
          t.task,
          i,
          t.images,
          n(t.loss),
          n(t.trace),
          n(t.traceStderr),
          n(t.weightedTrace),
          n(t.weightedStderr),
          JSON.stringify(t.eigenvalues),
          JSON.stringify(t.residuals),
          JSON.stringify(t.layers),
          JSON.stringify(t.head),
        ),
      );
      for (const p of r.pairs)
        pair.run(r.model, r.settings, p.a, p.b, n(p.cosine), n(p.spearman), n(p.overlap), JSON.stringify(p.iou));
      for (const l of r.lossChange)
        loss.run(
          r.model,
          r.settings,
          l.maskKind,
          l.maskFrom,
          l.score,
          l.target,
          l.task,
          n(l.sparsity),
          n(l.first),
          n(l.second),
          n(l.measured),
        );
      done.run(
        r.model,
        r.settings,
        r.study,
        JSON.stringify(r.spec),
        JSON.stringify(r.info),
        r.wallS,
        new Date().toISOString(),
      );
    })();
  }

  // ---- typed reads: the only SQL outside this file is in tests ----------------------------------------------

  #hasTable(name: string): boolean {
    return this.#db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
  }

  /** Every stored study protocol, oldest first (config as JSON text). */
  studyRows(): { name: string; protocol: string; config: string }[] {
    return this.#db.prepare('SELECT name, protocol, config FROM studies ORDER BY created_at').all() as {
      name: string;
      protocol: string;
      config: string;
    }[];
  }

  /** Every finished cell in write order; axis columns absent in databases written before they existed. */
  cellRows(): StoredCell[] {
    return this.#db.prepare('SELECT * FROM cells ORDER BY rowid').all() as StoredCell[];
  }

  /** Dense reference and pixel-baseline rows (model 'pixels'). */
  denseRows(): {
    model: string;
    protocol: string;
    task: string;
    head: string;
    accuracy: number;
    n_train: number;
    n_test: number;
    classes: string;
  }[] {
    return this.#db.prepare('SELECT * FROM dense').all() as ReturnType<StudyStore['denseRows']>;
  }

  /** The info JSON of every dense reference run. */
  denseInfos(): Record<string, unknown>[] {
    return (this.#db.prepare('SELECT info FROM dense_done').all() as { info: string }[]).map(
      (r) => JSON.parse(r.info) as Record<string, unknown>,
    );
  }

  resultRows(): { cell: string; task: string; phase: string; head: string; accuracy: number }[] {
    return this.#db.prepare('SELECT cell, task, phase, head, accuracy FROM results ORDER BY rowid').all() as ReturnType<
      StudyStore['resultRows']
    >;
  }

  /**
   * Per-image correctness (packed bits, see ResultRow.correct) of every result row that kept it, keyed
   * `cell \t task \t phase \t head`; empty for stores written before it was kept.
   */
  correctBits(): Map<string, Uint8Array> {
    return this.#bits('correct', ['cell', 'task', 'phase', 'head']);
  }

  /** As correctBits for the dense reference rows, keyed `model \t protocol \t task \t head`. */
  denseCorrectBits(): Map<string, Uint8Array> {
    return this.#bits('dense_correct', ['model', 'protocol', 'task', 'head']);
  }

  #bits(table: 'correct' | 'dense_correct', key: readonly string[]): Map<string, Uint8Array> {
    if (!this.#tables().includes(table)) return new Map();
    const rows = this.#db.prepare(`SELECT ${key.join(', ')}, bits FROM ${table}`).all() as Record<string, unknown>[];
    return new Map(
      rows.map((r) => [key.map((k) => String(r[k])).join('\t'), new Uint8Array(r.bits as Buffer)] as const),
    );
  }

  layerRows(): {
    model: string;
    tensor: string;
    op: string;
    shape: string;
    numel: number;
    macs: number;
    prunable: number;
  }[] {
    return this.#db.prepare('SELECT * FROM layers ORDER BY model, ord').all() as ReturnType<StudyStore['layerRows']>;
  }

  densityRows(): { cell: string; tensor: string; ord: number; numel: number; kept: number }[] {
    return this.#db
      .prepare('SELECT cell, tensor, ord, numel, kept FROM densities ORDER BY cell, ord')
      .all() as ReturnType<StudyStore['densityRows']>;
  }

  /** Per-layer relative errors (none in databases written before they were stored). */
  layerErrorRows(): { cell: string; tensor: string; ord: number; rel_error: number | null }[] {
    if (!this.#hasTable('layer_errors')) return [];
    return this.#db
      .prepare('SELECT cell, tensor, ord, rel_error FROM layer_errors ORDER BY cell, ord')
      .all() as ReturnType<StudyStore['layerErrorRows']>;
  }

  /** The packed masks of one cell, by tensor name. */
  masksOf(cell: string): Map<string, Uint8Array> {
    return new Map(
      (
        this.#db.prepare('SELECT tensor, bits FROM masks WHERE cell = ? ORDER BY tensor').all(cell) as {
          tensor: string;
          bits: Buffer;
        }[]
      ).map((m) => [m.tensor, new Uint8Array(m.bits)]),
    );
  }

  /** Diagnostics runs in order (none when the database predates their tables). */
  diagnosticsRuns(): { model: string; settings: string; info: string; wall_s: number }[] {
    if (!this.#hasTable('diag_done')) return [];
    return this.#db
      .prepare('SELECT model, settings, info, wall_s FROM diag_done ORDER BY finished_at, rowid')
      .all() as ReturnType<StudyStore['diagnosticsRuns']>;
  }

  diagnosticsSpectra(
    model: string,
    settings: string,
  ): {
    task: string;
    images: number;
    loss: number | null;
    trace: number | null;
    trace_stderr: number | null;
    weighted_trace: number | null;
    weighted_stderr: number | null;
    eigenvalues: string;
    head: string;
  }[] {
    return this.#db
      .prepare('SELECT * FROM diag_spectra WHERE model = ? AND settings = ? ORDER BY ord')
      .all(model, settings) as ReturnType<StudyStore['diagnosticsSpectra']>;
  }

  diagnosticsPairs(
    model: string,
    settings: string,
  ): { a: string; b: string; cosine: number | null; spearman: number | null; overlap: number | null; iou: string }[] {
    return this.#db
      .prepare('SELECT * FROM diag_pairs WHERE model = ? AND settings = ? ORDER BY rowid')
      .all(model, settings) as ReturnType<StudyStore['diagnosticsPairs']>;
  }

  diagnosticsLossChange(
    model: string,
    settings: string,
  ): {
    mask_kind: 'obd' | 'cell';
    mask_from: string;
    score: string;
    target: number | null;
    task: string;
    sparsity: number | null;
    first: number | null;
    second: number | null;
    measured: number | null;
  }[] {
    return this.#db
      .prepare('SELECT * FROM diag_loss_change WHERE model = ? AND settings = ? ORDER BY rowid')
      .all(model, settings) as ReturnType<StudyStore['diagnosticsLossChange']>;
  }

  /** Raw SELECT, for tests that look at the stored rows directly. @internal */
  all<T>(sql: string, ...params: unknown[]): T[] {
    return this.#db.prepare(sql).all(...params) as T[];
  }
}

/** A stored `cells` row (axis columns NULL or absent for cells written before the axes existed). */
export interface StoredCell extends CellIdentity {
  achieved_sparsity: number;
  wall_s: number;
  info: string;
  allocation?: string | null;
  bn?: string | null;
  calibration?: number | null;
  calib_data?: string | null;
}

/** Intersection-over-union of two packed masks of the same length (1 when both are empty). */
export function maskIoU(a: Uint8Array, b: Uint8Array): { inter: number; union: number } {
  if (a.length !== b.length)
    throw new TapirError('E_DB', `mask overlap: packed masks differ in length (${a.length} vs ${b.length} bytes)`, {
      fix: 'compare masks of the same model',
    });
  let inter = 0;
  let union = 0;
  for (let i = 0; i < a.length; i++) {
    inter += POP[a[i]! & b[i]!]!;
    union += POP[a[i]! | b[i]!]!;
  }
  return { inter, union };
}
const POP = Uint8Array.from({ length: 256 }, (_, i) => {
  let c = 0;
  for (let x = i; x; x >>= 1) c += x & 1;
  return c;
});
