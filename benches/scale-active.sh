#!/usr/bin/env bash
# Many connections, all of them active: TARGET connections (default 1,000,000) that each echo a
# message every few seconds, every byte verified. benches/scale.sh holds connections idle; this
# keeps them busy. One process cannot hold more descriptors than its hard open-file limit (20,000
# here), so the load is split over processes on both sides:
#   - K `ringport serve --reuse-port` processes on one port (completion model, one worker each),
#     K = TARGET x 1.1 / PER_SERVER rounded up (the kernel's SO_REUSEPORT hash is not exactly even);
#   - M `ringport stress --segment I/M` agents, M = TARGET / PER_AGENT rounded up, each opening its
#     share of the TARGET connections, bound round-robin to the SOURCES addresses
#     (`--source-ip 127.0.0.2-127.0.0.254`: one address has only the ephemeral port range), at
#     CONNECT_RATE / M connections per second each, so all of them together open CONNECT_RATE per
#     second (no thundering herd on the listen backlogs);
#   - every agent starts its load at one wall-clock time (`--start-at`), set far enough ahead for
#     every connection to be open by then, and runs the open loop (`--rate RATE`, the whole run's
#     schedule, of which each segment sends its connections' share: message k of connection c at
#     start + (c + kC)/RATE, so sends are spread evenly, never a burst) for WARMUP + DURATION
#     seconds; the warm-up (one send period by default: every connection has sent once) is left
#     out of every figure;
#   - `ringport merge` adds the agents' results and interval logs (histograms added, never
#     percentiles averaged) into one: p50/p99/p99.9, messages, errors.
# Alongside it samples the machine every SAMPLE seconds: connections open (TCP sockets in use,
# both ends, over two), free memory (MemAvailable - SReclaimable, as scale.sh), kernel slab, TCP buffer
# pages, the servers' and the agents' RSS, and CPU (the machine's and each side's), and reports
# the memory per connection once all are open (idle) and at its peak under load, and what stops
# it: the memory floor (MIN_AVAIL_MIB: the agents are stopped, their results kept), descriptor
# limits and source ports (checked before starting), connect failures, a server that exits, or
# CPU: the agents' achieved rate against RATE, with the machine's CPU use.
# Loopback only; no sysctl is changed; every process it starts is killed at the end.
#
# Environment: TARGET [1000000] connections; RATE [TARGET/10: one message every 10 s per
#   connection, 100,000 msg/s at the million] messages per second in total; DURATION [60] seconds
#   measured; WARMUP [TARGET/RATE, one send period] seconds of load left out; SIZE [64] bytes per
#   message (seeded random bytes); PER_SERVER [19900] --max-connections per server process;
#   PER_AGENT [19000] connections per stress agent; THREADS [1] client threads per agent;
#   CONNECT_RATE [20000] connections opened per second, all agents together; START_SLACK [20]
#   seconds added to the expected opening time before the common start; TIMEOUT [60] stress
#   --timeout (connect and echo); SPIN_US [0] stress --spin-us: an agent sleeps until each send
#   is due instead of polling through the last 60 us before it (60 us of CPU per sparse send is
#   6 cores at 100,000 msg/s; a send may then be up to the timer slack, ~50 us, late); MIN_AVAIL_MIB [4096]; SAMPLE [5] seconds between samples;
#   PORT [4610]; SOURCES [127.0.0.2-127.0.0.254]; OUT [./ringport-scale-active];
#   NO_BUILD=1 to skip building (the binary from $CARGO_TARGET_DIR or target, or RINGPORT=path).
# Exit code 0 only when nothing stopped it: every connection open, the rate held, no error.
# PAGE: 1 to also write the result as docs/results/scale-active.md (benches/page.sh), or a path.
# Output: progress on stdout, the result in $OUT/summary.md (a table row, as the pages
# docs/results/scale-active*.md show) and
# $OUT/result.txt, samples in $OUT/samples.tsv, the merged run in $OUT/merged.{txt,json,hlog},
# every process's output in $OUT/.
set -uo pipefail
# shellcheck source=benches/page.sh
. "$(dirname "$0")/page.sh"
page_init scale-active "Active connections one machine holds" \
  "K \`ringport serve --reuse-port\` processes on one port and M \`ringport stress --segment I/M\` agents with one \`--start-at\`, every connection echoing a 64-byte message once per period (TARGET / RATE seconds), every byte verified, the agents' results added by \`ringport merge\`: connections, rate achieved, latency from each message's intended send time, memory per connection under load, and what stopped it. How it works: [Scale](../scale.md#active-benchesscale-activesh)." \
  TARGET RATE DURATION WARMUP SIZE PER_SERVER PER_AGENT THREADS CONNECT_RATE START_SLACK TIMEOUT SPIN_US MIN_AVAIL_MIB SAMPLE SOURCES
