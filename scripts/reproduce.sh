#!/usr/bin/env bash
# reproduce.sh BIN — the main job behind `make reproduce`: runs every measurement focusbench
# can make on this machine, writes the results under results/ (each file atomically) and
# regenerates REPORT.md's generated sections from them. Progress lines throughout; every step
# is timed and the timings land in RESULTS_DIR/reproduce/timings.csv.
#
# Steps: the environment, the FLOP tables of the paper's configurations (meta backend), the
# synthetic benchmark (synth-small data), training Uni-AdaFocus on it (synth-tiny model, CPU),
# evaluation with conditional exit across budgets and the random-exit control, the curves CSV
# and the accuracy-vs-GFLOPs plot, a CPU profile, the CPU conv/linear benchmark, REPORT.md.
#
# Environment knobs (defaults give the full run, sized for a 2-core CPU in < 20 minutes):
#   RESULTS_DIR  where results go (default results); curves etc. under RESULTS_DIR/reproduce
#   DATA_DIR     where the synthetic benchmark is written (default data/synth-small)
#   REPORT       the report regenerated at the end (default REPORT.md)
#   REDUCED=1    the tiny form run by `make test` (group reproduce): a few videos, one epoch,
#                one budget point, no bench-ops, no profile; seconds, not minutes
#   EPOCHS, BATCH  training epochs and batch size (override the defaults below)
#   THREADS      threads of bench-ops (default: nproc)
# Seeds are fixed (data 0, training 0, eval 0): two runs give the same accuracies.
set -euo pipefail
bin=${1:?usage: reproduce.sh path/to/focusbench}
case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac  # we cd to the repository root below
cd "$(dirname "$0")/.."
out=${RESULTS_DIR:-results}
data=${DATA_DIR:-data/synth-small}
report=${REPORT:-REPORT.md}
reduced=${REDUCED:-0}
rep="$out/reproduce"
mkdir -p "$out" "$rep" "$(dirname "$data")"
threads=${THREADS:-$(nproc)}
# The model trained on the 64x64 synth-small videos: synth-tiny (64x64 frames, 32x32 patches)
# is the preset whose frame size matches the data, and it trains in minutes on 2 cores.
model_preset=synth-tiny
if [ "$reduced" = 1 ]; then
  gen_extra=(--videos-train 16 --videos-val 8)
  epochs=${EPOCHS:-1}; batch=${BATCH:-8}
  budgets=0.5
else
  gen_extra=()
  epochs=${EPOCHS:-30}; batch=${BATCH:-8}
  budgets=0.05,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,0.95
fi

