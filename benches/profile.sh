#!/usr/bin/env bash
# Where a server's CPU goes, per round trip: ringport against the peers, under the same load.
#
# Each server runs with one thread pinned to SERVER_CPU while echo-load (from the peers
# directory: ping-pong, content checked) runs pinned to LOAD_CPU; `perf record -g` samples the
# server for DURATION seconds, and every sample is put in one of three parts by its call stack:
#
#   tcp/ip   inside the kernel's socket, TCP, IP or loopback code: the receive and the send
#            themselves, and, on loopback, delivering the echo into the client's socket and
#            waking the client, which the kernel does on the sender's CPU. Every server pays
#            this for the same traffic: it is the floor.
#   io       the rest of the kernel: io_uring (or epoll) submission and completion, buffer
#            selection, system call entry, file lookups, scheduling
#   user     the server's own code
#
# The table gives the server's CPU per round trip (utime+stime from /proc, over the load's
# measured window, as echo-load --server-pid reports it) split in those parts by their share of
# the samples, and "own" = io + user: what the server's design decides, compared with monoio's.
#
# Usage:  benches/profile.sh     (from the repository root, on a quiet machine, with perf)
# Environment (defaults in brackets):
#   PEERS        the peers directory, each peer its own Cargo project   [../shared/peers]
#   SERVERS      what to run, labels as in peers.sh (monoio, monoio+defer, tokio, compio, ...);
#                the own part's ratio is to monoio's            [ringport monoio tokio]
#   CONNS        connection counts                                       ["100 1000"]
#   SIZE         message size in bytes                                   [64]
#   DURATION     sampled seconds per run                                 [3]
#   ROUNDS       interleaved rounds; medians are shown, and the own part's ratio to monoio is
#                taken round by round (median and range)                 [3]
#   SERVER_CPU   CPU for the server                                      [0]
#   LOAD_CPU     CPU for echo-load                                       [1]
#   PORT_BASE    first TCP port; each run takes the next                 [18500]
#   RINGPORT     the ringport binary     [$CARGO_TARGET_DIR or target]/release/ringport
#   RINGPORT_ARGS  extra arguments for ringport serve                    []
#   NO_BUILD=1   do not build anything (binaries must exist)
#   KEEP=DIR     keep each run's perf.data in DIR (for `perf report -i`)
#   PAGE         1: also write the table as docs/results/profile.md (benches/page.sh); or a path
#
# Requires perf (linux-perf / linux-tools) allowed to sample a process of this user
# (kernel.perf_event_paranoid <= 1, or root), and taskset. Only 127.0.0.1 is used.
set -euo pipefail
# shellcheck source=benches/page.sh
. "$(dirname "$0")/page.sh"
page_init profile "Where the server's CPU goes per round trip" \
  "Ping-pong with echo-load, every server on one pinned CPU and the load on another, the server sampled with \`perf\`: its CPU per round trip split by call stack into the kernel's TCP/IP work, the rest of the kernel (io_uring or epoll, system calls) and user code; the own part (io + user) against monoio's in the same round. How to run it: [Benchmarking](../benchmarking.md#against-other-servers-benches)." \
  PEERS SERVERS CONNS SIZE DURATION ROUNDS SERVER_CPU LOAD_CPU RINGPORT RINGPORT_ARGS
cd "$(dirname "$0")/.."
ME=profile.sh

SERVERS=${SERVERS:-"ringport monoio tokio"}
CONNS=${CONNS:-"100 1000"}
SIZE=${SIZE:-64}
DURATION=${DURATION:-3}
ROUNDS=${ROUNDS:-3}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT_BASE=${PORT_BASE:-18500}
# shellcheck source=benches/peers-common.sh
. benches/peers-common.sh