cd "$(dirname "$0")/.."

TARGET=${TARGET:-1000000}
RATE=${RATE:-$(( (TARGET + 9) / 10 ))}
DURATION=${DURATION:-60}
WARMUP=${WARMUP:-$(awk -v t="$TARGET" -v r="$RATE" 'BEGIN { printf "%g", t / r }')}
SIZE=${SIZE:-64}
PER_SERVER=${PER_SERVER:-19900}
PER_AGENT=${PER_AGENT:-19000}
THREADS=${THREADS:-1}
CONNECT_RATE=${CONNECT_RATE:-20000}
START_SLACK=${START_SLACK:-20}
TIMEOUT=${TIMEOUT:-60}
SPIN_US=${SPIN_US:-0}
MIN_AVAIL_MIB=${MIN_AVAIL_MIB:-4096}
SAMPLE=${SAMPLE:-5}
PORT=${PORT:-4610}
SOURCES=${SOURCES:-127.0.0.2-127.0.0.254}
OUT=${OUT:-ringport-scale-active}
source benches/scale-common.sh

fail() { echo "scale-active.sh: $*" >&2; exit 1; }
build_release || exit 1
[[ -x "$RINGPORT" ]] || fail "$RINGPORT is missing (build it, or unset NO_BUILD)"
command -v python3 >/dev/null || fail "python3 is needed to read the merged JSON"
for v in TARGET RATE DURATION PER_SERVER PER_AGENT THREADS CONNECT_RATE START_SLACK SAMPLE SIZE; do
  [[ ${!v} =~ ^[0-9]+$ ]] && (( ${!v} > 0 )) || fail "$v=${!v}: expected a positive whole number"
done
[[ $SPIN_US =~ ^[0-9]+$ ]] || fail "SPIN_US=$SPIN_US: expected a whole number of microseconds"
mkdir -p "$OUT" || fail "cannot create $OUT"
# A previous run's files (only those: OUT may be a directory of other things too).
rm -f "$OUT"/agent-*.{json,hlog,out,err} "$OUT"/server-*.{out,err} "$OUT"/merged.{txt,json,hlog} \
  "$OUT"/{samples.tsv,result.txt,summary.md,env.txt}

K=$(( (TARGET * 11 / 10 + PER_SERVER - 1) / PER_SERVER ))
M=$(( (TARGET + PER_AGENT - 1) / PER_AGENT ))
(( M <= TARGET )) || M=$TARGET
AGENT_CONNECT_RATE=$(awk -v c="$CONNECT_RATE" -v m="$M" 'BEGIN { printf "%.3f", c / m }')
OPEN_S=$(( (TARGET + CONNECT_RATE - 1) / CONNECT_RATE ))

# What would stop it before it starts: descriptors per process, source ports.
HARD=$(ulimit -Hn)
[[ $HARD == unlimited ]] && HARD=1048576
(( PER_SERVER + 64 <= HARD )) || fail "PER_SERVER=$PER_SERVER: a server process may open at most $HARD descriptors (ulimit -Hn)"
(( (TARGET + M - 1) / M + 16 * THREADS + 64 <= HARD )) \
  || fail "PER_AGENT=$PER_AGENT: an agent may open at most $HARD descriptors (ulimit -Hn)"
NSRC=$(range_size "$SOURCES")
PORTS=$(port_range_size)
(( TARGET <= NSRC * PORTS )) \
  || fail "TARGET=$TARGET: $NSRC source addresses x $PORTS ephemeral ports hold only $((NSRC * PORTS)); widen SOURCES or net.ipv4.ip_local_port_range"

