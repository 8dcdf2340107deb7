import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from '../helpers/cli.js';

const run = async (args: string[]): Promise<string> => (await runCli(args)).out;

test('tapir models --json lists the zoo by id with sizes and the default', async () => {
  const r = JSON.parse(await run(['models', '--json'])) as {
    models: { id: string; default: boolean; inputSize: number; anyResolution: boolean }[];
  };
  assert.deepEqual(
    r.models.map((m) => m.id),
    ['mobilenet_v2', 'mobilenet_v2_140', 'inception_v3', 'resnet18', 'resnet50', 'vit_tiny', 'vit_small', 'vit_base'],
  );
  assert.deepEqual(
    r.models.filter((m) => m.default).map((m) => m.id),
    ['mobilenet_v2'],
  );
  assert.equal(r.models.find((m) => m.id === 'inception_v3')!.inputSize, 299);
  assert.equal(r.models.find((m) => m.id === 'vit_base')!.anyResolution, false);
  assert.match(await run(['models']), /mobilenet_v2 \(default\)\s+224/);
});
