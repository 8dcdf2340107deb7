/** Output conventions: results to stdout (a table, or one JSON document with --json), progress to stderr. */
import { TapirError } from '../engine/index.js';

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}
export const processIo: Io = {
  out: (s) => process.stdout.write(s.endsWith('\n') ? s : s + '\n'),
  err: (s) => process.stderr.write(s.endsWith('\n') ? s : s + '\n'),
};

/** Prints `value` as JSON, or through `render` as text. */
export function emit(io: Io, json: boolean, value: unknown, render: () => string): void {
  io.out(json ? JSON.stringify(value, null, 2) : render());
}

/** Fixed-width table of rows; numbers right-aligned. */
export function table(header: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cells = [header, ...rows].map((r) => r.map((c) => (typeof c === 'number' ? fmt(c) : c)));
  const w = header.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  const line = (r: readonly string[], raw: readonly (string | number)[]) =>
    r
      .map((c, i) => (typeof raw[i] === 'number' ? c.padStart(w[i]!) : c.padEnd(w[i]!)))
      .join('  ')
      .trimEnd();
  return [
    line(cells[0]!, header),
    w.map((n) => '-'.repeat(n)).join('  '),
    ...cells.slice(1).map((r, i) => line(r, rows[i]!)),
  ].join('\n');
}

function fmt(x: number): string {
  if (Number.isInteger(x)) return String(x);
  return Math.abs(x) >= 1e4 || Math.abs(x) < 1e-3 ? x.toExponential(3) : x.toFixed(4);
}

/** Renders any thrown value for the user: message and fix, or `{"error": …}` under --json. */
export function renderError(e: unknown, json: boolean): string {
  const err =
    e instanceof TapirError
      ? e.toJSON()
      : { code: 'E_INTERNAL', name: (e as Error)?.name ?? 'Error', message: String((e as Error)?.message ?? e) };
  if (json) return JSON.stringify({ error: err }, null, 2);
  return `tapir: error: ${err.message}` + ('fix' in err && err.fix ? `\n  fix: ${err.fix}` : '');
}
