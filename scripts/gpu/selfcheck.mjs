// Engine self-check on every available device: gradient and HVP of a tiny CNN vs finite differences (float64),
// SGD and leak check, computed on each device (finite differences taken on that device).
import { selfCheck } from '../../dist/src/engine/selfcheck.js';
import { cudaAvailable, getNumThreads } from '../../dist/src/engine/index.js';

const rows = [selfCheck(0, 'cpu')];
if (cudaAvailable()) rows.push(selfCheck(0, 'cuda'));
for (const r of rows) console.log(JSON.stringify(r));
console.log(JSON.stringify({ check: 'gpu-selfcheck', cuda: cudaAvailable(), threads: getNumThreads(), ok: rows.every((r) => r.ok), devices: rows.map((r) => r.device) }));
