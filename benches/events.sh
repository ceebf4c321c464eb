#!/usr/bin/env bash
# What the kernel does per round trip, counted: the same ping-pong load on each server, and
# kernel tracepoints counted on both CPUs (the server's and the load's) over the measured window,
# divided by the round trips echo-load counted. Unlike rates and CPU times, these counts barely
# move with a noisy host, so they show what a design makes the kernel do:
#
#   wake-ups queued   io_uring:io_uring_task_add on the load's CPU: an armed receive on the
#                     server's socket queues work for the server when the client's bytes
#                     arrive, paid by the client's CPU (an epoll server's equivalent is its
#                     epoll callback, not counted here)
#   polls armed       io_uring:io_uring_poll_arm on the server's CPU: an operation that found
#                     its socket not ready and waits for it
#   submitted         io_uring:io_uring_submit_req: operations the server submitted
#   completed         io_uring:io_uring_complete: completions posted for it
#   enters            raw_syscalls:sys_enter on the server's CPU: system calls (io_uring_enter,
#                     epoll_wait, read, write ...)
#   switches          sched:sched_switch on the server's CPU: times it went to sleep or woke
#
# Usage:  benches/events.sh       (from the repository root, as root or with
#                                  kernel.perf_event_paranoid <= -1: it counts on whole CPUs)
#         CONNS="1 100" SERVERS="ringport monoio+defer" benches/events.sh
# Environment (defaults in brackets):
#   PEERS        the peers directory, each peer its own Cargo project   [../shared/peers]
#   SERVERS      labels as in peers.sh                   [ringport monoio+defer tokio]
#   CONNS        connection counts                                       ["1 10 100 1000"]
#   SIZE         message size in bytes                                   [64]
#   DURATION     counted seconds per run (after a second of warm-up)    [2]
#   SERVER_CPU   CPU for the server                                      [0]
#   LOAD_CPU     CPU for echo-load                                       [1]
#   PORT_BASE    first TCP port; each run takes the next                 [18700]
#   RINGPORT     the ringport binary     [$CARGO_TARGET_DIR or target]/release/ringport
#   RINGPORT_ARGS  extra arguments for ringport serve                    []
#   NO_BUILD=1   do not build anything (binaries must exist)
#   PAGE         1: also write the table as docs/results/events.md (benches/page.sh); or a path
#
# Requires perf (linux-perf) and taskset. Other programs running on the two CPUs are counted
# too: run it on a quiet machine. Only 127.0.0.1 is used.
set -euo pipefail
# shellcheck source=benches/page.sh
. "$(dirname "$0")/page.sh"
page_init events "What the kernel does per round trip" \
  "Ping-pong with echo-load, every server on one pinned CPU and the load on another; kernel tracepoints counted on both CPUs over the measured window, per round trip: the work a design makes the kernel do, on the server's CPU and on the client's. How to run it: [Benchmarking](../benchmarking.md#against-other-servers-benches)." \
  PEERS SERVERS CONNS SIZE DURATION SERVER_CPU LOAD_CPU RINGPORT RINGPORT_ARGS
cd "$(dirname "$0")/.."
ME=events.sh

SERVERS=${SERVERS:-"ringport monoio+defer tokio"}
CONNS=${CONNS:-"1 10 100 1000"}
SIZE=${SIZE:-64}
DURATION=${DURATION:-2}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT_BASE=${PORT_BASE:-18700}
# shellcheck source=benches/peers-common.sh
. benches/peers-common.sh

command -v perf >/dev/null || { echo "$ME: perf is not installed (apt install linux-perf)" >&2; exit 1; }
command -v taskset >/dev/null || { echo "$ME: taskset is not installed (util-linux)" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
EVENTS=io_uring:io_uring_task_add,io_uring:io_uring_poll_arm,io_uring:io_uring_submit_req,io_uring:io_uring_complete,raw_syscalls:sys_enter,sched:sched_switch
perf stat -a -e "$EVENTS" -- true >/dev/null 2>&1 ||
  { echo "$ME: perf cannot count the tracepoints on every CPU (run as root, or kernel.perf_event_paranoid <= -1; it is $(cat /proc/sys/kernel/perf_event_paranoid))" >&2; exit 1; }

prepare_binaries

WORK=$(mktemp -d)
cleanup() {
  stop_server
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

header="$(date -u '+%Y-%m-%d %H:%M UTC') $(uname -r), $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)); ${SIZE} B ping-pong, echo-load 1 thread on CPU $LOAD_CPU, servers 1 thread on CPU $SERVER_CPU; counted over ${DURATION} s, per round trip${RINGPORT_ARGS:+; ringport serve $RINGPORT_ARGS}"
ROWS=$WORK/rows
: >"$ROWS"
port=$PORT_BASE
for conns in $CONNS; do
  for s in $SERVERS; do
    port=$(free_port $((port + 1)))
    start_server "$s" "$port" "$SERVER_CPU"
    taskset -c "$LOAD_CPU" "$LOAD_BIN" --addr "127.0.0.1:$port" --conns "$conns" --size "$SIZE" \
      --duration "$((DURATION + 1))" --warmup 0.5 --threads 1 --server-pid "$SRV_PID" \
      >"$WORK/load" 2>/dev/null &
    LOAD_PID=$!
    sleep 1.5
    perf stat -a -A -x, -e "$EVENTS" -o "$WORK/counts" -- sleep "$DURATION" >/dev/null 2>&1
    wait "$LOAD_PID" || true
    stop_server
    rt=$(sed -n 's/.*\brt_per_s=\([0-9]*\).*/\1/p' "$WORK/load")
    [[ -n "$rt" && "$rt" != 0 ]] || { echo "$ME: $s at $conns connections: no round trips ($(cat "$WORK/load"))" >&2; exit 1; }
    awk -F, -v rt="$rt" -v d="$DURATION" -v s="$s" -v c="$conns" -v srv="CPU$SERVER_CPU" -v load="CPU$LOAD_CPU" '
      /^CPU/ { e = $4; sub(/.*:/, "", e); n[$1 " " e] = $2 }
      END {
        per = rt * d
        f = "%.3f"
        printf "| %s | %s | %d | " f " | " f " | " f " | " f " | " f " | " f " |\n", c, s, rt,
          n[load " io_uring_task_add"] / per, n[srv " io_uring_poll_arm"] / per,
          n[srv " io_uring_submit_req"] / per, n[srv " io_uring_complete"] / per,
          n[srv " sys_enter"] / per, n[srv " sched_switch"] / per
      }' "$WORK/counts" >>"$ROWS"
    echo "$s at $conns connections: $(tail -1 "$ROWS")" >&2
  done
done

{
echo "$header"
echo
echo "| conns | server | rt/s | wake-ups queued (load CPU) | polls armed | submitted | completed | enters | switches |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|"
cat "$ROWS"
} | page_write
