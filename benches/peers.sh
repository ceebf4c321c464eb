#!/usr/bin/env bash
# ringport's completion model against the best Rust echo servers, per core.
#
# Every server runs with one thread pinned to one CPU (SERVER_CPU), the load generator
# (echo-load from the peers directory: ping-pong, content checked) pinned to another (LOAD_CPU).
# Servers are run in interleaved rounds (A B C ... A B C ...) so that drift in the machine's
# state hits them all alike; the table shows medians over the rounds:
#
#   rt/s        round trips per second
#   cpu us/rt   server CPU time per round trip, in microseconds (utime+stime from /proc, over
#               the measured window, as echo-load --server-pid reports it): the fairer figure
#               when the load generator itself is the bottleneck
#   user %      the user-space share of the server's CPU time (utime / (utime + stime)) over the
#               whole run; the rest is the kernel's (TCP, io_uring)
#   x monoio    ratio to monoio-echo (rt/s: higher is better; cpu: lower), taken round by round
#               (each server against monoio's run of the same round), the median of those
#               ratios and, in brackets, their range: on a noisy host the per-round ratio is
#               steadier than either median
#
# Usage:  benches/peers.sh            (from the repository root, on a quiet machine)
# Environment (defaults in brackets):
#   PEERS        the peers directory, each peer its own Cargo project   [../shared/peers]
#   SERVERS      what to run     [ringport monoio-echo tokio-echo compio-echo std-threaded-echo]
#   CONNS        connection counts                                       ["100 1000"]
#   SIZE         message size in bytes                                   [64]
#   DURATION     measured seconds per run                                [5]
#   WARMUP       discarded seconds per run                               [1]
#   ROUNDS       interleaved rounds                                      [3]
#   SERVER_CPU   CPU for the server                                      [0]
#   LOAD_CPU     CPU for echo-load                                       [1]
#   PORT_BASE    first TCP port; each run takes the next                 [18000]
#   RINGPORT     the ringport binary     [$CARGO_TARGET_DIR or target]/release/ringport
#   RINGPORT_ARGS  extra arguments for ringport serve                    []
#   URING_FLAGS  passed to monoio-echo and compio-echo (unset: their runtime defaults; "defer":
#                SINGLE_ISSUER|COOP_TASKRUN|DEFER_TASKRUN, which ringport always asks for)
#   NO_BUILD=1   do not build anything (binaries must exist)
#   RESULTS      raw results (TSV)                       [/tmp/ringport-peers-<time>.tsv]
#   FROM         run nothing: print the table of this earlier raw results file
#
# Requires taskset (util-linux). Everything listens on and connects to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
ME=peers.sh

SERVERS=${SERVERS:-"ringport monoio-echo tokio-echo compio-echo std-threaded-echo"}
CONNS=${CONNS:-"100 1000"}
SIZE=${SIZE:-64}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-3}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT_BASE=${PORT_BASE:-18000}
RESULTS=${FROM:-${RESULTS:-/tmp/ringport-peers-$(date +%Y%m%d-%H%M%S).tsv}}
# shellcheck source=benches/peers-common.sh
. benches/peers-common.sh

# 1000 connections on each side, plus the server's own descriptors.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

if [[ -z "${FROM:-}" ]]; then
prepare_binaries

ticks() { # utime stime of a pid, in clock ticks
  awk '{ sub(/^.*\) /, ""); print $12, $13 }' "/proc/$1/stat"
}

trap stop_server EXIT