# Memory: about 15 KiB per connection (both sockets, server, agent; scale.sh measured 14.6 idle).
need_mib=$(( TARGET * 15 / 1024 ))
(( $(free_kb) / 1024 - MIN_AVAIL_MIB < need_mib )) && echo "warning: about $need_mib MiB needed at 15 KiB per" \
  "connection; $(( $(free_kb) / 1024 )) MiB free, MIN_AVAIL_MIB=$MIN_AVAIL_MIB: the memory floor may stop it" >&2

cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
}
trap cleanup EXIT
trap 'echo "scale-active.sh: interrupted" >&2; exit 130' INT TERM

{
  print_env "ringport active scale run"
  echo "# TARGET=$TARGET RATE=$RATE msg/s DURATION=${DURATION}s WARMUP=${WARMUP}s SIZE=$SIZE K=$K servers x --max-connections $PER_SERVER," \
    "M=$M agents x $THREADS thread(s), CONNECT_RATE=$CONNECT_RATE/s ($AGENT_CONNECT_RATE per agent), SOURCES=$SOURCES ($NSRC)," \
    "TIMEOUT=${TIMEOUT}s SPIN_US=$SPIN_US MIN_AVAIL_MIB=$MIN_AVAIL_MIB"
} | tee "$OUT/env.txt"

echo "starting $K servers on port $PORT"
start_servers "$OUT" "$K" "$PORT" --model completion --workers 1 --idle-timeout 0 --max-per-ip 0 \
  --max-connections "$PER_SERVER" || fail "a server did not start"
sleep 0.5
INUSE0=$(sockstat inuse); SRSS0=$(sum_rss "${SERVERS[@]}")
SLAB0=$(meminfo Slab); FREE0=$(free_kb)

START=$(( $(date +%s) + OPEN_S + START_SLACK + M / 10 ))
END=$(awk -v s="$START" -v w="$WARMUP" -v d="$DURATION" 'BEGIN { printf "%d", s + w + d + 0.999 }')
echo "starting $M agents: $TARGET connections opened at $CONNECT_RATE/s (about ${OPEN_S}s); load starts at" \
  "$(date -u -d "@$START" '+%H:%M:%S') UTC, measured from +${WARMUP}s for ${DURATION}s"
AGENTS=()
for ((i = 1; i <= M; i++)); do
  (
    ulimit -n "$HARD" 2>/dev/null
    exec "$RINGPORT" stress 127.0.0.1 "$PORT" --connections "$TARGET" --segment "$i/$M" \
      --rate "$RATE" --duration "$DURATION" --warmup "$WARMUP" --size "$SIZE" \
      --start-at "$START" --connect-rate "$AGENT_CONNECT_RATE" --threads "$THREADS" \
      --timeout "$TIMEOUT" --spin-us "$SPIN_US" --source-ip "$SOURCES" --interval 10 \
      --json "$OUT/agent-$i.json" --hdr-log "$OUT/agent-$i.hlog"
  ) </dev/null >"$OUT/agent-$i.out" 2>"$OUT/agent-$i.err" &
  AGENTS+=($!); PIDS+=($!)
done

