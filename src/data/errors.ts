/** Errors of the data layer. Each names the dataset, class, file or option at fault and the fix. */
import { TapirError } from '../engine/errors.js';

/** A dataset's files are not installed; `fix` is the exact command that installs them. */
export class AssetMissingError extends TapirError {
  constructor(dataset: string, path: string, install: string) {
    super('E_ASSET_MISSING', `dataset '${dataset}': files not found at ${path}`, {
      context: { dataset, path },
      fix: `install it with: ${install}`,
    });
  }
}

/** Bad task id, bad class selection, empty class, bad preprocessing spec. */
export class DataError extends TapirError {
  constructor(message: string, opts: { context?: Record<string, unknown>; fix?: string } = {}) {
    super('E_DATA', message, opts);
  }
}
