#!/usr/bin/env bash
# The checks that need a real CUDA GPU, for a session lent one. The GPU machine (the
# `device` tool) has no Rust and no network: it gets the working tree and up to 64 MiB of
# carried build output. So the binaries are built here and run there:
#
#   here:   bash benches/gpu/device_check.sh prepare
#           (builds the test and bench binaries, strips them into target/gpu-check/, says
#           their size: carry that folder)
#   there:  bash benches/gpu/device_check.sh run
#           (runs each on cuda:0, one log per check under $OUT, a summary line per check;
#           exits 1 if any failed)
#
# What runs there, each also run in CI on the simulated GPU (the same PTX):
#   kernels      every launcher's test, the kernel against its CPU reference, on the
#                simulated GPU and on cuda:0 (`gpu::test_contexts`)
#   gradcheck    the op table on cuda:0: f64 against finite differences, f32 against the CPU
#                (`cuda::<row>`, `cuda_f32::<row>`)
#   training     BiLSTM and tiny-BERT Adam steps on cuda:0 against the CPU (`sim_device`)
#   device       the device seam's own tests (moves, sticky errors, allocator)
#   bench        `benches/gpu`: our SGEMM beside cuBLAS, bandwidth beside a device copy
#                (each shape validated before it is timed), short criterion settings
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=target/gpu-check

# Builds with `cargo $@ --message-format=json` and copies each executable of the named
# targets into $DIR, stripped.
gather() {
  local names=$1
  shift
  cargo "$@" --message-format=json | python3 -c '
import json, shutil, subprocess, sys
names, out = sys.argv[1].split(","), sys.argv[2]
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    exe = m.get("executable") if m.get("reason") == "compiler-artifact" else None
    if exe and m["target"]["name"] in names:
        dst = out + "/" + m["target"]["name"]
        shutil.copy(exe, dst)
        subprocess.run(["strip", dst], check=True)
        print("  " + dst)
' "$names" "$DIR"
}

case "${1:-}" in
prepare)
  rm -rf "$DIR"
  mkdir -p "$DIR"
  echo "building into $DIR:"
  gather tapegrad_kernels test -p tapegrad-kernels --lib --no-run
  gather gradcheck,sim_device test -p tapegrad --test gradcheck --test sim_device --no-run
  gather device test -p tapegrad-autograd --test device --no-run
  gather gpu bench -p tapegrad --bench gpu --no-run
  echo "$(du -sh "$DIR" | cut -f1) to carry (the limit is 64 MiB); built against $(ldd --version | head -1)"
  ;;
run)
  OUT=${OUT:-$DIR/out}
  mkdir -p "$OUT"
  for bin in tapegrad_kernels gradcheck sim_device device gpu; do
    [ -x "$DIR/$bin" ] || { echo "no $DIR/$bin: run \`$0 prepare\` here and carry $DIR"; exit 2; }
  done
  (nvidia-smi -L && nvidia-smi --query-gpu=driver_version,memory.total --format=csv) >"$OUT/gpu.txt" 2>&1 || true
  head -3 "$OUT/gpu.txt"
  failed=0
  check() {
    local name=$1
    shift
    local start=$SECONDS rc=0
    "$@" >"$OUT/$name.log" 2>&1 || rc=$?
    echo "$name: exit $rc in $((SECONDS - start)) s; $(grep -E 'test result|SKIPPED|FAILED' "$OUT/$name.log" | tail -2 | tr '\n' ' ')"
    [ $rc -eq 0 ] || failed=1
  }
  # (`committed_ptx_is_fresh` reads the build machine's source folder: CI checks it there)
  check kernels "$DIR/tapegrad_kernels" gpu:: --skip committed_ptx_is_fresh --nocapture
  check gradcheck "$DIR/gradcheck" cuda
  check training "$DIR/sim_device" cuda
  check device "$DIR/device"
  check bench "$DIR/gpu" --bench --warm-up-time 0.5 --measurement-time 1.5
  # the bench's summary (ours/cuBLAS per shape, bandwidth against the copy)
  tail -25 "$OUT/bench.log"
  # a binary that saw no GPU says so and passes: on a GPU machine that is a failure
  if grep -l -E "SKIPPED|no real GPU here" "$OUT"/{kernels,gradcheck,training,bench}.log 2>/dev/null; then
    echo "the files above skipped their cuda:0 tests: no usable GPU (see $OUT/gpu.txt)"
    failed=1
  fi
  exit $failed
  ;;
*)
  sed -n '2,22p' "$0"
  exit 2
  ;;
esac
