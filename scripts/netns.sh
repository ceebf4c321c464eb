#!/usr/bin/env bash
# Test hosts as network namespaces, for tests and benchmarks that need more than loopback.
#
#   scripts/netns.sh up PREFIX N      N hosts PREFIX-h1..PREFIX-hN, host I at 198.18.0.I/15 on its
#                                     eth0, a veth pair to a bridge in its own namespace PREFIX-br
#   scripts/netns.sh down PREFIX      kill every process in PREFIX-* and delete the namespaces
#   scripts/netns.sh exec PREFIX I CMD...   run CMD on host I
#   scripts/netns.sh ls [PREFIX]      the namespaces with that prefix
#
# The hosts reach each other and nothing else: no address or route leads out of the namespaces,
# no default route, the bridge has no address and nothing of the machine's real interfaces is
# bridged. Everything (the bridge, its ports, the hosts' eth0) is created inside the namespaces,
# so nothing is added to the machine's own namespace and deleting the namespaces removes it all.
# 198.18.0.0/15 is the benchmarking range (RFC 2544). Runs as root; needs iproute2.
set -euo pipefail

die() { echo "netns.sh: $*" >&2; exit 1; }

valid_prefix() {
  [[ "$1" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$ ]] || die "bad prefix '$1' (letters, digits, _ . -)"
}

namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$1-" || true; }

down() {
  local prefix=$1 ns pids
  for ns in $(namespaces "$prefix"); do
    # Processes left on a host would keep its namespace alive after `ip netns del`.
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [[ -n "$pids" ]] && kill -9 $pids 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
}

up() {
  local prefix=$1 n=$2 i br host
  [[ "$n" =~ ^[0-9]+$ ]] && ((n >= 1 && n <= 250)) || die "N must be 1..250, got '$n'"
  down "$prefix"
  br="$prefix-br"
  ip netns add "$br"
  ip -n "$br" link set lo up
  ip -n "$br" link add br0 type bridge
  ip -n "$br" link set br0 up
  for ((i = 1; i <= n; i++)); do
    host="$prefix-h$i"
    ip netns add "$host"
    ip -n "$host" link set lo up
    # Port hI on the bridge's side, eth0 on the host's side: both made in the namespaces.
    ip -n "$br" link add "h$i" type veth peer name eth0 netns "$host"
    ip -n "$br" link set "h$i" master br0 up
    ip -n "$host" addr add "198.18.0.$i/15" dev eth0
    ip -n "$host" link set eth0 up
  done
}

cmd=${1:-}
case "$cmd" in
  up)
    [[ $# -eq 3 ]] || die "usage: up PREFIX N"
    valid_prefix "$2"
    up "$2" "$3" || { down "$2"; die "could not create the hosts"; }
    ;;
  down)
    [[ $# -eq 2 ]] || die "usage: down PREFIX"
    valid_prefix "$2"
    down "$2"
    ;;
  exec)
    [[ $# -ge 4 ]] || die "usage: exec PREFIX I CMD..."
    valid_prefix "$2"
    ns="$2-h$3"
    shift 3
    exec ip netns exec "$ns" "$@"
    ;;
  ls)
    if [[ $# -ge 2 ]]; then namespaces "$2"; else ip netns list; fi
    ;;
  *)
    die "usage: $0 up PREFIX N | down PREFIX | exec PREFIX I CMD... | ls [PREFIX]"
    ;;
esac
