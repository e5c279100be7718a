#!/usr/bin/env bash
# The accuracy run: one recipe trained over several seeds, each run's test accuracy and
# their mean and spread (issue 18). Each seed is a whole `finetune-imdb train` run in its
# own folder (checkpoints, metrics.jsonl, steps.jsonl, curves.svg, as `train` writes
# them), plus `test.txt`: the run's last line, `test_accuracy=<fraction> reviews=<count>`.
# A seed whose folder already has a test.txt is not run again, so a stopped sweep resumes.
#
#   bash bin/scripts/accuracy_runs.sh bilstm [SEED ...] [-- TRAIN-FLAGS ...]
#   bash bin/scripts/accuracy_runs.sh minilm [SEED ...] [-- TRAIN-FLAGS ...]
#
# Seeds default to 1 2 3. The recipes (the README's two commands on the full data):
#   bilstm: the tutorial's model with GloVe 50d, 5 epochs, constant Adam 1e-3, gradients
#           clipped to global norm 1 (train's defaults for --model bilstm), best epoch by
#           validation loss;
#   minilm: all-MiniLM-L6-v2, all 22,500 training reviews, 1 epoch, lr 1e-4, bf16 products
#           (`--precision bf16`: AMX or AVX512-BF16 where the CPU has them, a plain-Rust
#           path elsewhere; add `-- --precision f32` on a CPU without them), trained at
#           length 256 and evaluated at the length cap chosen on validation (below).
# Each run keeps every epoch's checkpoint (--keep-epochs), so one run also measures the
# choice of epoch: the test accuracy of the epoch with the best validation loss (train's
# `best/`, the recipe), of the best validation accuracy, and of the last epoch (`eval`
# of `epoch-N/`, in `rules.txt`; `eval` computes in the precision the run trained in).
# The length cap at evaluation (EVAL_CAPS, default `256 384 512` for minilm, none for
# bilstm): each seed's `best/` is scored on the run's own validation split at every cap
# (`eval --split valid --max-len N`), the cap with the lowest validation loss is chosen,
# and only that cap is scored on test (`caps.txt`: `cap valid_loss valid_accuracy` lines,
# then `chosen cap test_accuracy`). MiniLM has 512 positions but trains at 256 here.
# Flags after `--` are added to every run (e.g. `-- --epochs 2 --limit-train 6000`).
# Environment: DATA (aclImdb tar.gz), GLOVE, MODEL_DIR, OUT (default runs/accuracy),
# EVAL_CAPS, BIN (the finetune-imdb binary; default: built here with --release).
set -euo pipefail
cd "$(dirname "$0")/../.."

usage() { echo "usage: accuracy_runs.sh bilstm|minilm [SEED ...] [-- TRAIN-FLAGS ...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
model=$1; shift
seeds=(); extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --) shift; extra=("$@"); break ;;
    *[!0-9]*|'') echo "error: seed \`$1\` is not a non-negative integer" >&2; usage ;;
    *) seeds+=("$1"); shift ;;
  esac
done
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)

data=${DATA:-../shared/data/imdb/aclImdb_labeled.tar.gz}
glove=${GLOVE:-../shared/data/glove/glove.6B.50d.txt.gz}
model_dir=${MODEL_DIR:-../shared/models/all-MiniLM-L6-v2}
out=${OUT:-runs/accuracy}
case $model in
  bilstm) recipe=(--model bilstm --embeddings "$glove") defaults=(--epochs 5) caps=${EVAL_CAPS-} ;;
  minilm) recipe=(--model bert --pretrained "$model_dir")
    defaults=(--epochs 1 --lr 1e-4 --precision bf16) caps=${EVAL_CAPS-256 384 512} ;;
  *) usage ;;
esac
for c in $caps; do
  case $c in *[!0-9]*|0) echo "error: EVAL_CAPS: \`$c\` is not a positive length" >&2; exit 2 ;; esac
