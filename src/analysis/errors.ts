/** Errors of the analysis layer. */
import { TapirError } from '../engine/index.js';

/**
 * A curvature operator over a graph whose loss is not a deterministic function of the weights (train-mode
 * batch norm, active dropout): every matvec would see a different matrix and every estimator would be
 * silently wrong (curvlinops checks this too).
 */
export class NondeterministicGraphError extends TapirError {
  constructor(message: string, context: Record<string, unknown>, fix: string) {
    super('E_NONDETERMINISTIC', message, { context, fix });
  }
}

export class AnalysisError extends TapirError {
  constructor(message: string, opts: { context?: Record<string, unknown>; fix?: string } = {}) {
    super('E_ANALYSIS', message, opts);
  }
}
