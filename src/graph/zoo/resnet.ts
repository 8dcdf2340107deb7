/** torchvision ResNet-18/50 as an IR graph, with torchvision's parameter names and init. */
import { full, zeros } from '../../engine/index.js';
import { GraphBuilder } from '../builder.js';
import type { Graph } from '../ir.js';
import { kaimingConv, uniformFanIn } from './init.js';

export interface ResNetOptions {
  depth: 18 | 50;
  size: number;
  numClasses?: number;
}

export function buildResNet(o: ResNetOptions): Graph {
  const b = new GraphBuilder();
  const conv = (x: string, name: string, cin: number, cout: number, k: number, stride: number): string =>
    b.op(
      'conv2d',
      [x, b.param(`${name}.weight`, kaimingConv([cout, cin, k, k]), 'weight'), ''],
      { stride, padding: (k - 1) >> 1 },
      name,
    );
  const bn = (x: string, name: string, c: number): string =>
    b.op(
      'batchnorm',
      [
        x,
        b.param(`${name}.weight`, full([c], 1), 'norm'),
        b.param(`${name}.bias`, zeros([c]), 'norm'),
        b.param(`${name}.running_mean`, zeros([c]), 'buffer'),
        b.param(`${name}.running_var`, full([c], 1), 'buffer'),
      ],
      { eps: 1e-5, momentum: 0.1 },
      name,
    );
  const relu = (x: string, name: string) => b.op('relu', [x], {}, name);

  let x = relu(bn(conv('input', 'conv1', 3, 64, 7, 2), 'bn1', 64), 'relu');
  x = b.op('maxpool', [x], { kernel: 3, stride: 2, padding: 1 }, 'maxpool');
  const bottleneck = o.depth === 50;
  const blocks = o.depth === 50 ? [3, 4, 6, 3] : [2, 2, 2, 2];
  const expansion = bottleneck ? 4 : 1;
  let cin = 64;
  blocks.forEach((n, li) => {
    const width = 64 * 2 ** li;
    for (let bi = 0; bi < n; bi++) {
      const p = `layer${li + 1}.${bi}`;
      const stride = bi === 0 && li > 0 ? 2 : 1;
      const cout = width * expansion;
      let h: string;
      if (bottleneck) {
        h = relu(bn(conv(x, `${p}.conv1`, cin, width, 1, 1), `${p}.bn1`, width), `${p}.relu1`);
        h = relu(bn(conv(h, `${p}.conv2`, width, width, 3, stride), `${p}.bn2`, width), `${p}.relu2`);
        h = bn(conv(h, `${p}.conv3`, width, cout, 1, 1), `${p}.bn3`, cout);
      } else {
        h = relu(bn(conv(x, `${p}.conv1`, cin, width, 3, stride), `${p}.bn1`, width), `${p}.relu1`);
        h = bn(conv(h, `${p}.conv2`, width, width, 3, 1), `${p}.bn2`, width);
      }
      const skip =
        stride !== 1 || cin !== cout
          ? bn(conv(x, `${p}.downsample.0`, cin, cout, 1, stride), `${p}.downsample.1`, cout)
          : x;
      x = relu(b.op('add', [h, skip], {}, `${p}.add`), `${p}.relu`);
      cin = cout;
    }
  });
  const feats = b.op('globalavgpool', [x], { keepdims: false }, 'avgpool');
  const nc = o.numClasses ?? 1000;
  const logits = b.op(
    'linear',
    [feats, b.param('fc.weight', uniformFanIn([nc, cin]), 'head'), b.param('fc.bias', uniformFanIn([nc], cin), 'bias')],
    {},
    'fc',
  );
  return b.build({
    name: `resnet${o.depth}`,
    inputs: [{ name: 'input', shape: [null, 3, null, null] }],
    outputs: [logits],
    featureTap: feats,
    preprocessing: { size: [o.size, o.size], range: [0, 1], mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
    meta: { format: 'builtin', architecture: `resnet${o.depth}`, init: 'torchvision' },
  });
}
