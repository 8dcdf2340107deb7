#!/usr/bin/env bash
# GPU check, run on a lent GPU machine from the repo root with .gpu/ (node.xz + N-API headers) and dist/ carried over.
# Builds the addon against the machine's CUDA PyTorch with g++, then runs the engine self-check on cpu and cuda.
# Results go to $OUT. (The engine benchmark has no --device option yet.)
set -uo pipefail
OUT="${OUT:-/tmp/gpu-out}"; mkdir -p "$OUT"
xz -dc .gpu/node.xz > /tmp/node && chmod +x /tmp/node
export PATH="/tmp:$PATH"
{ nvidia-smi -L; python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())'; } 2>&1 | tee "$OUT/env.txt"
start=$(date +%s)
scripts/gpu/build-addon.sh .gpu/include 2>&1 2>&1 | grep -E "error|built" | head -40 | tee "$OUT/build.txt"
echo "build seconds: $(( $(date +%s) - start ))" | tee -a "$OUT/build.txt"
/tmp/node scripts/gpu/selfcheck.mjs 2>&1 | tee "$OUT/selfcheck.txt"