echo -e "server\tconns\tround\trt_per_s\tserver_cpu\tcpu_us_per_rt\tuser_share\terrors" >"$RESULTS"
port=$PORT_BASE
for conns in $CONNS; do
  for round in $(seq 1 "$ROUNDS"); do
    for s in $SERVERS; do
      port=$((port + 1))
      start_server "$s" "$port" "$SERVER_CPU"
      read -r u0 s0 < <(ticks "$SRV_PID")
      line=$(taskset -c "$LOAD_CPU" "$LOAD_BIN" --addr "127.0.0.1:$port" --conns "$conns" \
               --size "$SIZE" --duration "$DURATION" --warmup "$WARMUP" --threads 1 \
               --server-pid "$SRV_PID" || echo "rt_per_s=0 server_cpu=0 errors=FAIL")
      read -r u1 s1 < <(ticks "$SRV_PID")
      stop_server
      get() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$line"; }
      rps=$(get rt_per_s); scpu=$(get server_cpu); errs=$(get errors)
      awk -v s="$s" -v c="$conns" -v r="$round" -v rps="$rps" -v cpu="$scpu" -v e="$errs" \
          -v u="$((u1 - u0))" -v k="$((s1 - s0))" 'BEGIN {
        us = (rps > 0) ? cpu * 1e6 / rps : 0
        share = (u + k > 0) ? u / (u + k) : 0
        printf "%s\t%s\t%s\t%s\t%s\t%.3f\t%.3f\t%s\n", s, c, r, rps, cpu, us, share, e
      }' | tee -a "$RESULTS" >&2
    done
  done
done
fi

echo
if [[ -n "${FROM:-}" ]]; then
  echo "from $FROM: medians of $(awk -F'\t' 'NR > 1 && $3 > n { n = $3 } END { print n }' "$FROM") interleaved rounds"
else
  echo "$(date -u +%Y-%m-%d) $(uname -r), $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)); ${SIZE} B ping-pong, echo-load 1 thread on CPU $LOAD_CPU, servers 1 thread on CPU $SERVER_CPU; medians of $ROUNDS interleaved rounds of ${DURATION} s (+${WARMUP} s warm-up); URING_FLAGS=${URING_FLAGS:-unset}"
fi
awk -F'\t' '
  function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function range(list,   n, a, i, lo, hi) {
    n = split(list, a, " ")
    lo = a[1]; hi = a[1]
    for (i = 2; i <= n; i++) { if (a[i] < lo) lo = a[i]; if (a[i] > hi) hi = a[i] }
    return sprintf("%.2f-%.2f", lo, hi)
  }
  NR > 1 {
    k = $2 SUBSEP $1
    if (!(k in rps)) { order[++n] = k }
    rps[k] = rps[k] " " $4; cpu[k] = cpu[k] " " $6; usr[k] = usr[k] " " $7
    RR[$2, $1, $3] = $4; CR[$2, $1, $3] = $6; rounds[$2, $1] = rounds[$2, $1] " " $3
    if ($8 != "0") err[k] = err[k] " " $8
  }
  END {
    printf "| conns | server | rt/s | x monoio | cpu us/rt | x monoio | user %% |\n|---:|---|---:|---:|---:|---:|---:|\n"
    for (i = 1; i <= n; i++) {
      split(order[i], p, SUBSEP); c = p[1]; s = p[2]
      R[c, s] = median(rps[order[i]]); C[c, s] = median(cpu[order[i]]); U[c, s] = median(usr[order[i]])
    }
    for (i = 1; i <= n; i++) {
      split(order[i], p, SUBSEP); c = p[1]; s = p[2]
      # Ratios to monoio are taken round by round (the rounds are interleaved, so each pair ran
      # under the same conditions), then the median of them, with their range.
      rl = ""; cl = ""
      nr = split(rounds[c, s], rs, " ")
      for (j = 1; j <= nr; j++) {
        r = rs[j]
        if ((c, "monoio-echo", r) in RR && RR[c, "monoio-echo", r] > 0 && CR[c, "monoio-echo", r] > 0) {
          rl = rl " " RR[c, s, r] / RR[c, "monoio-echo", r]; cl = cl " " CR[c, s, r] / CR[c, "monoio-echo", r]
        }
      }
      rr = (rl != "") ? sprintf("%.2f (%s)", median(rl), range(rl)) : "-"
      cr = (cl != "") ? sprintf("%.2f (%s)", median(cl), range(cl)) : "-"
      printf "| %s | %s | %.0f | %s | %.2f | %s | %.0f |%s\n", c, s, R[c, s], rr, C[c, s], cr, U[c, s] * 100, \
        (order[i] in err) ? " errors:" err[order[i]] : ""
    }
  }' "$RESULTS"
echo "raw: $RESULTS"
