#!/usr/bin/env bash
# reproduce.sh BIN — the main job behind `make reproduce`: runs every measurement focusbench
# can make on this machine, writes the results under results/ (each file atomically) and
# regenerates REPORT.md's generated sections from them. Progress lines throughout; every step
# is timed and the timings land in RESULTS_DIR/reproduce/timings.csv.
#
# Steps: the environment, the FLOP tables of the paper's configurations (meta backend), the
# synthetic benchmark (synth-small data), pretraining the two shared backbones, then training
# and evaluating every method on it on the CPU (TSN at three configurations, TSM, Uni-AdaFocus
# synth-tiny with conditional exit across budgets and the random-exit control, its four
# ablations, AdaFocusV2, FrameExit, AR-Net, OCSampler), the curves CSV and the accuracy-vs-GFLOPs
# plot, a CPU profile, the CPU conv/linear benchmark, REPORT.md.
#
# On a machine with a usable NVIDIA GPU (and a focusbench built with the CUDA backend) the same
# steps run there instead: the full-size synthetic benchmark (synth-full: 224x224 videos, 1200
# training videos), the same networks at 128x128 frames (Uni-AdaFocus synth-tiny with 64x64
# patches; every baseline at the same frame size), training and evaluation with --device cuda, and
# GPU profiles
# (the synthetic model, and Uni-AdaFocus at paper size, actnet-p128, in bf16) instead of the CPU one.
#
# Environment knobs (defaults give the full run, sized for a 2-core CPU in < 20 minutes):
#   DEVICE       auto (default: cuda when the binary has the CUDA backend and `focusbench version`
#                finds a usable GPU, else cpu), cpu or cuda
#   PRECISION    GPU math: fp32, tf32 (default) or bf16
#   RESULTS_DIR  where results go (default results); curves etc. under RESULTS_DIR/reproduce
#   DATA_DIR     where the synthetic benchmark is written (default data/synth-small, data/synth-full
#                on the GPU). A binary without FFmpeg (the lent GPU machines have none) renders the
#                benchmark in memory instead (--synthetic SYNTH_VIDEOS per split, default 1200)
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
report=${REPORT:-REPORT.md}
reduced=${REDUCED:-0}
rep="$out/reproduce"
threads=${THREADS:-$(nproc)}
device=${DEVICE:-auto}
if [ "$device" = auto ]; then
  if "$bin" version | grep -q '^features:.*cuda=1' && ! "$bin" version | grep -q '^device: *none'; then
    device=cuda
  else
    device=cpu
  fi
fi
if [ "$device" = cuda ]; then
  # The full-size benchmark at 224x224, every model at 128x128 frames: the CPU's networks (the
  # shared backbones fit every method), twice the frame and patch size (boxes scaled alike).
  data_preset=synth-full; model_preset=synth-tiny; frame=128; half=64
  dev_args=(--device cuda --precision "${PRECISION:-tf32}")
  size_args=(--frame-size "$frame")
  uaf_size_args=(--frame-size "$frame" --patch-size 64 --box-min 54.857143 --box-max "$frame")
  abl_size_args=(--frame-size "$frame" --patch-size 64)
else
  # The model trained on the 64x64 synth-small videos: synth-tiny (64x64 frames, 32x32 patches)
  # is the preset whose frame size matches the data, and it trains in minutes on 2 cores.
  data_preset=synth-small; model_preset=synth-tiny; frame=64; half=32
  dev_args=()
  size_args=()
  uaf_size_args=()
  abl_size_args=()
fi
data=${DATA_DIR:-data/$data_preset}
mkdir -p "$out" "$rep" "$(dirname "$data")"
if "$bin" version | grep -q '^features:.*ffmpeg=1'; then
  data_args=(--data "$data")
else
  data_args=(--synthetic "${SYNTH_VIDEOS:-1200}")
fi
if [ "$reduced" = 1 ]; then
  gen_extra=(--videos-train 16 --videos-val 8)
  [ "${data_args[0]}" = --synthetic ] && data_args=(--synthetic 16)
  epochs=${EPOCHS:-1}; batch=${BATCH:-8}; log_every=0
  budgets=0.5
