#!/usr/bin/env bash
# TLS and WebSocket through an echo server: ringport against tokio + tokio-rustls
# (tokio-tls-echo) and tokio + tokio-tungstenite (tokio-ws-echo), per server core.
#
# Every server runs with one thread pinned to one CPU (SERVER_CPU); the load is `ringport
# stress` with one thread pinned to another (LOAD_CPU), every byte verified. Servers are run in
# interleaved rounds (ringport, peer, ringport, peer ...); the tables show medians over the
# rounds, one table per kind of load:
#
#   ping-pong   `stress --tls --insecure --connections C --size S`: one message in flight per
#               connection; rt/s and the server's CPU µs per round trip
#   stream      `stress --tls --insecure --stream --connections C`: each connection writes
#               continuously (64 KiB chunks in a 256 KiB window); Gbit/s echoed and the server's
#               CPU s per GB echoed (10^9 bytes)
#   churn       `stress --tls --insecure --messages-per-connection 1`: a new connection, hence
#               a full handshake, per message; handshakes/s and the server's CPU µs per
#               handshake. `churn-resumed` adds --tls-resume: sessions resumed from the
#               client's store (the resumed share is in the table)
#   ws          `stress --websocket --connections C --size S`: WebSocket ping-pong (plaintext),
#               rt/s and CPU µs per round trip; at one connection the client's round trip is
#               the limit, at ten the server is busy enough to be measured; only when this ringport has `stress --websocket` and `serve
#               --websocket` (otherwise the script says it skips them)
#
# Server CPU is utime+stime from /proc/PID/stat over the measured window (WARMUP + MARGIN after
# the load starts to MARGIN before its end; MARGIN = 0.2 s, or a fifth of DURATION when
# shorter). The client's CPU is the load's own figure (its JSON's client_cpu_pct) over its whole
# run. Each table has the client's CPU per unit next to the server's; the run is client-bound
# where the client spent as much CPU per round trip (per GB, per handshake) as the server or
# more, and the script ends with one line that says whether any row was.
#
# Crypto providers: ringport uses the backend it was built with (rustls on aws-lc-rs by default;
# *ring* with `cargo build --release -p ringport --no-default-features --features ring`;
# `ringport --version` names it, and so does the header of the tables); the peer uses rustls'
# default provider (aws-lc-rs, through tokio-rustls' default features); the client is STRESS.
# The protocol and cipher suite are the same (TLS 1.3, TLS13_AES_256_GCM_SHA384 by default on
# both); the implementations of the cipher differ. Both servers serve the same certificate
# (ECDSA P-256, made with openssl) and both resume TLS 1.3 sessions from a server-side cache
# (rustls' default).
#
# Usage:  benches/tls.sh                       (on a quiet machine)
#         DURATION=2 WARMUP=0.5 benches/tls.sh   quicker, noisier
#         KINDS=churn benches/tls.sh            one kind
#         FROM=/tmp/ringport-tls-....tsv benches/tls.sh   reprint the tables of a run
#         PAGE=1 benches/tls.sh          also write docs/results/tls.md (benches/page.sh)
# Environment (defaults in brackets):
#   PEERS        the peers directory, each peer its own Cargo project
#                                      [../shared/peers from the repository root]
#   KINDS        what to run: ping-pong stream churn churn-resumed ws
#                                      [ping-pong stream churn churn-resumed ws]
#   SIZES        ping-pong message sizes in bytes                        ["64 4096 65536"]
#   PING_CONNS   ping-pong connection counts                             ["10"]
#   STREAM_CONNS stream connection counts                                ["1 10 100"]
#   CHURN_CONNS  connections open at once under churn                    ["10"]
#   WS_SIZES     WebSocket message sizes                                 ["64 4096 65536"]
#   WS_CONNS     WebSocket connection counts                             ["1 10"]
#   DURATION     measured seconds per run                                [5]
#   WARMUP       discarded seconds per run                               [1]
#   ROUNDS       interleaved rounds                                      [3]
#   SERVER_CPU   CPU for the server                                      [0]
#   LOAD_CPU     CPU for the load                                        [1]
#   PORT_BASE    first TCP port; each run takes the next free one        [18600]
#   RINGPORT     the ringport binary that serves   [$CARGO_TARGET_DIR or target]/release/ringport
#   STRESS       the ringport binary whose `stress` drives the load              [$RINGPORT]
#   NO_BUILD=1   do not build anything (binaries must exist)
#   RESULTS      raw results (TSV)                         [/tmp/ringport-tls-<time>.tsv]
#   FROM         run nothing: print the tables of this earlier raw results file
#   PAGE         1: also write the tables as docs/results/tls.md, with the date, machine and
#                command (with FROM, those of the run, kept in its .page file); or a path  []
#
# Cost: (SIZES x PING_CONNS + STREAM_CONNS + 2 x CHURN_CONNS + WS_SIZES x WS_CONNS) x ROUNDS
# x 2 runs of DURATION + WARMUP seconds plus about 0.3 s each: the defaults (14 x 3 x 2 = 84
# runs of 6.3 s) take about 9 minutes (5 without the WebSocket rows). The script says how long before it starts.
#
# Requires taskset (util-linux), openssl and python3. Everything listens on and connects to
# 127.0.0.1 only; every server started is stopped on exit, also on error or Ctrl-C.
set -euo pipefail
# shellcheck source=benches/page.sh
. "$(dirname "$0")/page.sh"
page_init tls "ringport against other echo servers: TLS and WebSocket" \
  "TLS ping-pong, TLS streams, TLS handshakes (full and resumed) and WebSocket ping-pong through an echo server on one pinned CPU, \`ringport stress\` on another, every byte verified: ringport against tokio + tokio-rustls (TLS) and tokio + tokio-tungstenite (WebSocket), with the server's and the client's CPU per unit of work. ringport is on the crypto backend it was built with (the header names it), the tokio peer on rustls' default (aws-lc-rs). How to run and read it: [Benchmarking](../benchmarking.md#against-other-servers-benches)." \
  PEERS KINDS SIZES PING_CONNS STREAM_CONNS CHURN_CONNS WS_SIZES WS_CONNS DURATION WARMUP ROUNDS SERVER_CPU LOAD_CPU RINGPORT STRESS
