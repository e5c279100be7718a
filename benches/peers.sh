#!/usr/bin/env bash
# The Rust peers on this project's workloads, each round ours then theirs (interleaved, so all
# see the same machine), and the median over the rounds of ours against theirs:
#   - SGEMM 512³, 1024³, 2048³ on 1 and 2 threads (examples/gemm against candle's and burn's
#     Tensor::matmul), best GFLOP/s of each run, ratio ours/theirs;
#   - all-MiniLM-L6-v2, 16 × 256 tokens: the evaluation forward and the training step (forward and
#     backward), ours as finetune-imdb runs it (the last layer at [CLS] only) and at every position
#     (the peers' work), against candle-transformers' BERT and a BERT of burn-nn's modules
#     (burn ships none; checked against PyTorch's fixture before it is timed), best time of
#     each run, ratio theirs/ours (how many times faster ours is);
#   - the tutorial's BiLSTM training step, 64 reviews of 230 tokens (the peers have no packed
#     sequences, so ours runs equal lengths too), against candle's LSTM and burn's BiLstm, best
#     step of each run, ratio theirs/ours.
#   MODEL_DIR=... bash benches/peers.sh [ROUNDS]
# The peers build in benches/peers/ (its own lock file and target folder, never part of the
# workspace; the first build downloads and compiles candle and burn, ~15 min on 2 cores).
# Their threads: RAYON_NUM_THREADS, set here as ours. PEERS_RUSTFLAGS builds them with other
# flags (say "-C target-cpu=native", which ours does not need: it picks its kernels at run
# time), into PEERS_TARGET (an absolute path; default benches/peers/target).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
model=${MODEL_DIR:-../shared/models/all-MiniLM-L6-v2}
[ -f "$model/model.safetensors" ] || { echo "error: no model.safetensors in $model (set MODEL_DIR)" >&2; exit 2; }
cargo build --release --example gemm --example minilm_forward --example bilstm_step 2>&1 | tail -1
peers_target=${PEERS_TARGET:-$PWD/benches/peers/target}
(cd benches/peers && RUSTFLAGS="${PEERS_RUSTFLAGS:-}" CARGO_TARGET_DIR="$peers_target" cargo build --release --bins 2>&1 | tail -1)
ours=target/release/examples
peer=$peers_target/release
gflops() { grep -o 'gflops=[0-9.]*' | cut -d= -f2; }
. benches/support/timings.sh
# the best "step N: ... = X s" of a peer's BiLSTM steps
best_step() { awk '/^step [0-9]+:/ {t=""; for (i=1;i<=NF;i++) if ($i=="=" && t=="") t=$(i+1); if (b=="" || t<b) b=t} END {print b}'; }
# median of the numbers on stdin
median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print v[(NR+1)/2]; else printf "%.3f\n", (v[NR/2]+v[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f\n", a/b}'; }
log=$(mktemp); trap 'rm -f "$log"' EXIT

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) CPUs; rounds: $rounds; $(date -u +%FT%TZ); $(git rev-parse --short HEAD)"
locked() { grep -A1 "^name = \"$1\"" benches/peers/Cargo.lock | sed -n 's/version = "\(.*\)"/\1/p'; }
echo "candle $(locked candle-core), burn $(locked burn) (Flex); RUSTFLAGS for the peers: '${PEERS_RUSTFLAGS:-}'"
echo "== SGEMM: GFLOP/s, ours, candle, burn"
for r in $(seq 1 "$rounds"); do
  for t in 1 2; do
    for n in 512 1024 2048; do
      o=$($ours/gemm --m $n --n $n --k $n --threads $t | gflops)
      c=$(RAYON_NUM_THREADS=$t $peer/candle_gemm $n $n $n | gflops)
      b=$(RAYON_NUM_THREADS=$t $peer/burn_gemm $n $n $n | gflops)
      echo "round $r  ${n}³ on $t thread(s): ours $o, candle $c, burn $b"
      echo "sgemm $n $t $(ratio "$o" "$c") $(ratio "$o" "$b")" >>"$log"
    done
  done
done

echo "== MiniLM 16 x 256: best evaluation forward s, best training step s"
for r in $(seq 1 "$rounds"); do
  set -- $(TAPEGRAD_NUM_THREADS=2 $ours/minilm_forward "$model" 16 256 3 | best_minilm)
  o_eval=$1 o_step=$2
  set -- $(TAPEGRAD_NUM_THREADS=2 $ours/minilm_forward --all-positions "$model" 16 256 3 | best_minilm)
  a_eval=$1 a_step=$2
  set -- $(RAYON_NUM_THREADS=2 $peer/candle_minilm "$model" 16 256 2 | best_minilm)
  c_eval=$1 c_step=$2
  set -- $(RAYON_NUM_THREADS=2 $peer/burn_minilm "$model" 16 256 2 | best_minilm)
  b_eval=$1 b_step=$2
  echo "round $r  ours ([CLS] last layer) $o_eval $o_step; ours (every position) $a_eval $a_step; candle $c_eval $c_step; burn $b_eval $b_step"
  for peer_times in "candle $c_eval $c_step" "burn $b_eval $b_step"; do
    set -- $peer_times
    echo "eval $1 $(ratio "$2" "$o_eval") $(ratio "$2" "$a_eval")" >>"$log"
    echo "step $1 $(ratio "$3" "$o_step") $(ratio "$3" "$a_step")" >>"$log"
  done
done

echo "== BiLSTM step, 64 x 230 tokens: best step s, ours, candle, burn"
for r in $(seq 1 "$rounds"); do
  o=$(TAPEGRAD_NUM_THREADS=2 $ours/bilstm_step --steps 3 --min-len 230 --max-len 230 |
    awk '/^step [0-9]+:/ {for (i=1;i<=NF;i++) if ($i=="total") t=$(i+1)/1000; if (b=="" || t<b) b=t} END {print b}')
  c=$(RAYON_NUM_THREADS=2 $peer/candle_bilstm 2 64 230 | best_step)
  b=$(RAYON_NUM_THREADS=2 $peer/burn_bilstm 2 64 230 | best_step)
  echo "round $r  ours $o, candle $c, burn $b"
  echo "bilstm $(ratio "$c" "$o") $(ratio "$b" "$o")" >>"$log"
done

echo
echo "== ours against the peers: the median of the rounds (range)"
row() { # label, then the ratios on stdin
  local v; v=$(cat)
  printf "%-58s %s (%s-%s)\n" "$1" "$(echo "$v" | median)" "$(echo "$v" | sort -g | head -1)" "$(echo "$v" | sort -g | tail -1)"
}
for t in 1 2; do
  for n in 512 1024 2048; do
    awk -v n=$n -v t=$t '$1=="sgemm" && $2==n && $3==t {print $4}' "$log" | row "SGEMM ${n}³, $t thread(s): ours/candle GFLOP/s"
    awk -v n=$n -v t=$t '$1=="sgemm" && $2==n && $3==t {print $5}' "$log" | row "SGEMM ${n}³, $t thread(s): ours/burn GFLOP/s"
  done
done
for p in candle burn; do
  awk -v p=$p '$1=="eval" && $2==p {print $3}' "$log" | row "MiniLM evaluation forward: $p/ours time"
  awk -v p=$p '$1=="eval" && $2==p {print $4}' "$log" | row "  ours at every position ($p's work)"
  awk -v p=$p '$1=="step" && $2==p {print $3}' "$log" | row "MiniLM training step: $p/ours time"
  awk -v p=$p '$1=="step" && $2==p {print $4}' "$log" | row "  ours at every position ($p's work)"
done
awk '$1=="bilstm" {print $2}' "$log" | row "BiLSTM training step (equal lengths): candle/ours time"
awk '$1=="bilstm" {print $3}' "$log" | row "BiLSTM training step (equal lengths): burn/ours time"