timings="$rep/timings.csv"
echo "step,seconds" > "$timings.tmp"
step_name=""
step_t0=0
# step NAME: closes the previous step's timing and opens a new one.
step() {
  end_step
  step_name="$*"; step_t0=$(date +%s.%N)
  echo; echo "== reproduce: $*"
}
end_step() {
  if [ -n "$step_name" ]; then
    local secs; secs=$(awk -v a="$step_t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    echo "   ($step_name: $secs s)"
    printf '"%s",%s\n' "$step_name" "$secs" >> "$timings.tmp"
  fi
  step_name=""
}

step "environment"
"$bin" version | tee "$out/environment.txt.tmp"
mv "$out/environment.txt.tmp" "$out/environment.txt"

step "FLOP tables, paper convention (meta backend)"
for p in actnet-p96 actnet-p128 actnet-p160 actnet-p192 fcvid-p128 minik-p128; do
  "$bin" flops --preset "$p" --csv "$out/flops_$p.csv" > /dev/null
  echo "  $p: $(tail -n 1 "$out/flops_$p.csv" | cut -d, -f2) GFLOPs per video"
done

step "synthetic benchmark (synth-small${gen_extra[*]:+ reduced: ${gen_extra[*]}})"
"$bin" gen-data --out "$data" --preset synth-small --seed 0 ${gen_extra[@]+"${gen_extra[@]}"}

step "train Uni-AdaFocus ($model_preset on $data, $epochs epochs, batch $batch)"
# A fresh run every time (fixed seeds give the same weights); a run dir left by an interrupted
# reproduce would otherwise make `train` refuse (it resumes only when asked).
rm -rf "$rep/run_uniadafocus"
"$bin" train --preset "$model_preset" --data "$data" --out "$rep/run_uniadafocus" --epochs "$epochs" \
  --batch-size "$batch" --seed 0 --log-every 25

step "evaluate Uni-AdaFocus: fixed exits, conditional exit at budgets $budgets, random-exit control"
"$bin" eval --preset "$model_preset" --ckpt "$rep/run_uniadafocus/model.safetensors" --data "$data" \
  --budgets "$budgets" --score max-logit --seed 0 --csv "$rep/eval_uniadafocus.csv"

# Baselines. HOOK: when `focusbench train` learns to train a baseline (a --method option, the
# registry of baselines/registry.h), TSN — uniform full-frame processing, the comparison the
# claim is about — is trained and evaluated here on the same data and its eval CSV is added to
# the curves as method `tsn`. Until then the curves hold Uni-AdaFocus alone and REPORT.md says so.
tsn_csv=""
train_help=$("$bin" train --help 2>/dev/null || true)
# TSN=1 turns it on: `train --method tsn` now exists, but its default preset (tsn-r50-8x224,
# 32.7 GFLOPs per video) takes ~5 minutes for one epoch of 16 videos on 2 cores, so it stays
# off until a synth-sized TSN preset exists (pass it as TSN_PRESET); never in REDUCED mode.
if [ "$reduced" = 1 ] || [ "${TSN:-0}" != 1 ]; then
  echo; echo "== reproduce: baselines: TSN off (TSN=1 to train it; REDUCED mode never does)"
elif printf '%s\n' "$train_help" | grep -q -- '--method'; then
  step "train and evaluate TSN (uniform full-frame)"
  rm -rf "$rep/run_tsn"
  if "$bin" train --method "${TSN_PRESET:-tsn}" --data "$data" --out "$rep/run_tsn" --epochs "$epochs" --batch-size "$batch" \
       --seed 0 --log-every 25 &&
     "$bin" eval --method "${TSN_PRESET:-tsn}" --ckpt "$rep/run_tsn/model.safetensors" --data "$data" --seed 0 \
       --csv "$rep/eval_tsn.csv"; then
    tsn_csv="$rep/eval_tsn.csv"
  else
    echo "  tsn: training or evaluation failed (see above); the curves hold Uni-AdaFocus alone"
  fi
else
  echo; echo "== reproduce: baselines: \`focusbench train\` has no --method yet; TSN not trained (hook in this script)"
fi

step "curves CSV ($rep/curves.csv)"
# One row per point of a curve: method, point (the budget knob p, or the exit index for fixed
# exits), gflops_per_video, top1, then the eval CSV's environment columns verbatim. The eval
# CSV's first 14 columns hold no quoted commas (ids, numbers, space-separated fractions), so
# cut and awk split them safely; the rest (quoted environment text) is copied untouched.
#   eval columns: 1 schema_version 2 method 3 preset 4 mode 5 score 6 budget_p 7 exit
#                 8 gflops_per_video 9 top1 ... 15- flop_convention and the environment
to_curves() {  # to_curves EVAL.csv → rows on stdout (no header)
  tail -n +2 "$1" | while IFS= read -r line; do
    head=$(printf '%s\n' "$line" | cut -d, -f1-9)
    env=$(printf '%s\n' "$line" | cut -d, -f15-)
    printf '%s\n' "$head" | awk -F, -v env="$env" 'BEGIN { OFS = "," }
      { gsub(/"/, "", $2); gsub(/"/, "", $4)
        if ($4 == "fixed")        { m = $2 "-fixed-exit"; pt = "exit" $7 }
        else if ($4 == "dynamic") { m = $2;               pt = "p=" $6 }
        else if ($4 == "random")  { m = $2 "-random-exit"; pt = "p=" $6 }
        else next
        print $1, "\"" m "\"", "\"" pt "\"", $6, $7, $8, $9, env }'
  done
}
eval_header=$(head -n 1 "$rep/eval_uniadafocus.csv")
{
  echo "schema_version,method,point,budget_p,exit,gflops_per_video,top1,$(printf '%s\n' "$eval_header" | cut -d, -f15-)"
  to_curves "$rep/eval_uniadafocus.csv"
  [ -z "$tsn_csv" ] || to_curves "$tsn_csv"
} > "$rep/curves.csv.tmp"
mv "$rep/curves.csv.tmp" "$rep/curves.csv"
awk -F, 'NR > 1 { printf "  %-28s %-8s %8.4f GFLOPs  top1 %6.2f%%\n", $2, $3, $6, $7 }' "$rep/curves.csv" | tr -d '"'

step "plot accuracy vs GFLOPs ($rep/acc_gflops.{png,svg,gp})"
if command -v gnuplot > /dev/null 2>&1; then
  "$bin" plot --csv "$rep/curves.csv" --kind acc-gflops --out "$rep/acc_gflops" \
    --title "synthetic benchmark: top-1 vs GFLOPs per video"
else
  echo "  gnuplot is not installed (scripts/install-deps.sh installs gnuplot-nox): no plot; the CSV has every point"
fi

if [ "$reduced" != 1 ]; then
  step "CPU profile (Uni-AdaFocus $model_preset, batch 1,8)"
  "$bin" profile --preset "$model_preset" --device cpu --batch 1,8 --csv "$rep/profile_cpu.csv"

  step "CPU conv/linear benchmark (batch 16, $threads threads)"
  "$bin" bench-ops --batch 16 --threads "$threads" --csv "$out/bench_ops_cpu.csv"
fi

step "REPORT ($report)"
"$bin" report --results "$out" --report "$report"
end_step
mv "$timings.tmp" "$timings"
echo "reproduce: done; results in $out/ (curves in $rep/), $report regenerated; step timings in $timings"
