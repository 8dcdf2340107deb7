// Every native op must be mapped to a test that exists, so a new op cannot land untested.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { NATIVE_OP_NAMES } from '../../src/engine/index.js';
import { OP_TESTS } from './op-coverage.js';

test('every native op has a row in OP_TESTS', () => {
  const missing = NATIVE_OP_NAMES.filter((op) => !(op in OP_TESTS) || OP_TESTS[op]!.length === 0);
  assert.deepEqual(missing, [], `native ops with no test listed in test/engine/op-coverage.ts: ${missing.join(', ')}`);
});

test('every OP_TESTS row names a native op', () => {
  const known = new Set(NATIVE_OP_NAMES);
  const stale = Object.keys(OP_TESTS).filter((op) => !known.has(op));
  assert.deepEqual(stale, [], `rows for ops the addon no longer has: ${stale.join(', ')}`);
});

test('every test OP_TESTS points to exists (file and exact title)', () => {
  const sources = new Map<string, string>();
  const dangling: string[] = [];
  for (const [op, refs] of Object.entries(OP_TESTS)) {
    for (const ref of refs) {
      const [file, title] = ref.split(' › ') as [string, string | undefined];
      assert.ok(title, `${op}: reference '${ref}' must be '<file> › <title>'`);
      if (!sources.has(file)) {
        const url = new URL(`./${file}.test.js`, import.meta.url);
        sources.set(file, existsSync(url) ? readFileSync(url, 'utf8') : '');
      }
      // Titles are single-quoted literals passed to test() or the scoped t() wrapper.
      const src = sources.get(file)!;
      if (!src.includes(`t('${title}'`) && !src.includes(`test('${title}'`)) dangling.push(`${op} → ${ref}`);
    }
  }
  assert.deepEqual(dangling, [], `references to tests that do not exist:\n${dangling.join('\n')}`);
});
