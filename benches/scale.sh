#!/usr/bin/env bash
# How many concurrent idle connections does this machine hold? For each server model, start K
# `ringport serve --reuse-port` processes on one port (one process cannot hold more descriptors
# than its hard open-file limit, 20,000 here) and step up `hold` client processes
# (crates/stress/examples/hold.rs, ~19,000 connections each, bound round-robin to 127.0.0.2-254)
# until TARGET connections are held or something stops it. After each step it records the
# connections the servers hold (their descriptors), the servers' RSS per connection, the kernel's
# memory per connection (Slab from /proc/meminfo, both ends of each connection, since client and
# server share the machine; TCP buffer pages from /proc/net/sockstat are shown beside it, apart:
# idle sockets buffer nothing, and other programs' traffic moves that figure), the drop in free
# memory per connection (everything: both ends, kernel stacks, page tables, client RSS), and the
# time to open. "Free" is MemAvailable minus SReclaimable: the kernel counts socket inodes and
# dentries as reclaimable slab, but they are pinned while the connections are open.
# Loopback only; no sysctl is changed; every process it starts is killed at the end.
#
# Environment: TARGET [100000] connections to reach; MODELS ["completion threaded"];
#   BUDGET [300] seconds of stepping per model; PER_SERVER [19900] --max-connections per server
#   process; PER_HOLD [19000] connections per hold process; HOLDS_PER_STEP [1];
#   MIN_AVAIL_MIB [4096] stop when free memory (above) falls below it (the machine is shared);
#   PID_RESERVE [4096] threads (pids) left free for other programs: the threaded model's steps
#   shrink so that the machine's thread count stays below kernel.pid_max minus this;
#   PORT [4600]; SOURCES [127.0.0.2-127.0.0.254]; BUFFER_SIZE [server default];
#   OUT [./ringport-scale]; NO_BUILD=1 to skip building (binaries from $CARGO_TARGET_DIR or target).
# PAGE: 1 to also write the summary as docs/results/scale.md (benches/page.sh), or a path.
# Output: a table per model on stdout (also $OUT/steps.tsv), the final row per model in
# $OUT/summary.md, and every process's output in $OUT/<model>/.
set -uo pipefail
# shellcheck source=benches/page.sh
. "$(dirname "$0")/page.sh"
page_init scale "Idle connections one machine holds" \
  "K \`ringport serve --reuse-port\` processes on one port and \`hold\` clients stepping up idle connections until the target or a limit: connections held, server RSS and kernel memory per connection, free memory drop, time to open, and what stopped it. How it works: [Scale](../scale.md)." \
  TARGET MODELS BUDGET PER_SERVER PER_HOLD HOLDS_PER_STEP MIN_AVAIL_MIB PID_RESERVE SOURCES BUFFER_SIZE
cd "$(dirname "$0")/.."

TARGET=${TARGET:-100000}
MODELS=${MODELS:-"completion threaded"}
BUDGET=${BUDGET:-300}
PER_SERVER=${PER_SERVER:-19900}
PER_HOLD=${PER_HOLD:-19000}
HOLDS_PER_STEP=${HOLDS_PER_STEP:-1}
MIN_AVAIL_MIB=${MIN_AVAIL_MIB:-4096}
PID_RESERVE=${PID_RESERVE:-4096}
PORT=${PORT:-4600}
SOURCES=${SOURCES:-127.0.0.2-127.0.0.254}
BUFFER_SIZE=${BUFFER_SIZE:-}
OUT=${OUT:-ringport-scale}
source benches/scale-common.sh

build_release --example hold || exit 1
HOLD=$BIN_DIR/examples/hold
for b in "$RINGPORT" "$HOLD"; do
  [[ -x "$b" ]] || { echo "scale.sh: $b is missing (build it, or unset NO_BUILD)" >&2; exit 1; }
done
mkdir -p "$OUT"

cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
}
trap cleanup EXIT
trap 'echo "scale.sh: interrupted" >&2; exit 130' INT TERM

{
  print_env "ringport scale run"
  echo "# TARGET=$TARGET BUDGET=${BUDGET}s PER_SERVER=$PER_SERVER PER_HOLD=$PER_HOLD MIN_AVAIL_MIB=$MIN_AVAIL_MIB BUFFER_SIZE=${BUFFER_SIZE:-default}"
} | tee "$OUT/env.txt"
printf 'model\tstep\tclients\theld\ttcp_inuse\ttcp_tw\tserver_rss_mib\trss_per_conn_b\tslab_mib\tkernel_per_conn_b\ttcp_mem_pages\tmachine_per_conn_b\tfree_mib\tconntrack\tthreads\topen_s\telapsed_s\n' >"$OUT/steps.tsv"
: >"$OUT/summary.md"