done
# the recipe's flag-value pairs that the extra flags do not set themselves
for ((i = 0; i < ${#defaults[@]}; i += 2)); do
  printf '%s\n' "${extra[@]}" | grep -qx -- "${defaults[i]}" || recipe+=("${defaults[i]}" "${defaults[i+1]}")
done
for f in "$data" $([ "$model" = bilstm ] && echo "$glove" || echo "$model_dir"); do
  [ -e "$f" ] || { echo "error: $f does not exist (set DATA, GLOVE or MODEL_DIR)" >&2; exit 1; }
done

if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p finetune-imdb
  BIN=${CARGO_TARGET_DIR:-target}/release/finetune-imdb
fi
cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
echo "recipe: finetune-imdb train ${recipe[*]} --data $data ${extra[*]:-}"
echo "cpu: $cpu, $(nproc) cores; seeds: ${seeds[*]}"

for s in "${seeds[@]}"; do
  dir="$out/$model/seed-$s"
  if [ -s "$dir/test.txt" ]; then
    echo "seed $s: done before ($(tr "\n" " " < "$dir/test.txt"))"
    continue
  fi
  mkdir -p "$dir"
  start=$(date +%s)
  # --overwrite: a folder without test.txt is an unfinished run, started again
  "$BIN" train "${recipe[@]}" --data "$data" --seed "$s" --out "$dir" --overwrite --quiet \
    --keep-epochs "${extra[@]}" | tee "$dir/stdout.txt"
  grep -E '^test_accuracy=' "$dir/stdout.txt" | tail -1 > "$dir/test.txt.tmp"
  echo "seconds=$(( $(date +%s) - start ))" >> "$dir/test.txt.tmp"
  mv "$dir/test.txt.tmp" "$dir/test.txt"
  echo "seed $s: $(tr '\n' ' ' < "$dir/test.txt")"
done

# The choice of epoch, per seed: `rule epoch test_accuracy` lines in rules.txt.
limit_test=$(printf '%s\n' "${extra[@]}" | grep -A1 -x -- --limit-test | tail -n +2 || true)
for s in "${seeds[@]}"; do
  dir="$out/$model/seed-$s"
  [ -s "$dir/rules.txt" ] && continue
  # epoch valid_loss valid_accuracy, one line an epoch
  sed -n 's/.*"epoch":\([0-9]*\).*"valid_loss":\([^,]*\),"valid_accuracy":\([^,]*\),.*/\1 \2 \3/p' \
    "$dir/metrics.jsonl" > "$dir/.valid"
  [ -s "$dir/.valid" ] || { echo "seed $s: no validation, no choice of epoch" >&2; continue; }
  by_loss=$(sort -g -k2,2 -k1,1n "$dir/.valid" | head -1 | cut -d' ' -f1)
  by_acc=$(sort -k3,3gr -k1,1n "$dir/.valid" | head -1 | cut -d' ' -f1)
  last=$(tail -1 "$dir/.valid" | cut -d' ' -f1)
  : > "$dir/rules.txt.tmp"
  for rule in "valid_loss $by_loss" "valid_accuracy $by_acc" "last $last"; do
    set -- $rule
    if [ "$2" = "$by_loss" ]; then
      acc=$(sed -n 's/^test_accuracy=\([0-9.]*\).*/\1/p' "$dir/test.txt")
    else
      acc=$("$BIN" eval --checkpoint "$dir/epoch-$2" --data "$data" --quiet \
        ${limit_test:+--limit-test "$limit_test"} | sed -n 's/^test_accuracy=\([0-9.]*\).*/\1/p')
    fi
    echo "$1 $2 $acc" >> "$dir/rules.txt.tmp"
  done
  mv "$dir/rules.txt.tmp" "$dir/rules.txt"
  rm -f "$dir/.valid"
done

# The length cap at evaluation, per seed: validation at each cap, test at the chosen one.
for s in "${seeds[@]}"; do
  dir="$out/$model/seed-$s"
  [ -n "$caps" ] || break
  [ -s "$dir/caps.txt" ] && continue
  : > "$dir/caps.txt.tmp"
  for c in $caps; do
    line=$("$BIN" eval --checkpoint "$dir/best" --data "$data" --split valid --max-len "$c" 2>&1 |
      sed -n 's/^valid: loss \([0-9.]*\), accuracy \([0-9.]*\) .*/\1 \2/p')
    [ -n "$line" ] || { echo "seed $s: eval --split valid --max-len $c printed no score" >&2; exit 1; }
    echo "$c $line" >> "$dir/caps.txt.tmp"
    echo "seed $s: cap $c: valid loss, accuracy $line"
  done
  chosen=$(sort -g -k2,2 -k1,1n "$dir/caps.txt.tmp" | head -1 | cut -d' ' -f1)
  acc=$("$BIN" eval --checkpoint "$dir/best" --data "$data" --max-len "$chosen" --quiet \
    ${limit_test:+--limit-test "$limit_test"} | sed -n 's/^test_accuracy=\([0-9.]*\).*/\1/p')
  [ -n "$acc" ] || { echo "seed $s: eval --max-len $chosen printed no test_accuracy" >&2; exit 1; }
  echo "chosen $chosen $acc" >> "$dir/caps.txt.tmp"
  mv "$dir/caps.txt.tmp" "$dir/caps.txt"
  echo "seed $s: cap $chosen chosen on validation: test $acc"
done

# The table: each seed, then mean, population standard deviation and range.
echo
pct() { awk -v a="$1" 'BEGIN{ if (a == "") printf "-"; else printf "%.2f %%", 100*a }'; }
rule() { awk -v r="$1" '$1 == r { printf "%s (epoch %s)", $3, $2 }' "$2" 2>/dev/null; }
capcol() { [ -z "$caps" ] || echo " | $1"; }
echo "| seed | test accuracy (best validation loss) | reviews | minutes | best validation accuracy | last epoch$(capcol "at the cap chosen on validation") |"
echo "|---|---|---|---|---|---$([ -z "$caps" ] || echo "|---")|"
for s in "${seeds[@]}"; do
  d="$out/$model/seed-$s"
  f="$d/test.txt"
  acc=$(sed -n 's/^test_accuracy=\([0-9.]*\).*/\1/p' "$f")
  n=$(sed -n 's/.*reviews=\([0-9]*\).*/\1/p' "$f")
  sec=$(sed -n 's/^seconds=//p' "$f")
  other=""
  for r in valid_accuracy last; do
    x=$(rule "$r" "$d/rules.txt")
    other="$other | $( [ -n "$x" ] && echo "$(pct "${x%% *}") ${x#* }" || echo - )"
  done
  at_cap=$(awk '$1 == "chosen" { print $3 " (cap " $2 ")" }' "$d/caps.txt" 2>/dev/null)
  at_cap=$([ -n "$at_cap" ] && echo "$(pct "${at_cap%% *}") ${at_cap#* }" || echo -)
  echo "| $s | $(pct "$acc") | $n | $(awk -v t="$sec" 'BEGIN{printf "%.1f", t/60}')$other$(capcol "$at_cap") |"
  echo "$acc" >> "$out/$model/.accs.$$"
done
awk '{a[NR]=100*$1; s+=100*$1} END {m=s/NR; for(i=1;i<=NR;i++) v+=(a[i]-m)^2;
  lo=a[1]; hi=a[1]; for(i=1;i<=NR;i++){if(a[i]<lo)lo=a[i]; if(a[i]>hi)hi=a[i]}
  printf "\nmean %.2f %%, standard deviation %.2f points, range %.2f-%.2f %% over %d seeds\n", m, sqrt(v/NR), lo, hi, NR}' \
  "$out/$model/.accs.$$"
rm -f "$out/$model/.accs.$$"
for r in valid_accuracy last; do
  for s in "${seeds[@]}"; do cat "$out/$model/seed-$s/rules.txt" 2>/dev/null; done |
    awk -v r="$r" '$1 == r { s += 100*$3; n++ } END { if (n) printf "choosing the epoch by %s instead: mean %.2f %% over %d seeds\n", (r == "last" ? "the last epoch" : "validation accuracy"), s/n, n }'
done
for s in "${seeds[@]}"; do cat "$out/$model/seed-$s/caps.txt" 2>/dev/null; done |
  awk '$1 == "chosen" { s += 100*$3; n++ } END { if (n) printf "evaluated at the length cap chosen on validation: mean %.2f %% over %d seeds\n", s/n, n }'
