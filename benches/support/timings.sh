# Shell helpers shared by the benches' scripts (sourced, not run).

# The best evaluation forward and the best training step, in seconds, of the lines that
# examples/minilm_forward (and its baselines: benches/pytorch_minilm.py, candle_minilm) print:
# "forward N (no_grad): X s ..." and "training step N ...: ... = X s ...".
best_minilm() {
  awk '/no_grad\):/ {f=$4; if (bf=="" || f<bf) bf=f}
       /^training step/ {t=""; for (i=1;i<=NF;i++) if ($i=="=" && t=="") t=$(i+1); if (bt=="" || t<bt) bt=t}
       END {printf "%s %s\n", bf, bt}'
}
