#!/usr/bin/env bash
# run_h100_session3b.sh — the one device call of the second GPU shift (session 3b): build, the
# train-step test (cuda_models), the cuda_fused group alone and after the groups it hung behind
# (with a watchdog that records where it waits), profile --train at batch 1/8/32 (bf16, fp32)
# and the official PyTorch training step side by side. Every step has its own time limit.
# Run from the repository root on the GPU machine; logs go to $OUT.
set -uo pipefail
OUT=${OUT:-build/gpu/out}; mkdir -p "$OUT"
t0=$(date +%s); el() { echo "[+$(($(date +%s) - t0)) s] $*"; }
el "build + cuda_models"
timeout 200 scripts/gpu_check.sh cuda_models > /dev/null 2>&1; echo "gpu_check rc=$?"
grep -E "FAIL|witness|train step|passed|RESULT" "$OUT/test-gpu.log" | grep -E "FAIL|gradients of the local|step logits|RESULT|passed" | head -40
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:/usr/local/cuda-13.0/targets/x86_64-linux/lib:build/gpu-deps/lib
T=build/gpu/rel-cuda/run_gpu_tests; B=build/gpu/focusbench
el "cuda_fused alone"
timeout 60 stdbuf -oL $T cuda_fused > "$OUT/fused-alone.log" 2>&1; echo "rc=$?"; grep -E "RUN|OK|FAIL|passed" "$OUT/fused-alone.log" | tail -12
el "profile --train"
for p in bf16 fp32; do
  timeout 75 $B profile --preset actnet-p128 --device cuda --precision $p --batch 1,8,32 --train --repeats 5 \
    --min-time 0 --warmup 1 > "$OUT/train_$p.txt" 2>&1; echo "$p rc=$?"
  grep -E "train|videos|batch" "$OUT/train_$p.txt" | tail -8
done
el "pytorch --train"
(unset LD_LIBRARY_PATH; PYTHONUNBUFFERED=1 timeout 100 python3 scripts/bench_pytorch.py --official .official --train \
  --precision bf16,fp32 --batch 1,8 --repeats 5 --min-time 0 --warmup 3 > "$OUT/pytorch_train.txt" 2>&1; echo "pytorch rc=$?")
tail -6 "$OUT/pytorch_train.txt"
el "hang diagnosis: cuda_ops cuda_gemm cuda_fused in one process (watchdog)"
left=$((400 - ($(date +%s) - t0))); [ $left -gt 30 ] || { el "no time left"; exit 0; }
stdbuf -oL $T cuda_ops cuda_gemm cuda_fused > "$OUT/hang.log" 2>&1 & pid=$!
for i in $(seq 1 $((left - 15))); do kill -0 $pid 2>/dev/null || break; sleep 1; done
if kill -0 $pid 2>/dev/null; then
  { echo "== still running after $((left - 15)) s: last lines"; tail -3 "$OUT/hang.log";
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv; ps -o pid,stat,pcpu,etime,wchan:30 -p $pid;
    for t in /proc/$pid/task/*; do echo "$t $(cat $t/stat | cut -d' ' -f3) $(cat $t/wchan)"; done | head -20;
    command -v gdb >/dev/null && gdb -batch -ex "thread apply all bt 12" -p $pid 2>&1 | grep -E "^#|Thread" | head -60; } > "$OUT/hang-where.txt" 2>&1
  kill $pid
fi
wait $pid 2>/dev/null; echo "hang-run rc=$?"
grep -E "RUN|OK \]|FAILED" "$OUT/hang.log" | tail -6; cat "$OUT/hang-where.txt" 2>/dev/null | head -40
el "done"
