#!/usr/bin/env bash
# Runs every issue-4 target scenario once against a freshly built release server
# (cargo build --release --workspace first: both binaries) and writes bench/results/$PREFIX-*.json and .svg.
cd "$(dirname "$0")/.."
B=./target/release/rollcall-bench
R=bench/results; PREFIX=${PREFIX:-final}
run() { echo "### $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg): $*"; timeout 400 "$@" 2>&1 | grep -v '^\[' | tail -45; }
run $B --spawn --workers 2 --connect-concurrency 50 --json $R/$PREFIX-idle-19k.json idle --sockets 19000 --step 1000 --hold-secs 3 --after-close-secs 45
# Big rooms: 10 rooms x 1,000 members; each joiner gets a panel of up to ~60 KB (issue #9: <= 8 KiB/socket, as in small rooms).
run $B --spawn --connect-concurrency 50 --json $R/$PREFIX-idle-10x1000.json idle --sockets 10000 --room-size 1000 --step 1000 --hold-secs 3
run $B --spawn --json $R/$PREFIX-churn-1000x10.json --svg $R/$PREFIX-churn-1000x10.svg churn --rooms 1000 --members 10 --connect-rate 2000 --leaves 5000 --leave-rate 500
run $B --spawn --json $R/$PREFIX-churn-10x1000.json --svg $R/$PREFIX-churn-10x1000.svg churn --rooms 10 --members 1000 --connect-rate 1000 --leaves 200 --leave-rate 50 --settle-secs 60
run $B --spawn --json $R/$PREFIX-fanout-10k-max.json --svg $R/$PREFIX-fanout-10k-max.svg fanout --watchers 10000 --events 300
run $B --spawn --json $R/$PREFIX-fanout-10k-rate5.json --svg $R/$PREFIX-fanout-10k-rate5.svg fanout --watchers 10000 --events 50 --rate 5
run $B --spawn --json $R/$PREFIX-storm-10k.json --svg $R/$PREFIX-storm-10k.svg storm --rooms 100 --members 100
run $B --spawn --connect-concurrency 100 --json $R/$PREFIX-storm-10k-c100.json storm --rooms 100 --members 100
run $B --spawn --json $R/$PREFIX-rest-game-c1.json rest --api game --session-key src/facade/game/dev-keys/session-private.pem --requests 5000 --rooms 100 --concurrency 1
# The machine's own floor (raw TCP, no rollcall) for the same shapes as the latency targets.
run $B --json $R/$PREFIX-floor-10k-rate5.json --svg $R/$PREFIX-floor-10k-rate5.svg floor --sockets 10000 --events 50 --rate 5
run $B --json $R/$PREFIX-floor-1k-rate50.json floor --sockets 1000 --events 200 --rate 50
run $B --json $R/$PREFIX-floor-10k-max.json floor --sockets 10000 --events 200 --rate 0
echo DONE