running() { local p n=0; for p in "${AGENTS[@]}"; do kill -0 "$p" 2>/dev/null && n=$((n + 1)); done; echo "$n"; }
per_conn() { awk -v a="$1" -v n="$2" 'BEGIN { if (n > 0) printf "%.1f", a / n; else print "-" }'; }   # kB / n, in KiB
printf 'elapsed_s\tphase\tagents\theld\tfree_mib\tslab_mib\ttcp_mem_pages\tserver_rss_mib\tagent_rss_mib\tcpu_busy_pct\tload1\n' >"$OUT/samples.tsv"
printf '%8s %-9s %6s %9s %9s %9s %8s %11s %10s %6s %6s\n' elapsed phase agents held free_MiB slab_MiB tcp_pg srv_rss_MiB cli_rss_MiB cpu% load1
T0=$(now)
read -r BUSY0 TOT0 < <(machine_ticks)
STOPPED="" IDLE="" PEAK_DROP="" PEAK="" MEAS_CPU="" HELD=0 OPENED_AT=""
while (( $(running) > 0 )); do
  sleep "$SAMPLE"
  t=$(date +%s)
  phase=opening
  (( t >= START )) && phase=warm-up
  awk -v t="$t" -v s="$START" -v w="$WARMUP" 'BEGIN { exit !(t >= s + w) }' && phase=measuring
  (( t >= END )) && phase=ending
  # Connections open: TCP sockets in use (both ends) over two; counting the servers'
  # descriptors would list a million /proc entries every sample.
  HELD=$(( ($(sockstat inuse) - INUSE0) / 2 ))
  free=$(free_kb); slab=$(meminfo Slab); tcpmem=$(sockstat mem)
  srss=$(sum_rss "${SERVERS[@]}"); arss=$(sum_rss "${AGENTS[@]}")
  read -r busy tot < <(machine_ticks)
  cpu=$(awk -v b="$((busy - BUSY0))" -v t="$((tot - TOT0))" 'BEGIN { if (t > 0) printf "%.0f", 100 * b / t; else print 0 }')
  BUSY0=$busy; TOT0=$tot
  load=$(cut -d' ' -f1 /proc/loadavg)
  printf '%8s %-9s %6s %9s %9s %9s %8s %11s %10s %6s %6s\n' "$(secs_since "$T0")" "$phase" "$(running)" "$HELD" \
    $((free / 1024)) $(((slab - SLAB0) / 1024)) "$tcpmem" $(((srss - SRSS0) / 1024)) $((arss / 1024)) "$cpu" "$load"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(secs_since "$T0")" "$phase" "$(running)" "$HELD" \
    $((free / 1024)) $(((slab - SLAB0) / 1024)) "$tcpmem" $(((srss - SRSS0) / 1024)) $((arss / 1024)) "$cpu" "$load" >>"$OUT/samples.tsv"
  # Per connection of those open (other programs' sockets can push the count past TARGET).
  mem="$((FREE0 - free)) $((slab - SLAB0)) $((srss - SRSS0)) $arss $((HELD < TARGET ? HELD : TARGET)) $tcpmem"
  # Memory once every connection is open, before the load (the last sample before it): the idle
  # figure. Other programs' sockets move the count a little: 99% open counts as all.
  if [[ $phase == opening ]] && (( HELD >= TARGET - TARGET / 100 )); then
    IDLE=$mem; [[ -z $OPENED_AT ]] && OPENED_AT=$(secs_since "$T0")
  fi
  # The peak under load (the largest drop in free memory while every agent runs).
  if [[ $phase == warm-up || $phase == measuring ]] && (( $(running) == M )); then
    if [[ -z $PEAK_DROP ]] || (( FREE0 - free > PEAK_DROP )); then PEAK_DROP=$((FREE0 - free)); PEAK=$mem; fi
  fi
  if [[ $phase == measuring && -z $MEAS_CPU ]]; then
    MEAS_CPU="$(now) $(cpu_ticks "${SERVERS[@]}") $(cpu_ticks "${AGENTS[@]}") $busy $tot"
  fi
  if [[ $phase != opening && $phase != ending && -n $MEAS_CPU ]]; then
    MEAS_CPU_END="$(now) $(cpu_ticks "${SERVERS[@]}") $(cpu_ticks "${AGENTS[@]}") $busy $tot"
  fi
  # What stops it.
  dead=$(alive "${SERVERS[@]}")
  if [[ -n $dead ]]; then
    STOPPED="a server process exited: $(grep -hiE 'error|panic|killed' "$OUT"/server-*.err | tail -1)"
  elif (( free / 1024 < MIN_AVAIL_MIB )); then
    STOPPED="memory: $((free / 1024)) MiB free (MemAvailable - SReclaimable) with $HELD connections held, below MIN_AVAIL_MIB=$MIN_AVAIL_MIB (the machine is shared)"
  elif (( t > END + 60 + ${TIMEOUT%.*} )); then
    STOPPED="the agents did not finish within 60 s of the end of the run"
  fi
  if [[ -n $STOPPED ]]; then
    echo "stopping: $STOPPED"
    # SIGTERM: an agent stops sending, verifies what is in flight and writes its result, marked
    # interrupted.
    for p in "${AGENTS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for tries in $(seq 1 300); do (( $(running) == 0 )) && break; sleep 0.1; done
    break
  fi
done
wait "${AGENTS[@]}" 2>/dev/null

