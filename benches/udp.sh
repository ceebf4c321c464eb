#!/usr/bin/env bash
# ringport's UDP echo (`serve --udp-only`) against tokio-udp-echo, per core: echoed datagrams per
# second and the server's CPU per datagram, at 64 and 1,400 bytes, from 1, 10 and 100 flows; and
# iperf3 -u one way at the same sizes, the loopback's ceiling.
#
# Every server runs with one thread pinned to one CPU (SERVER_CPU), the load pinned to another
# (LOAD_CPU). Servers are run in interleaved rounds (ringport tokio ringport tokio ...) so that
# drift in the machine's state hits both alike; the table shows medians over the rounds:
#
#   dgram/s      datagrams echoed per second (the load's "echoed" over its "duration_s")
#   lost         datagrams sent and never echoed (the load's "lost"), over all of the run
#   CPU µs/dgram the server's CPU time (utime+stime from /proc/PID/stat, over the load's run)
#                per datagram echoed, in microseconds
#   client CPU   the load's CPU per datagram echoed, in microseconds: its threads' CPU (the
#                JSON's "client_cpu_pct", each thread's share of a core over its run) times
#                "duration_s", over "echoed"; "-" when the load's JSON has no client_cpu_pct
#   x tokio      ringport's figure over tokio-udp-echo's, taken round by round (each round's
#                ringport figure over the same round's tokio figure), the median of those
#                ratios; on a noisy host the per-round ratio is steadier than either median
#
# The ceiling: `iperf3 -s` on SERVER_CPU, `iperf3 -u -c 127.0.0.1 -b 0 -l SIZE` on LOAD_CPU, one
# way (no echo), DURATION rounded up to whole seconds: the datagrams per second it sent, those
# the receiver got, and the share it lost.
#
# The table ends with one line that says whether the load was the bottleneck: a row is
# client-bound where the load spent as much CPU per datagram as the server or more (the
# medians, per server), and then it measures the client as much as the server.
# On Linux the load (stress --udp) sends a flow's datagrams that may leave together in one
# segmented send and takes echoes coalesced (docs/udp.md); ringport's echo receives and echoes
# them so (its ready line ends in GRO/GSO). For one datagram per send and receive, add
# --no-gso to LOAD_CMD and --udp-no-gso to RINGPORT_ARGS.
#
# Usage:  benches/udp.sh                        (on a quiet machine)
#         DURATION=2 ROUNDS=3 benches/udp.sh      quicker, noisier
#         SIZES=64 FLOWS=10 benches/udp.sh        one row
# Environment (defaults in brackets):
#   PEERS        the peers directory                 [../shared/peers from the repository root]
#   TOKIO_UDP    the tokio UDP echo binary  [$PEERS/tokio-udp-echo/target/release/tokio-udp-echo]
#   SIZES        datagram sizes in bytes                                   ["64 1400"]
#   FLOWS        flows (the load's sockets)                                ["1 10 100"]
#   PIPELINE     datagrams in flight per flow                              [16]
#   DURATION     measured seconds per run                                  [5]
#   ROUNDS       interleaved rounds                                        [3]
#   SERVER_CPU   CPU for the server (and iperf3 -s)                        [0]
#   LOAD_CPU     CPU for the load (and iperf3 -c)                          [1]
#   PORT_BASE    first port; each run takes the next free one              [19000]
#   RINGPORT     the ringport binary     [$CARGO_TARGET_DIR or target]/release/ringport
#   RINGPORT_ARGS  extra arguments for ringport serve                      []
#   LOAD_CMD     the load, a command line with {PORT} {FLOWS} {SIZE} {DURATION} {PIPELINE}
#                {JSON} replaced; it must write to {JSON} an object with "duration_s" and
#                "datagrams": {"sent", "echoed", "lost"} (and "client_cpu_pct", a list of
#                percentages of a core, for the client CPU column)
#                ["$RINGPORT stress --udp 127.0.0.1:{PORT} --connections {FLOWS} --pipeline
#                {PIPELINE} --size {SIZE} --duration {DURATION} --json {JSON}"]
#   IPERF        0: skip the iperf3 ceiling                                [1]
#   NO_BUILD=1   do not build anything (binaries must exist)
#   RESULTS      raw results (TSV)                        [/tmp/ringport-udp-<time>.tsv]
#
# Cost: SIZES x FLOWS x ROUNDS x 2 runs of DURATION seconds plus about 0.5 s to start and stop a
# server, and one iperf3 run per size: the defaults (2 x 3 x 3 x 2 = 36 runs) about 4 minutes.
#
# Requires taskset (util-linux), python3 and, for the ceiling, iperf3. Everything listens on
# and sends to 127.0.0.1 only; every server started is stopped on exit, also on error or Ctrl-C.
set -euo pipefail
for v in PEERS RINGPORT RESULTS TOKIO_UDP; do
  if [[ -n "${!v:-}" && "${!v}" != /* && "${!v}" == */* ]]; then printf -v "$v" '%s' "$PWD/${!v}"; fi
