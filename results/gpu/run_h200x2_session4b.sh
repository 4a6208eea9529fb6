#!/usr/bin/env bash
# run_h200x2_session4b.sh — session 4 on 2 H200s (nvidia-h200-x2): data-parallel training and sharded
# evaluation through `focusbench launch` and NCCL, GPU-resident training (--device cuda).
#  (1) build; GPU test groups dist_gpu and cuda_train;
#  (2) TSN (synthetic benchmark model) trained on 1 and on 2 GPUs at the same global batch (per-GPU
#      batch-norm statistics, as the official DDP run): replicas agree, weights vs the 1-GPU run;
#  (3) sharded eval: the 1-GPU model evaluated with 1 and with 2 ranks: identical results expected;
#  (4) scaling: Uni-AdaFocus at paper size (actnet-p128 networks, 10 classes), bf16, synthetic clips
#      rendered in memory: 1 GPU at global batch 16, 2 GPUs at 16 (8 each) and at 32 (16 each);
#      evaluation with 1 and 2 ranks. Logs go to $OUT.
set -uo pipefail
OUT=${OUT:-build/gpu/out}; mkdir -p "$OUT" "$OUT/r"
t0=$(date +%s); el() { echo "[+$(($(date +%s) - t0)) s] $*"; }
el "build + dist_gpu cuda_train"
timeout 300 scripts/gpu_check.sh dist_gpu cuda_train > /dev/null 2>&1; echo "test-gpu rc=$?"
cp "$OUT/test-gpu.log" "$OUT/r/test-gpu-dist-train.log"
grep -E "error:|^  (ok|FAIL)|RESULT|passed, |: loss cpu|largest|NCCL" "$OUT/r/test-gpu-dist-train.log" | head -40
nvidia-smi topo -m > "$OUT/r/topo.txt" 2>&1; head -4 "$OUT/r/topo.txt"
nvidia-smi --query-gpu=index,name,clocks.sm,clocks.max.sm,memory.total --format=csv | tee "$OUT/r/gpus.txt"
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:/usr/local/cuda-13.0/targets/x86_64-linux/lib:build/gpu-deps/lib
B=build/gpu/focusbench
[[ -x $B ]] || { el "no binary"; tar -C "$OUT/r" -czf "$OUT/session4b.tgz" .; exit 1; }
el "(2) TSN on 1 and 2 GPUs, global batch 32"
for g in 1 2; do
  timeout 150 $B launch --gpus $g -- train --method tsn-synth --synthetic 512 --epochs 3 --batch-size 32 --device cuda \
    --out /tmp/tsn_g$g --log-every 0 > "$OUT/r/train_tsn_g$g.txt" 2>&1; echo "g$g rc=$?"
  grep -E "epoch . done|identical|rank|error" "$OUT/r/train_tsn_g$g.txt" | head -6
done
python3 scripts/compare_checkpoints.py /tmp/tsn_g1/model.safetensors /tmp/tsn_g2/model.safetensors | tee "$OUT/r/compare_tsn_g1_g2.txt"
el "(3) sharded eval, 1 vs 2 ranks"
for g in 1 2; do
  timeout 120 $B launch --gpus $g -- eval --method tsn-synth --ckpt /tmp/tsn_g1/model.safetensors --synthetic 512 \
    --device cuda --batch-size 32 --budgets 0.2,0.5,0.8 --csv "$OUT/r/eval_tsn_g$g.csv" > "$OUT/r/eval_tsn_g$g.txt" 2>&1
  echo "g$g rc=$?"
done
if cmp -s <(cut -d, -f1-12 "$OUT/r/eval_tsn_g1.csv") <(cut -d, -f1-12 "$OUT/r/eval_tsn_g2.csv"); then echo "eval CSVs: same first 12 columns"; else
  echo "eval CSVs differ:"; diff <(cut -d, -f1-12 "$OUT/r/eval_tsn_g1.csv") <(cut -d, -f1-12 "$OUT/r/eval_tsn_g2.csv") | head -10; fi
head -3 "$OUT/r/eval_tsn_g1.csv"
el "(4) scaling: Uni-AdaFocus actnet-p128 networks, bf16"
run_uaf() { # NAME GPUS BATCH
  timeout 200 $B launch --gpus "$2" -- train --preset actnet-p128 --classes 10 --synthetic 384 --epochs 3 \
    --batch-size "$3" --device cuda --precision bf16 --out "/tmp/uaf_$1" --log-every 8 > "$OUT/r/train_uaf_$1.txt" 2>&1
  echo "$1 rc=$?"; grep -E "epoch . done|identical|error|s/step" "$OUT/r/train_uaf_$1.txt" | tail -5
}
run_uaf g1_b16 1 16
run_uaf g2_b16 2 16
run_uaf g2_b32 2 32
for g in 1 2; do
  s=$(date +%s.%N)
  timeout 150 $B launch --gpus $g -- eval --preset actnet-p128 --classes 10 --ckpt /tmp/uaf_g1_b16/model.safetensors \
    --synthetic 384 --device cuda --precision bf16 --batch-size 16 --budgets 0.5 --csv "$OUT/r/eval_uaf_g$g.csv" \
    > "$OUT/r/eval_uaf_g$g.txt" 2>&1; echo "eval g$g rc=$? wall $(awk -v a=$s -v b=$(date +%s.%N) 'BEGIN{printf "%.1f", b-a}') s (768 clips)"
done
cmp -s <(cut -d, -f1-12 "$OUT/r/eval_uaf_g1.csv") <(cut -d, -f1-12 "$OUT/r/eval_uaf_g2.csv") && echo "uaf eval CSVs: same first 12 columns" || echo "uaf eval CSVs differ"
el "done"
tar -C "$OUT/r" -czf "$OUT/session4b.tgz" .
