#!/usr/bin/env bash
# Capacity per core: the server pinned to CPU 0, the load generator (replay, carrier and model) to
# CPU 1 (`PIN=1 scripts/bench_replay.sh`), calls ramped in STEP until a frame is lost or the
# one-way p99 (either direction, every frame timed by its content) passes 5 ms. Prints each step
# and the last one that held: the calls one server core carries in MODE.
# Usage: scripts/capacity.sh [MODE=g711|pcm16] [START=200] [STEP=200] [MAX=2000]
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-g711}
N=${2:-200}
STEP=${3:-200}
MAX=${4:-2000}
held=0
while [ "$N" -le "$MAX" ]; do
  PIN=1 OUT=target/capacity bash scripts/bench_replay.sh "$N" "$MODE" >target/capacity.json 2>/dev/null || true
  verdict=$(python3 - target/capacity.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c, m = r.get("one_way_caller_to_model") or {}, r.get("one_way_model_to_caller") or {}
lost = sum((c.get("lost") or {}).values()) + sum((m.get("lost") or {}).values())
p99 = max(c.get("p99_ms", 1e9), m.get("p99_ms", 1e9))
ok = r.get("failed_calls", 1) == 0 and lost == 0 and (r.get("server_lost_frames") or 0) == 0 and p99 <= 5.0
print(f"{'ok' if ok else 'over'} failed={r.get('failed_calls')} lost={lost} server_lost={r.get('server_lost_frames')} "
      f"p99_caller_to_model={c.get('p99_ms')} p99_model_to_caller={m.get('p99_ms')} "
      f"cpu_ms_per_call_s={r.get('server_cpu_ms_per_call_second')}")
PY
)
  echo "$MODE N=$N: $verdict"
  case "$verdict" in ok*) held=$N ;; *) break ;; esac
  N=$((N + STEP))
done
echo "capacity ($MODE, one server core): $held calls"
