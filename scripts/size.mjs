// `make size`: lines per folder and file, and the native op count, so growth shows in review.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const roots = ['native', 'src', 'test', 'bench'];
const files = [];
const walk = (d) => {
  for (const f of readdirSync(d)) {
    const p = join(d, f);
    if (statSync(p).isDirectory()) walk(p);
    else if (/\.(ts|cc|h|py|mjs)$/.test(f)) files.push([p, readFileSync(p, 'utf8').split('\n').length]);
  }
};
for (const r of roots) { try { walk(r); } catch { /* folder not there yet */ } }
const byDir = new Map();
for (const [p, n] of files) { const d = p.split('/').slice(0, -1).join('/'); byDir.set(d, (byDir.get(d) ?? 0) + n); }
for (const [d, n] of [...byDir].sort()) console.log(`${String(n).padStart(7)}  ${d}/`);
console.log('\nlargest files:');
for (const [p, n] of files.sort((a, b) => b[1] - a[1]).slice(0, 10)) console.log(`${String(n).padStart(7)}  ${p}${n > 400 ? '  (over the ~400-line soft cap)' : ''}`);
const opCount = readFileSync('native/binding.cc', 'utf8').concat(readFileSync('native/tensor_ops.cc', 'utf8'), readFileSync('native/nn_ops.cc', 'utf8')).match(/\bE\([a-zA-Z0-9]+\)/g).length;
console.log(`\nnative ops: ${opCount}`);