else
  gen_extra=()
  # batch 16 on a GPU: the small models are launch-bound at 8 (the same epochs, half the steps)
  epochs=${EPOCHS:-3}; batch=${BATCH:-$([ "$device" = cuda ] && echo 16 || echo 8)}; log_every=50
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
# Uni-AdaFocus (ActivityNet/FCVID/Mini-K), Uni-AdaFocus-TSM (Something-Something V1, the four
# paper configurations) and Uni-AdaFocus-X3D (Kinetics-400, per view).
for p in actnet-p96 actnet-p128 actnet-p160 actnet-p192 fcvid-p128 minik-p128 \
         sthv1-p96-8x8 sthv1-p96-8x12 sthv1-p128-8x12 sthv1-p128-8x16 k400-x3d; do
  "$bin" flops --preset "$p" --csv "$out/flops_$p.csv" > /dev/null
  # columns schema_version, item (quoted), gflops, then the environment (bench/flops_csv.h)
  echo "  $p: $(awk -F, '$2 == "\"total\"" || $2 == "\"exit1\"" { v = $3 } END { print v }' "$out/flops_$p.csv") GFLOPs per video"
done

echo "reproduce: on the $device${dev_args[*]:+ (${dev_args[*]})}; data $data_preset, models at ${frame}x$frame frames ($model_preset)"
if [ "${data_args[0]}" = --data ]; then
  step "synthetic benchmark ($data_preset${gen_extra[*]:+ reduced: ${gen_extra[*]}})"
  # Byte-identical whatever the number of encoder threads (datasets/README.md, Determinism).
  "$bin" gen-data --out "$data" --preset "$data_preset" --seed 0 ${gen_extra[@]+"${gen_extra[@]}"}
else
  echo "reproduce: this focusbench has no FFmpeg: the benchmark is rendered in memory (${data_args[*]} per split)"
fi

# ---- training and evaluation of every method ---------------------------------------------------
# The paper's methods all start from ImageNet-pretrained backbones. The analogue here: the two
# backbones every method shares (ResNet-18 width 16, MobileNetV2 x0.25) are first trained as TSN
# frame classifiers on the benchmark's training split ("pretraining", not a curve point), and
# then EVERY method, the TSN baselines included, is trained for the same number of epochs from
# them (`train --pretrained PREFIX=FILE`), so all points have had the same training budget.
# Every run is fresh (fixed seeds give the same weights; a run dir left by an interrupted
# reproduce would otherwise make `train` refuse, as it resumes only when asked).
evals=()    # "label=eval.csv" pairs, in curve order
train_run() {  # train_run NAME ARGS... → $rep/run_NAME
  local name=$1; shift
  rm -rf "$rep/run_$name"
  "$bin" train "$@" "${data_args[@]}" --out "$rep/run_$name" --epochs "$epochs" --batch-size "$batch" --seed 0 \
    --log-every "$log_every" ${dev_args[@]+"${dev_args[@]}"}
}
eval_run() {  # eval_run LABEL NAME ARGS... → $rep/eval_LABEL.csv, listed in the curves under LABEL
  local label=$1 name=$2; shift 2
  "$bin" eval "$@" --ckpt "$rep/run_$name/model.safetensors" "${data_args[@]}" --budgets "$budgets" --score max-logit \
    --seed 0 --csv "$rep/eval_$label.csv" --exits-csv "$rep/exits_$label.csv" ${dev_args[@]+"${dev_args[@]}"} |
    sed -n '/^fixed exits/,$p'
  evals+=("$label=$rep/eval_$label.csv")
}
tsn_ckpt="$rep/run_pretrain-resnet/model.safetensors"
mbv2_ckpt="$rep/run_pretrain-mobilenet/model.safetensors"

sz=${size_args[@]+"${size_args[@]}"}  # the baselines' frame size on the GPU (their presets say 64)
step "pretraining the shared backbones: ResNet-18 w16 and MobileNetV2 x0.25 as TSN frame classifiers, $epochs epochs each"
train_run pretrain-resnet --method tsn-synth $sz
train_run pretrain-mobilenet --method tsn-mbv2-synth $sz

