#!/usr/bin/env bash
# How much client CPU does a round trip cost? `ringport stress` against a thread-per-connection
# generator (crates/stress/examples/thread_per_conn.rs, the rust_echo_bench / article design) and
# an epoll one (echo-load from ../shared/peers, when present), all against the same ringport
# server. Server pinned to CPU 0 (one worker), load pinned to CPU 1; generators interleaved;
# medians of ROUNDS runs. Loopback only.
#
# Environment: CONNS ["10 100"], SIZE [64], DURATION [4], WARMUP [1], ROUNDS [3],
#              PEERS [../shared/peers], NO_BUILD=1 to skip building,
#              GENS [every generator found] to pick generators,
#              SERVER [ringport] or a peer server's directory name in PEERS (e.g. monoio-echo,
#              run with --threads 1), so that the client is measured against a fast server too,
#              STREAM=1: bytes instead of round trips: `ringport stress --stream` (chunks of
#              CHUNK [65536] bytes, default window) against echo-load's ping-pong of SIZE
#              [65536] bytes, both counted in echoed GB (each byte sent once and received once
#              by the client).
#              PAGE: 1 to also write the table as docs/results/client-cost.md (benches/page.sh),
#              or a path.
# Output: one row per generator and connection count: round trips/s (GB/s), client CPU (cores),
# and round trips (GB) per client core-second, the figure to compare, with its ratio to
# echo-load's and thread-per-conn's, taken round by round.
set -euo pipefail
# shellcheck source=benches/page.sh
. "$(dirname "$0")/page.sh"
page_init client-cost "Client CPU per round trip" \
  "How much client CPU a round trip costs: \`ringport stress\`, echo-load (epoll, from the peers) and a thread-per-connection generator (\`crates/stress/examples/thread_per_conn.rs\`), each with one thread pinned to CPU 1, against the same server pinned to CPU 0, interleaved, medians; round trips (or echoed GB with STREAM=1) per client core-second, with ratios taken round by round. How to run it: [Benchmarking](../benchmarking.md#against-other-servers-benches)." \
  CONNS SIZE CHUNK DURATION WARMUP ROUNDS PEERS GENS SERVER STREAM
cd "$(dirname "$0")/.."
CONNS=${CONNS:-"10 100"}
STREAM=${STREAM:-}
if [[ -n "$STREAM" ]]; then SIZE=${SIZE:-65536}; else SIZE=${SIZE:-64}; fi
CHUNK=${CHUNK:-65536}
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-3}
PEERS=${PEERS:-../shared/peers}
SERVER=${SERVER:-ringport}

if [[ -z "${NO_BUILD:-}" ]]; then
  # Two commands: with --example, cargo builds only the example, not the ringport binary.
  cargo build --release -q -p ringport
  cargo build --release -q -p ringport-stress --example thread_per_conn
  if [[ -d "$PEERS/echo-load" ]]; then (cd "$PEERS/echo-load" && cargo build --release -q); fi
fi
RINGPORT=target/release/ringport
THREADED=target/release/examples/thread_per_conn
ECHO_LOAD="$PEERS/echo-load/target/release/echo-load"
if [[ -z "${GENS:-}" ]]; then
  if [[ -n "$STREAM" ]]; then
    GENS="ringport-stream"
    [[ -x "$ECHO_LOAD" ]] && GENS="ringport-stream echo-load"
  else
    GENS="ringport-stress thread-per-conn"
    [[ -x "$ECHO_LOAD" ]] && GENS="ringport-stress echo-load thread-per-conn"
  fi
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

