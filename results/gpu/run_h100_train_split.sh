#!/usr/bin/env bash
# run_h100_train_split.sh TAG — one device call (issue 6, session 6): where does a training step's
# GPU time go? `make test-gpu` of the profile group (with the --train CUPTI split test), then
# `profile --train` of actnet-p128 with the CUPTI split (bf16 at batch 1 and 8, fp32 at batch 1 and
# 4), and scripts/gpu_debug/probe_fp32_paths.py (strict-FP32 cuDNN NCHW / NHWC / SGEMM per layer).
set -uo pipefail
tag=${1:?usage: run_h100_train_split.sh TAG}
OUT=${OUT:-build/gpu/out}; mkdir -p "$OUT/r"
t0=$(date +%s); el() { echo "[+$(($(date +%s) - t0)) s] $*"; }
el "make test-gpu profile_gpu"
timeout 300 scripts/gpu_check.sh profile_gpu > /dev/null 2>&1; echo "test-gpu rc=$?"; cp "$OUT/test-gpu.log" "$OUT/r/test-gpu.log"
grep -E "^ *FAIL|RESULT|passed, |train split" "$OUT/r/test-gpu.log" | head -20
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:/usr/local/cuda-13.0/targets/x86_64-linux/lib:build/gpu-deps/lib
B=build/gpu/focusbench
for pb in bf16:1,8 fp32:1,4; do
  p=${pb%%:*}; b=${pb#*:}
  el "profile --train $p batch $b"
  timeout 200 $B profile --preset actnet-p128 --device cuda --precision $p --train --batch $b --top-kernels 40 \
    --csv "$OUT/r/train_$p.csv" > "$OUT/r/train_$p.txt" 2>&1; echo "rc=$?"
  grep -E "^ +[0-9]+ +train|^  (component|glance|policies|crop|focus|classifier|backward|other|sum) " "$OUT/r/train_$p.txt"
done
el "probe"
(unset LD_LIBRARY_PATH; timeout 240 python3 scripts/gpu_debug/probe_fp32_paths.py 512 > "$OUT/r/probe_fp32_paths.txt" 2>&1; echo "probe rc=$?")
el "done"
tar -C "$OUT/r" -czf "$OUT/$tag.tgz" .
