#!/usr/bin/env bash
# Issue #11 (the durable store), before vs after: every scenario run B A B A (ROUNDS pairs),
# interleaved per scenario so each pair is close in time.
#
#   ROUNDS=2 [START=1] [ONLY=regex] bench/before_after_11.sh BEFORE_DIR AFTER_DIR
#
# Each DIR holds a `rollcall` and the same `rollcall-bench` (--spawn takes the server next to the
# bench binary). JSON goes to bench/results/{pre11,post11}-<scenario>-<round>.json (rounds
# START .. START+ROUNDS-1; ONLY keeps the scenarios whose name matches). Before each
# run the script waits (up to WAIT seconds) for the 1-minute load average to fall below 0.7 and
# for no compiler to be running, then prints the load it ran at.
set -uo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-2} START=${START:-1} ONLY=${ONLY:-.} WAIT=${WAIT:-60}
BEFORE=$1 AFTER=$2
R=bench/results
KEY=src/facade/game/dev-keys/session-private.pem
SCENARIOS=(
    "churn-1000x10|churn --rooms 1000 --members 10 --connect-rate 2000 --leaves 5000 --leave-rate 500"
    "rest-game-c1|rest --api game --session-key $KEY --requests 3000 --rooms 100 --concurrency 1"
    "rest-lobby-create-c1|rest --api lobby-create --requests 3000 --concurrency 1"
    "rest-lobby-create-c16|rest --api lobby-create --requests 3000 --concurrency 16"
    "rest-video-joined-c1|rest --api video-joined --requests 3000 --rooms 100 --concurrency 1"
    "rest-video-joined-c16|rest --api video-joined --requests 3000 --rooms 100 --concurrency 16"
    "fanout-10k-max|fanout --watchers 10000 --events 300"
)
# Compilers running on the machine now (anyone's).
compilers() { ps -eo comm= | grep -cE '^(rustc|cargo|cc1|cc1plus|ld|ld.lld|clang)$'; }
quiet() {
    local waited=0
    while [ "$waited" -lt "$WAIT" ]; do
        local l1 busy
        l1=$(cut -d' ' -f1 /proc/loadavg)
        busy=$(compilers)
        if awk -v l="$l1" 'BEGIN{exit !(l < 0.7)}' && [ "${busy:-0}" -eq 0 ]; then
            return
        fi
        sleep 5
        waited=$((waited + 5))
    done
}
run() {
    local side=$1 dir=$2 name=$3 args=$4 out
    quiet
    local load compilers
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    compilers=$(compilers)
    # shellcheck disable=SC2086 # the scenario's arguments are split on purpose
    out=$(timeout 400 "$dir/rollcall-bench" --spawn --json "$R/$side-$name.json" $args 2>&1 | grep -v '^\[')
    echo "### $(date -u +%H:%M:%S) $side $name: load before $load, compilers running ${compilers:-0}"
    grep -E 'left|latency|per second|deliveries|store commits|errors|lost|missing|ghosts|duplicates|server CPU|WARN|warn' <<<"$out" | head -20
}
for s in "${SCENARIOS[@]}"; do
    name=${s%%|*} args=${s#*|}
    grep -qE "$ONLY" <<<"$name" || continue
    for r in $(seq "$START" $((START + ROUNDS - 1))); do
        run pre11 "$BEFORE" "$name-$r" "$args"
        run post11 "$AFTER" "$name-$r" "$args"
    done
done
echo DONE
