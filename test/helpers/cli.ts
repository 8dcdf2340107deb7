/** Runs the `tapir` program in-process (a fresh program per call, as commander's maintainers advise) and returns what it wrote. */
import { before } from 'node:test';
import { join } from 'node:path';
import { makeProgram } from '../../src/cli/program.js';
import { disposeGraph, exportOnnx } from '../../src/graph/index.js';
import { makeFolderTask, tempDir, tinyNet, useTempCache } from '../transfer/fixtures.js';

export async function runCli(args: readonly string[]): Promise<{ out: string; err: string }> {
  let out = '';
  let err = '';
  await makeProgram({
    out: (s) => {
      out += s;
    },
    err: (s) => {
      err += s;
    },
  }).parseAsync(['node', 'tapir', ...args]);
  return { out, err };
}

/**
 * The set-up the CLI tests share: a temporary feature cache, a work folder holding a tiny ONNX model
 * (`tinyNet(seed, 16, true)`), and a small folder task (`makeFolderTask(task, 20)`), both made in a `before` hook of
 * the calling file; `task` holds the task id once that hook has run. A file's own set-up goes in a later `before`.
 */
export function cliWorkspace(o: { dir: string; task: string; seed: number }): {
  work: string;
  model: string;
  task: string;
} {
  useTempCache();
  const work = tempDir(o.dir);
  const ws = { work, model: join(work, 'tiny.onnx'), task: '' };
  before(async () => {
    ws.task = await makeFolderTask(o.task, 20);
    const g = tinyNet(o.seed, 16, true);
    await exportOnnx(g, ws.model);
    disposeGraph(g);
  });
  return ws;
}

/**
 * A command line as one template: literal text splits on whitespace, each `${value}` stays one argument
 * (paths with spaces survive). `argv\`eval --model ${m} --cap 20\`` is `['eval', '--model', m, '--cap', '20']`.
 */
export function argv(parts: TemplateStringsArray, ...values: Array<string | number>): string[] {
  const out: string[] = [];
  parts.forEach((p, i) => {
    out.push(...p.split(/\s+/).filter((w) => w !== ''));
    if (i < values.length) out.push(String(values[i]));
  });
  return out;
}
