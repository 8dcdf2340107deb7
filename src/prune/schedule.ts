/**
 * Schedules: the density after each pruning round. Pure functions (Torch-Pruning keeps them that small too).
 * `oneshot`: one round at the target. `iterative`: R rounds with density k^(r/R), r = 1..R, re-scoring each round
 * with the current mask (so the ratio removed per round is constant: k^(1/R) of the survivors).
 */
import { TapirError } from '../engine/index.js';

export type Schedule = { kind: 'oneshot' } | { kind: 'iterative'; rounds: number };
export const SCHEDULES = ['oneshot', 'iterative'] as const;

/** Densities (fraction kept of all prunable weights) after each round, ending exactly at 1 − sparsity. */
export function roundDensities(sparsity: number, schedule: Schedule): number[] {
  const k = 1 - sparsity;
  switch (schedule.kind) {
    case 'oneshot':
      return [k];
    case 'iterative': {
      const R = schedule.rounds;
      if (!Number.isInteger(R) || R < 1)
        throw new TapirError('E_SCHEDULE', `iterative schedule needs a positive integer number of rounds, got ${R}`, {
          context: { rounds: R },
          fix: 'pass e.g. --rounds 5',
        });
      return Array.from({ length: R }, (_, i) => (i === R - 1 ? k : Math.pow(k, (i + 1) / R)));
    }
  }
}
