#!/usr/bin/env bash
# Server memory per idle connection: one `ringport serve` process (one worker) holds CONNS idle
# connections opened by the `hold` example (crates/stress/examples/hold.rs) from several
# 127.0.0.x source addresses; the server's RSS before and after, divided by the connections, is
# what each idle connection costs the server's process (the kernel's socket memory is apart:
# `benches/scale.sh` measures that). Every model in MODELS is measured in turn.
#
# Usage:  benches/idle-rss.sh     (from the repository root)
# Environment (defaults in brackets):
#   CONNS        idle connections to hold                  [15000]
#   MODELS       server models                             ["completion threaded"]
#   SOURCES      client source addresses                   [127.0.0.5-127.0.0.9]
#   PORT         the server's port                         [4700]
#   SETTLE       seconds to wait after opening, before the second RSS reading   [2]
#   NO_BUILD=1   do not build (binaries from $CARGO_TARGET_DIR or target)
#   PAGE         1: also write the table as docs/results/idle-rss.md (benches/page.sh); or a path
#
# One process cannot hold more descriptors than its hard open-file limit: CONNS must stay under
# it (`ulimit -Hn`, 20,000 on these machines). Loopback only; both processes are killed at the end.
set -euo pipefail
# shellcheck source=benches/page.sh
. "$(dirname "$0")/page.sh"
page_init idle-rss "Server memory per idle connection" \
  "One \`ringport serve\` process (the completion model with one worker, or the threaded model) holding idle connections opened by the \`hold\` example from several 127.0.0.x addresses: the server's RSS before and after, per connection. The kernel's socket memory is apart ([Scale](../scale.md) measures it)." \
  CONNS MODELS SOURCES SETTLE
cd "$(dirname "$0")/.."

CONNS=${CONNS:-15000}
MODELS=${MODELS:-"completion threaded"}
SOURCES=${SOURCES:-127.0.0.5-127.0.0.9}
PORT=${PORT:-4700}
SETTLE=${SETTLE:-2}
BIN_DIR=${CARGO_TARGET_DIR:-target}/release

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
cleanup() {
  touch "$STOP"
  for p in $HOLD_PID $SRV; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -f "$STOP"
}
trap cleanup EXIT

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

TABLE=$(mktemp)
echo "| model | connections held | server RSS before (KiB) | after (KiB) | bytes per idle connection |" | tee "$TABLE"
echo "|---|---:|---:|---:|---:|" | tee -a "$TABLE"
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
  rm -f "$STOP"
  "$BIN_DIR/examples/hold" "127.0.0.1:$PORT" "$CONNS" --source-ips "$SOURCES" --secs 600 \
    --stop-file "$STOP" >/dev/null 2>&1 &
  HOLD_PID=$!
  # Until the server holds them all (its descriptors), or 60 s.
  for _ in $(seq 1 600); do
    (( $(fds "$SRV") - base_fds >= CONNS )) && break
    kill -0 "$HOLD_PID" 2>/dev/null || break
    sleep 0.1
  done
  sleep "$SETTLE"
  held=$(( $(fds "$SRV") - base_fds ))
  after=$(rss_kib "$SRV")
  awk -v m="$model" -v h="$held" -v b="$before" -v a="$after" 'BEGIN {
    printf "| %s | %d | %d | %d | %.0f |\n", m, h, b, a, (h > 0) ? (a - b) * 1024 / h : 0 }' | tee -a "$TABLE"
  touch "$STOP"
  wait "$HOLD_PID" 2>/dev/null || true
  HOLD_PID=""
  kill "$SRV" 2>/dev/null || true; wait "$SRV" 2>/dev/null || true; SRV=""
done
page_save <"$TABLE"
rm -f "$TABLE"
