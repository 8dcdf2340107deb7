/**
 * Task ids: `<dataset>` (all classes) or `<dataset>[<selection>]`, where the selection is a comma list of
 * class indices, index ranges `a-b` (inclusive) and class names: `fashion-mnist[0-4]`, `mnist[0,2,5]`,
 * `clipart[animals,food]`, `folder:/data/pets[cat,dog]`.
 */
import { DataError } from './errors.js';

export interface TaskIdParts {
  readonly dataset: string;
  /** Raw selection items, or null for "every class". */
  readonly selection: readonly string[] | null;
}

export function parseTaskId(id: string): TaskIdParts {
  const s = id.trim();
  if (!s)
    throw new DataError('empty task id', { fix: 'write e.g. fashion-mnist[0-4], mnist, clipart or folder:/path' });
  if (!s.endsWith(']')) return { dataset: s, selection: null };
  const open = s.lastIndexOf('[');
  if (open <= 0)
    throw new DataError(`task '${id}': unbalanced ']'`, {
      context: { task: id },
      fix: 'write <dataset>[<classes>], e.g. mnist[0-4]',
    });
  const items = s
    .slice(open + 1, -1)
    .split(',')
    .map((x) => x.trim());
  if (items.some((x) => x === ''))
    throw new DataError(`task '${id}': empty item in class list`, {
      context: { task: id },
      fix: 'separate classes by single commas: mnist[0,2,5]',
    });
  return { dataset: s.slice(0, open), selection: items };
}

/** Resolves selection items to dataset class indices, in the order given. */
export function resolveClasses(id: string, selection: readonly string[] | null, classes: readonly string[]): number[] {
  if (selection === null) return classes.map((_, i) => i);
  const out: number[] = [];
  const bad = (item: string, why: string) =>
    new DataError(`task '${id}': ${why}`, {
      context: { task: id, item, classes },
      fix: `pick indices 0-${classes.length - 1} or names: ${classes.join(', ')}`,
    });
  for (const item of selection) {
    const byName = classes.indexOf(item);
    if (byName >= 0) {
      out.push(byName);
      continue;
    }
    const m = /^(\d+)(?:-(\d+))?$/.exec(item);
    if (!m) throw bad(item, `'${item}' is neither a class name nor an index`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw bad(item, `range '${item}' is reversed`);
    if (b >= classes.length)
      throw bad(item, `class index ${b} is out of range (the dataset has ${classes.length} classes)`);
    for (let i = a; i <= b; i++) out.push(i);
  }
  const dup = out.find((c, i) => out.indexOf(c) !== i);
  if (dup !== undefined) throw bad(String(dup), `class '${classes[dup]}' (index ${dup}) is selected twice`);
  return out;
}

/**
 * Splits a comma-separated list of task ids, keeping commas inside brackets: `clipart[people,food],mnist[0,2]` is two
 * ids. Unbalanced brackets are an error naming the list.
 */
export function splitTaskList(list: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of list) {
    if (ch === '[') depth++;
    if (ch === ']') depth--;
    if (depth < 0) break;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (depth !== 0)
    throw new DataError(`task list '${list}' has unbalanced brackets`, {
      context: { tasks: list },
      fix: "close each class selection, e.g. 'clipart[people,food],mnist'",
    });
  out.push(cur);
  return out.map((s) => s.trim()).filter((s) => s.length > 0);
}
