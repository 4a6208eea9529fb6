#!/usr/bin/env bash
# run_h100_session4c.sh — session 4: `make reproduce`'s GPU variant on the H100 (scripts/reproduce.sh
# finds the GPU: synthetic benchmark at full size, models at 128x128, training and evaluation with
# --device cuda --precision tf32, GPU profiles). The machine has no FFmpeg, so the benchmark is
# rendered in memory (--synthetic 1200 per split) instead of written by gen-data. Results go to
# $OUT/res (tarred), the regenerated report to $OUT/REPORT.md.
set -uo pipefail
OUT=${OUT:-build/gpu/out}; mkdir -p "$OUT"
t0=$(date +%s); el() { echo "[+$(($(date +%s) - t0)) s] $*"; }
el "build (device group only)"
timeout 200 scripts/gpu_check.sh device > /dev/null 2>&1; echo "build rc=$?"; grep -E "RESULT|error:" "$OUT/test-gpu.log" | head -5
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:/usr/local/cuda-13.0/targets/x86_64-linux/lib:build/gpu-deps/lib
cp REPORT.md "$OUT/REPORT.md"
el "reproduce (GPU variant)"
RESULTS_DIR="$OUT/res" REPORT="$OUT/REPORT.md" timeout 520 scripts/reproduce.sh build/gpu/focusbench > "$OUT/reproduce.log" 2>&1
echo "reproduce rc=$?"
grep -E "^== reproduce|^   \(|^reproduce:|top1|error" "$OUT/reproduce.log" | tail -60
el "done"
tar -C "$OUT" -czf "$OUT/session4c.tgz" res reproduce.log REPORT.md
rm -rf "$OUT/res"
