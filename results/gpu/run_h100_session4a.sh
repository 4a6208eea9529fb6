#!/usr/bin/env bash
# run_h100_session4a.sh — session 4, call 1 on the H100: build with the CUDA backend, the new
# cuda_train group (GPU training through the trainers) plus cuda_pass and dist_gpu, then the CLI:
# `train --device cuda` for TSN and Uni-AdaFocus on in-memory synthetic clips, `eval --device cuda`
# on the trained checkpoint, and the same on the CPU for comparison. Logs go to $OUT.
set -uo pipefail
OUT=${OUT:-build/gpu/out}; mkdir -p "$OUT" "$OUT/r"
t0=$(date +%s); el() { echo "[+$(($(date +%s) - t0)) s] $*"; }
el "build + cuda_train cuda_pass dist_gpu"
timeout 330 scripts/gpu_check.sh cuda_train cuda_pass dist_gpu > /dev/null 2>&1; echo "test-gpu rc=$?"
cp "$OUT/test-gpu.log" "$OUT/r/test-gpu-train.log"
grep -E "error|^ *FAIL|^  (ok|FAIL)|RESULT|passed, |: loss cpu" "$OUT/r/test-gpu-train.log" | head -60
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:/usr/local/cuda-13.0/targets/x86_64-linux/lib:build/gpu-deps/lib
B=build/gpu/focusbench
[[ -x $B ]] || { el "no binary"; tar -C "$OUT/r" -czf "$OUT/session4a.tgz" .; exit 1; }
el "train tsn-synth on the GPU (in-memory synthetic clips)"
timeout 60 $B train --method tsn-synth --synthetic 96 --epochs 2 --batch-size 16 --device cuda --out /tmp/tsn_gpu \
  --log-every 2 > "$OUT/r/train_tsn_gpu.txt" 2>&1; echo "rc=$?"; tail -5 "$OUT/r/train_tsn_gpu.txt"
timeout 60 $B eval --method tsn-synth --ckpt /tmp/tsn_gpu/model.safetensors --synthetic 96 --device cuda \
  --csv "$OUT/r/eval_tsn_gpu.csv" > "$OUT/r/eval_tsn_gpu.txt" 2>&1; echo "eval rc=$?"; grep -iE "exit|top|error" "$OUT/r/eval_tsn_gpu.txt" | head -6
el "train Uni-AdaFocus synth-small on the GPU, fp32 and bf16"
for p in fp32 bf16; do
  timeout 90 $B train --preset synth-small --synthetic 96 --epochs 2 --batch-size 16 --device cuda --precision $p \
    --out /tmp/uaf_gpu_$p --log-every 2 > "$OUT/r/train_uaf_gpu_$p.txt" 2>&1; echo "$p rc=$?"; tail -4 "$OUT/r/train_uaf_gpu_$p.txt"
done
timeout 60 $B eval --preset synth-small --ckpt /tmp/uaf_gpu_fp32/model.safetensors --synthetic 96 --device cuda \
  --boxes-csv "$OUT/r/boxes_uaf_gpu.csv" --csv "$OUT/r/eval_uaf_gpu.csv" > "$OUT/r/eval_uaf_gpu.txt" 2>&1
echo "eval rc=$?"; grep -iE "exit 8|mean IoU|error" "$OUT/r/eval_uaf_gpu.txt" | head -6
el "the other methods: one epoch each on the GPU"
for m in adafocusv2-synth frameexit-synth arnet-synth ocsampler-synth tsm-synth; do
  timeout 60 $B train --method $m --synthetic 48 --epochs 1 --batch-size 16 --device cuda --out /tmp/m_$m --log-every 0 \
    > "$OUT/r/train_${m}_gpu.txt" 2>&1; echo "$m rc=$?"; tail -2 "$OUT/r/train_${m}_gpu.txt"
done
el "done"
tar -C "$OUT/r" -czf "$OUT/session4a.tgz" .