step "TSN, ResNet-18 w16, 4 frames at $frame (uniform full frames)"
train_run tsn --method tsn-synth $sz --pretrained "base_model.=$tsn_ckpt"
eval_run "tsn-4x$frame" tsn --method tsn-synth $sz

step "TSN, MobileNetV2 x0.25, 4 frames at $frame (the glance network alone, uniform)"
train_run tsn-mbv2 --method tsn-mbv2-synth $sz --pretrained "base_model.=$mbv2_ckpt"
eval_run "tsn-mbv2-4x$frame" tsn-mbv2 --method tsn-mbv2-synth $sz

step "TSN, ResNet-18 w16, 4 frames at $half (uniform frames at half resolution: about Uni-AdaFocus's cost)"
train_run tsn-half --method tsn-synth --frame-size "$half" --pretrained "base_model.=$tsn_ckpt"
eval_run "tsn-4x$half" tsn-half --method tsn-synth --frame-size "$half"

step "TSM, ResNet-18 w16, 4 frames at $frame"
train_run tsm --method tsm-synth $sz --pretrained "base_model.=$tsn_ckpt"
eval_run tsm tsm --method tsm-synth $sz

step "Uni-AdaFocus ($model_preset), $epochs epochs"
usz=${uaf_size_args[@]+"${uaf_size_args[@]}"}
asz=${abl_size_args[@]+"${abl_size_args[@]}"}
train_run uniadafocus --preset "$model_preset" $usz --pretrained-global "$mbv2_ckpt" --pretrained-local "$tsn_ckpt"
eval_run uniadafocus uniadafocus --preset "$model_preset" $usz --boxes-csv "$rep/boxes_uniadafocus.csv"

step "Uni-AdaFocus ablations: uniform frames, centre box, random box (trained); no exit (the same weights)"
for abl in uniform centre randombox; do
  echo "-- uniadafocus-$abl"
  train_run "uniadafocus-$abl" --method "uniadafocus-$abl-$model_preset" $asz \
    --pretrained "global_CNN.=$mbv2_ckpt" --pretrained "local_CNN.=$tsn_ckpt"
  eval_run "uniadafocus-$abl" "uniadafocus-$abl" --method "uniadafocus-$abl-$model_preset" $asz \
    --boxes-csv "$rep/boxes_uniadafocus-$abl.csv"
done
eval_run uniadafocus-noexit uniadafocus --method "uniadafocus-noexit-$model_preset" $asz

patch=$((frame / 2))
step "AdaFocusV2 (MobileNetV2 x0.25 + ResNet-18 w16, 8 frames, ${patch}x$patch patches)"
train_run adafocusv2 --method adafocusv2-synth $sz ${sz:+--patch-size $patch} \
  --pretrained "global_CNN.=$mbv2_ckpt" --pretrained "local_CNN.=$tsn_ckpt"
eval_run adafocusv2 adafocusv2 --method adafocusv2-synth $sz ${sz:+--patch-size $patch} \
  --boxes-csv "$rep/boxes_adafocusv2.csv"

step "FrameExit (ResNet-18 w16, up to 8 frames, learned exit gates)"
train_run frameexit --method frameexit-synth $sz --pretrained "backbone.=$tsn_ckpt"
eval_run frameexit frameexit --method frameexit-synth $sz

step "AR-Net (MobileNetV2 policy; ResNet-18 w16 at three resolutions or skip)"
train_run arnet --method arnet-synth $sz --pretrained "lite_backbone.=$mbv2_ckpt" \
  --pretrained "base_model_list.0.=$tsn_ckpt" --pretrained "base_model_list.1.=$tsn_ckpt" \
  --pretrained "base_model_list.2.=$tsn_ckpt"
eval_run arnet arnet --method arnet-synth $sz

step "OCSampler (MobileNetV2-TSM sampler, ResNet-18 w16 on the top frames)"
train_run ocsampler --method ocsampler-synth $sz --pretrained "backbone.=$tsn_ckpt"  # its sampler (+ a scoring head) from scratch
eval_run ocsampler ocsampler --method ocsampler-synth $sz

