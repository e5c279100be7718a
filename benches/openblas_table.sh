#!/usr/bin/env bash
# The SGEMM table of the README: ours (examples/gemm.rs) and numpy's OpenBLAS, best of
# each, interleaved (ours, numpy, ours, numpy, ...) so both see the same machine load.
#
#   bash benches/openblas_table.sh [ROUNDS]        (default 3 rounds)
#
# Needs a Python with numpy: PYTHON=/path/to/python (default: python3). Where that Python
# also has torch, a third column times PyTorch's BLAS (MKL on x86) in the same rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
py=${PYTHON:-python3}
cargo build --release --example gemm -q
ours=${CARGO_TARGET_DIR:-target}/release/examples/gemm
best() { sort -g | tail -1; }
mkl=no; "$py" -c "import torch" 2>/dev/null && mkl=yes
if [ $mkl = yes ]; then
  echo "| shape | threads | ours GFLOP/s | OpenBLAS GFLOP/s | ours/OpenBLAS | MKL (torch) GFLOP/s | ours/MKL |"
  echo "|---|---|---|---|---|---|---|"
else
  echo "| shape | threads | ours GFLOP/s | OpenBLAS GFLOP/s | ours/OpenBLAS |"
  echo "|---|---|---|---|---|"
fi
for t in 1 2; do
  for s in 512 1024 2048; do
    o=(); b=(); m=()
    for _ in $(seq "$rounds"); do
      o+=("$("$ours" --m "$s" --n "$s" --k "$s" --threads "$t" | sed 's/.*gflops=//')")
      b+=("$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS="$t" "$py" benches/numpy_gemm.py "$s" | sed -n 's/.*gflops=//p' | tail -1)")
      [ $mkl = yes ] && m+=("$(OPENBLAS_NUM_THREADS="$t" "$py" benches/numpy_gemm.py --torch "$s" | sed -n 's/.*gflops=//p' | tail -1)")
    done
    bo=$(printf '%s\n' "${o[@]}" | best); bb=$(printf '%s\n' "${b[@]}" | best)
    row="| $s³ | $t | $bo | $bb | $(awk -v a="$bo" -v b="$bb" 'BEGIN{printf "%.2f", a/b}') |"
    if [ $mkl = yes ]; then
      bm=$(printf '%s\n' "${m[@]}" | best)
      row="$row $bm | $(awk -v a="$bo" -v b="$bm" 'BEGIN{printf "%.2f", a/b}') |"
    fi
    echo "$row"
  done
done
