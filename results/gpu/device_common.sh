# shellcheck shell=bash
# device_common.sh — sourced by the device scripts of results/gpu/ (run_h100_fp32_gemm.sh,
# run_h100_conv1x1_ncu.sh): the output folder, elapsed-time lines, the GPU test run and the
# binary's environment on the GPU machine.
#   el MESSAGE              prints "[+N s] MESSAGE" (seconds since sourcing)
#   device_tests GROUPS...  scripts/gpu_check.sh on those groups (builds first; every group when
#                           none), its log copied to $OUT/r/test-gpu.log, failures and the summary
#                           printed; DEVICE_TEST_TIMEOUT seconds at most (default 450)
# After sourcing: OUT (default build/gpu/out) and $OUT/r exist, B is the focusbench binary, and
# LD_LIBRARY_PATH finds the machine's cuDNN and CUDA runtime and the carried libraries.
export OUT=${OUT:-build/gpu/out} # gpu_check.sh writes its log there too
mkdir -p "$OUT/r"
device_t0=$(date +%s)
el() { echo "[+$(($(date +%s) - device_t0)) s] $*"; }
device_tests() {
  el "build and test-gpu: ${*:-every group}"
  timeout "${DEVICE_TEST_TIMEOUT:-450}" scripts/gpu_check.sh "$@" > /dev/null 2>&1
  echo "test-gpu rc=$?"
  cp "$OUT/test-gpu.log" "$OUT/r/test-gpu.log"
  grep -E "^ *FAIL|\[  FAILED|passed, " "$OUT/r/test-gpu.log" | head -30
}
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:/usr/local/cuda-13.0/targets/x86_64-linux/lib:build/gpu-deps/lib
# shellcheck disable=SC2034 # used by the scripts that source this file
B=build/gpu/focusbench
