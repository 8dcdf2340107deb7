/**
 * Weight lookup for TF.js layers models with nested models. A weight is stored under the name its variable had
 * when it was built: `<layer>/<key>` (`Conv1/kernel`) for a layer built on its own, `<model>/<layer>/<key>` when
 * it was built inside a nested model's call, with an optional `:0` suffix. Layer names are unique only within
 * one model, so two nesting levels can store the same name twice (`conv/kernel` of an inner block and of the
 * outer model). TF.js cannot reload such a file ("Duplicate weight name"); tapir can, because each layer says
 * which shape it expects and the manifest keeps every copy in order.
 */
import { ModelFormatError } from '../errors.js';
import type { DecodedWeight, NamedWeight } from './artifacts.js';

/** Expected shape of a weight; `null` where the importer does not know the dimension (e.g. after a Flatten). */
export type ShapeWant = readonly (number | null)[];

const fits = (shape: readonly number[], want: ShapeWant) =>
  shape.length === want.length && want.every((d, i) => d === null || d === shape[i]);
const fmt = (s: ShapeWant) => `[${s.map((d) => d ?? '?').join(', ')}]`;

/** A manifest's weights, each handed to exactly one layer (`take`); see the file comment for the lookup order. */
export class LayerWeights {
  /** Stored name (without ':0') → its copies in manifest order. */
  private readonly byName = new Map<string, NamedWeight[]>();
  private readonly taken = new Set<NamedWeight>();

  constructor(
    list: readonly NamedWeight[],
    private readonly file: string,
  ) {
    for (const w of list) {
      const n = w.name.replace(/:0$/, '');
      const l = this.byName.get(n);
      if (l) l.push(w);
      else this.byName.set(n, [w]);
    }
  }

  /**
   * The weight `key` of `layer`, reached through the nested models `scope` (outermost first). Tries the most
   * qualified stored name first (`outer/inner/layer/key` … `layer/key`), then any stored name ending in
   * `/layer/key` (an exporter's own prefix). Of several copies of one name, takes the first one not taken yet
   * whose shape fits `want`: TF.js writes the trainable weights of the whole model before the frozen ones, so
   * manifest order alone does not follow layer order once a nested model is frozen.
   */
  take(scope: readonly string[], layer: string, key: string, want: ShapeWant): DecodedWeight {
    const tail = `${layer}/${key}`;
    let name: string | undefined;
    for (let i = 0; i <= scope.length && name === undefined; i++) {
      const n = [...scope.slice(i), tail].join('/');
      if (this.byName.has(n)) name = n;
    }
    if (name === undefined) {
      const hits = [...this.byName.keys()].filter((k) => k.endsWith(`/${tail}`));
      if (hits.length > 1)
        throw this.err(
          `layer '${[...scope, layer].join('/')}': weight '${tail}' matches several stored names (${hits.join(', ')})`,
          layer,
          'the exporter prefixed weight names in a way tapir cannot map to layers; re-export the model with unprefixed weight names',
        );
      name = hits[0];
    }
    const copies = name === undefined ? undefined : this.byName.get(name);
    if (!copies)
      throw this.err(
        `weight '${tail}' of layer '${[...scope, layer].join('/')}' is missing from the weights manifest`,
        tail,
        'the topology and the weight shards do not belong together; re-export the model',
      );
    const free = copies.filter((w) => !this.taken.has(w));
    const w = free.find((c) => fits(c.shape, want));
    if (!w) {
      const stored = copies
        .map((c) => `[${c.shape.join(', ')}]${this.taken.has(c) ? ' (read by an earlier layer)' : ''}`)
        .join(', ');
      throw this.err(
        `layer '${[...scope, layer].join('/')}' expects '${name}' of shape ${fmt(want)}; the manifest stores ${stored}`,
        name!,
        'the topology and the weight shards do not belong together (or two nested layers share one weight); re-export the model',
      );
    }
    this.taken.add(w);
    return w;
  }

  private err(msg: string, weight: string, fix: string): ModelFormatError {
    return new ModelFormatError(`${this.file}: ${msg}`, { context: { file: this.file, weight }, fix });
  }
}
