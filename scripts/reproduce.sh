#!/usr/bin/env bash
# reproduce.sh BIN — the main job behind `make reproduce`: runs every measurement focusbench
# can make on this machine and writes the results under results/ (atomically, per file).
# Today that is the CPU op benchmark; model-level runs are added as their issues land.
set -euo pipefail
bin=${1:?usage: reproduce.sh path/to/focusbench}
cd "$(dirname "$0")/.."
mkdir -p results
threads=${THREADS:-$(nproc)}
echo "reproduce: environment"
"$bin" version | tee results/environment.txt.tmp
mv results/environment.txt.tmp results/environment.txt
echo "reproduce: CPU conv/linear benchmark (batch 16, $threads threads)"
"$bin" bench-ops --batch 16 --threads "$threads" --csv results/bench_ops_cpu.csv
echo "reproduce: done; results in results/"
