/** `tapir results <study.yaml>…`: docs/RESULTS.md (findings, tables, SVG plots) generated from the studies' databases. */
import { Command } from 'commander';
import { TapirError } from '../../engine/index.js';
import { writeResults } from '../../study/results.js';
import { DEFAULT_THRESHOLDS, type Thresholds } from '../../study/results-findings.js';
import { emit, type Io } from '../output.js';

const fraction = (name: string, v: string, o: { max?: number } = {}): number => {
  const x = Number(v);
  if (!Number.isFinite(x) || x < 0 || x > (o.max ?? 1))
    throw new TapirError('E_ARG', `${name} must be a number in [0, ${o.max ?? 1}], got '${v}'`, {
      context: { option: name },
      fix: `e.g. ${name} 0.9`,
    });
  return x;
};

/** `0.5:0.9,0.7:0.8` → [{sparsity 0.5, retained 0.9}, {sparsity 0.7, retained 0.8}]. */
export function parseTarget(v: string): Thresholds['target'] {
  return v.split(',').map((part) => {
    const m = /^\s*([0-9.]+)\s*:\s*([0-9.]+)\s*$/.exec(part);
    if (!m)
      throw new TapirError('E_ARG', `--target: '${part}' is not sparsity:retained`, {
        context: { option: '--target' },
        fix: 'e.g. --target 0.5:0.9,0.7:0.8',
      });
    return { sparsity: fraction('--target', m[1]!), retained: fraction('--target', m[2]!) };
  });
}

export function resultsCommand(io: Io): Command {
  const t = DEFAULT_THRESHOLDS;
  return new Command('results')
    .description(
      'write docs/RESULTS.md from study configs and their databases: reproduce commands, wall time, computed findings, tables, SVG plots',
    )
    .argument('<configs...>', 'study configs (YAML), e.g. studies/*.yaml')
    .option('--out <file>', 'markdown file to write', 'docs/RESULTS.md')
    .option('--plots <dir>', 'folder for the SVG plots (one sub-folder per study)', 'docs/results')
    .option('--db-dir <dir>', 'folder of the databases, <dir>/<study name>.sqlite', 'results')
    .option('--p1 <fraction>', 'P1 holds where held-out zero-shot accuracy ≥ this fraction of dense', String(t.p1))
    .option(
      '--p2-gain <fraction>',
      'P2: minimum rise of held-out retained accuracy after fine-tuning (0.01 = 1 point)',
      String(t.p2Gain),
    )
    .option(
      '--target <list>',
      'target as sparsity:retained pairs',
      t.target.map((x) => `${x.sparsity}:${x.retained}`).join(','),
    )
    .option('--target-tasks <regex>', 'held-out tasks the target is checked on', t.targetTasks.source)
    .option('--collapse <fraction>', 'a tensor below this density counts as emptied', String(t.collapse))
    .option('--json', 'print one JSON document')
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .action(
      async (
        configs: string[],
        o: {
          out: string;
          plots: string;
          dbDir: string;
          p1: string;
          p2Gain: string;
          target: string;
          targetTasks: string;
          collapse: string;
          json?: boolean;
        },
      ) => {
        let targetTasks: RegExp;
        try {
          targetTasks = new RegExp(o.targetTasks, 'i');
        } catch (e) {
          throw new TapirError('E_ARG', `--target-tasks: ${(e as Error).message}`, {
            context: { option: '--target-tasks' },
            fix: 'e.g. --target-tasks "cifar|clipart"',
          });
        }
        const r = await writeResults({
          configs,
          out: o.out,
          plots: o.plots,
          dbDir: o.dbDir,
          thresholds: {
            p1: fraction('--p1', o.p1),
            p2Gain: fraction('--p2-gain', o.p2Gain),
            target: parseTarget(o.target),
            targetTasks,
            collapse: fraction('--collapse', o.collapse),
          },
        });
        emit(
          io,
          !!o.json,
          {
            out: r.out,
            studies: r.studies.map((s) => ({
              name: s.name,
              config: s.config,
              db: s.db,
              status: s.status,
              cells: s.cells,
              gridCells: s.gridCells,
              wallS: s.wallS,
              plots: s.plots,
              findings: s.findings.map((f) => ({ id: f.id, sentences: f.sentences })),
            })),
          },
          () =>
            [
              ...r.studies.map(
                (s) =>
                  `${s.name}: ${
                    s.status === 'missing' || s.status === 'empty'
                      ? `not run yet (${s.db})`
                      : `${s.status}, ` +
                        `${s.cells}/${s.gridCells} cells, ${s.findings.length} findings, ${s.plots.length} plots`
                  }`,
              ),
              `wrote ${r.out}`,
            ].join('\n'),
        );
      },
    );
}
