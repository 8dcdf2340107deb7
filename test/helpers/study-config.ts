/**
 * Study-config error checks shared by the config, axes and diagnostics tests: parsing a YAML text as
 * `studies.yaml` must throw a `StudyConfigError` whose message is exactly the expected one (field path
 * included), and whose fix matches `fix` when one is given.
 */
import assert from 'node:assert/strict';
import { parseStudy, StudyConfigError } from '../../src/study/index.js';

export function fails(yaml: string, message: string, fix?: RegExp): void {
  assert.throws(
    () => parseStudy(yaml, 'studies.yaml'),
    (e: unknown) => {
      assert.ok(e instanceof StudyConfigError, `expected StudyConfigError, got ${String(e)}`);
      assert.equal(e.message, message);
      if (fix) assert.match(e.fix ?? '', fix);
      return true;
    },
  );
}

/** `fails` for each [yaml, message] row; a failing row is named by its index. */
export function eachFails(rows: Array<[yaml: string, message: string]>): void {
  rows.forEach(([yaml, message], i) => {
    try {
      fails(yaml, message);
    } catch (e) {
      throw new Error(`row ${i} (expected '${message}'): ${(e as Error).message}`);
    }
  });
}