run_model() {
  local model=$1 dir="$OUT/$1"
  rm -rf "$dir"; mkdir -p "$dir"
  local stop="$dir/stop"
  local k=$(( (TARGET * 11 / 10 + PER_SERVER - 1) / PER_SERVER ))
  local model_args=(--model completion --workers 1)
  [[ $model == threaded ]] && model_args=(--model threaded)
  [[ -n $BUFFER_SIZE ]] && model_args+=(--buffer-size "$BUFFER_SIZE")

  echo
  echo "== $model: $k server processes x --max-connections $PER_SERVER, target $TARGET"
  if ! start_servers "$dir" "$k" "$PORT" --idle-timeout 0 --max-per-ip 0 \
      --max-connections "$PER_SERVER" "${model_args[@]}"; then
    printf '| %s | 0 | - | - | - | server did not start |\n' "$model" >>"$OUT/summary.md"
    return
  fi
  local servers=("${SERVERS[@]}")
  sleep 0.5
  local fds0 rss0 slab0 avail0
  fds0=$(sum_fds "${servers[@]}"); rss0=$(sum_rss "${servers[@]}")
  slab0=$(meminfo Slab); avail0=$(free_kb)

  printf '%-5s %8s %8s %8s %7s %10s %8s %9s %8s %7s %8s %9s %9s %8s %7s %8s\n' step clients held \
    tcp_inuse tw srv_rss_MiB B/conn slab_MiB kB/conn tcp_pg mach_kB free_MiB conntrack threads open_s elapsed
  local start; start=$(now)
  local open_total=0 clients=0 held=0 step=0 stopped="" holds=() prev_held=0
  local rss_pc=- kern_pc=- mach_pc=- rss_now=0 slab_now=0
  while :; do
    step=$((step + 1))
    local t0; t0=$(now)
    if [[ $model == threaded ]] && (( $(cat /proc/sys/kernel/pid_max) - PID_RESERVE - $(threads_total) < 1000 )); then
      stopped="kernel.pid_max ($(cat /proc/sys/kernel/pid_max)): a thread per connection is a pid per connection; $(threads_total) threads on the machine, PID_RESERVE=$PID_RESERVE kept free for other programs"
      break
    fi
    local these=() j n pid_bound=0
    for ((j = 0; j < HOLDS_PER_STEP; j++)); do
      n=$PER_HOLD
      (( clients + n > TARGET )) && n=$((TARGET - clients))
      if [[ $model == threaded ]]; then
        # A thread per connection, a pid per thread: stay PID_RESERVE below kernel.pid_max.
        local room=$(( $(cat /proc/sys/kernel/pid_max) - PID_RESERVE - $(threads_total) ))
        (( n > room )) && n=$room
        (( n <= 0 )) && { pid_bound=1; break; }
      fi
      (( n <= 0 )) && break
      local h=${#holds[@]}
      "$HOLD" "127.0.0.1:$PORT" "$n" --source-ips "$SOURCES" --secs $((BUDGET + 600)) \
        --stop-file "$stop" --connect-timeout 10 </dev/null >"$dir/hold-$h.out" 2>"$dir/hold-$h.err" &
      holds+=($!); PIDS+=($!); these+=("$h")
      clients=$((clients + n))
    done
    # Wait until this step's holds have opened what they could (bounded: connect timeouts are 10 s).
    local waited=0 h
    for h in "${these[@]}"; do
      while ! grep -qs '^hold: opened' "$dir/hold-$h.err" && (( waited < 1800 )); do
        kill -0 "${holds[$h]}" 2>/dev/null || break
        sleep 0.1; waited=$((waited + 1))
      done
    done
    local open_s; open_s=$(secs_since "$t0")
    open_total=$(awk -v a="$open_total" -v b="$open_s" 'BEGIN { printf "%.1f", a + b }')
    # Let the servers accept what is in their backlogs (held stops rising), at most 10 s.
    local last=-1 tries
    for tries in $(seq 1 20); do
      held=$(( $(sum_fds "${servers[@]}") - fds0 ))
      (( held == last )) && break
      last=$held; sleep 0.5
    done
    rss_now=$(sum_rss "${servers[@]}")
    slab_now=$(meminfo Slab)
    local sockmem avail inuse tw
    sockmem=$(sockstat mem); avail=$(free_kb); inuse=$(sockstat inuse); tw=$(sockstat tw)
    if (( held > 0 )); then
      rss_pc=$(( (rss_now - rss0) * 1024 / held ))
      kern_pc=$(( (slab_now - slab0) * 1024 / held ))
      mach_pc=$(( (avail0 - avail) * 1024 / held ))
    fi
    local elapsed; elapsed=$(secs_since "$start")
    printf '%-5s %8s %8s %8s %7s %10s %8s %9s %8s %7s %8s %9s %9s %8s %7s %8s\n' "$step" "$clients" "$held" \
      "$inuse" "$tw" $(( (rss_now - rss0) / 1024 )) "$rss_pc" $(( (slab_now - slab0) / 1024 )) \
      "$(kib "$kern_pc")" "$sockmem" "$(kib "$mach_pc")" $(( avail / 1024 )) "$(conntrack)" "$(threads_total)" "$open_s" "$elapsed"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$model" "$step" "$clients" \
      "$held" "$inuse" "$tw" $(( (rss_now - rss0) / 1024 )) "$rss_pc" $(( (slab_now - slab0) / 1024 )) \
      "$kern_pc" "$sockmem" "$mach_pc" $(( avail / 1024 )) "$(conntrack)" "$(threads_total)" "$open_s" "$elapsed" >>"$OUT/steps.tsv"

    # What stops it?
    local fails=0 kinds=""
    for h in "${these[@]}"; do
      local line; line=$(grep '^hold: opened' "$dir/hold-$h.err" | head -1)
      if [[ -z $line ]]; then kinds+=" hold-$h did not finish opening;"; fails=$((fails + PER_HOLD)); continue; fi
      fails=$((fails + $(kv failed "$line")))
      [[ $(kv failures "$line") != none ]] && kinds+=" $(kv failures "$line")"
    done
    local dead; dead=$(alive "${servers[@]}")
    local step_clients=$((clients - ${step_base:-0})); step_base=$clients
    if [[ -n $dead ]]; then
      stopped="a server process exited: $(grep -v '^\s*$' "$dir"/server-*.err | grep -iE 'error|panic|killed' | tail -1)"
    elif (( fails * 200 > step_clients )); then
      stopped="connect failures ($fails of $step_clients in the last step:$kinds)"
      grep -q timeout <<<"$kinds" && stopped+="; timeouts mean SYNs dropped: servers full or their backlogs overflowing"
      grep -q addr_not_available <<<"$kinds" && stopped+="; addr_not_available: no ephemeral port left for a source address"
      grep -qE 'emfile|enfile' <<<"$kinds" && stopped+="; out of descriptors in a client"
    elif (( held - prev_held < (step_clients - fails) * 95 / 100 )); then
      stopped="the servers kept only $((held - prev_held)) of the $((step_clients - fails)) connections opened in the last step"
      local warn; warn=$(grep -hiE 'warn|error' "$dir"/server-*.err | tail -1)
      [[ -n $warn ]] && stopped+=" (server log: ${warn:0:200})"
    elif (( avail / 1024 < MIN_AVAIL_MIB )); then
      stopped="memory: $((avail / 1024)) MiB free (MemAvailable - SReclaimable), below MIN_AVAIL_MIB=$MIN_AVAIL_MIB (the machine is shared)"
    elif [[ $(conntrack) != - ]] && (( $(conntrack) * 10 >= $(conntrack_max) * 9 )); then
      stopped="nf_conntrack table nearly full ($(conntrack)/$(conntrack_max))"
    elif (( clients >= TARGET )); then
      stopped="reached TARGET=$TARGET"
    elif awk -v e="$elapsed" -v b="$BUDGET" 'BEGIN { exit !(e >= b) }'; then
      stopped="time budget (${BUDGET}s)"
    fi
    prev_held=$held
    [[ -n $stopped ]] && break
  done
  step_base=0
  echo "stopped: $stopped"

  # Hold a moment, then let the clients check their sample echoes and count what is still open.
  sleep 2
  touch "$stop"
  local h2 tries2
  for h2 in "${!holds[@]}"; do
    for tries2 in $(seq 1 300); do kill -0 "${holds[$h2]}" 2>/dev/null || break; sleep 0.1; done
  done
  local alive_sum=0 est_sum=0 ok_sum=0 bad_sum=0 line
  for h2 in "${!holds[@]}"; do
    line=$(cat "$dir/hold-$h2.out" 2>/dev/null)
    [[ -z $line ]] && continue
    est_sum=$((est_sum + $(kv established "$line")))
    alive_sum=$((alive_sum + $(kv alive "$line")))
    ok_sum=$((ok_sum + $(kv echo_ok_end "$line")))
    bad_sum=$((bad_sum + $(kv echo_fail_end "$line")))
  done
  echo "clients: $est_sum established, $alive_sum still open at the end; sample echoes at the end: $ok_sum ok, $bad_sum failed"

  # Stop the servers (graceful first), then wait for the kernel to tear the sockets down.
  local p
  for p in "${servers[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for tries2 in $(seq 1 300); do [[ -z $(for p in "${servers[@]}"; do kill -0 "$p" 2>/dev/null && echo x; done) ]] && break; sleep 0.1; done
  for p in "${servers[@]}" "${holds[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  for tries2 in $(seq 1 120); do (( $(sockstat inuse) < 1000 )) && break; sleep 0.5; done

  printf '| %s | %s | %s KiB | %s KiB | %s KiB | %s s | %s |\n' "$model" "$held" "$(kib "$rss_pc")" \
    "$(kib "$kern_pc")" "$(kib "$mach_pc")" "$open_total" "$stopped" \
    | tee -a "$OUT/summary.md"
  rm -f "$stop"
}

for m in $MODELS; do run_model "$m"; done
echo
{
  echo "| model | connections held | server RSS per connection | kernel memory per connection (both ends) | free memory drop per connection | time to open | stopped by |"
  echo "|---|---:|---:|---:|---:|---:|---|"
  cat "$OUT/summary.md"
} | page_write
