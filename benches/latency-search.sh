#!/usr/bin/env bash
# The highest rate each server sustains under a latency target: `ringport stress
# --find-max-rate` against `ringport serve` (one worker) and socat (a process per connection),
# each server pinned to one CPU and the load, one client thread, to another. One table row per
# server (the answer, the first rate past it and why it failed, the re-measurements at the
# answer, the search's conclusion) and its curve (p50, p99, p99.9 against the offered rate).
#
# Usage:  benches/latency-search.sh          (on a quiet machine; about a minute per server)
#         SERVERS=ringport P99=1ms benches/latency-search.sh
#         PAGE=1 benches/latency-search.sh    also write docs/results/latency-search.md and its
#                                             charts beside it (benches/page.sh)
# Environment (defaults in brackets):
#   SERVERS      what to search: ringport, socat (skipped with a note when not installed)
#                                                                        ["ringport socat"]
#   P99          the latency target (stress --p99)                       [2ms]
#   CONNS        connections                                             [10]
#   DURATION     measured seconds per probe                              [3]
#   WARMUP       discarded seconds per probe                             [0.5]
#   RATE         the first rate probed                                   [1000]
#   REPEAT       re-measurements of the answer                           [2]
#   SPIN_US      stress --spin-us: 0 sleeps until each send is due, which leaves the one client
#                thread the headroom sparse sends need                   [0]
#   SERVER_CPU   CPU for the server                                      [0]
#   LOAD_CPU     CPU for the load                                        [1]
#   PORT_BASE    first TCP port tried                                    [18700]
#   RINGPORT     the ringport binary     [$CARGO_TARGET_DIR or target]/release/ringport
#   NO_BUILD=1   do not build ringport
#   OUT          each server's report, JSON and chart     [./ringport-latency-search]
#
# Requires taskset (util-linux) and python3; socat for its row. Loopback only; every server
# started is stopped on exit, also on error or Ctrl-C.
set -euo pipefail
# shellcheck source=benches/page.sh
. "$(dirname "$0")/page.sh"
page_init latency-search "The highest rate under a latency target" \
  "\`ringport stress --find-max-rate\` against \`ringport serve\` (one worker, io_uring) and socat (a process per connection), each server pinned to one CPU and the load, one client thread, to another: the highest open-loop rate whose coordinated-omission-corrected p99 meets the target, the first rate past it, and the re-measurements at the answer. How the search works: [Rates](../rates.md#the-highest-rate-under-a-latency-target)." \
  SERVERS P99 CONNS DURATION WARMUP RATE REPEAT SPIN_US SERVER_CPU LOAD_CPU RINGPORT
