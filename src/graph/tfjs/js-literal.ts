/**
 * Reads the data a UMD/browserify JS module exports, without executing it. nsfwjs ships its TF.js models as
 * `a.exports={modelTopology:{…}}` (a minified object literal: bare keys, `!0`/`!1`, `.5`) and its weight
 * shards as `a.exports="<base64>"`. This is a parser for that literal subset of JavaScript (objects, arrays,
 * strings, numbers, booleans, null); anything else is an error, so a tampered file cannot run code.
 */
import { ModelFormatError } from '../errors.js';

export type JsValue = null | boolean | number | string | JsValue[] | { [k: string]: JsValue };

const MAX_DEPTH = 200;

/** The value assigned to `<module>.exports` by the first module function of a browserify bundle. */
export function readExportedLiteral(src: string, file: string): JsValue {
  const m = /\{1:\[function\(\w*,(\w+),\w*\)\{\1\.exports=/.exec(src) ?? /module\.exports\s*=\s*/.exec(src);
  if (!m)
    throw new ModelFormatError(`${file}: no 'exports=' assignment of a browserify/UMD module found`, {
      context: { file },
      fix: 'pass a TF.js model.json, or an nsfwjs model .min.js file as shipped',
    });
  return new LiteralParser(src, m.index + m[0].length, file).value(0);
}

class LiteralParser {
  constructor(
    private readonly s: string,
    private i: number,
    private readonly file: string,
  ) {}

  private fail(what: string): never {
    const near = this.s.slice(Math.max(0, this.i - 20), this.i + 20).replace(/\s+/g, ' ');
    throw new ModelFormatError(
      `${this.file}: cannot parse the exported model data at offset ${this.i}: ${what} (near '${near}')`,
      {
        context: { file: this.file, offset: this.i },
        fix: 'the file is truncated or not an nsfwjs/TF.js model module; reinstall the package or re-export the model',
      },
    );
  }
  private ws(): void {
    while (this.i < this.s.length && /\s/.test(this.s[this.i]!)) this.i++;
  }
  value(depth: number): JsValue {
    if (depth > MAX_DEPTH) this.fail('nesting too deep');
    this.ws();
    const c = this.s[this.i];
    if (c === undefined) this.fail('unexpected end of file');
    if (c === '{') return this.object(depth);
    if (c === '[') return this.array(depth);
    if (c === '"' || c === "'") return this.string();
    if (c === '!' && (this.s[this.i + 1] === '0' || this.s[this.i + 1] === '1')) {
      this.i += 2;
      return this.s[this.i - 1] === '0';
    }
    for (const [w, v] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const)
      if (this.s.startsWith(w, this.i)) {
        this.i += w.length;
        return v;
      }
    return this.number();
  }
  private object(depth: number): { [k: string]: JsValue } {
    this.i++;
    const o: { [k: string]: JsValue } = Object.create(null);
    this.ws();
    if (this.s[this.i] === '}') {
      this.i++;
      return o;
    }
    for (;;) {
      this.ws();
      const c = this.s[this.i];
      let key: string;
      if (c === '"' || c === "'") key = this.string();
      else {
        const m = /^[A-Za-z_$][\w$]*|^\d+/.exec(this.s.slice(this.i, this.i + 256));
        if (!m) this.fail('expected a property name');
        key = m[0];
        this.i += key.length;
      }
      this.ws();
      if (this.s[this.i] !== ':') this.fail("expected ':'");
      this.i++;
      o[key] = this.value(depth + 1);
      this.ws();
      const d = this.s[this.i++];
      if (d === '}') return o;
      if (d !== ',') this.fail("expected ',' or '}'");
    }
  }
  private array(depth: number): JsValue[] {
    this.i++;
    const a: JsValue[] = [];
    this.ws();
    if (this.s[this.i] === ']') {
      this.i++;
      return a;
    }
    for (;;) {
      a.push(this.value(depth + 1));
      this.ws();
      const d = this.s[this.i++];
      if (d === ']') return a;
      if (d !== ',') this.fail("expected ',' or ']'");
    }
  }
  private string(): string {
    const q = this.s[this.i]!;
    const start = ++this.i;
    let simple = true;
    while (this.i < this.s.length && this.s[this.i] !== q) {
      if (this.s[this.i] === '\\') {
        simple = false;
        this.i++;
      }
      this.i++;
    }
    if (this.i >= this.s.length) this.fail('unterminated string');
    const raw = this.s.slice(start, this.i++);
    if (simple) return raw;
    try {
      return JSON.parse(`"${q === "'" ? raw.replace(/\\'/g, "'").replace(/"/g, '\\"') : raw}"`) as string;
    } catch {
      return this.fail('bad string escape');
    }
  }
  private number(): number {
    const m = /^-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?/.exec(this.s.slice(this.i, this.i + 64));
    if (!m) this.fail('expected a value');
    this.i += m[0].length;
    return Number(m[0]);
  }
}
