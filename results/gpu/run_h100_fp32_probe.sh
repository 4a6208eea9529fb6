#!/usr/bin/env bash
# run_h100_fp32_probe.sh TAG — one device call (issue 6, session 6): where does strict FP32 at
# batch 32 spend its time? focusbench's fp32 profile at batch 32 with CUPTI (per-kernel and
# per-component split) and the verbose log of the conv plans it autotuned, next to
# scripts/gpu_debug/probe_fp32_paths.py (cuDNN NCHW vs channels-last vs SGEMM per backbone layer).
set -uo pipefail
tag=${1:?usage: run_h100_fp32_probe.sh TAG}
OUT=${OUT:-build/gpu/out}; mkdir -p "$OUT/r"
t0=$(date +%s); el() { echo "[+$(($(date +%s) - t0)) s] $*"; }
el "build"
timeout 300 scripts/gpu_check.sh --build-only > /dev/null 2>&1; cp "$OUT/test-gpu.log" "$OUT/r/build.log"; echo "build rc=$?"; tail -3 "$OUT/r/build.log"
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:/usr/local/cuda-13.0/targets/x86_64-linux/lib:build/gpu-deps/lib
B=build/gpu/focusbench
el "profile fp32 b32 with CUPTI, verbose plans"
FOCUSBENCH_CUDA_VERBOSE=1 timeout 150 $B profile --preset actnet-p128 --device cuda --precision fp32 --batch 32 \
  --csv "$OUT/r/profile_fp32_b32.csv" > "$OUT/r/profile_fp32_b32.txt" 2> "$OUT/r/profile_fp32_b32.verbose"; echo "rc=$?"
grep -A40 "per component, batch 32" "$OUT/r/profile_fp32_b32.txt" | head -60
el "probe"
(unset LD_LIBRARY_PATH; timeout 240 python3 scripts/gpu_debug/probe_fp32_paths.py 512 > "$OUT/r/probe_fp32_paths.txt" 2>&1; echo "probe rc=$?")
cat "$OUT/r/probe_fp32_paths.txt"
el "done"
tar -C "$OUT/r" -czf "$OUT/$tag.tgz" .
