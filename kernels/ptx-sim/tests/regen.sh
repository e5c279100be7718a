#!/usr/bin/env bash
# Regenerates tests/ptx/*.ptx from tests/cuda/*.cu with nvcc 13.0, as the CUDA backend compiles.
# The PTX is committed, so the tests need no nvcc; run this after editing a .cu file.
set -euo pipefail
cd "$(dirname "$0")"
NVCC=${NVCC:-nvcc}
for cu in cuda/*.cu; do
  name=$(basename "$cu" .cu)
  "$NVCC" -ptx -O3 -arch=compute_80 "$cu" -o "ptx/$name.ptx"
  echo "ptx/$name.ptx"
done
