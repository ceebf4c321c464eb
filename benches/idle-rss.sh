#!/usr/bin/env bash
# Server memory per idle connection: one `ringport serve` process (one worker) holds CONNS idle
# connections opened by the `hold` example (crates/stress/examples/hold.rs) from several
# 127.0.0.x source addresses, in STEPS equal steps. After each step, hold echoes one message on
# each of 100 connections spread over the first step's (the same traffic on the same
# connections at every step: the later steps' connections never carry a byte) and waits while
# the server's RSS is read. At the first step the 100 echo WARM times: the completion model's
# receives take pool buffers first in, first out, so each of the first rounds writes buffers no
# round wrote before, until the ring has come round; after WARM rounds that fixed cost is in
# every reading alike. Every model in MODELS is measured in turn.
#
# Two figures per model:
#   bytes per idle connection   the slope of the server's RSS against the connections it holds
#                               (a least-squares fit over the steps' readings): what one more
#                               idle connection costs. Fixed costs, paid once whatever the count
#                               (the pool buffers the first echoes touch, a table's first pages,
#                               the first connections' allocator arenas), are in every reading
#                               alike and drop out of the slope.
#   incl. fixed                 the RSS after the last step minus the RSS before the first
#                               connection, divided by the connections: the fixed costs spread
#                               over CONNS (the smaller CONNS, the larger their share).
# The kernel's socket memory is apart (`benches/scale.sh` measures that). RSS moves in pages of
# 4 KiB: at 15,000 connections in 3 steps, one page more or less in a reading moves the slope by
# under 1 byte.
#
# Usage:  benches/idle-rss.sh     (from the repository root)
# Environment (defaults in brackets):
#   CONNS        idle connections to hold                  [15000]
#   STEPS        steps to open them in, at least 2         [3]
#   WARM         rounds of the 100 echoes at the first step [10]
#   MODELS       server models                             ["completion threaded"]
#   SOURCES      client source addresses                   [127.0.0.5-127.0.0.9]
#   PORT         the server's port                         [4700]
#   SETTLE       seconds to wait after each step, before reading the RSS   [2]
#   NO_BUILD=1   do not build (binaries from $CARGO_TARGET_DIR or target)
#   PAGE         1: also write the table as docs/results/idle-rss.md (benches/page.sh); or a path
#
# One process cannot hold more descriptors than its hard open-file limit: CONNS must stay under
# it (`ulimit -Hn`, 20,000 on these machines). Loopback only; both processes are killed at the end.
set -euo pipefail
# shellcheck source=benches/page.sh
. "$(dirname "$0")/page.sh"
page_init idle-rss "Server memory per idle connection" \
  "One \`ringport serve\` process (the completion model with one worker, or the threaded model) holding idle connections opened by the \`hold\` example from several 127.0.0.x addresses, in steps; after each step the same 100 connections of the first step echo one message each (the others never carry a byte; at the first step they echo WARM rounds, so that the pool buffers the echoes write are all written before the first reading), then the server's RSS is read. *Bytes per idle connection* is the slope of the RSS against the connections held (a least-squares fit over the steps): what one more idle connection costs. *Incl. fixed* is the RSS after the last step minus the RSS before the first connection, per connection: it also spreads over the connections what the server pays once (the pool buffers the echoes touch, the tables' first pages). The kernel's socket memory is apart ([Scale](../scale.md) measures it)." \
  CONNS STEPS WARM MODELS SOURCES SETTLE
cd "$(dirname "$0")/.."

CONNS=${CONNS:-15000}
STEPS=${STEPS:-3}
WARM=${WARM:-10}
MODELS=${MODELS:-"completion threaded"}
SOURCES=${SOURCES:-127.0.0.5-127.0.0.9}
PORT=${PORT:-4700}
SETTLE=${SETTLE:-2}
BIN_DIR=${CARGO_TARGET_DIR:-target}/release

if (( STEPS < 2 )); then
  echo "idle-rss.sh: STEPS=$STEPS: a slope needs at least 2 steps" >&2
  exit 1