done
cd "$(dirname "$0")/.."
ME=udp.sh

SIZES=${SIZES:-"64 1400"}
FLOWS=${FLOWS:-"1 10 100"}
PIPELINE=${PIPELINE:-16}
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT_BASE=${PORT_BASE:-19000}
IPERF=${IPERF:-1}
RESULTS=${RESULTS:-/tmp/ringport-udp-$(date +%Y%m%d-%H%M%S).tsv}
SERVERS="ringport tokio"
# PEERS, RINGPORT, RINGPORT_ARGS, free_port (shared with benches/peers.sh)
# shellcheck source=benches/peers-common.sh
. benches/peers-common.sh
TOKIO_UDP=${TOKIO_UDP:-$PEERS/tokio-udp-echo/target/release/tokio-udp-echo}
LOAD_CMD=${LOAD_CMD:-"$RINGPORT stress --udp 127.0.0.1:{PORT} --connections {FLOWS} --pipeline {PIPELINE} --size {SIZE} --duration {DURATION} --json {JSON}"}

for tool in taskset python3; do
  command -v "$tool" >/dev/null || { echo "$ME: $tool is not installed" >&2; exit 1; }
done
if [[ "$IPERF" != 0 ]] && ! command -v iperf3 >/dev/null; then
  echo "$ME: iperf3 is not installed (IPERF=0 skips the ceiling)" >&2; exit 1
fi
if [[ -z "${NO_BUILD:-}" ]]; then
  echo "building ringport (release)" >&2
  cargo build --release -q -p ringport
  if [[ ! -x "$TOKIO_UDP" && -d "$PEERS/tokio-udp-echo" ]]; then
    echo "building tokio-udp-echo (release)" >&2
    (cd "$PEERS/tokio-udp-echo" && cargo build --release -q)
  fi
fi
for bin in "$RINGPORT" "$TOKIO_UDP"; do
  [[ -x "$bin" ]] || { echo "$ME: $bin is missing (run without NO_BUILD=1 to build it)" >&2; exit 1; }
done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

ticks() { # utime + stime of a pid, in clock ticks
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

# Whether a UDP echo answers on 127.0.0.1:$1 (one datagram, 0.2 s).
answers() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.2)
s.sendto(b"udp.sh", ("127.0.0.1", int(sys.argv[1])))
try:
    sys.exit(0 if s.recv(64) == b"udp.sh" else 1)
except OSError:
    sys.exit(1)
PY
}

# The first port from $1 up on which nothing is bound on 127.0.0.1, UDP or TCP.
free_udp_port() {
  local p; p=$(free_port "$1")
  while ss -Hulnt "sport = :$p" 2>/dev/null | grep -q .; do p=$(free_port $((p + 1))); done
  echo "$p"
}

