#!/usr/bin/env bash
# run_h100_sanitizer.sh — one device call: the GPU tests of session 7's kernels under NVIDIA's
# compute-sanitizer (memcheck: out-of-bounds and misaligned accesses; racecheck: shared-memory
# hazards between threads of a block; initcheck: reads of uninitialised device memory), each test
# picked with FOCUSBENCH_TEST_FILTER (tests/test_runner.c). Logs under $OUT, one per run.
set -uo pipefail
OUT=${OUT:-build/gpu/out}; mkdir -p "$OUT"
timeout 300 scripts/gpu_check.sh cuda_fused > "$OUT/build.log" 2>&1; echo "build + cuda_fused rc=$?"; grep -E "passed, " "$OUT/build.log"
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:/usr/local/cuda-13.0/targets/x86_64-linux/lib:build/gpu-deps/lib
CS=$(command -v compute-sanitizer || ls /usr/local/cuda-13.0/bin/compute-sanitizer /usr/local/cuda/bin/compute-sanitizer 2>/dev/null | head -1)
echo "compute-sanitizer: ${CS:-NOT FOUND}"; [[ -n $CS ]] || exit 1
T=build/gpu/rel-cuda/run_gpu_tests
for spec in memcheck:test_expand_dw_kernel racecheck:test_expand_dw_kernel initcheck:test_expand_dw_kernel \
            memcheck:'test_conv1x1*' racecheck:'test_conv1x1*' initcheck:'test_conv1x1*' \
            memcheck:test_fused_conv_epilogues racecheck:test_fused_conv_epilogues memcheck:test_gather; do
  tool=${spec%%:*}; filter=${spec#*:}; log="$OUT/cs_${tool}_${filter//\*/}.log"
  FOCUSBENCH_TEST_FILTER="$filter" timeout 240 "$CS" --tool "$tool" --error-exitcode 9 "$T" cuda_fused cuda_ops \
    > "$log" 2>&1
  echo "$tool $filter rc=$? | $(grep -hE 'ERROR SUMMARY|RACECHECK SUMMARY' "$log" | tail -1) | $(grep -hE 'test\(s\) run' "$log" | tr '\n' ' ')"
done
