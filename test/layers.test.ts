/** Layers point downward (DESIGN §2): every relative import in src/<layer> may only reach the layers below it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const BELOW: Record<string, readonly string[]> = {
  engine: [],
  graph: ['engine'],
  data: ['engine'],
  prune: ['engine', 'graph', 'data'],
  transfer: ['engine', 'graph', 'data', 'prune'],
  analysis: ['engine', 'graph', 'data', 'prune'],
  study: ['engine', 'graph', 'data', 'prune', 'transfer', 'analysis'],
  cli: ['engine', 'graph', 'data', 'prune', 'transfer', 'analysis', 'study'],
};

// dist/test/layers.test.js → repo root is two levels up; read the TypeScript sources there.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

test('every src/<layer> import points to the same layer or one below it', () => {
  const bad: string[] = [];
  let checked = 0;
  for (const layer of Object.keys(BELOW)) {
    for (const file of files(join(root, 'src', layer))) {
      for (const m of readFileSync(file, 'utf8').matchAll(/from '(\.[^']+)'/g)) {
        const target = normalize(join(dirname(file), m[1]!))
          .slice(join(root, 'src').length + 1)
          .split('/')[0]!;
        checked++;
        if (target !== layer && !BELOW[layer]!.includes(target))
          bad.push(`${file.slice(root.length + 1)} imports ${m[1]} (layer '${target}')`);
      }
    }
  }
  assert.ok(checked > 100, `only ${checked} imports found: is the source tree where the test expects it?`);
  assert.deepEqual(bad, []);
});
