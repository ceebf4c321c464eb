#!/usr/bin/env bash
# How much client CPU does a round trip cost? `ringport stress` against a thread-per-connection
# generator (crates/stress/examples/thread_per_conn.rs, the rust_echo_bench / article design) and
# an epoll one (echo-load from ../shared/peers, when present), all against the same ringport
# server. Server pinned to CPU 0 (one worker), load pinned to CPU 1; generators interleaved;
# medians of ROUNDS runs. Loopback only.
#
# Environment: CONNS ["10 100"], SIZE [64], DURATION [4], WARMUP [1], ROUNDS [3],
#              PEERS [../shared/peers], NO_BUILD=1 to skip building.
# Output: one row per generator and connection count: round trips/s, client CPU (cores), and
# round trips per client core-second (the figure to compare), with the ratio to thread-per-conn.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-"10 100"}
SIZE=${SIZE:-64}
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-3}
PEERS=${PEERS:-../shared/peers}

if [[ -z "${NO_BUILD:-}" ]]; then
  cargo build --release -q -p ringport -p ringport-stress --example thread_per_conn
  if [[ -d "$PEERS/echo-load" ]]; then (cd "$PEERS/echo-load" && cargo build --release -q); fi
fi
RINGPORT=target/release/ringport
THREADED=target/release/examples/thread_per_conn
ECHO_LOAD="$PEERS/echo-load/target/release/echo-load"
GENS="ringport-stress thread-per-conn"
[[ -x "$ECHO_LOAD" ]] && GENS="ringport-stress echo-load thread-per-conn"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

SRV_PID=""
cleanup() { [[ -n "$SRV_PID" ]] && kill "$SRV_PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
start_server() {
  local out; out=$(mktemp)
  taskset -c 0 "$RINGPORT" serve --port 0 --workers 1 </dev/null >"$out" 2>/dev/null &
  SRV_PID=$!
  for _ in $(seq 1 100); do grep -q '^listening on' "$out" && break; sleep 0.05; done
  PORT=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$out" | head -1)
  rm -f "$out"
}
stop_server() { kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; SRV_PID=""; }

RESULTS=$(mktemp)
for conns in $CONNS; do
  for round in $(seq 1 "$ROUNDS"); do
    for gen in $GENS; do
      start_server
      case $gen in
        ringport-stress)
          json=$(taskset -c 1 "$RINGPORT" stress "$PORT" --connections "$conns" --size "$SIZE" \
                   --duration "$DURATION" --warmup "$WARMUP" --threads 1 --json - 2>/dev/null </dev/null)
          read -r rps cpu < <(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["msgs_per_s"], sum(d["client_cpu_pct"])/100)' <<<"$json") ;;
        echo-load)
          line=$(taskset -c 1 "$ECHO_LOAD" --addr "127.0.0.1:$PORT" --conns "$conns" --size "$SIZE" \
                   --duration "$DURATION" --warmup "$WARMUP" --threads 1)
          rps=$(sed -n 's/.*rt_per_s=\([^ ]*\).*/\1/p' <<<"$line"); cpu=$(sed -n 's/.*load_cpu=\([^ ]*\).*/\1/p' <<<"$line") ;;
        thread-per-conn)
          line=$(taskset -c 1 "$THREADED" "127.0.0.1:$PORT" "$conns" "$SIZE" "$DURATION" "$WARMUP")
          rps=$(sed -n 's/.*rt_per_s=\([^ ]*\).*/\1/p' <<<"$line"); cpu=$(sed -n 's/.*load_cpu=\([^ ]*\).*/\1/p' <<<"$line") ;;
      esac
      stop_server
      printf '%s\t%s\t%s\t%s\t%s\n' "$gen" "$conns" "$round" "$rps" "$cpu" | tee -a "$RESULTS" >&2
    done
  done
done

python3 - "$RESULTS" <<'PY'
import sys, statistics as st
rows = [l.split('\t') for l in open(sys.argv[1]).read().split('\n') if l]
by = {}
for gen, conns, _, rps, cpu in rows:
    by.setdefault((int(conns), gen), []).append((float(rps), float(cpu)))
print(f"{'generator':<18}{'conns':>6}{'rt/s':>12}{'client cores':>14}{'rt per core-s':>15}{'vs thread-per-conn':>20}")
for conns in sorted({c for c, _ in by}):
    base = None
    med = {}
    for (c, gen), v in by.items():
        if c != conns: continue
        rps = st.median(x for x, _ in v); cpu = st.median(y for _, y in v)
        med[gen] = (rps, cpu, rps / cpu if cpu > 0 else float('nan'))
    base = med.get('thread-per-conn', (0, 0, float('nan')))[2]
    for gen, (rps, cpu, per) in sorted(med.items()):
        print(f"{gen:<18}{conns:>6}{rps:>12.0f}{cpu:>14.2f}{per:>15.0f}{per/base:>19.2f}x")
PY
