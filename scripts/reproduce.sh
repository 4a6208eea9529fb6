#!/usr/bin/env bash
# reproduce.sh BIN — the main job behind `make reproduce`: runs every measurement focusbench
# can make on this machine, writes the results under results/ (each file atomically) and
# regenerates REPORT.md's generated sections from them. Progress lines throughout.
# Today: the environment, the FLOP tables of the paper's configurations (meta backend), the
# synthetic benchmark, and the CPU conv/linear benchmark. Training, sweeps and profiling are
# added here as their issues land.
set -euo pipefail
bin=${1:?usage: reproduce.sh path/to/focusbench}
cd "$(dirname "$0")/.."
out=results
mkdir -p "$out"
threads=${THREADS:-$(nproc)}
step() { echo; echo "== reproduce: $*"; }

step "environment"
"$bin" version | tee "$out/environment.txt.tmp"
mv "$out/environment.txt.tmp" "$out/environment.txt"

step "FLOP tables, paper convention (meta backend)"
for p in actnet-p96 actnet-p128 actnet-p160 actnet-p192 fcvid-p128 minik-p128; do
  "$bin" flops --preset "$p" --csv "$out/flops_$p.csv" > /dev/null
  echo "  $p: $(tail -n 1 "$out/flops_$p.csv" | cut -d, -f2) GFLOPs per video"
done

step "synthetic benchmark (synth-small)"
"$bin" gen-data --out data/synth-small --preset synth-small --seed 0

step "CPU conv/linear benchmark (batch 16, $threads threads)"
"$bin" bench-ops --batch 16 --threads "$threads" --csv "$out/bench_ops_cpu.csv"

step "REPORT.md"
"$bin" report --results "$out" --report REPORT.md
echo "reproduce: done; results in $out/, REPORT.md regenerated"
