/** Benchmark models by id (the ids used on the command line and by the PyTorch peer). */
import type { Device } from '../../src/engine/index.js';
import type { BenchModel } from './model.js';
import { resnet18 } from './resnet18.js';
import { vitTiny } from './vit-tiny.js';

export const MODELS = { resnet18, vit_tiny: vitTiny } as const satisfies Record<
  string,
  (device?: Device) => BenchModel
>;
export type ModelId = keyof typeof MODELS;
export const MODEL_IDS = Object.keys(MODELS) as ModelId[];
export type { BenchModel } from './model.js';
export * from './params.js';