SRV_PID=""
start_udp_server() { # label port cpu: starts it pinned, waits until it echoes (5 s at most)
  local cmd
  case "$1" in
    ringport) cmd="$RINGPORT serve --port $2 --udp-only $RINGPORT_ARGS" ;;
    tokio) cmd="$TOKIO_UDP --port $2 --threads 1" ;;
  esac
  # shellcheck disable=SC2086
  taskset -c "$3" $cmd >/dev/null 2>&1 &
  SRV_PID=$!
  local _
  for _ in $(seq 1 25); do
    answers "$2" && return 0
    kill -0 "$SRV_PID" 2>/dev/null || break
  done
  echo "$ME: $1 does not echo on port $2 ($cmd)" >&2
  exit 1
}

stop_udp_server() {
  if [[ -n "$SRV_PID" ]]; then kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; fi
  SRV_PID=""
}

trap stop_udp_server EXIT
trap 'exit 130' INT TERM

n_runs=$(( $(wc -w <<<"$SIZES") * $(wc -w <<<"$FLOWS") * ROUNDS * 2 ))
awk -v n="$n_runs" -v d="$DURATION" 'BEGIN {
  printf "udp.sh: %d runs of %s s: about %.0f min\n", n, d, n * (d + 0.5) / 60 }' >&2

