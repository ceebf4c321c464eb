#!/usr/bin/env bash
# ringport's completion model against the best Rust echo servers, per core, at several message
# sizes: ping-pong round trips per second and the server's CPU per round trip.
#
# Every server runs with one thread pinned to one CPU (SERVER_CPU), the load generator
# (echo-load from the peers directory: ping-pong, one message in flight per connection, content
# checked) pinned to another (LOAD_CPU). Servers are run in interleaved rounds (A B C ... A B C
# ...) so that drift in the machine's state hits them all alike; the tables show medians over
# the rounds:
#
#   rt/s        round trips per second
#   CPU µs/rt   server CPU time per round trip, in microseconds (utime+stime from /proc, over
#               the measured window, as echo-load --server-pid reports it): the fairer figure
#               when the load generator itself is the bottleneck
#   user %      the user-space share of the server's CPU time (utime / (utime + stime)) over the
#               whole run; the rest is the kernel's (TCP, io_uring)
#   x best      ringport's ratio to the best peer of the row (size and connections): the peer
#               with the highest median rt/s for throughput, the lowest median CPU µs/rt for
#               CPU. Ratios are taken round by round (each round's ringport figure over the same
#               round's figure of that best peer), shown as their median and, in brackets, their
#               range: on a noisy host the per-round ratio is steadier than either median.
#               In the second table every server gets the same ratio to the row's best peer.
#
# The io_uring peers run twice: with their runtime's default ring flags (`monoio`, `compio`) and
# with URING_FLAGS=defer (`monoio+defer`, `compio+defer`: SINGLE_ISSUER | COOP_TASKRUN |
# TASKRUN_FLAG | DEFER_TASKRUN, the flags ringport asks for), so each is met in its best setting.
#
# Usage:  benches/peers.sh                       (on a quiet machine)
#         DURATION=2 WARMUP=0.5 benches/peers.sh   quicker, noisier (see the cost below)
#         SIZES=65536 CONNS=10 benches/peers.sh     one row
#         FROM=/tmp/ringport-peers-....tsv benches/peers.sh   reprint the tables of a run
#         PAGE=1 benches/peers.sh          also write docs/results/peers.md (benches/page.sh)
# Environment (defaults in brackets):
#   PEERS        the peers directory, each peer its own Cargo project
#                                      [../shared/peers from the repository root]
#   SERVERS      labels of what to run (see benches/peers-common.sh: ringport, monoio,
#                monoio+defer, tokio, compio, compio+defer, thread-per-client, or any peer's
#                directory name)
#                [ringport monoio monoio+defer tokio compio compio+defer thread-per-client]
#   SIZES        message sizes in bytes                                  ["64 4096 65536"]
#   SIZE         one size: the same as SIZES with one value
#   CONNS        connection counts                                       ["1 10 100"]
#   DURATION     measured seconds per run                                [5]
#   WARMUP       discarded seconds per run                               [1]
#   ROUNDS       interleaved rounds                                      [3]
#   SERVER_CPU   CPU for the server                                      [0]
#   LOAD_CPU     CPU for echo-load                                       [1]
#   PORT_BASE    first TCP port; each run takes the next                 [18000]
#   RINGPORT     the ringport binary     [$CARGO_TARGET_DIR or target]/release/ringport
#   RINGPORT_ARGS  extra arguments for ringport serve (e.g. --buffer-size 262144)    []
#   NO_BUILD=1   do not build anything (binaries must exist)
#   RESULTS      raw results (TSV)                       [/tmp/ringport-peers-<time>.tsv]
#   FROM         run nothing: print the tables of this earlier raw results file (a file from
#                before SIZES, without a size column, is read as SIZE, default 64)
#   PAGE         1: also write the tables as docs/results/peers.md, with the date, machine and
#                command (with FROM, those of the run, kept in its .page file); or a path  []
#
# Cost: SIZES x CONNS x ROUNDS x SERVERS runs of DURATION + WARMUP seconds plus about 0.3 s to
# start and stop a server: the defaults (3 x 3 x 3 x 7 = 189 runs of 6.3 s) take about 20
# minutes; DURATION=2 WARMUP=0.5 about 9; one row (SIZES=65536 CONNS=10 DURATION=2) about one.
# The script says how long before it starts.
#
# Output: a header line (date, machine, load), then two Markdown tables with a size column,
# rows grouped by size: ringport against each row's best peer, then every server; the raw
# results file is kept (its path is the last line).
#
# Requires taskset (util-linux) and python3. Everything listens on and connects to 127.0.0.1
# only; every server started is stopped on exit, also on error or Ctrl-C.
set -euo pipefail
# shellcheck source=benches/page.sh
. "$(dirname "$0")/page.sh"
page_init peers "ringport against other echo servers: ping-pong" \
  "Round trips per second and server CPU per round trip, one message in flight per connection (echo-load, content checked), every server on one pinned CPU and the load on another; ringport against the best peer of each row, then every server. How to run and read it: [Benchmarking](../benchmarking.md#against-other-servers-benches)." \
  PEERS SERVERS SIZES SIZE CONNS DURATION WARMUP ROUNDS SERVER_CPU LOAD_CPU RINGPORT RINGPORT_ARGS
