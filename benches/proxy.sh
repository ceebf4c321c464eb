#!/usr/bin/env bash
# What reading a PROXY protocol header costs a connection: churn (`stress
# --messages-per-connection 1`, every connection closed with a reset and replaced) against one
# `ringport serve` and one `ringport serve --proxy-protocol`, each with one worker, the second
# loaded with `stress --proxy-protocol v1` and `v2`. Modes run in interleaved rounds (plain v1 v2
# plain v1 v2 ...); the table shows medians over the rounds:
#
#   conn/s       connections established per second of the measured window (the JSON's
#                churn.connections_per_s), each with one verified round trip
#   x plain      the ratio to the plain server's figure of the same round: the median and, in
#                brackets, the range over the rounds
#
# The client's side is in the figures too: with --proxy-protocol each of its connections makes
# one system call more (the header's send).
#
# Usage:  benches/proxy.sh
#         FROM=/tmp/ringport-proxy-....tsv benches/proxy.sh   reprint the table of a run
# Environment (defaults in brackets):
#   CONNS        connections kept open by the load, each replaced after its round trip  [20]
#   DURATION     measured seconds per run                                                [3]
#   ROUNDS       interleaved rounds                                                      [5]
#   RINGPORT     the ringport binary        [$CARGO_TARGET_DIR or target]/release/ringport
#   NO_BUILD=1   do not build it (it must exist)
#   RESULTS      raw results (TSV)                               [/tmp/ringport-proxy-<time>.tsv]
#   FROM         run nothing: print the table of this earlier raw results file
#   PAGE         1: also write the table as docs/results/proxy.md, with the date, machine and
#                command; or a path                                                     []
#
# Cost: ROUNDS x 3 runs of DURATION seconds plus about 0.5 s each: the defaults take about
# 1 minute. Needs python3.
set -euo pipefail
# shellcheck source=benches/page.sh
. "$(dirname "$0")/page.sh"
page_init proxy "What a PROXY protocol header costs a connection" \
  "Connections per second of churn (one round trip per connection, closed with a reset) against \`ringport serve\` and \`ringport serve --proxy-protocol\` (one worker each, on loopback), the second loaded with \`stress --proxy-protocol v1\` and \`v2\`; interleaved rounds, medians, and each round's ratio to the plain server in the same round." \
  CONNS DURATION ROUNDS RINGPORT NO_BUILD
CONNS=${CONNS:-20}
DURATION=${DURATION:-3}
ROUNDS=${ROUNDS:-5}
repo=$(cd "$(dirname "$0")/.." && pwd)
RINGPORT=${RINGPORT:-${CARGO_TARGET_DIR:-$repo/target}/release/ringport}
RESULTS=${RESULTS:-/tmp/ringport-proxy-$(date +%Y%m%d-%H%M%S).tsv}
FROM=${FROM:-}

if [ -z "$FROM" ]; then
  if [ -z "${NO_BUILD:-}" ]; then
    (cd "$repo" && cargo build --release --locked -q -p ringport)
  fi
  work=$(mktemp -d)
  servers=()
  cleanup() {
    for p in "${servers[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
  }
  trap cleanup EXIT
  "$RINGPORT" serve --port 0 --workers 1 > "$work/plain.out" 2> /dev/null &
  servers+=($!)
  "$RINGPORT" serve --port 0 --workers 1 --proxy-protocol > "$work/proxy.out" 2> /dev/null &
  servers+=($!)
  until grep -qs listening "$work/plain.out" && grep -qs listening "$work/proxy.out"; do
    sleep 0.1
  done
  port_of() { sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$1"; }
  plain=$(port_of "$work/plain.out")
  proxied=$(port_of "$work/proxy.out")
  run() {
    "$RINGPORT" stress 127.0.0.1 "$@" --messages-per-connection 1 --connections "$CONNS" \
      --connect-rate 1000000 --linger0 --duration "$DURATION" --json - 2> /dev/null |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["churn"]["connections_per_s"])'
  }
  printf 'round\tmode\tconn_per_s\n' > "$RESULTS"
  for r in $(seq "$ROUNDS"); do
    printf '%s\tplain\t%s\n' "$r" "$(run "$plain")" >> "$RESULTS"
    printf '%s\tv1\t%s\n' "$r" "$(run "$proxied" --proxy-protocol v1)" >> "$RESULTS"
    printf '%s\tv2\t%s\n' "$r" "$(run "$proxied" --proxy-protocol v2)" >> "$RESULTS"
    echo "round $r of $ROUNDS done" >&2
  done
  page_keep "$RESULTS"
else
  page_from "$FROM"
  RESULTS=$FROM
fi

python3 - "$RESULTS" <<'PY' | page_write
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
by = {}
for r in rows:
    by.setdefault(r["mode"], {})[r["round"]] = float(r["conn_per_s"])
print("| load | conn/s | x plain |")
print("|---|---:|---:|")
for mode, label in [("plain", "serve, plain stress"), ("v1", "serve --proxy-protocol, stress --proxy-protocol v1"), ("v2", "serve --proxy-protocol, stress --proxy-protocol v2")]:
    runs = by.get(mode, {})
    if not runs:
        continue
    med = statistics.median(runs.values())
    ratios = [runs[k] / by["plain"][k] for k in runs if k in by.get("plain", {})]
    cell = "1.00x" if mode == "plain" else f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
    print(f"| {label} | {med:,.0f} | {cell} |")
PY
