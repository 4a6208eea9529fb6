#!/usr/bin/env bash
# run_h100_conv1x1_ncu.sh TAG [CONFIGS] [GROUPS] — one device call on the H100 for the fp32 1x1
# SGEMM kernel (kernels/cuda/cuda_conv_sgemm.cu) and the depthwise kernel: the GPU tests of GROUPS
# (default cuda_fused), a verbose planning run of actnet-p128 at fp32, batch 32 (plans.txt: per 1x1
# shape, cuDNN + its epilogue pass and every config, timed), the profile at batch 32 with CUPTI,
# then Nsight Compute (clock control off: the clocks are left alone) on 1x1 launches of an untuned
# pass with each config in CONFIGS forced through FOCUSBENCH_CONV1X1_CONFIG (default "0"; stall
# reasons, issue and FMA-pipe activity, DRAM throughput) and on the depthwise launches, and the
# local-memory (spill) instructions of each kernel's SASS. Files go to $OUT/r, tarred as
# $OUT/TAG.tgz.
set -uo pipefail
tag=${1:?usage: run_h100_conv1x1_ncu.sh TAG [CONFIGS]}
configs=${2:-0}
groups=${3:-cuda_fused}
# shellcheck source=results/gpu/device_common.sh
. "$(dirname "$0")/device_common.sh"
# shellcheck disable=SC2086
device_tests $groups
el "verbose planning run (every config timed per shape)"
FOCUSBENCH_CUDA_VERBOSE=1 timeout 150 $B profile --preset actnet-p128 --device cuda --precision fp32 --batch 32 \
  --no-cupti --repeats 3 --min-time 0 > "$OUT/r/profile_fp32_b32.verbose" 2>&1; echo "verbose rc=$?"
grep -E "conv1x1 |stem conv " "$OUT/r/profile_fp32_b32.verbose" | sed 's/^focusbench cuda: //' > "$OUT/r/plans.txt"
grep -E "^ +32 +(eager|graph)" "$OUT/r/profile_fp32_b32.verbose"
el "profile fp32 b32 with CUPTI"
timeout 150 $B profile --preset actnet-p128 --device cuda --precision fp32 --batch 32 \
  --csv "$OUT/r/profile_fp32_b32.csv" > "$OUT/r/profile_fp32_b32.txt" 2>&1; echo "profile rc=$?"
grep -hE "^ +32 +(eager|graph)|^ +(glance|policies|crop|focus|classifier|sum) " "$OUT/r/profile_fp32_b32.txt"
NCU=$(command -v ncu)
for f in /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu; do [[ -z $NCU && -x $f ]] && NCU=$f; done
METRICS='regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio,smsp__issue_active.avg.pct_of_peak_sustained_active,sm__pipe_fma_cycles_active.avg.pct_of_peak_sustained_active,dram__throughput.avg.pct_of_peak_sustained_elapsed,gpu__time_duration.sum,smsp__inst_executed.sum,sm__warps_active.avg.pct_of_peak_sustained_active,launch__registers_per_thread,launch__grid_size'
UNTUNED=(profile --preset actnet-p128 --device cuda --precision fp32 --batch 32 --no-autotune --mode eager --no-cupti --repeats 1 --min-time 0 --warmup 0)
for cfg in $configs; do
  el "ncu, config $cfg forced, untuned pass: 1x1 launches"
  FOCUSBENCH_CONV1X1_CONFIG=$cfg timeout 200 "$NCU" --clock-control none -k regex:conv_sgemm_kernel --launch-count 48 \
    --metrics "$METRICS" --csv --page raw $B "${UNTUNED[@]}" > "$OUT/r/ncu_cfg$cfg.csv" 2> "$OUT/r/ncu_cfg$cfg.err"
  echo "ncu cfg $cfg rc=$? ($(wc -l < "$OUT/r/ncu_cfg$cfg.csv") lines)"
done
el "ncu: depthwise launches"
timeout 150 "$NCU" --clock-control none -k regex:dw3x3_forward --launch-count 14 --metrics "$METRICS" --csv --page raw \
  $B "${UNTUNED[@]}" > "$OUT/r/ncu_dw.csv" 2> "$OUT/r/ncu_dw.err"; echo "ncu dw rc=$?"
el "SASS: local-memory instructions per kernel"
CUOBJ=$(command -v cuobjdump || echo /usr/local/cuda/bin/cuobjdump)
for o in cuda_conv1x1 cuda_conv_fused; do
  "$CUOBJ" -sass "build/gpu/rel-cuda/kernels/cuda/$o.cu.o" | awk '/Function :/ {f=$3} /BAR.SYNC/ {bar[f]++} /LDL|STL/ {n[f]++; if (bar[f] == 1) inloop[f]++} END {for (k in n) print k, "local-memory instructions:", n[k], "between the first two barriers:", inloop[k]+0}' > "$OUT/r/sass_$o.txt"
  gzip -c <("$CUOBJ" -sass "build/gpu/rel-cuda/kernels/cuda/$o.cu.o") > "$OUT/r/sass_$o.txt.gz"
done
cat "$OUT"/r/sass_*.txt
el "done"
tar -C "$OUT/r" -czf "$OUT/$tag.tgz" .
