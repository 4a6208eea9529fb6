#!/usr/bin/env bash
# run_h100_sanitizer.sh [TAG] — one device call: the GPU tests of the custom kernels under NVIDIA's
# compute-sanitizer (memcheck: out-of-bounds and misaligned accesses; racecheck: shared-memory
# hazards between threads of a block; initcheck: reads of uninitialised device memory), each test
# picked with FOCUSBENCH_TEST_FILTER (tests/test_runner.c). The test_conv_sgemm_kernel and
# test_conv1x1* specs cover the SGEMM kernel's configs on 1x1s (strided x, x's and the residual's
# pending epilogues, the residual staged in shared memory by cp.async; session 8) and on 3x3s (the
# gathered rows with their padding taps; session 11); test_linear the skinny linear kernel (cp.async stages, the
# reduce step as a programmatic dependent launch), test_reduce / test_max_pool / test_spatial
# session 9's row-staging reduce, max-pool and grid_sample kernels, test_dw_project_kernel session
# 10's depthwise + projection kernels (bulk copies on mbarriers; synccheck: barrier misuse). Logs
# under $OUT/r, one per run,
# tarred as $OUT/TAG.tgz (default sanitizer). Session 7 ran it as session7n_sanitizer, session 9 as
# session9a_sanitizer (session 8's kernels) and session9i_sanitizer. SANITIZER_ONLY=REGEX runs only
# the specs (tool:filter) it matches.
set -uo pipefail
tag=${1:-sanitizer}
# shellcheck source=results/gpu/device_common.sh
. "$(dirname "$0")/device_common.sh"
device_tests cuda_fused
CS=$(command -v compute-sanitizer)
for f in /usr/local/cuda-13.0/bin/compute-sanitizer /usr/local/cuda/bin/compute-sanitizer; do
  [[ -z $CS && -x $f ]] && CS=$f
done
echo "compute-sanitizer: ${CS:-NOT FOUND}"; [[ -n $CS ]] || exit 1
T=build/gpu/rel-cuda/run_gpu_tests
specs=(memcheck:test_conv_sgemm_kernel racecheck:test_conv_sgemm_kernel initcheck:test_conv_sgemm_kernel
       memcheck:test_dw_project_kernel racecheck:test_dw_project_kernel synccheck:test_dw_project_kernel
       initcheck:test_dw_project_kernel memcheck:test_expand_dw_kernel racecheck:test_expand_dw_kernel initcheck:test_expand_dw_kernel
       memcheck:test_linear racecheck:test_linear memcheck:test_reduce racecheck:test_reduce
       memcheck:test_max_pool memcheck:test_spatial memcheck:test_fused_conv_epilogues
       racecheck:test_fused_conv_epilogues memcheck:'test_conv1x1*' racecheck:'test_conv1x1*'
       initcheck:'test_conv1x1*' memcheck:test_gather)
for spec in "${specs[@]}"; do
  [[ -n ${SANITIZER_ONLY-} && ! $spec =~ $SANITIZER_ONLY ]] && continue
  tool=${spec%%:*}; filter=${spec#*:}; log="$OUT/r/cs_${tool}_${filter//\*/}.log"
  FOCUSBENCH_TEST_FILTER="$filter" timeout "${SANITIZER_RUN_TIMEOUT:-90}" "$CS" --tool "$tool" --error-exitcode 9 "$T" cuda_fused cuda_ops cuda_gemm \
    > "$log" 2>&1
  echo "$tool $filter rc=$? | $(grep -hE 'ERROR SUMMARY|RACECHECK SUMMARY' "$log" | tail -1) | $(grep -hE 'test\(s\) run' "$log" | tr '\n' ' ')"
done
el "done"
tar -C "$OUT/r" -czf "$OUT/$tag.tgz" .