command -v perf >/dev/null || { echo "profile.sh: perf is not installed (apt install linux-perf)" >&2; exit 1; }
command -v taskset >/dev/null || { echo "profile.sh: taskset is not installed (util-linux)" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

prepare_binaries

# perf script output -> "tcpip io user" sample counts. A sample's frames come leaf first, one
# per line; a blank line ends it.
classify() {
  awk '
    function flush() {
      if (n == 0) return
      if (leaf_user) user++
      else if (net) tcpip++
      else io++
      n = 0; net = 0; leaf_user = 0
    }
    /^[^ \t]/ { flush(); next }            # a sample header
    /^$/ { flush(); next }
    {
      sym = $2; sub(/\+0x[0-9a-f]+$/, "", sym)
      n++
      if (n == 1 && $0 !~ /\[kernel\.kallsyms\]/) leaf_user = 1
      if (sym ~ /^(tcp_|__tcp_|tcp4_|inet_|__inet_|ip_|__ip_|ipv4_|raw_local_deliver|sock_sendmsg|sock_recvmsg|__sock_|sock_def_readable|sock_rfree|sock_wfree|sk_|__sk_|skb_|__skb_|kfree_skb|consume_skb|__alloc_skb|alloc_skb|release_sock|lock_sock|__release_sock|__dev_queue_xmit|dev_hard_start_xmit|loopback_xmit|validate_xmit_skb|__netif_|netif_|net_rx_action|__napi_poll|process_backlog|enqueue_to_backlog|bbr_|cubic|dst_|__copy_skb|csum_)/) net = 1
    }
    END { flush(); printf "%d %d %d\n", tcpip, io, user }
  '
}

WORK=$(mktemp -d)
cleanup() {
  stop_server
  rm -rf "$WORK"
}
trap cleanup EXIT

ROWS=$WORK/rows
: >"$ROWS"
port=$PORT_BASE
for conns in $CONNS; do
  for round in $(seq 1 "$ROUNDS"); do
  for s in $SERVERS; do
    port=$(free_port $((port + 1)))
    start_server "$s" "$port" "$SERVER_CPU"
    taskset -c "$LOAD_CPU" "$LOAD_BIN" --addr "127.0.0.1:$port" --conns "$conns" --size "$SIZE" \
      --duration "$((DURATION + 1))" --warmup 1 --threads 1 --server-pid "$SRV_PID" \
      >"$WORK/load" 2>/dev/null &
    LOAD_PID=$!
    sleep 1.5
    data=$WORK/$s-$conns-$round.data
    perf record -q -g -o "$data" -p "$SRV_PID" -- sleep "$DURATION" >/dev/null 2>&1 ||
      { echo "profile.sh: perf record failed (kernel.perf_event_paranoid is $(cat /proc/sys/kernel/perf_event_paranoid))" >&2; exit 1; }
    wait "$LOAD_PID" || true
    stop_server
    line=$(cat "$WORK/load")
    get() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$line"; }
    read -r tcpip io user < <(perf script -i "$data" 2>/dev/null | classify)
    if [[ -n "${KEEP:-}" ]]; then mkdir -p "$KEEP" && cp "$data" "$KEEP/"; fi
    echo "$conns $s $round $(get rt_per_s) $(get server_cpu) $tcpip $io $user" >>"$ROWS"
    echo "$s at $conns connections, round $round: $line" >&2
  done
  done
done

echo
echo "$(date -u +%Y-%m-%d) $(uname -r), $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)); ${SIZE} B ping-pong, echo-load 1 thread on CPU $LOAD_CPU, servers 1 thread on CPU $SERVER_CPU; perf samples over ${DURATION} s; medians of $ROUNDS interleaved rounds"
{
echo "| conns | server | rt/s | cpu us/rt | tcp/ip us/rt | io us/rt | user us/rt | own (io+user) us/rt | own x monoio |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|"
awk '
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
  {
    k = $1 SUBSEP $2
    if (!(k in seen)) { seen[k] = 1; order[++n] = k }
    samples = $6 + $7 + $8; if (samples == 0) samples = 1
    per = ($4 > 0) ? $5 / $4 * 1e6 : 0
    rps[k] = rps[k] " " $4; cpu[k] = cpu[k] " " per
    tcp[k] = tcp[k] " " per * $6 / samples; io[k] = io[k] " " per * $7 / samples
    usr[k] = usr[k] " " per * $8 / samples; share[k] = share[k] " " $6 / samples
    own[$1, $2, $3] = per * ($7 + $8) / samples; rounds[k] = rounds[k] " " $3
    ownl[k] = ownl[k] " " per * ($7 + $8) / samples
  }
  END {
    for (x = 1; x <= n; x++) {
      k = order[x]; split(k, p, SUBSEP); c = p[1]; s = p[2]
      # The own part against monoio'"'"'s in the same round, then the median of those ratios.
      rl = ""
      nr = split(rounds[k], rs, " ")
      for (j = 1; j <= nr; j++)
        if ((c, "monoio", rs[j]) in own && own[c, "monoio", rs[j]] > 0)
          rl = rl " " own[c, s, rs[j]] / own[c, "monoio", rs[j]]
      ratio = (rl != "") ? sprintf("%.2f (%s)", median(rl), range(rl)) : "-"
      printf "| %d | %s | %.0f | %.2f | %.2f (%.0f%%) | %.2f | %.2f | %.2f | %s |\n", c, s, median(rps[k]),
        median(cpu[k]), median(tcp[k]), 100 * median(share[k]), median(io[k]), median(usr[k]), median(ownl[k]), ratio
    }
  }' "$ROWS"
} | page_write