# Paths given relative to where the script was called from.
for v in PEERS RINGPORT FROM RESULTS; do
  if [[ -n "${!v:-}" && "${!v}" != /* && "${!v}" == */* ]]; then printf -v "$v" '%s' "$PWD/${!v}"; fi
  if [[ -n "${!v:-}" && "${!v}" != */* && -e "${!v}" ]]; then printf -v "$v" '%s' "$PWD/${!v}"; fi
done
cd "$(dirname "$0")/.."
ME=peers.sh

SERVERS=${SERVERS:-"ringport monoio monoio+defer tokio compio compio+defer thread-per-client"}
SIZES=${SIZES:-${SIZE:-"64 4096 65536"}}
CONNS=${CONNS:-"1 10 100"}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-3}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT_BASE=${PORT_BASE:-18000}
RESULTS=${FROM:-${RESULTS:-/tmp/ringport-peers-$(date +%Y%m%d-%H%M%S).tsv}}
# shellcheck source=benches/peers-common.sh
. benches/peers-common.sh

command -v python3 >/dev/null || { echo "$ME: python3 is needed for the tables" >&2; exit 1; }

if [[ -z "${FROM:-}" ]]; then
command -v taskset >/dev/null || { echo "$ME: taskset is not installed (util-linux)" >&2; exit 1; }
# 100 connections on each side, plus the server's own descriptors.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
prepare_binaries

ticks() { # utime stime of a pid, in clock ticks
  awk '{ sub(/^.*\) /, ""); print $12, $13 }' "/proc/$1/stat"
}

trap stop_server EXIT
trap 'exit 130' INT TERM

n_runs=$(( $(wc -w <<<"$SIZES") * $(wc -w <<<"$CONNS") * ROUNDS * $(wc -w <<<"$SERVERS") ))
awk -v n="$n_runs" -v d="$DURATION" -v w="$WARMUP" 'BEGIN {
  printf "peers.sh: %d runs of %s s + %s s warm-up: about %.0f min\n", n, d, w, n * (d + w + 0.3) / 60 }' >&2

echo -e "server\tsize\tconns\tround\trt_per_s\tserver_cpu\tcpu_us_per_rt\tuser_share\terrors" >"$RESULTS"
port=$PORT_BASE
for size in $SIZES; do
  for conns in $CONNS; do
    for round in $(seq 1 "$ROUNDS"); do
      for s in $SERVERS; do
        port=$(free_port $((port + 1)))
        start_server "$s" "$port" "$SERVER_CPU"
        read -r u0 s0 < <(ticks "$SRV_PID")
        line=$(taskset -c "$LOAD_CPU" "$LOAD_BIN" --addr "127.0.0.1:$port" --conns "$conns" \
                 --size "$size" --duration "$DURATION" --warmup "$WARMUP" --threads 1 \
                 --server-pid "$SRV_PID" || echo "rt_per_s=0 server_cpu=0 errors=FAIL")
        read -r u1 s1 < <(ticks "$SRV_PID")
        stop_server
        get() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$line"; }
        rps=$(get rt_per_s); scpu=$(get server_cpu); errs=$(get errors)
        awk -v s="$s" -v z="$size" -v c="$conns" -v r="$round" -v rps="${rps:-0}" -v cpu="${scpu:-0}" \
            -v e="${errs:-FAIL}" -v u="$((u1 - u0))" -v k="$((s1 - s0))" 'BEGIN {
          us = (rps > 0) ? cpu * 1e6 / rps : 0
          share = (u + k > 0) ? u / (u + k) : 0
          printf "%s\t%s\t%s\t%s\t%s\t%s\t%.3f\t%.3f\t%s\n", s, z, c, r, rps, cpu, us, share, e
        }' | tee -a "$RESULTS" >&2
      done
    done
  done
done
page_keep "$RESULTS"
else
page_from "$FROM"
fi

echo
print_run_header "ping-pong with echo-load"
echo
python3 benches/best-peer.py "$RESULTS" --subject ringport --keys "size conns" \
  --default "size=${SIZE:-64}" \
  --metric 'rt_per_s:high:rt/s:,.0f' --metric 'cpu_us_per_rt:low:CPU µs/rt:.2f' \
  --info 'user_share:user %:.0%' | page_write
echo
echo "raw: $RESULTS"
