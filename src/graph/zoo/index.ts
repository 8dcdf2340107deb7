/** The model zoo: registry, spec parsing, built-in architectures, nsfwjs models, fresh init. */
export {
  ZOO,
  DEFAULT_MODEL,
  ConfigError,
  loadModel,
  makeZoo,
  parseModelSpec,
  type ZooEntry,
  type LoadModelOptions,
  type ModelSpec,
} from './registry.js';
export { buildResNet, type ResNetOptions } from './resnet.js';
export { buildVit, VIT_CONFIGS, type VitOptions } from './vit.js';
export { adaptNsfwjs, finalMapSize, loadNsfwjs, nsfwjsDir, type NsfwjsModel } from './nsfwjs.js';
export { reinitialize, freshParam } from './init.js';
