/**
 * Typed errors shared by every layer. Each carries a stable `code`, the offending `context`
 * (file, tensor, op or option) and a `fix` telling the user what to do.
 */
export class TapirError extends Error {
  readonly code: string;
  readonly context: Readonly<Record<string, unknown>>;
  readonly fix: string | undefined;
  constructor(
    code: string,
    message: string,
    opts: { context?: Record<string, unknown>; fix?: string; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.context = opts.context ?? {};
    this.fix = opts.fix;
  }
  toJSON(): { code: string; name: string; message: string; fix?: string; context: Readonly<Record<string, unknown>> } {
    return {
      code: this.code,
      name: this.name,
      message: this.message,
      ...(this.fix ? { fix: this.fix } : {}),
      context: this.context,
    };
  }
}

export class ShapeError extends TapirError {
  constructor(message: string, opts: { context?: Record<string, unknown>; fix?: string } = {}) {
    super('E_SHAPE', message, opts);
  }
}

export class DTypeError extends TapirError {
  constructor(message: string, opts: { context?: Record<string, unknown>; fix?: string } = {}) {
    super('E_DTYPE', message, opts);
  }
}
