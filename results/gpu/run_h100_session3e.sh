#!/usr/bin/env bash
# run_h100_session3e.sh — session 3d, call 2 on the H100: (1) the cuda_ops + cuda_gemm + cuda_fused
# sequence again under AddressSanitizer (after the tape_clear fix in test_cuda_fused.c); (2) the
# normal build and `make test-gpu` over ALL groups in one process (the issue's check); (3) the
# actnet-p128 inference profile at fp32/tf32/bf16, batch 1/8/32 (bf16 with CUPTI: per-kernel,
# per-component and hardware-FLOP rows), the official PyTorch code in the same call; (4) one H100
# profile of Uni-AdaFocus-TSM (sthv1-p128-8x12); (5) a second bf16 run checked against the first
# with `focusbench regress` (the committed H100 baseline for users' GPU CI). Logs go to $OUT.
set -uo pipefail
OUT=${OUT:-build/gpu/out}; mkdir -p "$OUT" "$OUT/r"
t0=$(date +%s); el() { echo "[+$(($(date +%s) - t0)) s] $*"; }
el "ASan: cuda_ops cuda_gemm cuda_fused"
ASAN_OPTIONS=protect_shadow_gap=0:detect_leaks=0 SAN=1 timeout 150 scripts/gpu_check.sh cuda_ops cuda_gemm cuda_fused \
  > /dev/null 2>&1; echo "san rc=$?"; cp "$OUT/test-gpu.log" "$OUT/r/test-gpu-san.log"
grep -E "AddressSanitizer|RESULT|passed, " "$OUT/r/test-gpu-san.log" | head -8
el "make test-gpu, every group in one process"
timeout 240 scripts/gpu_check.sh > /dev/null 2>&1; echo "test-gpu rc=$?"; cp "$OUT/test-gpu.log" "$OUT/r/test-gpu.log"
grep -E "^ *FAIL|RESULT|passed, " "$OUT/r/test-gpu.log" | head -20
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:/usr/local/cuda-13.0/targets/x86_64-linux/lib:build/gpu-deps/lib
B=build/gpu/focusbench
el "profile actnet-p128"
timeout 110 $B profile --preset actnet-p128 --device cuda --precision bf16 --batch 1,8,32 \
  --csv "$OUT/r/profile_h100_bf16.csv" > "$OUT/r/profile_h100_bf16.txt" 2>&1; echo "bf16 rc=$?"
for p in tf32 fp32; do
  timeout 70 $B profile --preset actnet-p128 --device cuda --precision $p --batch 1,8,32 --no-cupti \
    --csv "$OUT/r/profile_h100_$p.csv" > "$OUT/r/profile_h100_$p.txt" 2>&1; echo "$p rc=$?"
done
grep -hE "^ +(1|8|32) +(eager|graph)" "$OUT"/r/profile_h100_*.txt | head -20
el "PyTorch official"
(unset LD_LIBRARY_PATH; timeout 120 python3 scripts/bench_pytorch.py --official '.official/Uni-AdaFocus with Experiments on ActivityNet, FCVID and Mini-Kinetics' --batch 1,8,32 \
  --precision fp32,tf32,bf16 --csv "$OUT/r/pytorch_official_h100.csv" > "$OUT/r/pytorch_official_h100.txt" 2>&1;
  echo "pytorch rc=$?"); tail -12 "$OUT/r/pytorch_official_h100.txt"
el "profile Uni-AdaFocus-TSM sthv1-p128-8x12"
timeout 60 $B profile --method uniadafocus-tsm --preset sthv1-p128-8x12 --device cuda --precision bf16 --batch 1,8 \
  --csv "$OUT/r/profile_h100_tsm_sthv1-p128-8x12.csv" > "$OUT/r/profile_h100_tsm_sthv1-p128-8x12.txt" 2>&1
echo "tsm rc=$?"; grep -E "^ +(1|8) +(eager|graph)|error|GFLOPs" "$OUT/r/profile_h100_tsm_sthv1-p128-8x12.txt" | head -8
el "regress: a second bf16 run against the first"
timeout 60 $B profile --preset actnet-p128 --device cuda --precision bf16 --batch 1,8,32 --no-cupti \
  --csv "$OUT/r/profile_h100_bf16_rerun.csv" > /dev/null 2>&1; echo "rerun rc=$?"
$B regress --baseline "$OUT/r/profile_h100_bf16.csv" --current "$OUT/r/profile_h100_bf16_rerun.csv" --allow-missing \
  > "$OUT/r/regress_h100_bf16.txt" 2>&1; echo "regress rc=$?"; tail -8 "$OUT/r/regress_h100_bf16.txt"
el "done"
tar -C "$OUT/r" -czf "$OUT/session3e.tgz" .
