#!/usr/bin/env bash
# Load benchmark: a release server, the mock model and `voxbridge replay --concurrency N` as
# three processes on loopback. Reports the replay's JSON plus the server's CPU per call-second
# and peak RSS per call. Usage: scripts/bench_replay.sh [N] [pcm16|g711] [speed]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
MODE=${2:-pcm16}
SPEED=${3:-1}
# PIN=1: the server alone on CPU 0, the mock model and the replay client on CPU 1, so the load
# generators cannot starve the server (what is measured is the server's added latency).
PIN=${PIN:-0}
if [ "$PIN" = 1 ]; then SRV="taskset -c 0"; GEN="taskset -c 1"; else SRV=""; GEN=""; fi
OUT=${OUT:-target/bench}
mkdir -p "$OUT"
ulimit -n 65536 2>/dev/null || true
cargo build --release --quiet
BIN=target/release/voxbridge

$GEN $BIN mock-realtime --listen 127.0.0.1:18090 >"$OUT/mock.log" 2>&1 &
MOCK=$!
VOXBRIDGE_LISTEN=127.0.0.1:18080 VOXBRIDGE_REALTIME_URL=ws://127.0.0.1:18090/v1/realtime \
  VOXBRIDGE_AUDIO_MODE=$MODE VOXBRIDGE_MAX_LIVE_CALLS=$((N + 100)) RUST_LOG=warn \
  $SRV $BIN serve >"$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $MOCK $SERVER 2>/dev/null || true' EXIT
sleep 1

ticks() { awk '{print $14 + $15}' "/proc/${1:-$SERVER}/stat"; }
HZ=$(getconf CLK_TCK)
peak=0
( while kill -0 $SERVER 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER/status" 2>/dev/null || echo 0)
    if [ "${rss:-0}" -gt "$peak" ]; then peak=$rss; echo "$peak" >"$OUT/peak_rss_kb"; fi
    sleep 0.5
  done ) &
idle_rss=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER/status")
t0=$(ticks)
m0=$(ticks $MOCK)
/usr/bin/time -f "%U %S" -o "$OUT/replay.time" $GEN $BIN replay fixtures/*.jsonl --url http://127.0.0.1:18080 --concurrency "$N" --speed "$SPEED" --json >"$OUT/replay.json" || true
t1=$(ticks)
m1=$(ticks $MOCK)
peak=$(cat "$OUT/peak_rss_kb")
python3 - "$OUT/replay.json" "$N" "$HZ" "$t0" "$t1" "$idle_rss" "$peak" "$m0" "$m1" "$OUT/replay.time" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
n, hz, t0, t1, idle, peak = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
mock_cpu = (int(sys.argv[9]) - int(sys.argv[8])) / hz
replay_cpu = sum(float(x) for x in open(sys.argv[10]).read().split()[-2:])
s = r.get("server") or {}
call_seconds = s.get("frames_from_caller", 0) * 0.02
cpu = (t1 - t0) / hz
print(json.dumps({
    "calls": r["calls"], "failed_calls": r["failed_calls"], "errors": r["errors"][:3],
    "wall_seconds": round(r["wall_seconds"], 1), "barge_ins": r["barge_ins"],
    "frames_sent": r["frames_sent"], "lost_frames": s.get("lost_frames"),
    "dropped_to_model_bytes": s.get("dropped_to_model_bytes"),
    "latency_to_model_ms": s.get("latency_to_model"), "latency_to_caller_ms": s.get("latency_to_caller"),
    "processing_from_caller_ms": s.get("processing_from_caller"), "processing_from_model_ms": s.get("processing_from_model"),
    "server_cpu_seconds": cpu, "mock_cpu_seconds": mock_cpu, "replay_cpu_seconds": replay_cpu,
    "call_seconds": round(call_seconds, 1),
    "server_cpu_ms_per_call_second": round(1000 * cpu / max(call_seconds, 1e-9), 3),
    "server_rss_idle_mb": round(idle / 1024, 1), "server_rss_peak_mb": round(peak / 1024, 1),
    "server_rss_kb_per_call": round((peak - idle) / max(n, 1), 1),
}, indent=1))
PY