SRV_PID=""
cleanup() { [[ -n "$SRV_PID" ]] && kill "$SRV_PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
start_server() {
  if [[ "$SERVER" != ringport ]]; then
    # A peer takes a port; pick a free one from the kernel's ephemeral range.
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    taskset -c 0 "$PEERS/$SERVER/target/release/$SERVER" --port "$PORT" --threads 1 </dev/null >/dev/null 2>&1 &
    SRV_PID=$!
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done
    return
  fi
  local out; out=$(mktemp)
  taskset -c 0 "$RINGPORT" serve --port 0 --workers 1 </dev/null >"$out" 2>/dev/null &
  SRV_PID=$!
  for _ in $(seq 1 100); do grep -q '^listening on' "$out" && break; sleep 0.05; done
  PORT=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$out" | head -1)
  rm -f "$out"
}
stop_server() { kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; SRV_PID=""; }
# Other programs on these CPUs (a build, someone else's benchmark) skew a round: before each one,
# wait (at most QUIET_WAIT [300] seconds) until the machine was at most 10% busy for a second.
busy_pct() {
  local a b
  a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
  local t=0 i=0 k
  for k in 1 2 3 4 5 6 7 8; do t=$((t + b[k] - a[k])); done
  i=$((b[4] - a[4] + b[5] - a[5]))
  echo $(( t > 0 ? 100 * (t - i) / t : 0 ))
}
wait_quiet() {
  local waited=0
  while (( $(busy_pct) > 10 )); do
    waited=$((waited + 1))
    if (( waited >= ${QUIET_WAIT:-300} )); then echo "machine still busy; measuring anyway" >&2; return; fi
  done
  (( waited > 0 )) && echo "waited ${waited}s for a quiet machine" >&2 || true
}

RESULTS=$(mktemp)
for conns in $CONNS; do
  for round in $(seq 1 "$ROUNDS"); do
    wait_quiet
    for gen in $GENS; do
      start_server
      case $gen in
        ringport-stress)
          json=$(taskset -c 1 "$RINGPORT" stress "$PORT" --connections "$conns" --size "$SIZE" \
                   --duration "$DURATION" --warmup "$WARMUP" --threads 1 --json - 2>/dev/null </dev/null)
          read -r rps cpu < <(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["msgs_per_s"], sum(d["client_cpu_pct"])/100)' <<<"$json") ;;
        ringport-stream)
          json=$(taskset -c 1 "$RINGPORT" stress "$PORT" --stream --connections "$conns" --size "$CHUNK" \
                   --duration "$DURATION" --warmup "$WARMUP" --threads 1 --json - 2>/dev/null </dev/null)
          read -r rps cpu < <(python3 -c 'import json,sys; d=json.load(sys.stdin); s=d["stream"]; print(s["bytes"]/s["seconds"]/1e9, sum(d["client_cpu_pct"])/100)' <<<"$json") ;;
        echo-load)
          line=$(taskset -c 1 "$ECHO_LOAD" --addr "127.0.0.1:$PORT" --conns "$conns" --size "$SIZE" \
                   --duration "$DURATION" --warmup "$WARMUP" --threads 1)
          rps=$(sed -n 's/.*rt_per_s=\([^ ]*\).*/\1/p' <<<"$line"); cpu=$(sed -n 's/.*load_cpu=\([^ ]*\).*/\1/p' <<<"$line")
          # In stream mode, compare bytes: round trips of SIZE bytes as echoed GB per second.
          [[ -n "$STREAM" ]] && rps=$(python3 -c "print($rps * $SIZE / 1e9)") ;;
        thread-per-conn)
          line=$(taskset -c 1 "$THREADED" "127.0.0.1:$PORT" "$conns" "$SIZE" "$DURATION" "$WARMUP")
          rps=$(sed -n 's/.*rt_per_s=\([^ ]*\).*/\1/p' <<<"$line"); cpu=$(sed -n 's/.*load_cpu=\([^ ]*\).*/\1/p' <<<"$line") ;;
      esac
      stop_server
      printf '%s\t%s\t%s\t%s\t%s\n' "$gen" "$conns" "$round" "$rps" "$cpu" | tee -a "$RESULTS" >&2
    done
  done
done

TABLE=$(mktemp)
python3 - "$RESULTS" "$STREAM" <<'PY' | tee "$TABLE"
import sys, statistics as st
stream = bool(sys.argv[2])
unit, per_unit, fmt = ("GB/s", "GB per core-s", ".3f") if stream else ("rt/s", "rt per core-s", ".0f")
rows = [l.split('\t') for l in open(sys.argv[1]).read().split('\n') if l]
# (conns, gen) -> {round: (rt/s, cores, rt per core-second)}
by = {}
for gen, conns, rnd, rps, cpu in rows:
    rps, cpu = float(rps), float(cpu)
    by.setdefault((int(conns), gen), {})[rnd] = (rps, cpu, rps / cpu if cpu > 0 else float('nan'))
def ratio(conns, gen, base):
    # Round by round: each round's figure against the base generator's in the same round.
    mine, theirs = by.get((conns, gen), {}), by.get((conns, base), {})
    r = [mine[k][2] / theirs[k][2] for k in mine if k in theirs and theirs[k][2] > 0]
    return f"{st.median(r):.2f}x ({min(r):.2f}-{max(r):.2f})" if r else "-"
print(f"{'generator':<18}{'conns':>6}{unit:>10}{'client cores':>14}{per_unit:>15}"
      f"{'vs echo-load':>22}{'vs thread-per-conn':>22}")
for conns in sorted({c for c, _ in by}):
    for (c, gen), v in sorted(by.items()):
        if c != conns: continue
        rps = st.median(x[0] for x in v.values()); cpu = st.median(x[1] for x in v.values())
        per = st.median(x[2] for x in v.values())
        print(f"{gen:<18}{conns:>6}{rps:>10{fmt}}{cpu:>14.2f}{per:>15{fmt}}"
              f"{ratio(conns, gen, 'echo-load'):>22}{ratio(conns, gen, 'thread-per-conn'):>22}")
PY
{ echo '```text'; cat "$TABLE"; echo '```'; } | page_save
rm -f "$TABLE"
