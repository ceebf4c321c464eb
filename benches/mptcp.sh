#!/usr/bin/env bash
# Multipath TCP against TCP over two paths: echoed Gbit/s of `ringport stress --stream` against
# one `ringport serve --mptcp`, with and without `--mptcp` on the client.
#
# Two test hosts (scripts/netns.sh: network namespaces, no route out): the server at
# 198.18.0.1, the client at 198.18.0.2 with a second address, 198.18.1.2. Each address is a
# path of RATE each way: on both hosts' links an HTB class per address (u32 filters on the
# client's source and the server's destination) holds its traffic to RATE. A TCP connection
# runs over the first path alone; the client's path manager gives an MPTCP connection a second
# subflow from the second address (`ip mptcp endpoint ... subflow`), so it may use both. The
# server serves both kinds from the same `--mptcp` listener. Modes run in interleaved rounds
# (tcp mptcp tcp mptcp ...); the table shows medians over the rounds:
#
#   Gbit/s       echoed bits per second over the load's measured window (its JSON's
#                stream.gbit_per_s: bytes that came back verified, 10^9 bits)
#   x TCP        MPTCP's ratio to TCP, taken round by round (each round's MPTCP figure over
#                the same round's TCP figure): the median and, in brackets, the range
#   joined       second subflows the server accepted per MPTCP connection (its namespace's
#                MPTcpExtMPJoinAckRx), over the rounds
#
# Usage:  benches/mptcp.sh
#         FROM=/tmp/ringport-mptcp-....tsv benches/mptcp.sh   reprint the table of a run
# Environment (defaults in brackets):
#   RATE         each path's rate, each way, as tc takes it                  [200mbit]
#   CONNS        connection counts                                           ["1 4"]
#   DURATION     measured seconds per run                                    [4]
#   WARMUP       discarded seconds per run                                   [1]
#   ROUNDS       interleaved rounds                                          [5]
#   RINGPORT     the ringport binary        [$CARGO_TARGET_DIR or target]/release/ringport
#   NO_BUILD=1   do not build it (it must exist)
#   RESULTS      raw results (TSV)                       [/tmp/ringport-mptcp-<time>.tsv]
#   FROM         run nothing: print the table of this earlier raw results file
#   PAGE         1: also write the table as docs/results/mptcp.md, with the date, machine and
#                command; or a path                                         []
#
# Cost: CONNS x ROUNDS x 2 runs of DURATION + WARMUP seconds plus about 0.5 s each: the
# defaults take about 1 minute. Needs root, iproute2 (ip, tc with htb and u32), MPTCP in the
# kernel (net.mptcp.enabled=1) and python3; the hosts are deleted on exit, also on error or
# Ctrl-C.
set -euo pipefail
# shellcheck source=benches/page.sh
. "$(dirname "$0")/page.sh"
page_init mptcp "Multipath TCP against TCP over two paths" \
  "Echoed Gbit/s of \`ringport stress --stream\` against \`ringport serve --mptcp\` between two test hosts joined by two paths of the same rate (one per client address, each held to the rate both ways by HTB), with and without \`--mptcp\` on the client: a TCP connection runs over one path, an MPTCP connection gets a second subflow over the other. How to run and read it: [Benchmarking](../benchmarking.md#multipath-tcp-benchesmptcpsh)." \
  RATE CONNS DURATION WARMUP ROUNDS RINGPORT
for v in RINGPORT FROM RESULTS; do
  if [[ -n "${!v:-}" && "${!v}" != /* && "${!v}" == */* ]]; then printf -v "$v" '%s' "$PWD/${!v}"; fi
done
cd "$(dirname "$0")/.."
ME=mptcp.sh

RATE=${RATE:-200mbit}
CONNS=${CONNS:-"1 4"}
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-5}
RESULTS=${FROM:-${RESULTS:-/tmp/ringport-mptcp-$(date +%Y%m%d-%H%M%S).tsv}}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
RINGPORT=${RINGPORT:-$TARGET_DIR/release/ringport}

command -v python3 >/dev/null || { echo "$ME: python3 is needed to read the load's JSON" >&2; exit 1; }

if [[ -z "${FROM:-}" ]]; then
[[ $(id -u) == 0 ]] || { echo "$ME: needs root (network namespaces)" >&2; exit 1; }
[[ $(cat /proc/sys/net/mptcp/enabled 2>/dev/null) == 1 ]] ||
  { echo "$ME: MPTCP is off or missing here (sysctl net.mptcp.enabled)" >&2; exit 1; }
if [[ ${NO_BUILD:-0} != 1 ]]; then
  cargo build --release --locked -q -p ringport --bins
fi
[[ -x "$RINGPORT" ]] || { echo "$ME: $RINGPORT is missing" >&2; exit 1; }

PREFIX=rpb-mptcp-$$
SERVER=198.18.0.1
SECOND=198.18.1.2
WORK=$(mktemp -d)
SRV_PID=""
on() { local host=$1; shift; scripts/netns.sh exec "$PREFIX" "$host" "$@"; }
cleanup() {
  if [[ -n "$SRV_PID" ]]; then kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; fi
  scripts/netns.sh down "$PREFIX" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

n_runs=$(( $(wc -w <<<"$CONNS") * ROUNDS * 2 ))
awk -v n="$n_runs" -v d="$DURATION" -v w="$WARMUP" 'BEGIN {
  printf "mptcp.sh: %d runs of %s s + %s s warm-up: about %.0f min\n", n, d, w, n * (d + w + 0.5) / 60 }' >&2