# Paths given relative to where the script was called from.
for v in PEERS RINGPORT STRESS FROM RESULTS; do
  if [[ -n "${!v:-}" && "${!v}" != /* && "${!v}" == */* ]]; then printf -v "$v" '%s' "$PWD/${!v}"; fi
  if [[ -n "${!v:-}" && "${!v}" != */* && -e "${!v}" ]]; then printf -v "$v" '%s' "$PWD/${!v}"; fi
done
cd "$(dirname "$0")/.."
ME=tls.sh

KINDS=${KINDS:-"ping-pong stream churn churn-resumed ws"}
SIZES=${SIZES:-"64 4096 65536"}
PING_CONNS=${PING_CONNS:-10}
STREAM_CONNS=${STREAM_CONNS:-"1 10 100"}
CHURN_CONNS=${CHURN_CONNS:-10}
WS_SIZES=${WS_SIZES:-"64 4096 65536"}
WS_CONNS=${WS_CONNS:-"1 10"}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-3}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT_BASE=${PORT_BASE:-18600}
RESULTS=${FROM:-${RESULTS:-/tmp/ringport-tls-$(date +%Y%m%d-%H%M%S).tsv}}
TLS_PEER=tokio-tls-echo
crypto_of() { # a ringport binary -> the crypto backend its --version names
  "$1" --version 2>/dev/null | sed -n 's/.*(TLS: rustls on \(.*\))$/\1/p' | grep . || echo "(unknown)"
}
WS_PEER=tokio-ws-echo

command -v python3 >/dev/null || { echo "$ME: python3 is needed to read the load's JSON" >&2; exit 1; }

if [[ -z "${FROM:-}" ]]; then
SERVERS="ringport $TLS_PEER"
# shellcheck source=benches/peers-common.sh
. benches/peers-common.sh
STRESS=${STRESS:-$RINGPORT}
command -v taskset >/dev/null || { echo "$ME: taskset is not installed (util-linux)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "$ME: openssl is needed to make the servers' certificate" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# WebSocket rows only with a ringport that has them.
WS=""
if [[ " $KINDS " == *" ws "* ]]; then
  if [[ -x "$STRESS" ]] && "$STRESS" stress --help 2>/dev/null | grep -q -- --websocket &&
    [[ -x "$RINGPORT" ]] && "$RINGPORT" serve --help 2>/dev/null | grep -q -- --websocket; then
    WS=1
    SERVERS+=" $WS_PEER"
  else
    echo "$ME: this ringport has no \`stress --websocket\` / \`serve --websocket\`: the WebSocket rows are skipped" >&2
  fi
fi
prepare_binaries --no-load
[[ -x "$STRESS" ]] || { echo "$ME: $STRESS is missing" >&2; exit 1; }
"$STRESS" stress --help 2>/dev/null | grep -q -- '--tls-resume' ||
  { echo "$ME: $STRESS has no \`stress --tls\`: give STRESS= a ringport that has it" >&2; exit 1; }

HZ=$(getconf CLK_TCK)
ticks() { # utime stime of a pid, in clock ticks
  awk '{ sub(/^.*\) /, ""); print $12, $13 }' "/proc/$1/stat"
}
now() { date +%s.%N; }
MARGIN=$(awk -v d="$DURATION" 'BEGIN { m = d / 5; if (m > 0.2) m = 0.2; print m }')

WORK=$(mktemp -d)
LOAD_PID=""
cleanup() {
  if [[ -n "$LOAD_PID" ]]; then kill "$LOAD_PID" 2>/dev/null || true; wait "$LOAD_PID" 2>/dev/null || true; fi
  stop_server
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One certificate and key for every server (the peer needs the key in a file).
openssl req -x509 -nodes -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null

# The server command of label $1 for kind $2 on port $3.
server_command() {
  local ws=""
  [[ "$2" == ws ]] && ws=1
  case "$1" in
    ringport)
      if [[ -n "$ws" ]]; then
        echo "$RINGPORT serve --port $3 --workers 1 --max-per-ip 0 --websocket"
      else
        echo "$RINGPORT serve --port $3 --workers 1 --max-per-ip 0 --tls-cert $WORK/cert.pem --tls-key $WORK/key.pem"
      fi ;;
    "$TLS_PEER") echo "$(binary_for "$1") --port $3 --threads 1 --cert $WORK/cert.pem --key $WORK/key.pem" ;;
    "$WS_PEER") echo "$(binary_for "$1") --port $3 --threads 1" ;;
  esac
}

# Starts label $1 for kind $2 on port $3, pinned to SERVER_CPU; sets SRV_PID.
start() {
  # shellcheck disable=SC2046
  taskset -c "$SERVER_CPU" $(server_command "$1" "$2" "$3") >/dev/null 2>&1 &
  SRV_PID=$!
  local _
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$3") 2>/dev/null && break
    sleep 0.05
  done
  kill -0 "$SRV_PID" 2>/dev/null || { echo "$ME: $1 exited at start ($(server_command "$1" "$2" "$3"))" >&2; exit 1; }
}

# The rows: kind size conns.
rows=()
for k in $KINDS; do
  case "$k" in
    ping-pong) for s in $SIZES; do for c in $PING_CONNS; do rows+=("ping-pong $s $c"); done; done ;;
    stream) for c in $STREAM_CONNS; do rows+=("stream 65536 $c"); done ;;
    churn | churn-resumed) for c in $CHURN_CONNS; do rows+=("$k 64 $c"); done ;;
    ws) if [[ -n "$WS" ]]; then for s in $WS_SIZES; do for c in $WS_CONNS; do rows+=("ws $s $c"); done; done; fi ;;
    *) echo "$ME: unknown kind $k (ping-pong, stream, churn, churn-resumed, ws)" >&2; exit 2 ;;
  esac
done
[[ ${#rows[@]} -gt 0 ]] || { echo "$ME: nothing to run" >&2; exit 1; }

awk -v n="$(( ${#rows[@]} * ROUNDS * 2 ))" -v d="$DURATION" -v w="$WARMUP" 'BEGIN {
  printf "tls.sh: %d runs of %s s + %s s warm-up: about %.0f min\n", n, d, w, n * (d + w + 0.3) / 60 }' >&2

echo -e "kind\tsize\tconns\tserver\tround\trate\tunits\tserver_cpu_share\tserver_cpu_per_unit\tload_cpu_share\tload_cpu_per_unit\tresumed_share\terrors" >"$RESULTS"
port=$PORT_BASE
for row in "${rows[@]}"; do
  read -r kind size conns <<<"$row"
  peer=$TLS_PEER
  [[ "$kind" == ws ]] && peer=$WS_PEER
  for round in $(seq 1 "$ROUNDS"); do
    for s in ringport "$peer"; do
      port=$(free_port $((port + 1)))
      start "$s" "$kind" "$port"
      args=(--connections "$conns" --duration "$DURATION" --warmup "$WARMUP" --threads 1 --json -)
      case "$kind" in
        ping-pong) args+=(--tls --insecure --size "$size") ;;
        stream) args+=(--tls --insecure --stream) ;;
        churn) args+=(--tls --insecure --size "$size" --messages-per-connection 1) ;;
        churn-resumed) args+=(--tls --insecure --size "$size" --messages-per-connection 1 --tls-resume) ;;
        ws) args+=(--websocket --size "$size") ;;
      esac
      taskset -c "$LOAD_CPU" "$STRESS" stress 127.0.0.1 "$port" "${args[@]}" \
        >"$WORK/json" 2>"$WORK/report" </dev/null &
      LOAD_PID=$!
      sleep "$(awk -v w="$WARMUP" -v m="$MARGIN" 'BEGIN { print w + m }')"
      read -r u0 k0 < <(ticks "$SRV_PID"); t0=$(now)
      sleep "$(awk -v d="$DURATION" -v m="$MARGIN" 'BEGIN { print d - 2 * m }')"
      read -r u1 k1 < <(ticks "$SRV_PID"); t1=$(now)
      status=0
      wait "$LOAD_PID" || status=$?
      LOAD_PID=""
      stop_server
      # The load's JSON -> rate (per second: round trips, Gbit, handshakes), units per second
      # for the CPU figures (round trips, GB, handshakes), the client's CPU share, the resumed
      # share of the handshakes, errors ("FAIL" when it wrote none).
      read -r rate units lcpu resumed errs < <(python3 - "$WORK/json" "$status" "$kind" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
    kind = sys.argv[3]
    errors = d.get("errors", 0)
    if errors == 0 and sys.argv[2] != "0":
        errors = "exit" + sys.argv[2]
    tls = d.get("tls") or {}
    resumed = tls.get("resumed", 0) / tls["handshakes"] if tls.get("handshakes") else 0
    if kind == "stream":
        rate = d["stream"]["gbit_per_s"]
        units = rate / 8
    elif kind.startswith("churn"):
        rate = tls["handshakes_per_s"]
        units = rate
    else:
        rate = d["msgs_per_s"]
        units = rate
    print(rate, units, sum(d.get("client_cpu_pct") or [0]) / 100, resumed, errors)
except Exception:
    print(0, 0, 0, 0, "FAIL")
PY
)
      if [[ "$errs" == FAIL ]]; then
        echo "$ME: $s, $kind $size B, $conns connection(s): the load wrote no result: $(tail -3 "$WORK/report" | tr '\n' ' ')" >&2
      fi
      # CPU per unit: µs per round trip or handshake, s per GB.
      awk -v OFS='\t' -v kind="$kind" -v size="$size" -v c="$conns" -v s="$s" -v r="$round" \
          -v rate="$rate" -v units="$units" -v u="$((u1 - u0))" -v k="$((k1 - k0))" -v hz="$HZ" \
          -v t0="$t0" -v t1="$t1" -v l="$lcpu" -v res="$resumed" -v e="$errs" 'BEGIN {
        share = (t1 > t0) ? (u + k) / hz / (t1 - t0) : 0
        scale = (kind == "stream") ? 1 : 1e6
        per = (units > 0) ? share / units * scale : 0
        lper = (units > 0) ? l / units * scale : 0
        printf "%s\t%s\t%s\t%s\t%s\t%.3f\t%.3f\t%.3f\t%.4f\t%.3f\t%.4f\t%.3f\t%s\n",
          kind, size, c, s, r, rate, units, share, per, l, lper, res, e
      }' | tee -a "$RESULTS" >&2
    done
  done
done
page_keep "$RESULTS"
else
page_from "$FROM"
fi

# One kind's rows of the raw results, as a file of their own (for best-peer.py).
only() {
  awk -F'\t' -v k="$1" 'NR == 1 || $1 == k' "$RESULTS" >"$2"
}
TABLES=$(mktemp -d)
trap 'rm -rf "$TABLES"; [[ -n "${WORK:-}" ]] && cleanup' EXIT

echo
print_run_header_tls() {
  if [[ -n "${FROM:-}" ]]; then
    echo "from $FROM: medians of $(awk -F'\t' 'NR > 1 && $5 > n { n = $5 } END { print n }' "$FROM") interleaved rounds"
  else
    echo "$(date -u '+%Y-%m-%d %H:%M UTC') $(uname -r), $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), load average $(cut -d' ' -f1 /proc/loadavg) at the end; \`ringport stress\`, 1 thread on CPU $LOAD_CPU; servers 1 thread on CPU $SERVER_CPU; medians of $ROUNDS interleaved rounds of ${DURATION} s (+${WARMUP} s warm-up); ringport on rustls' $(crypto_of "$RINGPORT") provider, $TLS_PEER on rustls' default (aws-lc-rs)"
  fi
}
print_run_header_tls
{
  for kind in ping-pong stream churn churn-resumed ws; do
    only "$kind" "$TABLES/$kind.tsv"
    [[ $(wc -l <"$TABLES/$kind.tsv") -gt 1 ]] || continue
    case "$kind" in
      ping-pong) title="TLS ping-pong"; m=("rate:high:rt/s:,.0f" "server_cpu_per_unit:low:CPU µs/rt:.2f"); i=("load_cpu_per_unit:client CPU µs/rt:.2f") ;;
      stream) title="TLS streams"; m=("rate:high:Gbit/s:.2f" "server_cpu_per_unit:low:CPU s/GB:.3f"); i=("load_cpu_per_unit:client CPU s/GB:.3f") ;;
      churn) title="TLS handshakes, full (one message per connection)"; m=("rate:high:handshakes/s:,.0f" "server_cpu_per_unit:low:CPU µs/handshake:.1f"); i=("load_cpu_per_unit:client CPU µs/handshake:.1f") ;;
      churn-resumed) title="TLS handshakes, resumed (--tls-resume)"; m=("rate:high:handshakes/s:,.0f" "server_cpu_per_unit:low:CPU µs/handshake:.1f"); i=("load_cpu_per_unit:client CPU µs/handshake:.1f" "resumed_share:resumed:.0%") ;;
      ws) title="WebSocket ping-pong"; m=("rate:high:rt/s:,.0f" "server_cpu_per_unit:low:CPU µs/rt:.2f"); i=("load_cpu_per_unit:client CPU µs/rt:.2f") ;;
    esac
    args=()
    for x in "${m[@]}"; do args+=(--metric "$x"); done
    for x in "${i[@]}"; do args+=(--info "$x"); done
    args+=(--info "server_cpu_share:server CPU:.0%" --info "load_cpu_share:client CPU:.0%")
    echo
    echo "### $title"
    echo
    python3 benches/best-peer.py "$TABLES/$kind.tsv" --subject ringport --keys "size conns" "${args[@]}"
  done
  echo
  # Client-bound rows: the client's median CPU per unit not below the server's.
  python3 - "$RESULTS" <<'PY'
import csv, statistics, sys
rows = {}
for r in csv.DictReader(open(sys.argv[1]), delimiter="\t"):
    key = (r["kind"], r["size"], r["conns"], r["server"])
    rows.setdefault(key, []).append((float(r["server_cpu_per_unit"]), float(r["load_cpu_per_unit"])))
bound = []
for (kind, size, conns, server), v in sorted(rows.items()):
    srv = statistics.median(x for x, _ in v)
    cli = statistics.median(y for _, y in v)
    if cli >= srv:
        bound.append(f"{kind} {size} B x {conns} against {server} (client {cli:.3g}, server {srv:.3g})")
if bound:
    print("Client-bound: the client's CPU per unit of work was not below the server's in " +
          f"{len(bound)} row(s): " + "; ".join(bound) + ". Those rows measure the client as much as the server.")
else:
    print("Not client-bound: the client's CPU per round trip, per GB and per handshake was below the server's in every row.")
PY
} | page_write
echo
echo "raw: $RESULTS"
