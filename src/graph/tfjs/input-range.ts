/**
 * The pixel range a TF.js model expects. model.json never says it, so it is decided here, in this order
 * (docs/GRAPH.md, "Input range"):
 * 1. a Teachable Machine `metadata.json` beside model.json → [-1, 1]: Teachable Machine trains on a frozen Keras
 *    MobileNet fed `pixel / 127 − 1` and its runtime feeds the same; the backbone was pre-trained on Keras'
 *    `preprocess_input` (`pixel / 127.5 − 1`), which is what tapir applies;
 * 2. a Rescaling or Normalization layer reading the model input → [0, 255]: the model preprocesses raw pixels itself
 *    (Keras preprocessing layers, and Keras applications built with them: EfficientNet, ConvNeXt, MobileNetV3);
 * 3. a Keras MobileNet (V1 or V2) application nested inside the model as a backbone → [-1, 1]: that is the shape of
 *    Keras transfer-learning exports, and Keras applications document `preprocess_input` for these weights;
 * 4. otherwise [0, 1] (`pixel / 255`), the TF.js habit and what nsfwjs feeds its (flat, not nested) MobileNetV2
 *    and InceptionV3 — the reason rule 3 needs the nesting and not merely MobileNet layer names.
 */
import type { JsValue } from './js-literal.js';
import type { TfjsArtifacts } from './artifacts.js';

export interface InputRange {
  range: [number, number];
  /** Why: recorded as `meta.inputRangeSource`. */
  source: string;
  /** Image size stated by the metadata, if any. */
  size?: number;
}

/** Layer names that mark a Keras MobileNet application (V2: `Conv1` … `out_relu`; V1: `conv1` … `conv_pw_13_relu`). */
const MOBILENET_MARKS: readonly (readonly string[])[] = [
  ['Conv1', 'out_relu'],
  ['conv1', 'conv_pw_13_relu'],
];

/**
 * Decides the input range of a model from its artifacts and, for layers models, the names of the layers of each
 * nested model (`nested`: nested model name → its layer names; empty for flat models and graph models) and the
 * preprocessing layer that reads the input (`preprocessing`, e.g. "Rescaling 'rescaling'").
 */
export function inputRangeOf(
  a: Pick<TfjsArtifacts, 'metadata'>,
  nested: ReadonlyMap<string, readonly string[]> = new Map(),
  preprocessing?: string,
): InputRange {
  const m = a.metadata?.json;
  if (m && isTeachableMachine(m)) {
    const size =
      typeof m.imageSize === 'number' && Number.isInteger(m.imageSize) && m.imageSize > 0 ? m.imageSize : undefined;
    return {
      range: [-1, 1],
      source: `Teachable Machine export (${a.metadata!.file}, tmVersion ${String(m.tmVersion ?? '?')})`,
      ...(size ? { size } : {}),
    };
  }
  if (preprocessing)
    return { range: [0, 255], source: `${preprocessing} reads the model input: it takes raw pixels (0 to 255)` };
  for (const [model, layers] of nested) {
    const names = new Set(layers);
    if (MOBILENET_MARKS.some((marks) => marks.every((n) => names.has(n))))
      return {
        range: [-1, 1],
        source: `Keras MobileNet application nested as '${model}' (Keras preprocess_input: pixel / 127.5 - 1)`,
      };
  }
  return { range: [0, 1], source: 'default for TF.js files, which do not state it (pixel / 255, as nsfwjs)' };
}

function isTeachableMachine(m: { [k: string]: JsValue }): boolean {
  return (
    typeof m.tmVersion === 'string' ||
    (typeof m.packageName === 'string' && m.packageName.startsWith('@teachablemachine/'))
  );
}
