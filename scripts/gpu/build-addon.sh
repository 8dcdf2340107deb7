#!/usr/bin/env bash
# Builds the addon with plain g++ against a libtorch (default: the one inside the python3 torch install), for machines
# without node-gyp (e.g. a lent GPU box with a CUDA PyTorch). Usage: scripts/gpu/build-addon.sh <napi-include-dir> [torch-dir]
set -euo pipefail
inc="$1"
torch="${2:-$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')}"
abi=$(python3 -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))' 2>/dev/null || echo 1)
cuda_libs=""
[ -e "$torch/lib/libtorch_cuda.so" ] && cuda_libs="-ltorch_cuda -lc10_cuda"
mkdir -p build/Release
g++ -shared -fPIC -std=c++17 -O2 -fexceptions -frtti -DNAPI_CPP_EXCEPTIONS -DNAPI_VERSION=8 -D_GLIBCXX_USE_CXX11_ABI="$abi" \
  -I"$inc" -I"$torch/include" -I"$torch/include/torch/csrc/api/include" native/binding.cc native/tensor_ops.cc native/nn_ops.cc \
  -L"$torch/lib" -Wl,-rpath,"$torch/lib" -Wl,--no-as-needed -ltorch -ltorch_cpu -lc10 $cuda_libs \
  -o build/Release/tapir_native.node
echo "built build/Release/tapir_native.node against $torch (cxx11 abi $abi${cuda_libs:+, cuda})"
