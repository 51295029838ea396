#!/usr/bin/env bash
# Issue #12 (the cluster on Redis): one node vs three nodes on one Redis, same run, interleaved.
#
#   ROUNDS=3 [WAIT=60] bench/cluster_12.sh [BIN_DIR]
#
# BIN_DIR (default target/release) holds `rollcall` and `rollcall-bench` (cargo build --release
# --workspace); `redis-server` must be on PATH. Per round: churn 1,000 rooms × 10 on one spawned
# node, then the same on three nodes (`--nodes 3`: each room's members on all three, Redis
# operations per join and per leave from INFO commandstats); then `failover` ROUNDS times
# (300 rooms × 30 over three nodes, SIGKILL of the node holding 3,000 members); then the floor.
# JSON: bench/results/c12-<scenario>-<round>.json. Before each run the script waits (up to WAIT
# seconds) for the 1-minute load to fall below 0.7 and for no compiler to run.
set -uo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3} WAIT=${WAIT:-60}
BIN=${1:-target/release}
R=bench/results
CHURN="churn --rooms 1000 --members 10 --connect-rate 2000 --leaves 5000 --leave-rate 500"
compilers() { ps -eo comm= | grep -cE '^(rustc|cargo|cc1|cc1plus|ld|ld.lld|clang)$'; }
quiet() {
    local waited=0
    while [ "$waited" -lt "$WAIT" ]; do
        if awk -v l="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN{exit !(l < 0.7)}' \
            && [ "$(compilers)" -eq 0 ]; then
            return
        fi
        sleep 5
        waited=$((waited + 5))
    done
}
run() {
    local name=$1
    shift
    quiet
    local load out
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    out=$(timeout 400 "$BIN/rollcall-bench" --json "$R/c12-$name.json" "$@" 2>&1 | grep -v '^\[')
    echo "### $(date -u +%H:%M:%S) $name: load before $load"
    grep -E 'left|latency|Redis|gone|pairs|killed|missing|ghosts|duplicate|contradicting|errors|CPU|WARN' <<<"$out" | head -30
}
for r in $(seq 1 "$ROUNDS"); do
    # shellcheck disable=SC2086 # the scenario's arguments are split on purpose
    run "churn-1node-$r" --spawn $CHURN
    # shellcheck disable=SC2086
    run "churn-3nodes-$r" --spawn --nodes 3 $CHURN
done
for r in $(seq 1 "$ROUNDS"); do
    run "failover-3nodes-$r" --spawn --nodes 3 failover --rooms 300 --members 30
done
run "floor" floor
echo DONE
