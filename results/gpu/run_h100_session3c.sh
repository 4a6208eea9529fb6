#!/usr/bin/env bash
# run_h100_session3c.sh — second device call of session 3b: build + cuda_models (train step with
# the per-tensor dump and the determinism check), then the cuda_ops + cuda_gemm + cuda_fused
# hang with a backtrace (scripts/gpu_debug/hang_bt.c preloaded, SIGUSR1 once the chain test stalls).
set -uo pipefail
OUT=${OUT:-build/gpu/out}; mkdir -p "$OUT"
t0=$(date +%s); el() { echo "[+$(($(date +%s) - t0)) s] $*"; }
el "build + cuda_models"
timeout 200 scripts/gpu_check.sh cuda_models > /dev/null 2>&1; echo "gpu_check rc=$?"
grep -E "FAIL|info   |repeated|RESULT|passed" "$OUT/test-gpu.log" | grep -v "^  ok" | cut -c1-220 | head -50
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:/usr/local/cuda-13.0/targets/x86_64-linux/lib:build/gpu-deps/lib
T=build/gpu/rel-cuda/run_gpu_tests
gcc -shared -fPIC -O1 -o /tmp/hang_bt.so scripts/gpu_debug/hang_bt.c || exit 1
el "hang: cuda_ops cuda_gemm cuda_fused"
LD_PRELOAD=/tmp/hang_bt.so stdbuf -oL $T cuda_ops cuda_gemm cuda_fused > "$OUT/hang2.log" 2> "$OUT/hang2.err" & pid=$!
seen=0
while kill -0 $pid 2>/dev/null && [ $(($(date +%s) - t0)) -lt 380 ]; do
  sleep 2
  if grep -q "RUN      \] test_resident_bf16_chain" "$OUT/hang2.log"; then seen=$((seen + 1)); fi
  if [ $seen -ge 8 ] && ! grep -q "bf16 channels-last activations" "$OUT/hang2.log"; then
    el "stalled in test_resident_bf16_chain: SIGUSR1"; kill -USR1 $pid; sleep 2
    for t in /proc/$pid/task/*; do echo "$t $(cat $t/wchan)"; done | head -4 >> "$OUT/hang2.err"
    break
  fi
done
kill $pid 2>/dev/null; wait $pid 2>/dev/null; echo "rc=$?"
grep -E "RUN|OK \]|FAIL" "$OUT/hang2.log" | tail -4
cat "$OUT/hang2.err" | tail -40
grep -oE "run_gpu_tests\(\+0x[0-9a-f]+\)" "$OUT/hang2.err" | grep -oE "0x[0-9a-f]+" | xargs -r addr2line -f -C -i -e $T | paste - - | head -30
el done
