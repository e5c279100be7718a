#!/usr/bin/env bash
# The performance targets of the engine, every one measured in one run on this CPU and judged
# as a ratio against a baseline timed in the same run (the README's "Performance" chapter):
#
#   BiLSTM training step      >= 65 % of this CPU's FMA peak  (examples/bilstm_step --peak)
#   MiniLM training step      >= 2.0x PyTorch                  (benches/minilm_vs_pytorch.sh)
#   MiniLM evaluation forward >= 1.5x PyTorch                  (the same rounds)
#   SGEMM 512-2048, 1 and 2 threads >= 1.0x OpenBLAS           (benches/openblas_table.sh)
#   peak resident memory of MiniLM's steps <= PyTorch's        (/usr/bin/time -v, both)
#   and, reported without a target: MiniLM's bf16 mixed precision against our f32
#   (examples/minilm_forward ... both), a speed-up only where the CPU has AMX or AVX512-BF16
#
#   PYTHON=/path/to/python-with-torch-transformers-numpy bash benches/targets.sh [ROUNDS]
#
# ROUNDS (default 3) of each comparison, interleaved with its baseline; each verdict is on the
# median of the rounds' ratios, with the range beside it. The machines are noisy: a verdict
# near its line wants a second run. Prints the CPU first, since every figure belongs to it.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
py=${PYTHON:-python3}
model=${MODEL_DIR:-../shared/models/all-MiniLM-L6-v2}
case $rounds in '' | *[!0-9]* | 0) echo "error: ROUNDS must be a positive integer, got '$rounds'" >&2; exit 2 ;; esac
[ -d "$model" ] || { echo "error: no model at $model (set MODEL_DIR)" >&2; exit 2; }
"$py" -c "import torch, transformers, numpy" 2>/dev/null ||
  { echo "error: $py lacks torch, transformers or numpy (set PYTHON; see README, Performance)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "error: /usr/bin/time is needed for the memory figure" >&2; exit 2; }
cargo build --release --example bilstm_step --example minilm_forward --example gemm -q
ex=${CARGO_TARGET_DIR:-target}/release/examples
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# median and range of the numbers on stdin: "median (min-max)"
summary() { sort -g | awk '{v[NR]=$1} END {m = NR % 2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2;
  printf "%.2f (%.2f-%.2f, %d samples)", m, v[1], v[NR], NR}'; }
median() { sort -g | awk '{v[NR]=$1} END {print NR % 2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
verdict() { awk -v x="$1" -v line="$2" -v dir="$3" 'BEGIN {ok = dir == "ge" ? x >= line : x <= line;
  print ok ? "met" : "NOT met"}'; }
row() { printf "%-46s %-46s %s\n" "$1" "$2" "$3"; }

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(lscpu | awk -F: '/^CPU family/ {f=$2} /^Model:/ {m=$2}
  END {gsub(/ /, "", f); gsub(/ /, "", m); printf "family %s model %s", f, m}'), $(nproc) CPUs;" \
  "ISA: $(grep -o -w -E 'avx2|fma|avx512f|avx512_bf16|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "rounds: $rounds; $(date -u +%FT%TZ); $(git rev-parse --short HEAD 2>/dev/null || echo 'not a git checkout')"

echo "== BiLSTM step against the FMA peak (bilstm_step --steps 4 --peak), $rounds rounds"
for _ in $(seq "$rounds"); do
  "$ex/bilstm_step" --steps 4 --peak | sed -n 's/^steady steps.* = \([0-9.]*\)% of .*/\1/p' | tee -a "$tmp/bilstm"
done

echo "== MiniLM 16 x 256, ours and PyTorch interleaved (minilm_vs_pytorch.sh $rounds)"
PYTHON="$py" MODEL_DIR="$model" bash benches/minilm_vs_pytorch.sh "$rounds" | tee "$tmp/minilm"
awk '$2 == "tapegrad" {e[$1] = $3; s[$1] = $4} $2 == "pytorch" {print $3 / e[$1] > "'"$tmp/eval"'";
  print $4 / s[$1] > "'"$tmp/step"'"}' "$tmp/minilm"

echo "== SGEMM against OpenBLAS (openblas_table.sh $rounds)"
PYTHON="$py" bash benches/openblas_table.sh "$rounds" | tee "$tmp/gemm"
awk -F'|' '$2 ~ /³/ {gsub(/ /, "", $6); print $6}' "$tmp/gemm" > "$tmp/gemm_ratio"

echo "== Peak resident memory of 3 evaluation forwards and 3 training steps (/usr/bin/time -v)"
rss() { /usr/bin/time -v "$@" 2>&1 >/dev/null | sed -n 's/.*Maximum resident set size (kbytes): //p'; }
for _ in $(seq "$rounds"); do
  o=$(TAPEGRAD_NUM_THREADS=2 rss "$ex/minilm_forward" "$model" 16 256 3 f32)
  p=$(rss "$py" benches/pytorch_minilm.py "$model" 16 256 3 2 f32)
  echo "ours $((o / 1024)) MB, PyTorch $((p / 1024)) MB"
  awk -v o="$o" -v p="$p" 'BEGIN {print o / p}' >> "$tmp/mem"
done

echo "== MiniLM bf16 products against f32, interleaved (minilm_forward ... $rounds both)"
TAPEGRAD_NUM_THREADS=2 "$ex/minilm_forward" "$model" 16 256 "$rounds" both | grep '^median' | tee "$tmp/bf16"
bf16() { sed -n "s/.*$1 f32 [0-9.]* s, bf16 [0-9.]* s (bf16\/f32 \([0-9.]*\)).*/\1/p" "$tmp/bf16"; }

echo
echo "== Targets on this CPU (the median of the rounds decides)"
row "target" "measured: median (range)" "verdict"
row "BiLSTM step >= 65 % of the FMA peak" "$(summary < "$tmp/bilstm") %" "$(verdict "$(median < "$tmp/bilstm")" 65 ge)"
row "MiniLM training step >= 2.0x PyTorch" "$(summary < "$tmp/step")x" "$(verdict "$(median < "$tmp/step")" 2.0 ge)"
row "MiniLM evaluation forward >= 1.5x PyTorch" "$(summary < "$tmp/eval")x" "$(verdict "$(median < "$tmp/eval")" 1.5 ge)"
row "SGEMM 512-2048, 1-2 threads >= 1.0x OpenBLAS" "$(summary < "$tmp/gemm_ratio")x (each shape's best)" \
  "$(verdict "$(sort -g "$tmp/gemm_ratio" | head -1)" 1.0 ge) in every shape; median $(verdict "$(median < "$tmp/gemm_ratio")" 1.0 ge)"
row "MiniLM peak memory <= PyTorch's" "$(summary < "$tmp/mem")x" "$(verdict "$(median < "$tmp/mem")" 1.0 le)"
row "MiniLM bf16 time / f32 time (no target)" "forward $(bf16 forward)x, training step $(bf16 'training step')x" \
  "reported (median of the rounds)"