JSON=$(mktemp /tmp/ringport-udp-load.XXXXXX.json)
echo -e "server\tsize\tflows\tround\tdgram_per_s\tsent\techoed\tlost\tcpu_us_per_dgram\tclient_cpu_us_per_dgram" >"$RESULTS"
port=$PORT_BASE
for size in $SIZES; do
  for flows in $FLOWS; do
    for round in $(seq 1 "$ROUNDS"); do
      for s in $SERVERS; do
        port=$(free_udp_port $((port + 1)))
        start_udp_server "$s" "$port" "$SERVER_CPU"
        load=${LOAD_CMD//\{PORT\}/$port}
        load=${load//\{FLOWS\}/$flows}
        load=${load//\{SIZE\}/$size}
        load=${load//\{DURATION\}/$DURATION}
        load=${load//\{PIPELINE\}/$PIPELINE}
        load=${load//\{JSON\}/$JSON}
        : >"$JSON"
        t0=$(ticks "$SRV_PID")
        # shellcheck disable=SC2086
        taskset -c "$LOAD_CPU" $load >/dev/null 2>&1 || echo "$ME: the load failed: $load" >&2
        t1=$(ticks "$SRV_PID")
        stop_udp_server
        python3 - "$JSON" "$s" "$size" "$flows" "$round" "$((t1 - t0))" "$(getconf CLK_TCK)" <<'PY' | tee -a "$RESULTS" >&2
import json, sys
path, server, size, flows, rnd, ticks, hz = sys.argv[1:]
client = None
try:
    run = json.load(open(path))
    d = run["datagrams"]
    sent, echoed, lost, secs = d["sent"], d["echoed"], d["lost"], float(run["duration_s"])
    if isinstance(run.get("client_cpu_pct"), list):
        client = sum(run["client_cpu_pct"]) / 100 * secs
except (OSError, ValueError, KeyError, TypeError):
    sent = echoed = lost = 0
    secs = 0.0
rate = echoed / secs if secs > 0 else 0
cpu_us = int(ticks) / int(hz) * 1e6 / echoed if echoed > 0 else 0
client_us = f"{client * 1e6 / echoed:.3f}" if client is not None and echoed > 0 else "-"
print(f"{server}\t{size}\t{flows}\t{rnd}\t{rate:.0f}\t{sent}\t{echoed}\t{lost}\t{cpu_us:.3f}\t{client_us}")
PY
      done
    done
  done
done
rm -f "$JSON"

echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC') $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1 /proc/loadavg) at the end; servers 1 thread on CPU $SERVER_CPU, load on CPU $LOAD_CPU; $PIPELINE datagrams in flight per flow; medians of $ROUNDS interleaved rounds of $DURATION s"
echo
python3 - "$RESULTS" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
def med(xs):
    return statistics.median(xs) if xs else 0
keys = sorted({(int(r["size"]), int(r["flows"])) for r in rows})
def client_cpu(d):
    xs = [float(r["client_cpu_us_per_dgram"]) for r in d.values()
          if r.get("client_cpu_us_per_dgram") not in (None, "", "-")]
    return med(xs) if xs else None
def shown(x):
    return "-" if x is None else f"{x:.2f}"
bound = []
print("| size | flows | ringport dgram/s | tokio dgram/s | x tokio | ringport CPU µs/dgram | tokio CPU µs/dgram | x tokio | client CPU µs/dgram (ringport, tokio) | lost (ringport, tokio) |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for size, flows in keys:
    by = {}
    for r in rows:
        if int(r["size"]) == size and int(r["flows"]) == flows:
            by.setdefault(r["server"], {})[r["round"]] = r
    rp, tk = by.get("ringport", {}), by.get("tokio", {})
    rounds = sorted(set(rp) & set(tk))
    def ratio(col):
        rs = [float(rp[k][col]) / float(tk[k][col]) for k in rounds if float(tk[k][col]) > 0]
        return f"{med(rs):.2f}" if rs else "-"
    def m(d, col):
        return med([float(r[col]) for r in d.values()])
    lost = lambda d: sum(int(r["lost"]) for r in d.values())
    print(f"| {size} | {flows} | {m(rp, 'dgram_per_s'):,.0f} | {m(tk, 'dgram_per_s'):,.0f} | {ratio('dgram_per_s')} "
          f"| {m(rp, 'cpu_us_per_dgram'):.2f} | {m(tk, 'cpu_us_per_dgram'):.2f} | {ratio('cpu_us_per_dgram')} "
          f"| {shown(client_cpu(rp))}, {shown(client_cpu(tk))} | {lost(rp)}, {lost(tk)} |")
    for server, d in (("ringport", rp), ("tokio", tk)):
        cli = client_cpu(d)
        if d and cli is not None and cli >= m(d, "cpu_us_per_dgram"):
            bound.append(f"{size} B x {flows} flows against {server} "
                         f"(client {cli:.3g}, server {m(d, 'cpu_us_per_dgram'):.3g} µs/dgram)")
print()
if bound:
    print("Client-bound: the load's CPU per datagram was not below the server's in "
          f"{len(bound)} row(s): " + "; ".join(bound) + ". Those rows measure the client as much as the server.")
elif any(r.get("client_cpu_us_per_dgram") not in (None, "", "-") for r in rows):
    print("Not client-bound: the load's CPU per datagram was below the server's in every row.")
else:
    print("Client CPU unknown: the load's JSON had no client_cpu_pct, so no row can be called client-bound or not.")
PY

if [[ "$IPERF" != 0 ]]; then
  echo
  # iperf3 takes whole seconds (-t 0 would run for ever).
  itime=$(awk -v d="$DURATION" 'BEGIN { t = int(d); if (t < d) t++; if (t < 1) t = 1; print t }')
  echo "ceiling: iperf3 -u one way (-b 0), $itime s per size"
  echo
  echo "| size | sent dgram/s | received dgram/s | lost |"
  echo "|---:|---:|---:|---:|"
  for size in $SIZES; do
    port=$(free_udp_port $((port + 1)))
    taskset -c "$SERVER_CPU" iperf3 -s -1 -p "$port" >/dev/null 2>&1 &
    SRV_PID=$!
    sleep 0.3
    out=$(timeout $((itime + 10)) taskset -c "$LOAD_CPU" iperf3 -u -c 127.0.0.1 -p "$port" -b 0 \
            -l "$size" -t "$itime" --json 2>/dev/null || true)
    stop_udp_server
    python3 - "$size" "$out" <<'PY'
import json, sys
size, out = sys.argv[1:]
try:
    s = json.loads(out)["end"]["sum"]
    secs, packets, lost = float(s["seconds"]), int(s["packets"]), int(s["lost_packets"])
    share = float(s["lost_percent"])
    print(f"| {size} | {packets / secs:,.0f} | {(packets - lost) / secs:,.0f} | {share:.2f} % |")
except (ValueError, KeyError, TypeError, ZeroDivisionError):
    print(f"| {size} | iperf3 failed | | |")
PY
  done
fi
echo
echo "raw: $RESULTS"
