#!/usr/bin/env bash
# run_h100_fp32_gemm.sh TAG [GROUPS] — one device call on the H100 for the fp32 inference work of
# session 7: the GPU test groups that cover the fp32 1x1 SGEMM kernel (kernels/cuda/cuda_conv_sgemm.cu)
# and the wider cuDNN autotuning (default: cuda_fused cuda_models cuda_pass), then actnet-p128 at
# fp32, batch 32, with CUPTI (per-component and per-kernel split): the default (each 1x1 shape on
# the kernel or on cuDNN, whichever timed faster) and --no-custom-convs (cuDNN for every conv), plus
# one verbose planning run whose lines name every conv's engine and time, and each 1x1 shape's
# kernel-vs-cuDNN times. Logs go to $OUT/r, tarred as TAG.tgz.
set -uo pipefail
tag=${1:?usage: run_h100_fp32_gemm.sh TAG [GROUPS]}
groups=${2:-cuda_fused cuda_models cuda_pass}
# shellcheck source=results/gpu/device_common.sh
. "$(dirname "$0")/device_common.sh"
# shellcheck disable=SC2086
device_tests $groups
el "profile fp32 b32 (default) and --no-custom-convs"
timeout 100 $B profile --preset actnet-p128 --device cuda --precision fp32 --batch 32 \
  --csv "$OUT/r/profile_fp32_b32.csv" > "$OUT/r/profile_fp32_b32.txt" 2>&1; echo "fp32 rc=$?"
timeout 100 $B profile --preset actnet-p128 --device cuda --precision fp32 --batch 32 --no-custom-convs \
  --csv "$OUT/r/profile_fp32_b32_nogemm.csv" > "$OUT/r/profile_fp32_b32_nogemm.txt" 2>&1; echo "nogemm rc=$?"
grep -hE "^ +32 +(eager|graph)|^ +(glance|policies|crop|focus|classifier|sum) " "$OUT"/r/profile_fp32_b32*.txt
el "verbose planning run"
FOCUSBENCH_CUDA_VERBOSE=1 timeout 100 $B profile --preset actnet-p128 --device cuda --precision fp32 --batch 32 \
  --no-cupti --repeats 3 --min-time 0 > "$OUT/r/profile_fp32_b32.verbose" 2>&1; echo "verbose rc=$?"
grep -E "conv fwd x|conv plan|conv1x1 |stem conv " "$OUT/r/profile_fp32_b32.verbose" | grep -v "^focusbench cuda:   " > "$OUT/r/plans.txt"
wc -l "$OUT/r/plans.txt"
el "done"
tar -C "$OUT/r" -czf "$OUT/$tag.tgz" .
