# Shared by benches/peers.sh, benches/stream.sh and benches/profile.sh (sourced, not run): where
# the binaries are, how each server is started, and the checks before a run.
#
# Reads PEERS (the peers directory, default ../shared/peers from the repository root), RINGPORT,
# RINGPORT_ARGS, SERVERS, NO_BUILD, CARGO_TARGET_DIR and ME (the calling script's name, for
# messages); sets PEERS (made absolute), RINGPORT, RINGPORT_ARGS and LOAD_BIN, and SRV_PID when a
# server is started. The calling script must already be in the repository root.
#
# A server in SERVERS is a label:
#   ringport            `$RINGPORT serve` with one worker
#   monoio, compio      monoio-echo, compio-echo with their runtime's default ring flags
#                       (URING_FLAGS unset)
#   NAME+FLAGS          the same peer with URING_FLAGS=FLAGS, which monoio-echo and compio-echo
#                       read: monoio+defer, compio+defer (SINGLE_ISSUER | COOP_TASKRUN |
#                       TASKRUN_FLAG | DEFER_TASKRUN, the flags ringport asks for), or +coop
#   tokio               tokio-echo
#   thread-per-client   std-threaded-echo
#   any other NAME      the peer $PEERS/NAME/target/release/NAME (so monoio-echo etc. work too)

PEERS=${PEERS:-../shared/peers}
PEERS=$(cd "$PEERS" 2>/dev/null && pwd || echo "$PEERS")
RINGPORT=${RINGPORT:-${CARGO_TARGET_DIR:-$(pwd)/target}/release/ringport}
RINGPORT_ARGS=${RINGPORT_ARGS:-}
LOAD_BIN=$PEERS/echo-load/target/release/echo-load
SRV_PID=""

peer_of() { # label -> the peer's directory name in $PEERS (ringport for ringport)
  case "${1%%+*}" in
    ringport) echo ringport ;;
    monoio) echo monoio-echo ;;
    compio) echo compio-echo ;;
    tokio) echo tokio-echo ;;
    thread-per-client) echo std-threaded-echo ;;
    *) echo "${1%%+*}" ;;
  esac
}

uring_flags_of() { # label -> URING_FLAGS for it ("" when the label has no +FLAGS)
  if [[ "$1" == *+* ]]; then echo "${1#*+}"; fi
}

binary_for() { # server label -> its executable
  local p; p=$(peer_of "$1")
  if [[ "$p" == ringport ]]; then echo "$RINGPORT"; else echo "$PEERS/$p/target/release/$p"; fi
}

command_for() { # server-label port -> the command line (env sets or clears URING_FLAGS)
  if [[ "$(peer_of "$1")" == ringport ]]; then
    # One worker, like the peers' --threads 1; no per-address cap (all load is 127.0.0.1).
    echo "$RINGPORT serve --port $2 --workers 1 --max-per-ip 0 $RINGPORT_ARGS"
  elif [[ -n "$(uring_flags_of "$1")" ]]; then
    echo "env URING_FLAGS=$(uring_flags_of "$1") $(binary_for "$1") --port $2 --threads 1"
  else
    echo "env -u URING_FLAGS $(binary_for "$1") --port $2 --threads 1"
  fi
}

# Builds ringport and the peers in SERVERS and echo-load (unless NO_BUILD is set; a peer that
# is already built is kept), then checks that every binary is there. With --no-load, echo-load
# is neither built nor needed (stream.sh drives the load with `ringport stress`).
prepare_binaries() {
  local s load=echo-load
  [[ "${1:-}" == --no-load ]] && load=""
  if [[ -z "${NO_BUILD:-}" ]]; then
    for s in $(for s in $SERVERS; do peer_of "$s"; done | awk '!seen[$0]++') $load; do
      if [[ "$s" == ringport ]]; then
        echo "building ringport (release)" >&2
        cargo build --release -q -p ringport
      elif [[ ! -x "$PEERS/$s/target/release/$s" ]]; then
        echo "building $s (release)" >&2
        (cd "$PEERS/$s" && cargo build --release -q)
      fi
    done
  fi
  for s in $SERVERS; do
    [[ -x "$(binary_for "$s")" ]] || { echo "$ME: $(binary_for "$s") is missing (run without NO_BUILD=1 to build it)" >&2; exit 1; }
  done
  [[ -z "$load" || -x "$LOAD_BIN" ]] || { echo "$ME: $LOAD_BIN is missing (run without NO_BUILD=1 to build it)" >&2; exit 1; }
}

# The first port from $1 up on which nothing listens on 127.0.0.1 (other benchmarks may share the
# machine: a server of theirs answering on our port would be measured in place of ours).
free_port() {
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}

# Starts server $1 on port $2 pinned to CPU $3, waits until it accepts (5 s at most), and sets
# SRV_PID; exits the script when the server does not start.
start_server() {
  # shellcheck disable=SC2046
  taskset -c "$3" $(command_for "$1" "$2") >/dev/null 2>&1 &
  SRV_PID=$!
  local _
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && break
    sleep 0.05
  done
  kill -0 "$SRV_PID" 2>/dev/null || { echo "$ME: $1 exited at start ($(command_for "$1" "$2"))" >&2; exit 1; }
}

stop_server() {
  if [[ -n "$SRV_PID" ]]; then kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; fi
  SRV_PID=""
}

# Prints the line above a results table: for FROM=, how many rounds that file holds; otherwise
# when and on what machine it ran, with $1 naming the load (e.g. "ping-pong with echo-load").
print_run_header() {
  if [[ -n "${FROM:-}" ]]; then
    echo "from $FROM: medians of $(awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "round") c = i } NR > 1 && $c > n { n = $c } END { print n }' "$FROM") interleaved rounds"
  else
    echo "$(date -u '+%Y-%m-%d %H:%M UTC') $(uname -r), $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), load average $(cut -d' ' -f1 /proc/loadavg) at the end; $1, 1 thread on CPU $LOAD_CPU; servers 1 thread on CPU $SERVER_CPU; medians of $ROUNDS interleaved rounds of ${DURATION} s (+${WARMUP} s warm-up); +defer: URING_FLAGS=defer${RINGPORT_ARGS:+; ringport serve $RINGPORT_ARGS}"
  fi
}
