#!/usr/bin/env bash
# run_h100_conv1x1_ncu.sh TAG [CONFIGS] — one device call on the H100 for the fp32 1x1 SGEMM kernel
# (kernels/cuda/cuda_conv1x1.cu): the cuda_fused GPU tests (every tile config against the CPU), a
# verbose planning run of actnet-p128 at fp32, batch 32 (plans.txt: per 1x1 shape, cuDNN + its
# epilogue pass and every config, timed), the profile at batch 32 with CUPTI, then Nsight Compute
# (clock control off: the clocks are left alone) on the first 1x1 launches of an untuned pass with
# each config in CONFIGS forced through FOCUSBENCH_CONV1X1_CONFIG (default "0 3"), and the kernel's
# SASS. Files go to $OUT/r, tarred as $OUT/TAG.tgz.
set -uo pipefail
tag=${1:?usage: run_h100_conv1x1_ncu.sh TAG [CONFIGS]}
configs=${2:-0 3}
OUT=${OUT:-build/gpu/out}; mkdir -p "$OUT/r"
t0=$(date +%s); el() { echo "[+$(($(date +%s) - t0)) s] $*"; }
el "build and test-gpu: cuda_fused"
timeout 400 scripts/gpu_check.sh cuda_fused > /dev/null 2>&1; echo "test-gpu rc=$?"; cp "$OUT/test-gpu.log" "$OUT/r/test-gpu.log"
grep -E "^ *FAIL|\[  FAILED|passed, " "$OUT/r/test-gpu.log" | head -20
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:/usr/local/cuda-13.0/targets/x86_64-linux/lib:build/gpu-deps/lib
B=build/gpu/focusbench
el "verbose planning run (every config timed per shape)"
FOCUSBENCH_CUDA_VERBOSE=1 timeout 150 $B profile --preset actnet-p128 --device cuda --precision fp32 --batch 32 \
  --no-cupti --repeats 3 --min-time 0 > "$OUT/r/profile_fp32_b32.verbose" 2>&1; echo "verbose rc=$?"
grep -E "conv1x1 |stem conv " "$OUT/r/profile_fp32_b32.verbose" | sed 's/^focusbench cuda: //' > "$OUT/r/plans.txt"
grep -E "^ +32 +(eager|graph)" "$OUT/r/profile_fp32_b32.verbose"
el "profile fp32 b32 with CUPTI"
timeout 150 $B profile --preset actnet-p128 --device cuda --precision fp32 --batch 32 \
  --csv "$OUT/r/profile_fp32_b32.csv" > "$OUT/r/profile_fp32_b32.txt" 2>&1; echo "profile rc=$?"
grep -hE "^ +32 +(eager|graph)|^ +(glance|policies|crop|focus|classifier|sum) " "$OUT/r/profile_fp32_b32.txt"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
for cfg in $configs; do
  el "ncu, config $cfg forced, untuned pass"
  FOCUSBENCH_CONV1X1_CONFIG=$cfg timeout 240 "$NCU" --clock-control none -k regex:conv1x1_kernel --launch-count 70 \
    --section SpeedOfLight --section WarpStateStats --section SchedulerStats --section Occupancy \
    --section LaunchStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section InstructionStats \
    --csv --page details \
    $B profile --preset actnet-p128 --device cuda --precision fp32 --batch 32 --no-autotune --mode eager \
    --no-cupti --repeats 1 --min-time 0 --warmup 0 > "$OUT/r/ncu_cfg$cfg.csv" 2> "$OUT/r/ncu_cfg$cfg.err"
  echo "ncu cfg $cfg rc=$? ($(wc -l < "$OUT/r/ncu_cfg$cfg.csv") lines)"
done
el "SASS"
CUOBJ=$(command -v cuobjdump || echo /usr/local/cuda/bin/cuobjdump)
"$CUOBJ" -sass build/gpu/rel-cuda/kernels/cuda/cuda_conv1x1.cu.o > "$OUT/r/conv1x1.sass" 2>&1; echo "sass rc=$?"
el "done"
tar -C "$OUT/r" -czf "$OUT/$tag.tgz" .
