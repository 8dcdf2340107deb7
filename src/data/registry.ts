/** Opens datasets by name, once per process (listing clip-art touches 8,000 files). */
import { DataError } from './errors.js';
import type { Dataset } from './dataset.js';
import { ASSETS, BUILTIN_NAMES, type BuiltinName } from './paths.js';
import { openFashionMnist, openMnist } from './sources/idx-datasets.js';
import { openDigits } from './sources/digits.js';
import { openClipart } from './sources/clipart.js';
import { openEmoji } from './sources/emoji.js';
import { openFolder } from './sources/folder.js';

const OPENERS: Record<BuiltinName, () => Promise<Dataset>> = {
  mnist: openMnist,
  'fashion-mnist': openFashionMnist,
  clipart: openClipart,
  emoji: openEmoji,
  digits: openDigits,
};

const opened = new Map<string, Promise<Dataset>>();

/**
 * Opens a dataset: a built-in name (`mnist`, `fashion-mnist`, `clipart`, `emoji`, `digits`) or
 * `folder:<path>`. Labels only; no image is decoded. Missing files throw `AssetMissingError` naming the
 * install command.
 */
export function openDataset(name: string): Promise<Dataset> {
  let key: string;
  let open: () => Promise<Dataset>;
  if (name.startsWith('folder:')) {
    const path = name.slice('folder:'.length);
    if (!path)
      throw new DataError(`dataset '${name}': missing path after 'folder:'`, { fix: 'write folder:/path/to/dir' });
    // Folders are re-listed on every open: the user may be adding or fixing files between calls.
    return openFolder(path);
  } else if ((BUILTIN_NAMES as string[]).includes(name)) {
    const b = name as BuiltinName;
    key = `${b}\0${ASSETS[b].path()}`;
    open = OPENERS[b];
  } else {
    throw new DataError(`unknown dataset '${name}'`, {
      context: { dataset: name },
      fix: `use one of ${BUILTIN_NAMES.join(', ')} or folder:<path>`,
    });
  }
  let p = opened.get(key);
  if (!p) {
    p = open();
    opened.set(key, p);
    p.catch(() => opened.delete(key));
  }
  return p;
}

/** Built-in dataset names. */
export function datasetNames(): readonly string[] {
  return BUILTIN_NAMES;
}
