#!/usr/bin/env bash
# run_h100_session5a.sh — session 5, call 1 on the H100 (issue 6, speed at batch 32): build, the
# conv groups of `make test-gpu` (cuda_gemm with the new autotuned-plan test, cuda_fused with the
# small-channel bf16 conversions and the fused residual), then actnet-p128 profiles at bf16 / tf32 /
# fp32, batch 1/8/32, with cuDNN autotuning (the default of `profile`) and, at batch 32, without it
# (--no-autotune) for the A/B, and the official PyTorch code in the same call. Logs go to $OUT.
set -uo pipefail
OUT=${OUT:-build/gpu/out}; mkdir -p "$OUT" "$OUT/r"
t0=$(date +%s); el() { echo "[+$(($(date +%s) - t0)) s] $*"; }
el "build + cuda_gemm cuda_fused"
timeout 300 scripts/gpu_check.sh cuda_gemm cuda_fused > /dev/null 2>&1; echo "test-gpu rc=$?"
cp "$OUT/test-gpu.log" "$OUT/r/test-gpu-gemm-fused.log"
grep -E "^ *FAIL|RESULT|passed, |error" "$OUT/r/test-gpu-gemm-fused.log" | head -20
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:/usr/local/cuda-13.0/targets/x86_64-linux/lib:build/gpu-deps/lib
B=build/gpu/focusbench
el "profile actnet-p128 (autotuned plans)"
timeout 120 $B profile --preset actnet-p128 --device cuda --precision bf16 --batch 1,8,32 \
  --csv "$OUT/r/profile_h100_bf16.csv" > "$OUT/r/profile_h100_bf16.txt" 2>&1; echo "bf16 rc=$?"
for p in tf32 fp32; do
  timeout 90 $B profile --preset actnet-p128 --device cuda --precision $p --batch 1,8,32 --no-cupti \
    --csv "$OUT/r/profile_h100_$p.csv" > "$OUT/r/profile_h100_$p.txt" 2>&1; echo "$p rc=$?"
done
grep -hE "^ +(1|8|32) +(eager|graph)|cuDNN plans" "$OUT"/r/profile_h100_*.txt | head -24
el "A/B: batch 32 without autotuning"
for p in bf16 tf32 fp32; do
  timeout 60 $B profile --preset actnet-p128 --device cuda --precision $p --batch 32 --no-cupti --no-autotune \
    --mode graph > "$OUT/r/profile_h100_${p}_noautotune.txt" 2>&1; echo "$p no-autotune rc=$?"
  grep -E "^ +32 +graph" "$OUT/r/profile_h100_${p}_noautotune.txt"
done
el "PyTorch official"
(unset LD_LIBRARY_PATH; timeout 150 python3 scripts/bench_pytorch.py --official '.official/Uni-AdaFocus with Experiments on ActivityNet, FCVID and Mini-Kinetics' --batch 1,8,32 \
  --precision fp32,tf32,bf16 --csv "$OUT/r/pytorch_official_h100.csv" > "$OUT/r/pytorch_official_h100.txt" 2>&1;
  echo "pytorch rc=$?"); tail -12 "$OUT/r/pytorch_official_h100.txt"
el "done"
tar -C "$OUT/r" -czf "$OUT/session5a.tgz" .
