#!/usr/bin/env bash
# run_h100_train_bench.sh TAG — one device call (issue 6, session 6): `make test-gpu` (every group),
# then the actnet-p128 training step side by side: `focusbench profile --train` with the CUPTI
# split (bf16 at batch 1 and 8, fp32 at batch 1, 4 and 8; and batch 8 again with --nondeterministic,
# PyTorch's default engine choice) and the official PyTorch training step
# (scripts/bench_pytorch.py --train, bf16 and fp32, batch 1 and 8) in the same call. Files under
# $OUT/r, tarred as TAG.tgz. Session 6 ran it after the 2-D depthwise backward kernels and the
# shared bf16 copy of dy (6c), then after the 16-byte batch-norm and activation kernels and
# --nondeterministic (6d); 6e after the one-shape add backward, in the call of
# run_h100_inference_bench.sh session6e (SKIP_TEST_GPU=1: that script ran `make test-gpu`); 6f
# with `make test-gpu` and 15 PyTorch samples per row (5 before: its batch-8 step moved 133 -> 147
# ms between two calls); 6g after the fused batch norm + residual + activation; 6i after keeping
# the bf16 copies of conv inputs for the weight gradients.
set -uo pipefail
tag=${1:?usage: run_h100_train_bench.sh TAG}
OUT=${OUT:-build/gpu/out}; mkdir -p "$OUT/r"
t0=$(date +%s); el() { echo "[+$(($(date +%s) - t0)) s] $*"; }
if [[ ${SKIP_TEST_GPU:-0} == 1 ]]; then # the caller ran it (and built the binary) in the same call
  el "make test-gpu skipped (SKIP_TEST_GPU=1)"
else
  el "make test-gpu, every group in one process"
  timeout 330 scripts/gpu_check.sh > /dev/null 2>&1; echo "test-gpu rc=$?"; cp "$OUT/test-gpu.log" "$OUT/r/test-gpu.log"
  grep -E "^ *FAIL|RESULT|passed, " "$OUT/r/test-gpu.log" | head -20
fi
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:/usr/local/cuda-13.0/targets/x86_64-linux/lib:build/gpu-deps/lib
B=build/gpu/focusbench
for spec in bf16:1,8: fp32:1,4,8: bf16:8:nd fp32:8:nd; do
  IFS=: read -r p b nd <<< "$spec"
  name=train_h100_$p${nd:+_nondeterministic}
  el "profile --train $p batch $b ${nd:+(--nondeterministic)}"
  timeout 150 $B profile --preset actnet-p128 --device cuda --precision $p --train --batch $b --top-kernels 25 \
    ${nd:+--nondeterministic} --csv "$OUT/r/$name.csv" > "$OUT/r/$name.txt" 2>&1; echo "rc=$?"
  grep -E "^ +[0-9]+ +train" "$OUT/r/$name.txt"
done
el "PyTorch official, training step"
(unset LD_LIBRARY_PATH; PYTHONUNBUFFERED=1 timeout 150 python3 scripts/bench_pytorch.py --official .official --train \
  --precision bf16,fp32 --batch 1,8 --repeats 15 --min-time 0 --warmup 5 --csv "$OUT/r/pytorch_official_train_h100.csv" \
  > "$OUT/r/pytorch_official_train_h100.txt" 2>&1; echo "pytorch rc=$?"); tail -6 "$OUT/r/pytorch_official_train_h100.txt"
el "done"
tar -C "$OUT/r" -czf "$OUT/$tag.tgz" .
