#!/usr/bin/env bash
# Continuous streams through an echo server: echoed Gbit/s and the server's CPU per gigabyte,
# ringport against the best peer of each row.
#
# Every server runs with one thread pinned to one CPU (SERVER_CPU); the load is the stream mode
# of `ringport stress` (each connection writes continuously, at most --window bytes not yet
# echoed, while it reads the echo back and verifies every byte) with one thread pinned to
# another CPU (LOAD_CPU). Servers are run in interleaved rounds (A B C ... A B C ...); the tables
# show medians over the rounds:
#
#   Gbit/s      echoed bits per second over the load's measured window (its JSON's
#               stream.gbit_per_s: bytes that came back verified, 10^9 bits)
#   CPU s/GB    server CPU seconds (utime+stime from /proc/PID/stat) per GB echoed (10^9 bytes):
#               the server's CPU share over the measured window divided by the GB/s echoed.
#               /proc is read from WARMUP + MARGIN seconds after the load starts to MARGIN
#               seconds before its window ends (MARGIN = 0.2 s, or a fifth of DURATION when
#               shorter), so connecting and the warm-up are not counted
#   server CPU  that share of one CPU (near 100%: the server's core is the limit)
#   load CPU    the load thread's share of its CPU (near 100%: the client is the limit, and the
#               server's CPU per GB is the fairer figure)
#   user %      the user-space share of the server's CPU time; the rest is the kernel's
#   x best      ringport's ratio to the best peer of the row (connection count): the peer with
#               the highest median Gbit/s for throughput, the lowest median CPU s/GB for CPU.
#               Ratios are taken round by round (each round's ringport figure over the same
#               round's figure of that best peer), shown as their median and, in brackets, their
#               range. In the second table every server gets the same ratio to the row's best.
#
# The io_uring peers run with their runtime's default ring flags (`monoio`, `compio`) and with
# URING_FLAGS=defer (`monoio+defer`, `compio+defer`), as in benches/peers.sh.
#
# Usage:  benches/stream.sh                       (on a quiet machine)
#         DURATION=2 WARMUP=0.5 benches/stream.sh   quicker, noisier (see the cost below)
#         FROM=/tmp/ringport-stream-....tsv benches/stream.sh   reprint the tables of a run
# Environment (defaults in brackets):
#   PEERS        the peers directory, each peer its own Cargo project
#                                      [../shared/peers from the repository root]
#   SERVERS      labels of what to run, as in benches/peers.sh
#                [ringport monoio monoio+defer tokio compio compio+defer thread-per-client]
#   CONNS        connection counts                                       ["1 10 100"]
#   DURATION     measured seconds per run                                [5]
#   WARMUP       discarded seconds per run                               [1]
#   ROUNDS       interleaved rounds                                      [3]
#   SERVER_CPU   CPU for the server                                      [0]
#   LOAD_CPU     CPU for the load                                        [1]
#   PORT_BASE    first TCP port; each run takes the next free one        [18300]
#   RINGPORT     the ringport binary that serves   [$CARGO_TARGET_DIR or target]/release/ringport
#   STRESS       the ringport binary whose `stress --stream` drives the load     [$RINGPORT]
#   RINGPORT_ARGS  extra arguments for ringport serve (e.g. --buffer-size 262144)    []
#   STRESS_ARGS  extra arguments for ringport stress (e.g. --window 1048576 --size 16384)  []
#   NO_BUILD=1   do not build anything (binaries must exist)
#   RESULTS      raw results (TSV)                      [/tmp/ringport-stream-<time>.tsv]
#   FROM         run nothing: print the tables of this earlier raw results file
#   PAGE         1: also write the tables as docs/results/stream.md, with the date, machine and
#                command (with FROM, those of the run, kept in its .page file); or a path  []
#
# Cost: CONNS x ROUNDS x SERVERS runs of DURATION + WARMUP seconds plus about 0.3 s to start and
# stop a server: the defaults (3 x 3 x 7 = 63 runs of 6.3 s) take about 7 minutes; DURATION=2
# WARMUP=0.5 about 3. The script says how long before it starts.
#
# Output: a header line (date, machine, load), then two Markdown tables, rows by connection
# count: ringport against each row's best peer, then every server; the raw results file is kept
# (its path is the last line).
#
# Requires taskset (util-linux) and python3. Everything listens on and connects to 127.0.0.1
# only; every server started is stopped on exit, also on error or Ctrl-C.
set -euo pipefail
# shellcheck source=benches/page.sh
. "$(dirname "$0")/page.sh"
page_init stream "ringport against other echo servers: streams" \
  "Echoed Gbit/s and server CPU seconds per GB echoed, \`ringport stress --stream\` (each connection writes 64 KiB chunks within a 256 KiB window while reading the echo back, every byte verified), every server on one pinned CPU and the load on another; ringport against the best peer of each row, then every server. How to run and read it: [Benchmarking](../benchmarking.md#against-other-servers-benches)." \
  PEERS SERVERS CONNS DURATION WARMUP ROUNDS SERVER_CPU LOAD_CPU RINGPORT STRESS RINGPORT_ARGS STRESS_ARGS
