#!/usr/bin/env bash
# run_h100_session5f.sh — session 5, closing call on the H100: `make test-gpu` over every group at
# the final tree, then the exit-logits collection (one loop for Uni-AdaFocus and the methods since
# this session) through the CLI on the GPU: train TSN and Uni-AdaFocus for one epoch on in-memory
# synthetic clips, `eval --device cuda` and `eval --device cpu` on each checkpoint. Logs go to $OUT.
set -uo pipefail
OUT=${OUT:-build/gpu/out}; mkdir -p "$OUT" "$OUT/r"
t0=$(date +%s); el() { echo "[+$(($(date +%s) - t0)) s] $*"; }
el "make test-gpu, every group in one process"
timeout 300 scripts/gpu_check.sh > /dev/null 2>&1; echo "test-gpu rc=$?"; cp "$OUT/test-gpu.log" "$OUT/r/test-gpu.log"
grep -E "^ *FAIL|RESULT|passed, " "$OUT/r/test-gpu.log" | head -20
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:/usr/local/cuda-13.0/targets/x86_64-linux/lib:build/gpu-deps/lib
B=build/gpu/focusbench
el "train one epoch on the GPU, then eval on the GPU and on the CPU"
timeout 60 $B train --method tsn-synth --synthetic 96 --epochs 1 --batch-size 16 --device cuda --out /tmp/tsn_gpu \
  --log-every 0 > "$OUT/r/train_tsn_gpu.txt" 2>&1; echo "train tsn rc=$?"
timeout 90 $B train --preset synth-small --synthetic 96 --epochs 1 --batch-size 16 --device cuda --out /tmp/uaf_gpu \
  --log-every 0 > "$OUT/r/train_uaf_gpu.txt" 2>&1; echo "train uaf rc=$?"
for d in cuda cpu; do
  timeout 60 $B eval --method tsn-synth --ckpt /tmp/tsn_gpu/model.safetensors --synthetic 96 --device $d \
    --csv "$OUT/r/eval_tsn_$d.csv" > "$OUT/r/eval_tsn_$d.txt" 2>&1; echo "eval tsn $d rc=$?"
  timeout 90 $B eval --preset synth-small --ckpt /tmp/uaf_gpu/model.safetensors --synthetic 96 --device $d \
    --budgets 0.5 --csv "$OUT/r/eval_uaf_$d.csv" > "$OUT/r/eval_uaf_$d.txt" 2>&1; echo "eval uaf $d rc=$?"
done
grep -hE "^ +exit|fixed|top1|error" "$OUT"/r/eval_*_cuda.txt "$OUT"/r/eval_*_cpu.txt | head -30
el "done"
tar -C "$OUT/r" -czf "$OUT/session5f.tgz" .