step "curves CSV ($rep/curves.csv)"
# `focusbench sweep` merges the eval CSVs into one row per point of a curve (method, point,
# budget_p, exit, gflops_per_video, top1 and the environment): a method with one exit is one point
# (tsn-4x64 → method tsn, point 4x64); Uni-AdaFocus and the other multi-exit methods give their
# fixed exits as METHOD-fixed-exit, their conditional-exit budgets as METHOD and the random-exit
# control as METHOD-random-exit (focusbench sweep --help).
sweep_args=()
for e in "${evals[@]}"; do sweep_args+=(--eval "$e"); done
"$bin" sweep --csv "$rep/curves.csv" "${sweep_args[@]}"
awk -F, 'NR > 1 { printf "  %-28s %-8s %8.4f GFLOPs  top1 %6.2f%%\n", $2, $3, $6, $7 }' "$rep/curves.csv" | tr -d '"'

step "plots: accuracy vs GFLOPs, Uni-AdaFocus exit histograms, policy boxes vs the ground truth"
if command -v gnuplot > /dev/null 2>&1; then
  # The methods (conditional exit where a method has it, Uni-AdaFocus's fixed exits too) …
  "$bin" plot --csv "$rep/curves.csv" --kind acc-gflops --out "$rep/acc_gflops" \
    --where 'method=tsn|tsm|uniadafocus|uniadafocus-fixed-exit|adafocusv2|frameexit|arnet|ocsampler' \
    --title "synthetic benchmark: top-1 vs GFLOPs per video"
  # … and Uni-AdaFocus against its ablations and its random-exit control.
  "$bin" plot --csv "$rep/curves.csv" --kind acc-gflops --out "$rep/acc_gflops_ablations" \
    --where 'method=uniadafocus|uniadafocus-random-exit|uniadafocus-fixed-exit|uniadafocus-uniform-fixed-exit|uniadafocus-centre-fixed-exit|uniadafocus-randombox-fixed-exit|uniadafocus-noexit|tsn' \
    --title "synthetic benchmark: Uni-AdaFocus, its ablations and the random-exit control"
  "$bin" plot --csv "$rep/exits_uniadafocus.csv" --kind exit-histogram --where score=max-logit \
    --where 'budget_p=0.2|0.5|0.8' --group point --out "$rep/exit_histogram" \
    --title "Uni-AdaFocus: where validation videos exit, per budget"
  "$bin" plot --csv "$rep/boxes_uniadafocus.csv" --csv "$rep/boxes_uniadafocus-uniform.csv" \
    --csv "$rep/boxes_uniadafocus-centre.csv" --csv "$rep/boxes_uniadafocus-randombox.csv" \
    --csv "$rep/boxes_adafocusv2.csv" --kind iou-bars --out "$rep/iou" \
    --title "synthetic benchmark: policy boxes vs the ground-truth object (mean IoU)"
else
  echo "  gnuplot is not installed (scripts/install-deps.sh installs gnuplot-nox): no plot; the CSV has every point"
fi

if [ "$reduced" != 1 ] && [ "$device" = cuda ]; then
  step "GPU profiles (Uni-AdaFocus $model_preset at $frame, ${dev_args[*]}; Uni-AdaFocus actnet-p128, bf16)"
  "$bin" profile --preset "$model_preset" $usz "${dev_args[@]}" --batch 1,8,32 --csv "$rep/profile_gpu.csv"
  "$bin" profile --preset actnet-p128 --device cuda --precision bf16 --batch 1,8 --csv "$rep/profile_gpu_actnet-p128.csv"
elif [ "$reduced" != 1 ]; then
  step "CPU profile (Uni-AdaFocus $model_preset, batch 1,8)"
  "$bin" profile --preset "$model_preset" --device cpu --batch 1,8 --csv "$rep/profile_cpu.csv"
fi
if [ "$reduced" != 1 ]; then
  step "CPU conv/linear benchmark (batch 16, $threads threads)"
  "$bin" bench-ops --batch 16 --threads "$threads" --csv "$out/bench_ops_cpu.csv"
fi

step "REPORT ($report)"
"$bin" report --results "$out" --report "$report"
end_step
mv "$timings.tmp" "$timings"
echo "reproduce: done; results in $out/ (curves in $rep/), $report regenerated; step timings in $timings"
