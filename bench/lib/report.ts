/** Benchmark output (STYLE §11): a human table, then exactly one JSON object as the last stdout line. */

/** Fixed-width text table; numbers are right-aligned, everything else left-aligned. */
export function renderTable(header: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cells = [header.map(String), ...rows.map((r) => r.map((c) => (typeof c === 'number' ? fmt(c) : c)))];
  const width = header.map((_, j) => Math.max(...cells.map((r) => (r[j] ?? '').length)));
  const numeric = header.map((_, j) => rows.length > 0 && rows.every((r) => typeof r[j] === 'number'));
  const line = (r: readonly string[]): string =>
    r
      .map((c, j) => (numeric[j] ? c.padStart(width[j]!) : c.padEnd(width[j]!)))
      .join('  ')
      .trimEnd();
  return [line(cells[0]!), width.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

/** Three significant digits, without exponent noise for ordinary timings. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0 || Math.abs(x) >= 100) return x.toFixed(0);
  if (Math.abs(x) >= 1e-3) return x.toPrecision(3);
  return x.toExponential(1);
}

/** Rounds for JSON so the summary line stays readable. */
export function round(x: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Prints the summary object as the final line of stdout (stderr carries progress). */
export function emitSummary(summary: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(summary) + '\n');
}

/** Progress to stderr, so stdout stays table + JSON. */
export function progress(msg: string): void {
  process.stderr.write(msg + '\n');
}
