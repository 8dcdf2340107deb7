/**
 * The built-in demo study. The YAML lives in studies/demo.yaml (the file users copy and edit); this copy is
 * embedded so `tapir demo` works from any directory, and a test checks the two are identical.
 */
import { parseStudy, type StudyConfig } from './config.js';

export const DEMO_STUDY = `# The built-in demo study (\`tapir demo\`, \`make demo\`): nsfwjs MobileNetV2 at 64 px, pruned with clip-art as the
# seen (source) task, evaluated zero-shot and after masked fine-tuning on four unseen tasks.
# Sized for a 2-core CPU: 64 px inputs, at most \`cap\` images per class (all splits), controls at one sparsity.
name: demo
models: [mobilenet_v2]
resolution: 64
scores:
  - magnitude
  - {name: diag-hessian, estimator: fisher}
  - {name: block-hessian, curvature: fisher, block_size: 16}
  - random
  # Layer-wise reconstruction toward the dense network's layer outputs (no labels; weights updated), with its own
  # recipe: layer densities chosen by measured error (allocation: error; reconstruct-error measured it above ERK) and
  # 128 unlabelled calibration images from every demo task's train split.
  - {name: sparsegpt, target: dense-output, allocation: error, calib_data: all, calibration: 128}
sparsities: [0.5, 0.7, 0.9]
sources: [clipart]
heldout: [fashion-mnist, mnist, emoji, digits]
seeds: [0]
calibration: 32
data:
  cap: 24
heads: [dense, refit]
# Ridge penalty on standardised 1280-d features fitted on ~17 images per class (alpha 1 overfits: see docs/STUDY.md).
alpha: 100
prune: {loss: mse, allocation: global}
# lr 1e-2 (SGD) made the 64-px MobileNetV2 diverge even unpruned (docs/TRANSFER.md); AdamW at 1e-4 lowers the loss.
finetune: {epochs: 2, batch_size: 32, lr: 0.0001, optimizer: adamw, weight_decay: 0.0005, loss: ce, bn: frozen}
controls:
  random_init: {scores: [magnitude], sparsities: [0.7]}
  shuffled_mask: {scores: [magnitude], sparsities: [0.7]}
`;

export function demoConfig(): StudyConfig {
  return parseStudy(DEMO_STUDY, 'demo.yaml');
}
