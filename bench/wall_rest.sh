#!/usr/bin/env bash
# Wall-clock signed `/game/leave` (rest --api game, concurrency 1), before and after interleaved.
#
#   ROUNDS=5 REQUESTS=3000 bench/wall_rest.sh DIR...
#
# Each DIR (labelled by its name) holds a `rollcall-bench` and the `rollcall` it spawns (--spawn takes the server next to
# the bench binary: copy an own build's pair, or one bench binary beside each server to compare
# servers alone). Each round runs every DIR once, the order rotated by one each round. Prints one line per run: the load
# average before it, request latency p50/p90/p99 (ms), and server CPU per request (µs).
set -uo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5} N=${REQUESTS:-3000}
DIRS=("$@")
run() {
    local side=$1 dir=$2 out
    out=$(timeout 300 "$dir/rollcall-bench" --spawn rest --api game \
        --session-key src/facade/game/dev-keys/session-private.pem \
        --requests "$N" --rooms 100 --concurrency 1 2>&1 | grep -v '^\[')
    local load lat cpu errs
    load=$(cut -d' ' -f1 /proc/loadavg)
    lat=$(grep 'request latency' <<<"$out" | grep -o 'p50 [0-9.]*  p90 [0-9.]*  p99 [0-9.]*')
    cpu=$(grep '^server CPU' <<<"$out" | awk '{print $NF}')
    errs=$(grep '^errors' <<<"$out" | awk '{print $NF}')
    printf '%s %-12s load1 %s | %s | server CPU %s s = %s us/request | errors %s\n' \
        "$(date -u +%H:%M:%S)" "$side" "$load" "$lat" "$cpu" \
        "$(awk -v c="$cpu" -v n="$N" 'BEGIN{printf "%.1f", c*1e6/n}')" "$errs"
}
for r in $(seq 0 $((ROUNDS - 1))); do
    for i in $(seq 0 $((${#DIRS[@]} - 1))); do
        d=${DIRS[$(((i + r) % ${#DIRS[@]}))]}
        run "$(basename "$d")" "$d"
    done
done
