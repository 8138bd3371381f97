#!/usr/bin/env bash
# Scheduler throughput and latency: `lepton bench sched` for every policy at 1k, 10k and 100k
# nodes, one core. Prints one table; figures are relative to `bestfit` at the same size (the
# cheapest score), measured in the same run.
# Usage: bench/sched.sh [--sizes "1000 10000 100000"] [--policies "random ... lepton"]
set -euo pipefail
cd "$(dirname "$0")/.."
sizes="1000 10000 100000"
policies="random dotprod gpupacking bestfit fgd lepton"
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) sizes="$2"; shift 2 ;;
    --policies) policies="$2"; shift 2 ;;
    *) echo "usage: $0 [--sizes \"N ...\"] [--policies \"NAME ...\"]" >&2; exit 2 ;;
  esac
done
[ -x build/lepton ] || scripts/build build >/dev/null
printf "%-8s %-11s %12s %9s %9s %8s %9s %s\n" nodes policy placements/s p50_us p99_us bytes/node vs_bestfit note
for n in $sizes; do
  base=""
  for p in bestfit $(echo "$policies" | tr ' ' '\n' | grep -vx bestfit); do
    j=$(taskset -c 0 build/lepton bench sched --nodes "$n" --policy "$p" --max-seconds 30 --json)
    get() { echo "$j" | sed -E "s/.*\"$1\":([^,}]*).*/\1/"; }
    pps=$(get placements_per_sec)
    [ -z "$base" ] && base=$pps
    note=""
    [ "$(get stopped_early)" = "true" ] && note="stopped at 30 s of decisions"
    printf "%-8s %-11s %12.0f %9.2f %9.2f %8.0f %9.2f %s\n" "$n" "$p" "$pps" "$(get p50_us)" \
      "$(get p99_us)" "$(get bytes_per_node)" "$(awk -v a="$pps" -v b="$base" 'BEGIN{print a/b}')" "$note"
  done
done