# The agents' results, merged.
ok_agents=()
for ((i = 1; i <= M; i++)); do
  [[ -s $OUT/agent-$i.json && -s $OUT/agent-$i.hlog ]] && ok_agents+=("$OUT/agent-$i.json" "$OUT/agent-$i.hlog")
done
(( ${#ok_agents[@]} == 2 * M )) || echo "only $(( ${#ok_agents[@]} / 2 )) of $M agents wrote a result; see $OUT/agent-*.err"
merged=0
if (( ${#ok_agents[@]} > 0 )); then
  "$RINGPORT" merge "${ok_agents[@]}" --json "$OUT/merged.json" --hdr-log "$OUT/merged.hlog" \
    >"$OUT/merged.txt" 2>&1
  cat "$OUT/merged.txt"
  [[ -s $OUT/merged.json ]] && merged=1
fi

# Stop the servers (graceful: their summaries say what they echoed).
for p in "${SERVERS[@]}"; do kill -TERM "$p" 2>/dev/null; done
for tries in $(seq 1 600); do [[ -z $(for p in "${SERVERS[@]}"; do kill -0 "$p" 2>/dev/null && echo x; done) ]] && break; sleep 0.1; done
for p in "${SERVERS[@]}"; do kill -KILL "$p" 2>/dev/null; done
echoed=$(cat "$OUT"/server-*.out | sed -n 's/.*exactly \([0-9]*\) bytes echoed.*/\1/p' | awk '{ s += $1 } END { print s + 0 }')

# Figures.
field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); v=eval(sys.argv[2]); print('-' if v is None else v)" "$OUT/merged.json" "$1" 2>/dev/null || echo -; }
if (( merged )); then
  MSGS=$(field "d['messages']"); ERRS=$(field "d['errors']"); ACH=$(field "round(d['msgs_per_s'])")
  P50=$(field "d['latency_us']['p50']"); P99=$(field "d['latency_us']['p99']"); P999=$(field "d['latency_us']['p999']")
  MAX=$(field "d['latency_us']['max']"); EST=$(field "d['connections_established']")
  KINDS=$(field "', '.join(f'{k} {v}' for k, v in d['errors_by_kind'].items() if v)")
  LATE=$(field "max([a['start_late_s'] or 0 for a in d['merged_from']])")
  CONNFAIL=$(field "d['errors_by_kind']['connect_failed']")
  INTERRUPTED=$(field "d['interrupted']")
else
  MSGS=- ERRS=- ACH=0 P50=- P99=- P999=- MAX=- EST=0 KINDS=- LATE=- CONNFAIL=0 INTERRUPTED=-
fi
ms() { awk -v u="$1" 'BEGIN { if (u == "-") print "-"; else if (u < 1000) printf "%d us", u; else printf "%.1f ms", u / 1000 }'; }
mem_line() {   # free-drop slab server-rss agent-rss held tcpmem
  local a=($1)
  echo "free memory drop $(per_conn "${a[0]}" "${a[4]}") KiB, kernel slab $(per_conn "${a[1]}" "${a[4]}") KiB (both ends)," \
    "server RSS $(per_conn "${a[2]}" "${a[4]}") KiB, agent RSS $(per_conn "${a[3]}" "${a[4]}") KiB per connection;" \
    "TCP buffers $((a[5] * 4 / 1024)) MiB ($(( a[4] )) connections held)"
}
cpu_line=""
if [[ -n $MEAS_CPU && -n ${MEAS_CPU_END:-} ]]; then
  read -r c0 s0 a0 b0 t0 <<<"$MEAS_CPU"; read -r c1 s1 a1 b1 t1 <<<"$MEAS_CPU_END"
  hz=$(getconf CLK_TCK)
  cpu_line=$(awk -v dt="$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }')" -v s=$((s1 - s0)) -v a=$((a1 - a0)) \
    -v b=$((b1 - b0)) -v t=$((t1 - t0)) -v hz="$hz" -v n="$(nproc)" 'BEGIN {
      if (dt <= 0 || t <= 0) exit
      printf "servers %.2f cores, agents %.2f cores, machine %.0f%% busy of %d CPUs (others included)", s / hz / dt, a / hz / dt, 100 * b / t, n }')
  MACHINE_BUSY=$(awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) 'BEGIN { if (t > 0) printf "%.0f", 100 * b / t; else print 0 }')
fi

# What stopped it, if nothing did outright: connections short of TARGET, then the rate.
if [[ -z $STOPPED ]]; then
  if (( EST < TARGET )); then
    STOPPED="connections: $EST of $TARGET established ($KINDS); see $OUT/agent-*.err"
  elif awk -v a="$ACH" -v r="$RATE" 'BEGIN { exit !(a < 0.99 * r) }'; then
    STOPPED="the rate: the agents sent $ACH of $RATE msg/s"
    [[ -n ${MACHINE_BUSY:-} ]] && (( MACHINE_BUSY >= 95 )) && STOPPED+=" with the CPUs ${MACHINE_BUSY}% busy: CPU saturation"
  else
    STOPPED="nothing: the target, $TARGET connections at $ACH msg/s"
    if [[ -n $PEAK ]]; then
      pk=($PEAK)
      if (( pk[0] > 0 && pk[4] > 0 )); then
        STOPPED+="; the memory above MIN_AVAIL_MIB would hold about"
        STOPPED+=" $(( (FREE0 - pk[0] - MIN_AVAIL_MIB * 1024) * pk[4] / pk[0] )) more at the peak's drop per connection"
      fi
    fi
    [[ -n ${MACHINE_BUSY:-} ]] && STOPPED+="; CPUs ${MACHINE_BUSY}% busy while measuring"
  fi
fi
[[ $LATE != - ]] && awk -v l="$LATE" 'BEGIN { exit !(l > 0) }' && STOPPED+="; an agent started up to ${LATE}s late (START_SLACK=$START_SLACK)"

{
  echo
  echo "== result"
  echo "connections   $EST established of $TARGET (all open after ${OPENED_AT:-?}s; $K servers, $M agents)"
  echo "rate          $ACH of $RATE msg/s; $MSGS messages verified in ${DURATION}s, errors $ERRS${KINDS:+ ($KINDS)}"
  echo "latency       p50 $(ms "$P50"), p99 $(ms "$P99"), p99.9 $(ms "$P999"), max $(ms "$MAX") (from each message's intended send time)"
  echo "servers       echoed $echoed bytes in all (warm-up included)"
  [[ -n $IDLE ]] && echo "memory idle   $(mem_line "$IDLE")"
  [[ -n $PEAK ]] && echo "memory active $(mem_line "$PEAK")"
  [[ -n $cpu_line ]] && echo "cpu           $cpu_line"
  echo "stopped by    $STOPPED"
} | tee "$OUT/result.txt"

pk=($PEAK); [[ -z $PEAK ]] && pk=(0 0 0 0 0 0)
printf '| %s | %s | %s / %s | %s | %s | %s | %s | %s | %s KiB | %s KiB | %s KiB | %s KiB | %s s | %s |\n' \
  "$(date -u +%Y-%m-%d)" "$EST" "$ACH" "$RATE" "$MSGS" "$ERRS" "$(ms "$P50")" "$(ms "$P99")" "$(ms "$P999")" \
  "$(per_conn "${pk[0]}" "${pk[4]}")" "$(per_conn "${pk[2]}" "${pk[4]}")" "$(per_conn "${pk[1]}" "${pk[4]}")" \
  "$(per_conn "${pk[3]}" "${pk[4]}")" "${OPENED_AT:-?}" "$STOPPED" >"$OUT/summary.md"
echo
{
echo "| date | connections | msg/s achieved / target | messages | errors | p50 | p99 | p99.9 | free memory drop per connection | server RSS per connection | kernel slab per connection (both ends) | agent RSS per connection | all open after | stopped by |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
cat "$OUT/summary.md"
} | page_write
if [[ -n "$PAGE_FILE" ]]; then
  { echo; echo '```text'; sed -n '/^== result/,$p' "$OUT/result.txt"; echo '```'; } >>"$PAGE_FILE"
fi
# Success: every connection open, the rate held, every byte verified, nothing stopped it.
if (( merged )) && [[ $ERRS == 0 ]] && (( EST == TARGET )) && [[ $STOPPED == nothing:* ]]; then exit 0; fi
exit 1
