#!/usr/bin/env bash
# Engine benchmark on a lent GPU machine, run from the repo root with .gpu/ (node.xz + N-API headers, `make gpu-pack`)
# and dist/ carried over: builds the addon against the machine's CUDA PyTorch with g++, runs the engine self-check,
# then bench/engine.js --device cuda against the PyTorch peer on the same GPU. Results go to $OUT (bench.json is the
# bench's JSON line). RUNS (default 10) and WARMUP (default 3) are cheap on a GPU: a run takes milliseconds.
set -uo pipefail
OUT="${OUT:-/tmp/gpu-out}"; mkdir -p "$OUT"
xz -dc .gpu/node.xz > /tmp/node && chmod +x /tmp/node
export PATH="/tmp:$PATH"
# The peer must run in the python3 that has the CUDA torch the addon links, not the bench's default /usr/bin/python3.
TAPIR_PYTHON="$(command -v python3)"; export TAPIR_PYTHON
# Same allocator on both sides when the machine has tcmalloc (the bench preloads it into the peer whenever it exists).
tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
[ -e "$tcmalloc" ] && export LD_PRELOAD="$tcmalloc"
{ nvidia-smi --query-gpu=name,driver_version,memory.total,compute_mode --format=csv,noheader; nproc
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available(), "cudnn", torch.backends.cudnn.version())'
  echo "node $(/tmp/node --version); python $TAPIR_PYTHON; LD_PRELOAD=${LD_PRELOAD:-none}"; } 2>&1 | tee "$OUT/env.txt"

start=$(date +%s)
bash scripts/gpu/build-addon.sh .gpu/include > "$OUT/build.log" 2>&1
rc=$?
grep -E "error|built" "$OUT/build.log" | head -40
echo "build rc $rc, $(( $(date +%s) - start )) s" | tee -a "$OUT/env.txt"
[ "$rc" -eq 0 ] || { echo "addon build failed: see build.log"; exit 1; }

timeout 120 /tmp/node scripts/gpu/selfcheck.mjs > "$OUT/selfcheck.txt" 2>&1
echo "selfcheck rc $?"; tail -3 "$OUT/selfcheck.txt"

start=$(date +%s)
timeout 360 /tmp/node dist/bench/engine.js --device cuda --runs "${RUNS:-10}" --warmup "${WARMUP:-3}" --batch 32 \
  --models resnet18,vit_tiny --cases forward,forward+backward,hvp > "$OUT/bench.txt" 2> "$OUT/bench.err"
rc=$?
echo "bench rc $rc, $(( $(date +%s) - start )) s"
tail -5 "$OUT/bench.err"
cat "$OUT/bench.txt"
tail -1 "$OUT/bench.txt" > "$OUT/bench.json"
exit "$rc"
