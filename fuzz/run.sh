#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each (default 60), one at a time, from the
# committed corpus. New interesting inputs go to a scratch directory, not into fuzz/corpus/; a
# crash stops the run and leaves its input in fuzz/artifacts/<target>/.
# Usage: fuzz/run.sh [SECONDS] [TARGET...]   (needs a nightly toolchain and cargo-fuzz)
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(ws_message plyr_sign video_body lobby_body config_toml)
fi
scratch="${FUZZ_SCRATCH:-$(mktemp -d)}"
for t in "${targets[@]}"; do
  echo "== fuzz $t for ${secs}s"
  mkdir -p "$scratch/$t"
  cargo +nightly fuzz run "$t" "$scratch/$t" "corpus/$t" -- \
    -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=1024 -print_final_stats=1
done