fi
hard=$(ulimit -Hn)
if [[ "$hard" != unlimited ]] && (( CONNS + 64 > hard )); then
  echo "idle-rss.sh: CONNS=$CONNS does not fit under the hard open-file limit ($hard)" >&2
  exit 1
fi
ulimit -n "$hard"
if [[ -z "${NO_BUILD:-}" ]]; then
  cargo build --release -q -p ringport -p ringport-stress --example hold
fi

SRV=""
HOLD_PID=""
STOP=$(mktemp -u)
STEP=$(mktemp -u)
cleanup() {
  touch "$STOP"
  for p in $HOLD_PID $SRV; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -f "$STOP" "$STEP" "$STEP.part"
}
trap cleanup EXIT

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

TABLE=$(mktemp)
echo "| model | connections held | server RSS before (KiB) | at each step (KiB) | bytes per idle connection | incl. fixed |" | tee "$TABLE"
echo "|---|---:|---:|---:|---:|---:|" | tee -a "$TABLE"
for model in $MODELS; do
  PORT=$((PORT + 1))
  args=(serve --port "$PORT" --model "$model" --idle-timeout 0 --max-per-ip 0
        --max-connections "$((CONNS + 32))")
  [[ "$model" == completion ]] && args+=(--workers 1)
  "$BIN_DIR/ringport" "${args[@]}" >/dev/null 2>&1 &
  SRV=$!
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.05
  done
  kill -0 "$SRV" 2>/dev/null || { echo "idle-rss.sh: the $model server exited at start" >&2; exit 1; }
  sleep 0.5
  base_fds=$(fds "$SRV")
  before=$(rss_kib "$SRV")
  rm -f "$STOP" "$STEP"
  "$BIN_DIR/examples/hold" "127.0.0.1:$PORT" "$CONNS" --source-ips "$SOURCES" --secs 600 \
    --stop-file "$STOP" --steps "$STEPS" --step-file "$STEP" --warm "$WARM" >/dev/null 2>&1 &
  HOLD_PID=$!
  points=""  # "held rss_kib" per step, one a line
  while :; do
    # Until hold has opened the step's connections and echoed on them (it writes STEP), or 120 s.
    for _ in $(seq 1 1200); do
      [[ -e "$STEP" ]] && break
      kill -0 "$HOLD_PID" 2>/dev/null || break
      sleep 0.1
    done
    [[ -e "$STEP" ]] || { echo "idle-rss.sh: hold stopped before its last step" >&2; exit 1; }
    read -r _ opened last <"$STEP"
    # Until the server holds them all (its descriptors), or 60 s.
    for _ in $(seq 1 600); do
      (( $(fds "$SRV") - base_fds >= opened )) && break
      sleep 0.1
    done
    sleep "$SETTLE"
    points+="$(( $(fds "$SRV") - base_fds )) $(rss_kib "$SRV")"$'\n'
    rm -f "$STEP"
    [[ "$last" == 1 ]] && break
  done
  printf '%s' "$points" | awk -v m="$model" -v b="$before" '
    { x[NR] = $1; y[NR] = $2; sx += $1; sy += $2
      steps = steps (NR > 1 ? ", " : "") $2 }
    END {
      n = NR; mx = sx / n; my = sy / n
      for (i = 1; i <= n; i++) { sxy += (x[i] - mx) * (y[i] - my); sxx += (x[i] - mx) ^ 2 }
      slope = (sxx > 0) ? sxy / sxx * 1024 : 0
      fixed = (x[n] > 0) ? (y[n] - b) * 1024 / x[n] : 0
      printf "| %s | %d | %d | %s | %.0f | %.0f |\n", m, x[n], b, steps, slope, fixed }' | tee -a "$TABLE"
  touch "$STOP"
  wait "$HOLD_PID" 2>/dev/null || true
  HOLD_PID=""
  kill "$SRV" 2>/dev/null || true; wait "$SRV" 2>/dev/null || true; SRV=""
done
page_save <"$TABLE"
rm -f "$TABLE"
