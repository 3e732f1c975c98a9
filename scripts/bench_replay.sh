#!/usr/bin/env bash
# Load benchmark: a release server, and `voxbridge replay --concurrency N --serve-model` playing
# both the carrier and the model (two processes on loopback). Every 20 ms frame is timed one way,
# end to end, by its content, on the replay's clock; the server's own histograms come along as a
# second opinion. Reports the replay's JSON plus the server's CPU per call-second and peak RSS per
# call. Every call comes from 127.0.0.1, so the per-address cap on streams waiting to start is
# raised to N (an overloaded server answers 503 beyond it, as it should for a real peer).
# Usage: scripts/bench_replay.sh [N] [pcm16|g711] [speed]
#   PROVIDER=twilio|telnyx (default twilio), TELNYX_CODEC=PCMU|PCMA|L16 (default PCMU),
#   MODEL_SPEED (default 1: the model streams at real time, as GPT-Live does),
#   MODEL_API=realtime|live (default realtime; the replay's model serves both),
#   PIN=1: the server alone on CPU 0, the replay (carrier + model) on CPU 1,
#   RECORD=1: every call recorded (VOXBRIDGE_RECORDINGS=local:$OUT/recordings; the number the
#   replay calls bound to an agent with `record: true`), to compare with RECORD=0.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
MODE=${2:-pcm16}
SPEED=${3:-1}
PROVIDER=${PROVIDER:-twilio}
MODEL_SPEED=${MODEL_SPEED:-1}
PIN=${PIN:-0}
RECORD=${RECORD:-0}
if [ "$PIN" = 1 ]; then SRV="taskset -c 0"; GEN="taskset -c 1"; else SRV=""; GEN=""; fi
# GEN_THREADS / SERVER_THREADS: tokio worker threads of each process (default: one per core).
GEN="env ${GEN_THREADS:+TOKIO_WORKER_THREADS=$GEN_THREADS} $GEN"
SRV="env ${SERVER_THREADS:+TOKIO_WORKER_THREADS=$SERVER_THREADS} $SRV"
OUT=${OUT:-target/bench}
mkdir -p "$OUT"
rm -rf "$OUT"/bench.db* "$OUT/recordings"
RECORD_ENV=()
if [ "$RECORD" = 1 ]; then RECORD_ENV=(VOXBRIDGE_RECORDINGS="local:$OUT/recordings"); fi
ulimit -n 65536 2>/dev/null || true
cargo build --release --quiet
BIN=target/release/voxbridge

# Telnyx: the replay serves the stand-in Call Control API and signs webhooks with this key.
SIGNING_KEY=BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=
PUBLIC_KEY=6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=
CARRIER_ENV=()
CARRIER_ARGS=()
if [ "$PROVIDER" = telnyx ]; then
  CARRIER_ENV=(TELNYX_API_KEY=bench TELNYX_CONNECTION_ID=bench TELNYX_API_BASE=http://127.0.0.1:19090
    TELNYX_PUBLIC_KEY=$PUBLIC_KEY VOXBRIDGE_TELNYX_CODEC=${TELNYX_CODEC:-PCMU})
  CARRIER_ARGS=(--provider telnyx --telnyx-api-listen 127.0.0.1:19090 --telnyx-signing-key "$SIGNING_KEY")
fi

env "${CARRIER_ENV[@]}" "${RECORD_ENV[@]}" VOXBRIDGE_LISTEN=127.0.0.1:18080 VOXBRIDGE_REALTIME_URL=ws://127.0.0.1:18090/v1/realtime \
  VOXBRIDGE_MODEL_API="${MODEL_API:-realtime}" VOXBRIDGE_LIVE_URL=ws://127.0.0.1:18090/v1/live/sessions \
  VOXBRIDGE_DATABASE_URL="sqlite://$OUT/bench.db" OPENAI_API_KEY=sk-bench \
  VOXBRIDGE_AUDIO_MODE=$MODE VOXBRIDGE_MAX_LIVE_CALLS=$((N + 100)) RUST_LOG=warn \
  VOXBRIDGE_MAX_PENDING_STREAMS=$((N + 100)) VOXBRIDGE_MAX_PENDING_STREAMS_PER_IP=$((N + 100)) \
  $SRV $BIN serve >"$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs http://127.0.0.1:18080/healthz >/dev/null 2>&1 && break; sleep 0.1; done
if [ "$RECORD" = 1 ]; then
  agent=$(curl -fs -X POST http://127.0.0.1:18080/v1/agents -H 'Content-Type: application/json' \
    -d '{"name": "bench", "record": true}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  curl -fs -X PUT http://127.0.0.1:18080/v1/numbers/+15557654321 -H 'Content-Type: application/json' \
    -d "{\"agent_id\": \"$agent\"}" >/dev/null
fi

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
/usr/bin/time -f "%U %S" -o "$OUT/replay.time" $GEN $BIN replay fixtures/*.jsonl --url http://127.0.0.1:18080 \
  "${CARRIER_ARGS[@]}" --serve-model 127.0.0.1:18090 --model-speed "$MODEL_SPEED" \
  --concurrency "$N" --speed "$SPEED" --json >"$OUT/replay.json" 2>"$OUT/replay.log" || true
t1=$(ticks)
peak=$(cat "$OUT/peak_rss_kb")
python3 - "$OUT/replay.json" "$N" "$HZ" "$t0" "$t1" "$idle_rss" "$peak" "$OUT/replay.time" "$MODE" "$PROVIDER" "$RECORD" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
n, hz, t0, t1, idle, peak = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
replay_cpu = sum(float(x) for x in open(sys.argv[8]).read().split()[-2:])
s = r.get("server") or {}
w = r.get("one_way") or {}
call_seconds = s.get("frames_from_caller", 0) * 0.02
cpu = (t1 - t0) / hz
def way(d):
    if not d: return None
    l = d["latency"]
    return {"frames": d["frames"], "timed": l["count"], "p50_ms": round(l["p50_ms"], 3), "p90_ms": round(l["p90_ms"], 3),
            "p99_ms": round(l["p99_ms"], 3), "max_ms": round(d["max_ms"], 3), "lost": d["lost"]}
print(json.dumps({
    "mode": sys.argv[9], "provider": sys.argv[10],
    "calls": r["calls"], "failed_calls": r["failed_calls"], "errors": r["errors"][:3],
    "wall_seconds": round(r["wall_seconds"], 1), "barge_ins": r["barge_ins"],
    "frames_sent": r["frames_sent"],
    "one_way_caller_to_model": way(w.get("caller_to_model")), "one_way_model_to_caller": way(w.get("model_to_caller")),
    "model_frames_cleared": w.get("cleared"), "model_frames_cut_by_hangup": w.get("cut_by_hangup"),
    "undecodable": w.get("undecodable"),
    "server_lost_frames": s.get("lost_frames"), "dropped_to_model_bytes": s.get("dropped_to_model_bytes"),
    "server_latency_to_model_ms": s.get("latency_to_model"), "server_latency_to_caller_ms": s.get("latency_to_caller"),
    "server_cpu_seconds": cpu, "replay_and_model_cpu_seconds": replay_cpu,
    "call_seconds": round(call_seconds, 1),
    "server_cpu_ms_per_call_second": round(1000 * cpu / max(call_seconds, 1e-9), 3),
    "server_rss_idle_mb": round(idle / 1024, 1), "server_rss_peak_mb": round(peak / 1024, 1),
    "server_rss_kb_per_call": round((peak - idle) / max(n, 1), 1),
    "recorded": sys.argv[11] == "1",
}, indent=1))
PY
