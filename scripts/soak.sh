#!/usr/bin/env bash
# Soak: a release server with its built-in mock model under N concurrent calls for MINUTES
# (`voxbridge replay fixtures/*.jsonl --concurrency N`, looped), then idle. Every 10 s it samples
# the server's RSS, open descriptors, threads, live calls and HTTP connections; it reports the
# RSS slope over the second half of the load (MB per minute: it must level off, ~0) and whether
# descriptors, live calls and connections went back to their idle baseline after. Exit 1 when
# they did not, or when RSS grew more than 1 MB/min.
# Usage: scripts/soak.sh [N=1000] [MINUTES=10]   (DATABASE_URL=postgres://… for PostgreSQL)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
MINUTES=${2:-10}
OUT=${OUT:-target/soak}
mkdir -p "$OUT"
rm -f "$OUT"/soak.db* "$OUT/samples.csv"
ulimit -n 65536 2>/dev/null || true
cargo build --release --quiet
BIN=target/release/voxbridge
DB=${DATABASE_URL:-sqlite://$OUT/soak.db}
VOXBRIDGE_LISTEN=127.0.0.1:18180 VOXBRIDGE_DATABASE_URL="$DB" VOXBRIDGE_AUDIO_MODE=g711 \
  VOXBRIDGE_MAX_LIVE_CALLS=$((N + 100)) VOXBRIDGE_MAX_PENDING_STREAMS=$((N + 100)) \
  VOXBRIDGE_MAX_PENDING_STREAMS_PER_IP=$((N + 100)) RUST_LOG=warn \
  $BIN serve >"$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; kill $SAMPLER 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fs http://127.0.0.1:18180/healthz >/dev/null 2>&1 && break; sleep 0.1; done

metric() { curl -fs http://127.0.0.1:18180/metrics | awk -v m="$1" '$1 == m {print $2; exit}'; }
sample() {
  local rss fds threads
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER/status")
  fds=$(ls "/proc/$SERVER/fd" | wc -l)
  threads=$(awk '/Threads/ {print $2}' "/proc/$SERVER/status")
  echo "$(date +%s),$1,$rss,$fds,$threads,$(metric voxbridge_live_calls),$(metric voxbridge_http_connections)"
}
echo "t,phase,rss_kb,fds,threads,live_calls,http_connections" >"$OUT/samples.csv"
sample idle >>"$OUT/samples.csv"
( while kill -0 $SERVER 2>/dev/null; do sleep 10; sample "$(cat "$OUT/phase" 2>/dev/null || echo load)" >>"$OUT/samples.csv"; done ) &
SAMPLER=$!
echo load >"$OUT/phase"
end=$(( $(date +%s) + MINUTES * 60 ))
runs=0; failed=0
while [ "$(date +%s)" -lt "$end" ]; do
  $BIN replay fixtures/*.jsonl --url http://127.0.0.1:18180 --concurrency "$N" --json >"$OUT/replay.json" 2>/dev/null || true
  runs=$((runs + 1))
  failed=$((failed + $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["failed_calls"])' "$OUT/replay.json" 2>/dev/null || echo "$N")))
done
echo after >"$OUT/phase"
sleep 30
sample after >>"$OUT/samples.csv"
python3 - "$OUT/samples.csv" "$runs" "$failed" "$N" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
runs, failed, n = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
idle, after = rows[0], rows[-1]
load = [r for r in rows if r["phase"] == "load"]
half = load[len(load) // 2:]
def slope(rs):
    if len(rs) < 2: return 0.0
    xs = [int(r["t"]) / 60 for r in rs]; ys = [int(r["rss_kb"]) / 1024 for r in rs]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0
s = slope(half)
peak = max(int(r["rss_kb"]) for r in rows) / 1024
num = lambda v: int(float(v or 0))
back = all(num(after[k]) <= num(idle[k]) for k in ("live_calls", "http_connections")) and int(after["fds"]) <= int(idle["fds"]) + 2
print(f"calls: {runs} runs x {n} = {runs * n}, failed {failed}")
print(f"RSS: idle {int(idle['rss_kb'])/1024:.1f} MB, peak {peak:.1f} MB, after {int(after['rss_kb'])/1024:.1f} MB; "
      f"slope over the second half of the load {s:+.2f} MB/min")
print(f"descriptors: idle {idle['fds']}, after {after['fds']}; live calls after {after['live_calls']}; "
      f"HTTP connections after {after['http_connections']}; threads idle {idle['threads']}, after {after['threads']}")
print("back to baseline" if back else "NOT back to baseline")
sys.exit(0 if back and s <= 1.0 and failed == 0 else 1)
PY
