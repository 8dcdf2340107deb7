/**
 * Benchmark options from argv (`--runs 5`, `--runs=5`) with an environment fallback (`BENCH_RUNS=5`).
 * Unknown flags and bad values fail with an error that names the option and the accepted values.
 */
import { TapirError } from '../../src/engine/errors.js';

export class BenchOptionError extends TapirError {
  constructor(message: string, option: string, fix: string) {
    super('E_BENCH_OPTION', message, { context: { option }, fix });
  }
}

/** Parses `--name value` / `--name=value` pairs; every flag must be in `known`. */
export function parseFlags(argv: readonly string[], known: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--'))
      throw new BenchOptionError(
        `unexpected argument '${a}'`,
        a,
        `use --name value; known options: ${known.map((k) => '--' + k).join(', ')}`,
      );
    const eq = a.indexOf('=');
    const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
    if (!known.includes(name))
      throw new BenchOptionError(
        `unknown option '--${name}'`,
        name,
        `known options: ${known.map((k) => '--' + k).join(', ')}`,
      );
    const value = eq < 0 ? argv[++i] : a.slice(eq + 1);
    if (value === undefined || value === '')
      throw new BenchOptionError(`option '--${name}' needs a value`, name, `pass --${name} <value>`);
    out.set(name, value);
  }
  return out;
}

/** `--name` from argv, else `BENCH_<NAME>` from the environment, else undefined. */
export function option(flags: ReadonlyMap<string, string>, name: string): string | undefined {
  return flags.get(name) ?? process.env[`BENCH_${name.toUpperCase().replace(/-/g, '_')}`];
}

export function intOption(flags: ReadonlyMap<string, string>, name: string, dflt: number, min: number): number {
  const raw = option(flags, name);
  if (raw === undefined) return dflt;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min)
    throw new BenchOptionError(
      `--${name} must be an integer ≥ ${min}, got '${raw}'`,
      name,
      `pass e.g. --${name} ${dflt}`,
    );
  return v;
}

/** A comma-separated subset of `choices` (all of them when absent), in the order of `choices`. */
export function listOption<T extends string>(
  flags: ReadonlyMap<string, string>,
  name: string,
  choices: readonly T[],
): T[] {
  const raw = option(flags, name);
  if (raw === undefined) return [...choices];
  const picked = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const p of picked)
    if (!(choices as readonly string[]).includes(p))
      throw new BenchOptionError(
        `--${name}: unknown value '${p}'`,
        name,
        `choose from ${choices.join(', ')} (comma-separated)`,
      );
  if (picked.length === 0) throw new BenchOptionError(`--${name} is empty`, name, `choose from ${choices.join(', ')}`);
  return choices.filter((c) => picked.includes(c));
}

/** Exactly one of `choices` (the first when absent). */
export function choiceOption<T extends string>(
  flags: ReadonlyMap<string, string>,
  name: string,
  choices: readonly [T, ...T[]],
): T {
  const raw = option(flags, name);
  if (raw === undefined) return choices[0];
  if (!(choices as readonly string[]).includes(raw))
    throw new BenchOptionError(`--${name}: unknown value '${raw}'`, name, `choose one of ${choices.join(', ')}`);
  return raw as T;
}
