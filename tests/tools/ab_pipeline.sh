#!/usr/bin/env bash
# tests/tools/ab_pipeline.sh OLD_BENCH NEW_BENCH FILTER [ROUNDS] : A/B of two builds of the
# pipeline bench (lb/pipeline/benches/pipeline.rs; the binary is target/release/deps/pipeline-*,
# copy it aside before rebuilding). Alternates them ROUNDS times (default 4) on one criterion
# FILTER (e.g. process_burst/l2/1048576_flows), on the thread's CPU clock, and prints each
# one's rates (Melem/s, criterion's middle estimate). docs/performance.md, "Per-packet work cut".
set -euo pipefail
old=$1 new=$2 filter=$3 rounds=${4:-4}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
for ((r = 0; r < rounds; r++)); do
    for which in old new; do
        bin=${!which}
        rate=$(CLUA_BENCH_CLOCK=cpu "$bin" --bench --warm-up-time 1 --measurement-time 2 "$filter" 2>&1 |
            awk '$1 == "thrpt:" { print $4; exit }')
        echo "$which ${rate:-FAILED}"
    done
done | awk '{ s[$1] = s[$1] " " $2 } END { print "old:" s["old"]; print "new:" s["new"] }'