scripts/netns.sh up "$PREFIX" 2 >/dev/null
on 2 ip addr add "$SECOND/15" dev eth0
on 1 ip mptcp limits set subflow 2 add_addr_accepted 2
on 2 ip mptcp limits set subflow 2 add_addr_accepted 2
on 2 ip mptcp endpoint add "$SECOND" dev eth0 subflow
# Two paths of RATE each way: class 10 (the first address, the default), class 20 (the second).
for host in 1 2; do
  match=$([[ $host == 1 ]] && echo dst || echo src)
  on "$host" tc qdisc add dev eth0 root handle 1: htb default 10
  on "$host" tc class add dev eth0 parent 1: classid 1:10 htb rate "$RATE" ceil "$RATE" quantum 60000
  on "$host" tc class add dev eth0 parent 1: classid 1:20 htb rate "$RATE" ceil "$RATE" quantum 60000
  on "$host" tc filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip "$match" "$SECOND/32" flowid 1:20
done

joins() { # the server host's MPTcpExtMPJoinAckRx
  on 1 cat /proc/net/netstat | awk '/^MPTcpExt:/ { if (!n) { for (i = 1; i <= NF; i++) if ($i == "MPJoinAckRx") c = i; n = 1 } else print $c }'
}

on 1 "$RINGPORT" serve --bind "$SERVER" --port 7000 --max-per-ip 0 --mptcp >"$WORK/serve.out" 2>"$WORK/serve.err" &
SRV_PID=$!
for _ in $(seq 100); do grep -qs listening "$WORK/serve.out" && break; sleep 0.1; done
grep -qs listening "$WORK/serve.out" || { echo "$ME: the server did not start: $(cat "$WORK/serve.err")" >&2; exit 1; }

echo -e "mode\tconns\tround\tgbit_per_s\tjoined_per_conn\terrors" >"$RESULTS"
for conns in $CONNS; do
  for round in $(seq 1 "$ROUNDS"); do
    for mode in tcp mptcp; do
      flag=$([[ $mode == mptcp ]] && echo --mptcp || true)
      j0=$(joins)
      status=0
      # shellcheck disable=SC2086
      on 2 "$RINGPORT" stress "$SERVER" 7000 --stream --connections "$conns" --duration "$DURATION" \
        --warmup "$WARMUP" --json - $flag >"$WORK/json" 2>"$WORK/report" </dev/null || status=$?
      j1=$(joins)
      read -r gbit errs < <(python3 - "$WORK/json" "$status" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
    errors = d.get("errors", 0)
    if errors == 0 and sys.argv[2] != "0":
        errors = "exit" + sys.argv[2]
    print(d["stream"]["gbit_per_s"], errors)
except Exception:
    print(0, "FAIL")
PY
)
      if [[ "$errs" == FAIL ]]; then
        echo "$ME: $mode, $conns connection(s): the load wrote no result: $(tail -3 "$WORK/report" | tr '\n' ' ')" >&2
      fi
      # Joins per connection of the run (the probe connection before an MPTCP load is one more).
      awk -v OFS='\t' -v m="$mode" -v c="$conns" -v r="$round" -v g="$gbit" -v j="$((j1 - j0))" -v e="$errs" \
        'BEGIN { printf "%s\t%s\t%s\t%.3f\t%.2f\t%s\n", m, c, r, g, j / c, e }' | tee -a "$RESULTS" >&2
    done
  done
done
page_keep "$RESULTS"
else
page_from "$FROM"
fi

echo
if [[ -n "${FROM:-}" ]]; then
  echo "from $FROM: medians of $(awk -F'\t' 'NR > 1 && $3 > n { n = $3 } END { print n }' "$FROM") interleaved rounds"
else
  echo "$(date -u '+%Y-%m-%d %H:%M UTC') $(uname -r), $(nproc) CPUs; two paths of $RATE each way; \`ringport stress --stream\` with and without \`--mptcp\`; medians of $ROUNDS interleaved rounds of ${DURATION} s (+${WARMUP} s warm-up)"
fi
echo
python3 - "$RESULTS" <<'PY' | page_write
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
conns = sorted({int(r["conns"]) for r in rows})
print("| connections | TCP Gbit/s | MPTCP Gbit/s | MPTCP x TCP | joined per MPTCP connection | errors |")
print("|---:|---:|---:|---|---:|---:|")
for c in conns:
    by = {}
    for r in rows:
        if int(r["conns"]) == c:
            by.setdefault(r["mode"], {})[r["round"]] = r
    tcp, mp = by.get("tcp", {}), by.get("mptcp", {})
    med = lambda d, k: statistics.median(float(r[k]) for r in d.values()) if d else 0.0
    ratios = [float(mp[k]["gbit_per_s"]) / float(tcp[k]["gbit_per_s"])
              for k in mp if k in tcp and float(tcp[k]["gbit_per_s"]) > 0]
    ratio = (f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
             if ratios else "-")
    errors = sum(0 if r["errors"] == "0" else 1 for d in (tcp, mp) for r in d.values())
    print(f"| {c} | {med(tcp, 'gbit_per_s'):.3f} | {med(mp, 'gbit_per_s'):.3f} | {ratio} | "
          f"{med(mp, 'joined_per_conn'):.2f} | {errors} |")
PY
echo
echo "raw: $RESULTS"