for v in RINGPORT OUT; do
  if [[ -n "${!v:-}" && "${!v}" != /* ]]; then printf -v "$v" '%s' "$PWD/${!v}"; fi
done
cd "$(dirname "$0")/.."
ME=latency-search.sh

SERVERS=${SERVERS:-"ringport socat"}
P99=${P99:-2ms}
CONNS=${CONNS:-10}
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-0.5}
RATE=${RATE:-1000}
REPEAT=${REPEAT:-2}
SPIN_US=${SPIN_US:-0}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT_BASE=${PORT_BASE:-18700}
RINGPORT=${RINGPORT:-${CARGO_TARGET_DIR:-$(pwd)/target}/release/ringport}
OUT=${OUT:-$(pwd)/ringport-latency-search}

command -v taskset >/dev/null || { echo "$ME: taskset is not installed (util-linux)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "$ME: python3 is needed to read the search's JSON" >&2; exit 1; }
if [[ -z "${NO_BUILD:-}" ]]; then
  echo "building ringport (release)" >&2
  cargo build --release -q -p ringport
fi
[[ -x "$RINGPORT" ]] || { echo "$ME: $RINGPORT is missing (run without NO_BUILD=1 to build it)" >&2; exit 1; }
mkdir -p "$OUT"

SRV_PID=""
stop_server() {
  if [[ -n "$SRV_PID" ]]; then kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; fi
  SRV_PID=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM

free_port() {
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}

TABLE=$(mktemp)
echo "| server | answer (p99 <= $P99) | first rate past it | re-measured at the answer | conclusion |" >"$TABLE"
echo "|---|---:|---:|---|---|" >>"$TABLE"
CHARTS=()
port=$PORT_BASE
for s in $SERVERS; do
  port=$(free_port $((port + 1)))
  case "$s" in
    ringport) cmd=("$RINGPORT" serve --port "$port" --workers 1 --max-per-ip 0) ;;
    socat)
      if ! command -v socat >/dev/null; then echo "$ME: socat is not installed: its row is left out" >&2; continue; fi
      cmd=(socat "TCP-LISTEN:$port,fork,reuseaddr" PIPE) ;;
    *) echo "$ME: unknown server $s (ringport, socat)" >&2; exit 1 ;;
  esac
  taskset -c "$SERVER_CPU" "${cmd[@]}" >/dev/null 2>&1 &
  SRV_PID=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
  kill -0 "$SRV_PID" 2>/dev/null || { echo "$ME: $s exited at start (${cmd[*]})" >&2; exit 1; }
  echo "searching $s on port $port" >&2
  status=0
  taskset -c "$LOAD_CPU" "$RINGPORT" stress 127.0.0.1 "$port" --find-max-rate --p99 "$P99" \
    --connections "$CONNS" --threads 1 --duration "$DURATION" --warmup "$WARMUP" --rate "$RATE" \
    --repeat "$REPEAT" --spin-us "$SPIN_US" --json "$OUT/$s.json" --svg "$OUT/$s.svg" \
    >"$OUT/$s.txt" 2>&1 </dev/null || status=$?
  stop_server
  # 0: an answer; 4: none met the target; anything else is a failure of the run.
  if [[ $status != 0 && $status != 4 ]]; then
    echo "$ME: the search against $s failed (exit $status): $(tail -3 "$OUT/$s.txt" | tr '\n' ' ')" >&2
    exit 1
  fi
  python3 - "$OUT/$s.json" "$s" >>"$TABLE" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
def rate(r):
    return "-" if r is None else f"{r:,.0f}"
probes = d.get("probes", [])
def p99_at(r):
    for p in probes:
        if p["rate"] == r and p["verdict"] != "pass":
            return p["latency_us"]["p99"]
    return None
answer = "none" if d.get("answer") is None else f"**{rate(d['answer'])} msg/s**"
ff = d.get("first_failing")
past = "-"
if ff is not None:
    p99 = p99_at(ff)
    why = d.get("first_failing_verdict") or ""
    past = f"{rate(ff)} ({why}" + (f", p99 {p99 / 1000:.1f} ms)" if p99 is not None else ")")
again = [p["latency_us"]["p99"] for p in probes
         if p["phase"] == "repeat" and p["rate"] == d.get("answer")]
repeat = f"{d.get('repeat_passed', 0)} of {d.get('repeat_total', 0)} within"
if again:
    repeat += f" (p99 {min(again)}-{max(again)} µs)"
print(f"| {sys.argv[2]} | {answer} | {past} | {repeat} | {d.get('conclusion', '')} |")
PY
  CHARTS+=("$s")
done

cat "$TABLE"
if [[ -n "$PAGE_FILE" ]]; then
  mkdir -p "$(dirname "$PAGE_FILE")"
  {
    cat "$TABLE"
    for s in "${CHARTS[@]}"; do
      cp "$OUT/$s.svg" "$(dirname "$PAGE_FILE")/latency-search-$s.svg"
      echo
      echo "![$s: p50, p99 and p99.9 against the offered rate](latency-search-$s.svg)"
    done
  } | page_save
fi
rm -f "$TABLE"
echo "reports, JSON and charts: $OUT" >&2
