#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets: carrier media, model events, webhooks and
# signatures, stream tokens, request bodies, user JSON Schemas, templates/scripts/fixtures) for
# SECONDS each on its corpus (fuzz/corpus/<target>, grown from fuzz/seeds/<target>). Installs
# nightly and cargo-fuzz when missing. A crash fails the script; libFuzzer leaves the input in
# fuzz/artifacts/<target>/ (make it a regression test). Prints each target's executions.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (default 10 s, every target)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
shift || true
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo +nightly fuzz list); fi
cargo +nightly fuzz build -O >/dev/null
status=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  log=$(mktemp)
  if cargo +nightly fuzz run -O "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
      -max_total_time="$SECS" -print_final_stats=1 -rss_limit_mb=2048 >"$log" 2>&1; then
    execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
    echo "ok   $t: ${execs:-?} executions in ${SECS} s, 0 crashes"
  else
    echo "FAIL $t: see fuzz/artifacts/$t/"; tail -n 30 "$log"; status=1
  fi
  rm -f "$log"
done
exit $status
