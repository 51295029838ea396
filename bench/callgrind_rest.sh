#!/usr/bin/env bash
# Instructions per signed `POST /game/leave`, counted by callgrind (repeatable whatever the load).
#
#   bench/callgrind_rest.sh SERVER_BINARY OUT_PREFIX [REQUESTS] [ROOMS]
#
# Runs SERVER_BINARY (a `rollcall` release build, any commit) under valgrind --tool=callgrind
# with instrumentation off, and drives it with this tree's release `rollcall-bench` (outside
# valgrind) through `rest --api game --concurrency 1 --url`. The bench's --phase-hook zeroes the
# counters and turns instrumentation on after setup (rooms created, players joined, watchers open)
# and dumps them when the last leave has been answered, so OUT_PREFIX.callgrind holds the calls
# alone (plus the watchers' `left` deliveries and whatever the server does meanwhile).
# Writes OUT_PREFIX.callgrind (the profile), OUT_PREFIX.txt (the bench's report) and
# OUT_PREFIX.annotate.txt (callgrind_annotate, inclusive); prints Ir per request.
set -euo pipefail
cd "$(dirname "$0")/.."
SERVER=$1 OUT=$2 N=${3:-2000} ROOMS=${4:-100}
BENCH=${BENCH:-${CARGO_TARGET_DIR:-./target}/release/rollcall-bench}
PORT=${PORT:-18731}
CFG=$(mktemp /tmp/rollcall-cg-XXXX.toml)
SECRET=rollcall-bench-secret-0123456789 ADMIN=rollcall-bench-admin-0123456789
cat >"$CFG" <<EOF
listen = "127.0.0.1:$PORT"
jwt_secret = "$SECRET"
admin_token = "$ADMIN"
grace_secs = 5
ban_secs = 600
max_members_per_room = 20000
[game]
session_public_key_file = "$PWD/src/facade/game/dev-keys/session-public.pem"
[[game.api_keys]]
api_key = "dev-game-key"
secret_key = "dev-game-secret"
game_id = "devgame"
[lobby]
api_keys = ["rollcall-dev-lobby-key"]
[limits]
address_room_burst = 0
address_rooms_per_sec = 0.0
tenant_room_burst = 0
tenant_rooms_per_sec = 0.0
lobby_address_burst = 0
lobby_address_per_sec = 0.0
EOF
rm -f "$OUT".callgrind*
RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT.callgrind" \
    "$SERVER" --config "$CFG" >"$OUT.valgrind.log" 2>&1 &
VG=$!
for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
    sleep 0.1
done
HOOK="if [ \"\$1\" = start ]; then callgrind_control -z $VG >/dev/null && callgrind_control --instr=on $VG >/dev/null; \
else callgrind_control -d $VG >/dev/null && callgrind_control --instr=off $VG >/dev/null; fi"
"$BENCH" --url "http://127.0.0.1:$PORT" --token-secret "$SECRET" --admin-token "$ADMIN" \
    --phase-hook "$HOOK" rest --api game \
    --session-key src/facade/game/dev-keys/session-private.pem \
    --requests "$N" --rooms "$ROOMS" --concurrency 1 2>&1 | grep -v '^\[' >"$OUT.txt"
kill -TERM $VG
wait $VG || true
rm -f "$CFG"
# The hook's dump is the first numbered part; the final dump at exit (collection off) is empty.
PART=$(ls "$OUT".callgrind.* | sort -V | head -1)
mv "$PART" "$OUT.callgrind"
rm -f "$OUT".callgrind.*
{ callgrind_annotate --inclusive=yes "$OUT.callgrind" 2>/dev/null || true; } | head -80 >"$OUT.annotate.txt" || true
IR=$(grep -m1 '^summary:' "$OUT.callgrind" | awk '{print $2}')
echo "$OUT: $IR Ir for $N requests = $((IR / N)) Ir/request"
