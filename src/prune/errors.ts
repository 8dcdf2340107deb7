/** Errors of the pruning layer: each names the option, tensor or node at fault and the fix. */
import { TapirError } from '../engine/index.js';

/** A bad pruning option or input (sparsity, rounds, calibration data, weights). */
export class PruneError extends TapirError {
  constructor(message: string, opts: { context?: Record<string, unknown>; fix?: string } = {}) {
    super('E_PRUNE', message, opts);
  }
}

/**
 * Scoring over a graph whose forward is not a deterministic, per-sample function (train-mode BatchNorm couples
 * the samples of a batch and updates running statistics; dropout is random), which silently breaks every
 * curvature estimator.
 */
export class NondeterministicGraphError extends TapirError {
  constructor(node: string, op: string, what: string) {
    super(
      'E_NONDETERMINISTIC',
      `${what}: node '${node}' (${op}) makes the forward pass non-deterministic in mode 'train'`,
      {
        context: { node, op },
        fix: "score in mode 'eval-bn' (the default: BN uses its running statistics, dropout is off), or opt in with allowTrainMode: true",
      },
    );
  }
}
