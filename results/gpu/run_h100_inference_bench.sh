#!/usr/bin/env bash
# run_h100_inference_bench.sh TAG — one device call on the H100 (issue 6): `make test-gpu` over every
# group in one process (the check), then the actnet-p128 inference profiles at bf16 / tf32
# (both with CUPTI: per-kernel and per-component split) and fp32, batch 1/8/32, the official
# PyTorch code in the same call, and a second bf16 run checked with `focusbench regress` against
# the first (the committed H100 baseline). Logs go to $OUT, tarred as TAG.tgz.
# Session 5 ran it three times, after successive changes (each results/gpu/sessionTAG/ holds one
# call's files; the git_commit column of its CSVs names the tree): 5b after the small-channel bf16
# conversions, the residual fused into the backbones' last convs, cuDNN autotuning and the 16-byte
# f32 epilogue; 5d after the 2 GiB cuDNN workspace limit; 5e after candidates timed in groups of
# back-to-back runs and the 16-byte epilogue for planes of any size; 5h after 16-byte loads and
# stores in the f32 depthwise 3x3 kernel; 5i after the deferred f32 epilogues; 6e (REPORT section 4)
# after session 6's training-step kernels, with run_h100_train_bench.sh in the same call; 6h on
# the tree after the fused batch norm and the shared device activation; 7j after session 7's FP32
# kernels (fp32 now with CUPTI too, and once more at batch 32 with --no-custom-convs: every conv
# on cuDNN, for the A/B); 8h after session 8's FP32 kernels, in two calls on one machine (SKIP_TEST_GPU=1
# in the second: the first ran `scripts/gpu_check.sh`, every group, and the build stayed).
set -uo pipefail
tag=${1:?usage: run_h100_inference_bench.sh TAG}
OUT=${OUT:-build/gpu/out}; mkdir -p "$OUT" "$OUT/r"
t0=$(date +%s); el() { echo "[+$(($(date +%s) - t0)) s] $*"; }
if [[ ${SKIP_TEST_GPU:-0} == 1 ]]; then # `make test-gpu` ran in the call before, on the same machine
  el "make test-gpu skipped (SKIP_TEST_GPU=1); build only"
  timeout 480 scripts/gpu_check.sh --build-only > "$OUT/r/build.log" 2>&1; echo "build rc=$?"
else
  el "make test-gpu, every group in one process"
  timeout 540 scripts/gpu_check.sh > /dev/null 2>&1; echo "test-gpu rc=$?"; cp "$OUT/test-gpu.log" "$OUT/r/test-gpu.log"
  grep -E "^ *FAIL|RESULT|passed, " "$OUT/r/test-gpu.log" | head -20
fi
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:/usr/local/cuda-13.0/targets/x86_64-linux/lib:build/gpu-deps/lib
B=build/gpu/focusbench
el "profile actnet-p128"
for p in bf16 tf32; do
  timeout 100 $B profile --preset actnet-p128 --device cuda --precision $p --batch 1,8,32 \
    --csv "$OUT/r/profile_h100_$p.csv" > "$OUT/r/profile_h100_$p.txt" 2>&1; echo "$p rc=$?"
done
timeout 120 $B profile --preset actnet-p128 --device cuda --precision fp32 --batch 1,8,32 \
  --csv "$OUT/r/profile_h100_fp32.csv" > "$OUT/r/profile_h100_fp32.txt" 2>&1; echo "fp32 rc=$?"
timeout 60 $B profile --preset actnet-p128 --device cuda --precision fp32 --batch 32 --no-cupti --no-custom-convs \
  --csv "$OUT/r/profile_h100_fp32_cudnn_only.csv" > "$OUT/r/profile_h100_fp32_cudnn_only.txt" 2>&1; echo "fp32 cudnn-only rc=$?"
grep -hE "^ +(1|8|32) +(eager|graph)|^precision" "$OUT"/r/profile_h100_*.txt | head -24
el "PyTorch official"
(unset LD_LIBRARY_PATH; timeout 120 python3 scripts/bench_pytorch.py --official '.official/Uni-AdaFocus with Experiments on ActivityNet, FCVID and Mini-Kinetics' --batch 1,8,32 \
  --precision fp32,tf32,bf16 --csv "$OUT/r/pytorch_official_h100.csv" > "$OUT/r/pytorch_official_h100.txt" 2>&1;
  echo "pytorch rc=$?"); tail -12 "$OUT/r/pytorch_official_h100.txt"
el "regress: a second bf16 run against the first"
timeout 60 $B profile --preset actnet-p128 --device cuda --precision bf16 --batch 1,8,32 --no-cupti \
  --csv "$OUT/r/profile_h100_bf16_rerun.csv" > /dev/null 2>&1; echo "rerun rc=$?"
$B regress --baseline "$OUT/r/profile_h100_bf16.csv" --current "$OUT/r/profile_h100_bf16_rerun.csv" --allow-missing \
  > "$OUT/r/regress_h100_bf16.txt" 2>&1; echo "regress rc=$?"; tail -8 "$OUT/r/regress_h100_bf16.txt"
el "done"
tar -C "$OUT/r" -czf "$OUT/$tag.tgz" .
