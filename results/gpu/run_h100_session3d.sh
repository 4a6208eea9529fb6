#!/usr/bin/env bash
# Session 3d, call 1 on the H100: (1) the cuda_ops + cuda_gemm + cuda_fused sequence under
# AddressSanitizer (a CUDA SAN=1 build) to find the host-heap corruption behind the cuda_fused
# "hang"; (2) the normal build and every GPU test group, each group in its own process (so one
# group's failure cannot hide the others), then the whole binary in one process.
set -u
out=${OUT:-/tmp/out}; mkdir -p "$out"
export ASAN_OPTIONS=protect_shadow_gap=0:detect_leaks=0:abort_on_error=0:symbolize=1
SAN=1 timeout 240 scripts/gpu_check.sh cuda_ops cuda_gemm cuda_fused > /dev/null 2>&1
cp "$out/test-gpu.log" "$out/san.log" 2>/dev/null
unset ASAN_OPTIONS
timeout 200 scripts/gpu_check.sh device > /dev/null 2>&1
cp "$out/test-gpu.log" "$out/build.log" 2>/dev/null
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:/usr/local/cuda-13.0/targets/x86_64-linux/lib:build/gpu-deps/lib
export FOCUSBENCH_BIN=$PWD/build/gpu/focusbench
bin=build/gpu/rel-cuda/run_gpu_tests
for g in device cuda_ops cuda_gemm cuda_pass profile_gpu cuda_models cuda_graph cuda_x3d cuda_fused dist_gpu; do
  echo "===== group $g ====="
  timeout 150 "$bin" "$g" 2>&1 | tail -n 40
  echo "group $g rc=${PIPESTATUS[0]}"
done > "$out/groups.log" 2>&1
grep -h 'rc=\|passed, \|FAILED' "$out/groups.log" > "$out/summary.txt"
