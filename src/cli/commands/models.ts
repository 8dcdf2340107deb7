/** `tapir models`: the model zoo by id. */
import { Command } from 'commander';
import { ZOO, DEFAULT_MODEL } from '../../graph/index.js';
import { emit, table, type Io } from '../output.js';

export interface ModelRow {
  id: string;
  default: boolean;
  description: string;
  weights: string;
  inputSize: number;
  inputRange: readonly [number, number];
  anyResolution: boolean;
}

export function listModels(): ModelRow[] {
  return [...ZOO.values()].map((e) => ({
    id: e.id,
    default: e.id === DEFAULT_MODEL,
    description: e.description,
    weights: e.weights,
    inputSize: e.defaultSize,
    inputRange: e.inputRange,
    anyResolution: e.convnet,
  }));
}

export function modelsCommand(io: Io): Command {
  return new Command('models')
    .description('list the model zoo (use an id as <model>; `random:<id>` = fresh init, `<id>@<size>` = smaller input)')
    .option('--json', 'print one JSON document')
    .action((o: { json?: boolean }) => {
      const rows = listModels();
      emit(io, !!o.json, { models: rows }, () =>
        table(
          ['id', 'size', 'weights', 'description'],
          rows.map((r) => [r.id + (r.default ? ' (default)' : ''), r.inputSize, r.weights, r.description]),
        ),
      );
    });
}
