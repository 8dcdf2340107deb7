/**
 * ResNet-18, CIFAR variant (He et al. 2016 with the common 32-px stem): 3×3 stride-1 stem conv to 64
 * channels, no max-pool, four stages of two BasicBlocks (64/128/256/512, stride 2 from stage 2 on, 1×1
 * downsample conv + BN on the shortcut where the shape changes), global average pool, linear 512 → 10.
 * BatchNorm runs in train mode (batch statistics; running buffers updated in place), as in fine-tuning.
 * Parameter names follow torchvision, so bench/peers/engine.py can mirror the model line by line.
 */
import { nn, ones, zeros, type Device, type Tensor } from '../../src/engine/index.js';
import { consume, constant, he, normal, param, type ParamSpec, type Params } from './params.js';
import type { BenchModel } from './model.js';

const STAGES = [64, 128, 256, 512] as const;
const BLOCKS_PER_STAGE = 2;
const NUM_CLASSES = 10;

function specs(): ParamSpec[] {
  const s: ParamSpec[] = [];
  const conv = (name: string, cout: number, cin: number, k: number): void => {
    const shape = [cout, cin, k, k];
    s.push({ name: `${name}.weight`, shape, init: he(shape) });
  };
  const bn = (name: string, c: number): void => {
    s.push(
      { name: `${name}.weight`, shape: [c], init: constant(1) },
      { name: `${name}.bias`, shape: [c], init: constant(0) },
    );
  };
  conv('conv1', 64, 3, 3);
  bn('bn1', 64);
  let cin = 64;
  STAGES.forEach((c, i) => {
    for (let b = 0; b < BLOCKS_PER_STAGE; b++) {
      const pre = `layer${i + 1}.${b}`;
      conv(`${pre}.conv1`, c, b === 0 ? cin : c, 3);
      bn(`${pre}.bn1`, c);
      conv(`${pre}.conv2`, c, c, 3);
      bn(`${pre}.bn2`, c);
      if (b === 0 && (i > 0 || cin !== c)) {
        conv(`${pre}.downsample.0`, c, cin, 1);
        bn(`${pre}.downsample.1`, c);
      }
    }
    cin = c;
  });
  s.push(
    { name: 'fc.weight', shape: [NUM_CLASSES, 512], init: normal(1 / Math.sqrt(512)) },
    { name: 'fc.bias', shape: [NUM_CLASSES], init: constant(0) },
  );
  return s;
}

export function resnet18(device: Device = 'cpu'): BenchModel {
  const paramSpecs = specs();
  // Running statistics per BN layer: buffers, not parameters (no gradient), as in torch; on the inputs' device,
  // since batch norm updates them in place.
  const buffers = new Map<string, { mean: Tensor; var: Tensor }>();
  for (const sp of paramSpecs)
    if (sp.name.endsWith('.bias') && sp.name !== 'fc.bias') {
      const c = sp.shape[0]!;
      buffers.set(sp.name.slice(0, -'.bias'.length), { mean: zeros([c], { device }), var: ones([c], { device }) });
    }

  const forward = (p: Params, x: Tensor): Tensor => {
    const w = (name: string): Tensor => param(p, name, 'resnet18');
    const bn = (t: Tensor, name: string): Tensor => {
      const b = buffers.get(name)!;
      return nn.batchNorm(t, {
        weight: w(`${name}.weight`),
        bias: w(`${name}.bias`),
        runningMean: b.mean,
        runningVar: b.var,
        training: true,
      });
    };
    const conv = (t: Tensor, name: string, stride: number, padding: number): Tensor =>
      nn.conv2d(t, w(`${name}.weight`), null, { stride, padding });

    let h = nn.conv2d(x, w('conv1.weight'), null, { stride: 1, padding: 1 });
    h = consume(h, (t) => bn(t, 'bn1'));
    h = consume(h, nn.relu);
    let cin = 64;
    STAGES.forEach((c, i) => {
      for (let b = 0; b < BLOCKS_PER_STAGE; b++) {
        const pre = `layer${i + 1}.${b}`;
        const stride = b === 0 && i > 0 ? 2 : 1;
        let out = conv(h, `${pre}.conv1`, stride, 1);
        out = consume(out, (t) => bn(t, `${pre}.bn1`));
        out = consume(out, nn.relu);
        out = consume(out, (t) => conv(t, `${pre}.conv2`, 1, 1));
        out = consume(out, (t) => bn(t, `${pre}.bn2`));
        const down = b === 0 && (i > 0 || cin !== c);
        const shortcut = down
          ? consume(conv(h, `${pre}.downsample.0`, stride, 0), (t) => bn(t, `${pre}.downsample.1`))
          : h;
        const sum = out.add(shortcut);
        out.dispose();
        if (down) shortcut.dispose();
        h.dispose();
        h = consume(sum, nn.relu);
      }
      cin = c;
    });
    h = consume(h, (t) => nn.adaptiveAvgPool2d(t, 1));
    h = consume(h, (t) => t.flatten(1));
    return consume(h, (t) => nn.linear(t, w('fc.weight'), w('fc.bias')));
  };

  return {
    name: 'resnet18',
    inputShape: [3, 32, 32],
    numClasses: NUM_CLASSES,
    specs: paramSpecs,
    forward,
    dispose: () => {
      for (const b of buffers.values()) {
        b.mean.dispose();
        b.var.dispose();
      }
    },
  };
}
