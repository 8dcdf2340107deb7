/**
 * Reliability of the study database (one test per case): another program's SQLite file is refused untouched (case 3),
 * a second writer is refused while the first lives and takes over a dead one's row (case 5), and a file that is not a
 * database, an empty database or a newer store give errors that name the file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { APPLICATION_ID, StudyStore } from '../../src/study/index.js';
import { tempDir } from '../transfer/fixtures.js';

const Database = createRequire(import.meta.url)('better-sqlite3') as new (f: string) => {
  exec(s: string): void;
  pragma(s: string, o?: { simple?: boolean }): unknown;
  close(): void;
};
const WORK = tempDir('tapir-store-identity-');

test("case 3: another program's SQLite file with its own cells and studies tables is refused and left byte for byte untouched", () => {
  const file = join(WORK, 'other.sqlite');
  const db = new Database(file);
  db.exec('CREATE TABLE cells (x INTEGER); CREATE TABLE studies (y TEXT); INSERT INTO cells VALUES (1);');
  db.close();
  const before = readFileSync(file);
  assert.throws(
    () => new StudyStore(file),
    /other\.sqlite is another program's database \(tables cells, studies, not a tapir study store\); it was left untouched/,
  );
  assert.throws(() => new StudyStore(file, { readonly: true }), /another program's database/);
  assert.deepEqual(readFileSync(file), before, 'not one byte changed');
  const app = join(WORK, 'app.sqlite');
  const d2 = new Database(app);
  d2.pragma('application_id = 1234');
  d2.close();
  assert.throws(() => new StudyStore(app), /application id 0x4d2, tapir's is 0x74617072/);
});

test('a tapir store carries its identity; a newer store, a non-database and an empty database are clear errors naming the file', () => {
  const file = join(WORK, 'mine.sqlite');
  new StudyStore(file).close();
  const db = new Database(file);
  assert.equal(Number(db.pragma('application_id', { simple: true })), APPLICATION_ID);
  db.pragma('user_version = 99');
  db.close();
  assert.throws(() => new StudyStore(file), /mine\.sqlite was written by a newer tapir \(store version 99/);
  const junk = join(WORK, 'junk.sqlite');
  writeFileSync(junk, 'this is not a database, just some text that is long enough to have a header'.repeat(20));
  assert.throws(() => new StudyStore(junk, { readonly: true }), /junk\.sqlite is not a SQLite database/);
  const empty = join(WORK, 'empty.sqlite');
  writeFileSync(empty, '');
  assert.throws(() => new StudyStore(empty, { readonly: true }), /empty\.sqlite holds no study yet/);
  assert.throws(() => new StudyStore(WORK), /is a directory, not a results database/);
});

test("case 5: one writer at a time: a second process is refused with the holder's pid; a dead holder's row is taken over", async () => {
  const file = join(WORK, 'busy.sqlite');
  // Another live process holds the store: a child that opens it and waits.
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `
    const { StudyStore } = await import(${JSON.stringify(new URL('../../src/study/index.js', import.meta.url).href)});
    const s = new StudyStore(${JSON.stringify(file)});
    process.stdout.write('open\\n');
    setTimeout(() => { s.close(); process.exit(0); }, 60000);`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
  try {
    assert.throws(
      () => new StudyStore(file),
      new RegExp(`busy\\.sqlite is held by pid ${child.pid} on .* since .*: another tapir study is writing to it`),
    );
    // Read-only opens (reports) are fine while it writes.
    new StudyStore(file, { readonly: true }).close();
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  }
  // The holder died without closing: its row is stale and the next writer takes it.
  const s = new StudyStore(file);
  s.close();
});
