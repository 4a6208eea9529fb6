#!/usr/bin/env bash
# run_h100_ab_profile.sh TAG GROUPS NCU_REGEX [SETTING ...] — one device call for an A/B comparison
# of kernel changes at fp32: the GPU tests of GROUPS (quoted, space-separated; "" for none, which
# only builds), then per SETTING the profile of actnet-p128 at fp32, batch 32, with CUPTI (the
# component split and the per-kernel lines), then Nsight Compute (clock control off: the clocks are
# left alone) on the launches matching NCU_REGEX ("" for none) of an untuned eager pass with the
# first SETTING. A SETTING is "-" (the binary as built) or environment assignments, e.g.
# "FOCUSBENCH_EXPAND_DW_ALL=1". Files go to $OUT/r, tarred as $OUT/TAG.tgz.
set -uo pipefail
tag=${1:?usage: run_h100_ab_profile.sh TAG GROUPS NCU_REGEX [SETTING ...]}
groups=${2-}
ncu_regex=${3-}
shift 3
settings=("$@")
[[ ${#settings[@]} -gt 0 ]] || settings=(-)
# shellcheck source=results/gpu/device_common.sh
. "$(dirname "$0")/device_common.sh"
if [[ -n $groups ]]; then
  # shellcheck disable=SC2086
  device_tests $groups
else
  el "build only"
  timeout 450 scripts/gpu_check.sh --build-only > "$OUT/r/build.log" 2>&1; echo "build rc=$?"
fi
i=0
for setting in "${settings[@]}"; do
  env_args=()
  [[ $setting != - ]] && read -r -a env_args <<< "$setting"
  el "profile fp32 b32, setting $i: $setting"
  env "${env_args[@]}" timeout 150 $B profile --preset actnet-p128 --device cuda --precision fp32 --batch 32 \
    --csv "$OUT/r/profile_$i.csv" > "$OUT/r/profile_$i.txt" 2>&1; echo "profile rc=$?"
  grep -hE "^ +32 +(eager|graph)|^ +(glance|policies|crop|focus|classifier|sum) " "$OUT/r/profile_$i.txt" | tail -8
  python3 - "$OUT/r/profile_$i.csv" <<'EOF'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r['batch'] == '32' and r['level'] == 'kernel']
for r in sorted(rows, key=lambda r: -float(r['time_ms_median']))[:24]:
    print(f"  {float(r['time_ms_median']):8.3f} {r['launches_per_pass']:>4} {r['component']:10} {r['kernel'][:90]}")
EOF
  i=$((i + 1))
done
if [[ -n $ncu_regex ]]; then
  NCU=$(command -v ncu)
  for f in /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu; do [[ -z $NCU && -x $f ]] && NCU=$f; done
  METRICS='regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio,smsp__issue_active.avg.pct_of_peak_sustained_active,sm__pipe_fma_cycles_active.avg.pct_of_peak_sustained_active,dram__throughput.avg.pct_of_peak_sustained_elapsed,gpu__time_duration.sum,smsp__inst_executed.sum,sm__warps_active.avg.pct_of_peak_sustained_active,launch__registers_per_thread,launch__grid_size,launch__occupancy_limit_shared_mem,launch__occupancy_limit_registers,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum'
  env_args=()
  [[ ${settings[0]} != - ]] && read -r -a env_args <<< "${settings[0]}"
  el "ncu: $ncu_regex"
  env "${env_args[@]}" timeout 200 "$NCU" --clock-control none -k "regex:$ncu_regex" --launch-count 16 \
    --metrics "$METRICS" --csv --page raw $B profile --preset actnet-p128 --device cuda --precision fp32 --batch 32 \
    --no-autotune --mode eager --no-cupti --repeats 1 --min-time 0 --warmup 0 > "$OUT/r/ncu.csv" 2> "$OUT/r/ncu.err"
  echo "ncu rc=$? ($(wc -l < "$OUT/r/ncu.csv") lines)"
fi
el "done"
tar -C "$OUT/r" -czf "$OUT/$tag.tgz" .
