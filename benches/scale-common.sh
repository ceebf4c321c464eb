# Sourced by benches/scale.sh (idle connections) and benches/scale-active.sh (active ones): what
# the machine says about memory, sockets, descriptors and CPU, the machine's description at the
# top of a run, the release build, and K `ringport serve --reuse-port` processes on one port.
# Nothing here starts a process by itself; the caller owns the PIDS array and its trap.

BIN_DIR=${CARGO_TARGET_DIR:-target}/release
RINGPORT=${RINGPORT:-$BIN_DIR/ringport}
PIDS=()          # every process the calling script started, killed by its trap

# build_release [--example NAME]: the ringport binary, and an example of ringport-stress if named
# (two cargo runs: `--example` alone would build only the example), unless NO_BUILD is set.
build_release() {
  [[ -n "${NO_BUILD:-}" ]] && return 0
  cargo build --release -q -p ringport --bin ringport || return 1
  if [[ $# -gt 0 ]]; then cargo build --release -q -p ringport-stress "$@" || return 1; fi
}

now() { date +%s.%N; }
secs_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
meminfo() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; }          # kB
free_kb() { echo $(( $(meminfo MemAvailable) - $(meminfo SReclaimable) )); }
sockstat() { awk -v k="$1" '$1 == "TCP:" { for (i = 2; i < NF; i += 2) if ($i == k) print $(i + 1) }' /proc/net/sockstat; }
conntrack() { cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo -; }
conntrack_max() { cat /proc/sys/net/netfilter/nf_conntrack_max 2>/dev/null || echo -; }
threads_total() { awk '{ split($4, a, "/"); print a[2] }' /proc/loadavg; }
fd_count() { local n; n=$(ls -f "/proc/$1/fd" 2>/dev/null | wc -l); echo $((n > 2 ? n - 2 : 0)); }
rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
sum_fds() { local s=0 p; for p in "$@"; do s=$((s + $(fd_count "$p"))); done; echo "$s"; }
sum_rss() { local s=0 p r; for p in "$@"; do r=$(rss_kb "$p"); s=$((s + ${r:-0})); done; echo "$s"; }
alive() { local p; for p in "$@"; do kill -0 "$p" 2>/dev/null || { echo "$p"; return; }; done; }
kib() { awk -v b="$1" 'BEGIN { if (b == "-") print "-"; else printf "%.1f", b / 1024 }'; }
kv() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2" | head -1; }
# CPU time (user + system) of processes, in clock ticks; of the whole machine: busy and total ticks.
# The machine's busy time is its wall time on every CPU minus idle (and iowait): the kernel
# accounts idle exactly, but user and system time only at timer ticks, which miss most of a
# process that wakes for tens of microseconds at a time (a sparse load's every send).
cpu_ticks() { local s=0 p t; for p in "$@"; do t=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null); s=$((s + ${t:-0})); done; echo "$s"; }
machine_ticks() {
  awk -v hz="$(getconf CLK_TCK)" -v n="$(nproc)" \
    'NR == FNR { up = $1; next } $1 == "cpu" { t = up * hz * n; printf "%d %d\n", t - $5 - $6, t }' /proc/uptime /proc/stat
}
# Addresses in FIRST-LAST (IPv4), or 1 for a single address.
range_size() {
  local a=${1%-*} b=${1#*-}
  [[ $1 == *-* ]] || { echo 1; return; }
  ip4() { local IFS=.; set -- $1; echo $(( ($1 << 24) + ($2 << 16) + ($3 << 8) + $4 )); }
  echo $(( $(ip4 "$b") - $(ip4 "$a") + 1 ))
}
port_range_size() { awk '{ print $2 - $1 + 1 }' /proc/sys/net/ipv4/ip_local_port_range; }

# print_env TITLE: the machine and its limits, for the top of a run's output.
print_env() {
  echo "# $1: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "# $(uname -sr); $(nproc) CPUs; $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo);" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other programs on the machine)"
  echo "# fd limit soft/hard: $(ulimit -Sn)/$(ulimit -Hn); ip_local_port_range: $(cat /proc/sys/net/ipv4/ip_local_port_range | tr '\t' '-');" \
    "somaxconn: $(cat /proc/sys/net/core/somaxconn); pid_max: $(cat /proc/sys/kernel/pid_max); threads-max: $(cat /proc/sys/kernel/threads-max);" \
    "nf_conntrack: $(conntrack)/$(conntrack_max); tcp_mem (pages): $(cat /proc/sys/net/ipv4/tcp_mem | tr '\t' ' ')"
}

# start_servers DIR K PORT ARGS...: K `ringport serve --port PORT --reuse-port ARGS...` processes,
# each under the hard open-file limit (at most 20,000), output in DIR/server-I.{out,err}; waits
# for each one's `listening on` line. Sets SERVERS (their pids, also added to PIDS). Returns 1,
# with the reason on stdout, when one does not start.
start_servers() {
  local dir=$1 k=$2 port=$3 i t
  shift 3
  SERVERS=()
  for ((i = 0; i < k; i++)); do
    (
      ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
      exec "$RINGPORT" serve --port "$port" --reuse-port "$@"
    ) </dev/null >"$dir/server-$i.out" 2>"$dir/server-$i.err" &
    SERVERS+=($!); PIDS+=($!)
    for t in $(seq 1 200); do grep -qs '^listening on' "$dir/server-$i.out" && break; sleep 0.05; done
    if ! grep -qs '^listening on' "$dir/server-$i.out"; then
      echo "server $i did not start: $(tail -2 "$dir/server-$i.err")"
      return 1
    fi
  done
}