# Paths given relative to where the script was called from.
for v in PEERS RINGPORT STRESS FROM RESULTS; do
  if [[ -n "${!v:-}" && "${!v}" != /* && "${!v}" == */* ]]; then printf -v "$v" '%s' "$PWD/${!v}"; fi
  if [[ -n "${!v:-}" && "${!v}" != */* && -e "${!v}" ]]; then printf -v "$v" '%s' "$PWD/${!v}"; fi
done
cd "$(dirname "$0")/.."
ME=stream.sh

SERVERS=${SERVERS:-"ringport monoio monoio+defer tokio compio compio+defer thread-per-client"}
CONNS=${CONNS:-"1 10 100"}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-3}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT_BASE=${PORT_BASE:-18300}
STRESS_ARGS=${STRESS_ARGS:-}
RESULTS=${FROM:-${RESULTS:-/tmp/ringport-stream-$(date +%Y%m%d-%H%M%S).tsv}}
# shellcheck source=benches/peers-common.sh
. benches/peers-common.sh
STRESS=${STRESS:-$RINGPORT}

command -v python3 >/dev/null || { echo "$ME: python3 is needed to read the load's JSON" >&2; exit 1; }

if [[ -z "${FROM:-}" ]]; then
command -v taskset >/dev/null || { echo "$ME: taskset is not installed (util-linux)" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
prepare_binaries --no-load
[[ -x "$STRESS" ]] || { echo "$ME: $STRESS is missing" >&2; exit 1; }
"$STRESS" stress --help 2>/dev/null | grep -q -- '--stream' ||
  { echo "$ME: $STRESS has no \`stress --stream\` (the stream mode): give STRESS= a ringport that has it" >&2; exit 1; }

HZ=$(getconf CLK_TCK)
ticks() { # utime stime of a pid, in clock ticks
  awk '{ sub(/^.*\) /, ""); print $12, $13 }' "/proc/$1/stat"
}
now() { date +%s.%N; }
# Margin at each end of the measured window where /proc is not read.
MARGIN=$(awk -v d="$DURATION" 'BEGIN { m = d / 5; if (m > 0.2) m = 0.2; print m }')

WORK=$(mktemp -d)
LOAD_PID=""
cleanup() {
  if [[ -n "$LOAD_PID" ]]; then kill "$LOAD_PID" 2>/dev/null || true; wait "$LOAD_PID" 2>/dev/null || true; fi
  stop_server
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

n_runs=$(( $(wc -w <<<"$CONNS") * ROUNDS * $(wc -w <<<"$SERVERS") ))
awk -v n="$n_runs" -v d="$DURATION" -v w="$WARMUP" 'BEGIN {
  printf "stream.sh: %d runs of %s s + %s s warm-up: about %.0f min\n", n, d, w, n * (d + w + 0.3) / 60 }' >&2

echo -e "server\tconns\tround\tgbit_per_s\tbytes\tseconds\tserver_cpu_share\tcpu_s_per_gb\tuser_share\tconn_gbit_min\tconn_gbit_median\tconn_gbit_max\tload_cpu_share\terrors" >"$RESULTS"
port=$PORT_BASE
for conns in $CONNS; do
  for round in $(seq 1 "$ROUNDS"); do
    for s in $SERVERS; do
      port=$(free_port $((port + 1)))
      start_server "$s" "$port" "$SERVER_CPU"
      # shellcheck disable=SC2086
      taskset -c "$LOAD_CPU" "$STRESS" stress 127.0.0.1 "$port" --stream --connections "$conns" \
        --duration "$DURATION" --warmup "$WARMUP" --threads 1 --json - $STRESS_ARGS \
        >"$WORK/json" 2>"$WORK/report" </dev/null &
      LOAD_PID=$!
      sleep "$(awk -v w="$WARMUP" -v m="$MARGIN" 'BEGIN { print w + m }')"
      read -r u0 k0 < <(ticks "$SRV_PID"); t0=$(now)
      sleep "$(awk -v d="$DURATION" -v m="$MARGIN" 'BEGIN { print d - 2 * m }')"
      read -r u1 k1 < <(ticks "$SRV_PID"); t1=$(now)
      status=0
      wait "$LOAD_PID" || status=$?
      LOAD_PID=""
      stop_server
      # The load's JSON -> gbit bytes seconds min median max load_cpu errors ("FAIL" when it
      # wrote none; its exit status when it failed without counting errors).
      read -r gbit bytes secs cmin cmed cmax lcpu errs < <(python3 - "$WORK/json" "$status" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
    st = d["stream"]
    pc = st.get("per_connection_gbit_per_s", {})
    errors = d.get("errors", 0)
    if errors == 0 and sys.argv[2] != "0":
        errors = "exit" + sys.argv[2]
    print(st["gbit_per_s"], st["bytes"], st["seconds"], pc.get("min", 0), pc.get("median", 0),
          pc.get("max", 0), sum(d.get("client_cpu_pct", [0])) / 100, errors)
except Exception:
    print(0, 0, 0, 0, 0, 0, 0, "FAIL")
PY
)
      if [[ "$errs" == FAIL ]]; then
        echo "$ME: $s, $conns connection(s): the load wrote no result: $(tail -3 "$WORK/report" | tr '\n' ' ')" >&2
      fi
      awk -v OFS='\t' -v s="$s" -v c="$conns" -v r="$round" -v g="$gbit" -v b="$bytes" -v sec="$secs" \
          -v u="$((u1 - u0))" -v k="$((k1 - k0))" -v hz="$HZ" -v t0="$t0" -v t1="$t1" \
          -v cmin="$cmin" -v cmed="$cmed" -v cmax="$cmax" -v l="$lcpu" -v e="$errs" 'BEGIN {
        share = (t1 > t0) ? (u + k) / hz / (t1 - t0) : 0
        per_gb = (g > 0) ? share / (g / 8) : 0
        user = (u + k > 0) ? u / (u + k) : 0
        printf "%s\t%s\t%s\t%.3f\t%s\t%s\t%.3f\t%.4f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%s\n",
          s, c, r, g, b, sec, share, per_gb, user, cmin, cmed, cmax, l, e
      }' | tee -a "$RESULTS" >&2
    done
  done
done
page_keep "$RESULTS"
else
page_from "$FROM"
fi

echo
print_run_header "streams from \`ringport stress --stream${STRESS_ARGS:+ $STRESS_ARGS}\`"
echo
python3 benches/best-peer.py "$RESULTS" --subject ringport --keys conns \
  --metric 'gbit_per_s:high:Gbit/s:.2f' --metric 'cpu_s_per_gb:low:CPU s/GB:.3f' \
  --info 'server_cpu_share:server CPU:.0%' --info 'load_cpu_share:load CPU:.0%' \
  --info 'user_share:user %:.0%' | page_write
echo
echo "raw: $RESULTS"
