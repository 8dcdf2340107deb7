/** `tapir data` driven in-process through makeProgram (lives here because it exercises the data layer end to end). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { tempDir, u8, useTempCache } from './env.js';
import { argv, runCli } from '../helpers/cli.js';

useTempCache();

const run = runCli;

test('tapir data list --json: each dataset, present, classes and counts', async () => {
  const { out } = await run(['data', 'list', '--json']);
  const j = JSON.parse(out) as {
    datasets: {
      name: string;
      present: boolean;
      total: number;
      classes: { name: string; train: number; test: number }[];
    }[];
  };
  const fm = j.datasets.find((d) => d.name === 'fashion-mnist')!;
  assert.equal(fm.present, true);
  assert.deepEqual(
    fm.classes.map((c) => c.train),
    new Array(10).fill(6000),
  );
});

test('tapir data prepare: fills the cache, counts skipped files; a second run is all cached', async () => {
  const root = tempDir('tapir-cli-folder-');
  for (const c of ['a', 'b']) {
    mkdirSync(join(root, c));
    // b gets 3 good images + bad.png: with --cap 4 every file of b is drawn whatever the seeded shuffle (the seed
    // hashes the temp path, so with 5 files bad.png was left out 1 run in 5).
    for (let i = 0; i < (c === 'a' ? 4 : 3); i++) {
      writeFileSync(
        join(root, c, `${i}.png`),
        u8(
          await sharp(new Uint8Array(48).fill(i * 60), { raw: { width: 4, height: 4, channels: 3 } })
            .png()
            .toBuffer(),
        ),
      );
    }
  }
  writeFileSync(join(root, 'a', 'zero.png'), new Uint8Array(0));
  writeFileSync(join(root, 'b', 'bad.png'), 'garbage');
  const args = [
    'data',
    'prepare',
    `folder:${root}`,
    'mnist[0,1]',
    '--cap',
    '4',
    '--size',
    '16',
    '--json',
    '--no-progress',
  ];
  const first = JSON.parse((await run(args)).out) as {
    prepared: {
      task: string;
      decoded: number;
      cached: number;
      skipped: number;
      skippedWhileListing: number;
      counts: Record<string, number>;
    }[];
  };
  const [f, m] = first.prepared;
  assert.equal(f!.skippedWhileListing, 1);
  assert.equal(f!.skipped, 1);
  assert.equal(f!.decoded + f!.skipped, 8);
  assert.equal(m!.task, 'mnist[0,1]');
  // cap 4 per class, official test set: 3 from the training images (1 calib, 2 train) and 1 test image per class.
  assert.deepEqual(m!.counts, { train: 4, calib: 2, test: 2 });
  assert.equal(m!.decoded, 8);
  const second = JSON.parse((await run(args)).out) as typeof first;
  assert.equal(second.prepared[1]!.decoded, 0);
  assert.equal(second.prepared[1]!.cached, 8);
  const text = (await run(args.filter((a) => a !== '--json'))).out;
  assert.match(text, /skipped b\/bad\.png: /);
});

test('tapir data show writes a montage PNG', async () => {
  const out = join(tempDir(), 'x.png');
  const { out: o } = await run(argv`data show mnist[0-3] --out ${out} --per-class 2 --size 28 --json`);
  const j = JSON.parse(o) as { shown: number; width: number; height: number };
  assert.equal(j.shown, 8);
  assert.ok(existsSync(out));
  const meta = await sharp(out).metadata();
  assert.deepEqual([meta.width, meta.height], [j.width, j.height]);
});

test('tapir data: bad options are errors naming the option; every subcommand has --help', async () => {
  await assert.rejects(run(['data', 'prepare', 'mnist', '--size', '0x3']), /--size must be/);
  await assert.rejects(
    run(argv`data show mnist --out /tmp/x.png --split val`),
    /--split must be one of train, calib, test/,
  );
  await assert.rejects(run(['data', 'prepare', 'mnist', '--cap', 'many']), /--cap must be a non-negative integer/);
  for (const sub of ['list', 'prepare', 'show']) {
    const r = await run(['data', sub, '--help']).catch((e: { code?: string }) => e);
    assert.equal((r as { code?: string }).code, 'commander.helpDisplayed');
  }
});
