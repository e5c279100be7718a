#!/usr/bin/env bash
# The MiniLM step, ours against PyTorch, interleaved (ours, PyTorch, ours, ...) so both see the
# same machine; prints the best evaluation forward and the best training step of each round.
#   PYTHON=/path/to/python-with-torch bash benches/minilm_vs_pytorch.sh [ROUNDS [BATCH [SEQ_LEN]]]
# PRECISION=bf16 runs both in bf16 mixed precision: ours with bf16 products (`--precision
# bf16`), PyTorch under torch.autocast("cpu", dtype=torch.bfloat16). Default f32.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}; batch=${2:-16}; seq=${3:-256}
model=${MODEL_DIR:-../shared/models/all-MiniLM-L6-v2}
py=${PYTHON:-python3}
precision=${PRECISION:-f32}
case $precision in f32|bf16) ;; *) echo "error: PRECISION must be f32 or bf16, got $precision" >&2; exit 2 ;; esac
cargo build --release --example minilm_forward >/dev/null 2>&1
. benches/support/timings.sh
echo "precision: $precision"
printf "%-6s %-10s %16s %16s\n" round engine "eval forward s" "train step s"
for r in $(seq 1 "$rounds"); do
  o=$(TAPEGRAD_NUM_THREADS=2 ./target/release/examples/minilm_forward "$model" "$batch" "$seq" 3 "$precision" | best_minilm)
  p=$("$py" benches/pytorch_minilm.py "$model" "$batch" "$seq" 3 2 "$precision" 2>/dev/null | best_minilm)
  printf "%-6s %-10s %16s %16s\n" "$r" tapegrad $o
  printf "%-6s %-10s %16s %16s\n" "$r" pytorch $p
done
