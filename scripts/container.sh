#!/usr/bin/env bash
# The ringport container image (the Containerfile at the repository's root): build, prove, push.
#
#   scripts/container.sh context     build the release binary and assemble the image's build
#                                    context in target/container/context (its path on stdout)
#   scripts/container.sh build       context, then build the image IMAGE:VERSION and IMAGE:latest
#                                    with buildah, into the storage in target/container/storage
#   scripts/container.sh test        prove the image works: build it into a storage of its own,
#                                    unpack its root filesystem and run it there under chroot, as
#                                    a container runtime would, with the commands of the pods of
#                                    docs/container.md's Kubernetes example, made short: serve,
#                                    two stress agents as the Indexed Job starts them, merge;
#                                    then remove everything it made
#   scripts/container.sh push DEST   push what `build` made to DEST/ringport:VERSION and
#                                    DEST/ringport:latest (DEST: registry host and path, such as
#                                    registry.example.com/load; log in first: buildah login HOST)
#   scripts/container.sh clean       remove target/container (the storage, the context)
#
# Why chroot: a container cannot be run on the machines this project is tested on (the runtime
# cannot set its rlimits there), so `test` does what a runtime does around the image itself: it
# mounts /proc and the standard /dev nodes, writes /etc/hosts, switches to the image's user and
# starts the image's entrypoint. What it proves is the image: its files, links, user, entrypoint.
#
# Needs buildah (Debian: apt-get install buildah; .ci/run installs it) and, for `test`, root.
# The storage uses buildah's vfs driver under target/container, so nothing outside the
# repository's target directory is touched.
#
# Environment:
#   RINGPORT_IMAGE          the image's local name (default localhost/ringport)
#   RINGPORT_CONTAINER_DIR  the context and storages (default target/container)
#   CARGO_TARGET_DIR        where cargo builds (default target): the binary is its release/ringport
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="${RINGPORT_CONTAINER_DIR:-$repo/target/container}"
image="${RINGPORT_IMAGE:-localhost/ringport}"
target_dir="${CARGO_TARGET_DIR:-target}"
[[ $target_dir == /* ]] || target_dir="$repo/$target_dir" # cargo runs in $repo
bin="$target_dir/release/ringport"
context="$dir/context"

log() { printf '== container: %s\n' "$*" >&2; }
die() { echo "container.sh: $*" >&2; exit 1; }

need_buildah() {
  command -v buildah >/dev/null 2>&1 ||
    die "buildah is missing (Debian: apt-get install buildah; .ci/run installs it)"
}

# buildah with the storage in $1 (vfs: plain directories, works as root anywhere).
bah() {
  local storage=$1
  shift
  buildah --root "$storage/root" --runroot "$storage/run" --storage-driver vfs "$@"
}

version() { "$bin" --version | awk '{print $2}'; }

# Copies the file $1 to the same path under $2, following symbolic links.
copy_at() {
  mkdir -p "$2$(dirname "$1")"
  cp -L "$1" "$2$1"
}

# The shared objects the dynamic executable $1 loads, by absolute path, as ldd names them (the
# loader included; none for a static executable).
shared_objects() {
  local out
  out=$(ldd "$1" 2>&1) || {
    [[ $out == *"not a dynamic executable"* ]] && return 0
    die "ldd $1: $out"
  }
  awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }' <<<"$out"
}

# The build context of the Containerfile: rootfs/ holds every file of the image.
make_context() {
  log "building the release binary"
  (cd "$repo" && cargo build --release --locked -q -p ringport)
  local sh rootfs="$context/rootfs"
  sh=$(command -v dash) || die "dash is missing (the image's /bin/sh; Debian: apt-get install dash)"
  rm -rf "$context"
  mkdir -p "$rootfs/usr/local/bin" "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp"
  chmod 1777 "$rootfs/tmp"
  # The release profile keeps line tables for profiling; the image does without them.
  if command -v strip >/dev/null 2>&1; then
    strip --strip-debug -o "$rootfs/usr/local/bin/ringport" "$bin"
  else
    cp "$bin" "$rootfs/usr/local/bin/ringport"
  fi
  cp -L "$sh" "$rootfs/bin/sh"
  local so
  for so in $(
    shared_objects "$bin"
    shared_objects "$sh"
  ); do
    [[ -e "$rootfs$so" ]] || copy_at "$so" "$rootfs"
  done
  # glibc looks up host names in the order this file gives (its built-in default asks DNS first).
  printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
  cp "$repo/Containerfile" "$context/Containerfile"
  log "context: $(cd "$rootfs" && find . -type f | sort | tr '\n' ' ')"
}

# Builds the image from the context into the storage $1.
build_into() {
  local storage=$1 v
  v=$(version)
  log "building $image:$v"
  bah "$storage" build --quiet --layers=false --build-arg "VERSION=$v" \
    -f "$context/Containerfile" -t "$image:$v" -t "$image:latest" "$context" >/dev/null
  bah "$storage" images "$image" >&2
}

cmd_context() {
  make_context
  echo "$context"
}

cmd_build() {
  need_buildah
  make_context
  build_into "$dir/storage"
}

cmd_push() {
  local dest=${1:-}
  [[ -n $dest ]] || die "push needs a destination: scripts/container.sh push REGISTRY/PATH"
  need_buildah
  local v
  v=$(version)
  bah "$dir/storage" inspect --type image "$image:$v" >/dev/null 2>&1 ||
    die "no image $image:$v in $dir/storage: run scripts/container.sh build first"
  local tag
  for tag in "$v" latest; do
    log "pushing $dest/ringport:$tag"
    bah "$dir/storage" push "$image:$v" "docker://$dest/ringport:$tag"
  done
}

cmd_clean() {
  if grep -q " $dir/" /proc/mounts 2>/dev/null; then
    die "something is still mounted under $dir (see /proc/mounts): not removing it"
  fi
  if command -v buildah >/dev/null 2>&1 && [[ -d "$dir/storage" ]]; then
    bah "$dir/storage" rm --all >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

cmd_test() {
  [[ $(id -u) -eq 0 ]] || die "test needs root (mount, chroot)"
  need_buildah
  local chroot
  chroot=$(command -v chroot) || die "chroot is missing (coreutils)"
  storage="$dir/test-storage" work="$dir/test"
  # Everything below is undone by cleanup when the script exits: on success, failure or
  # interruption (global, so that the EXIT trap still sees them).
  ctr="" root="" serve_pid="" mounts=()
  cleanup() {
    local rc=$?
    if [[ -n $serve_pid ]] && kill -0 "$serve_pid" 2>/dev/null; then
      kill -KILL "$serve_pid" 2>/dev/null || true
      wait "$serve_pid" 2>/dev/null || true
    fi
    local i
    # In the reverse order of mounting: the /dev nodes before /dev.
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
      umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" 2>/dev/null || true
    done
    if ((rc != 0)) && [[ -d $work ]]; then
      # What the processes in the image said, to see why.
      local f
      for f in "$work"/*; do
        [[ -s $f ]] && { echo "-- ${f##*/}:"; tail -n 20 "$f"; }
      done >&2
    fi
    if [[ -n $ctr ]]; then
      bah "$storage" umount "$ctr" >/dev/null 2>&1 || true
      bah "$storage" rm "$ctr" >/dev/null 2>&1 || true
    fi
    if grep -q " $storage/" /proc/mounts; then
      echo "container.sh: still mounted under $storage, left in place" >&2
    else
      rm -rf "$storage" "$work"
    fi
    exit "$rc"
  }
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  [[ -e $storage ]] && { grep -q " $storage/" /proc/mounts && die "$storage is in use"; rm -rf "$storage"; }
  rm -rf "$work"
  mkdir -p "$work"

  # The pods' commands, from docs/container.md's YAML, made short and local (see doc_commands).
  local commands count=400 connections=6
  commands=$(doc_commands "$connections" "$count") || exit 1
  local serve_cmd agent_cmd merge_cmd
  {
    IFS= read -r serve_cmd
    IFS= read -r agent_cmd
    IFS= read -r merge_cmd
  } <<<"$commands"

  make_context
  build_into "$storage"
  local v
  v=$(version)

  # The image as the runtime would see it: its configuration and its root filesystem.
  local entry user uid gid
  entry=$(bah "$storage" inspect --type image --format '{{index .OCIv1.Config.Entrypoint 0}}' "$image:$v")
  mapfile -t image_env < <(bah "$storage" inspect --type image --format '{{range .OCIv1.Config.Env}}{{println .}}{{end}}' "$image:$v" | sed '/^$/d')
  user=$(bah "$storage" inspect --type image --format '{{.OCIv1.Config.User}}' "$image:$v")
  [[ $user =~ ^[0-9]+:[0-9]+$ ]] || die "the image's user is '$user', not UID:GID"
  uid=${user%:*} gid=${user#*:}
  ctr=$(bah "$storage" from --pull=never --name "ringport-test-$$" "$image:$v")
  root=$(bah "$storage" mount "$ctr")
  log "root filesystem: $root; entrypoint $entry; user $user; environment ${image_env[*]}"

  # What a container runtime provides around the image.
  mkdir -p "$root/proc" "$root/dev"
  mount -t proc proc "$root/proc" || die "cannot mount /proc in the image's root"
  mounts+=("$root/proc")
  mount -t tmpfs -o mode=755,nosuid,size=64k tmpfs "$root/dev" || die "cannot mount /dev in the image's root"
  mounts+=("$root/dev")
  local d
  for d in null zero full random urandom; do
    touch "$root/dev/$d"
    mount --bind "/dev/$d" "$root/dev/$d" || die "cannot bind /dev/$d into the image's root"
    mounts+=("$root/dev/$d")
  done
  # The Service name of docs/container.md's example, resolved as the cluster would (to loopback).
  printf '127.0.0.1\tlocalhost\n127.0.0.1\techo.default.svc\n' >"$root/etc/hosts"

  # Runs "$@" in the image: the image's environment (ENV), HOME=/ and the given VAR=VALUE words
  # (the leading ones) and nothing else, under the image's user, with the image's root as /.
  # It replaces the shell it runs in (so that $! is the process in the image): call it in the
  # background or in a subshell.
  in_image() {
    local vars=()
    while [[ $# -gt 0 && $1 == *=* ]]; do
      vars+=("$1")
      shift
    done
    exec env -i HOME=/ "${image_env[@]}" "${vars[@]}" \
      "$chroot" --userspec="$uid:$gid" --groups="$gid" "$root" "$@"
  }

  local said
  said=$(in_image "$entry" --version) || die "the entrypoint $entry does not run"
  # `--version` may add the build's TLS backend after the version: "ringport 0.1.0 (TLS: ...)".
  [[ $said == "ringport $v" || $said == "ringport $v "* ]] ||
    die "the entrypoint says '$said', not 'ringport $v'"

  log "serve: sh -c '$serve_cmd'"
  in_image /bin/sh -c "$serve_cmd" >"$work/serve.out" 2>"$work/serve.err" &
  serve_pid=$!
  local port="" i
  for ((i = 0; i < 200; i++)); do
    port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/serve.out")
    [[ -n $port ]] && break
    kill -0 "$serve_pid" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n $port ]] || die "serve did not say 'listening on' within 20 s"

  # Two agents, started as the Indexed Job starts its pods: the shell turns the 0-based
  # JOB_COMPLETION_INDEX into the 1-based segment, and --start-at starts them together.
  log "two agents (JOB_COMPLETION_INDEX 0 and 1), PORT=$port: sh -c '$agent_cmd'"
  local agents=() start
  start=$(($(date +%s) + 2))
  for i in 0 1; do
    in_image JOB_COMPLETION_INDEX="$i" START_AT="$start" PORT="$port" /bin/sh -c "$agent_cmd" \
      >"$work/agent$i.out" 2>&1 &
    agents+=($!)
  done
  local failed=0
  for i in 0 1; do
    if ! wait "${agents[i]}"; then
      echo "container.sh: agent $i failed (its output follows)" >&2
      failed=1
    fi
  done
  ((failed == 0)) || exit 1
  log "merge: sh -c '$merge_cmd'"
  (in_image /bin/sh -c "$merge_cmd") >"$work/merge.out" 2>&1 ||
    die "ringport merge failed (its output follows)"
  [[ -s "$root/tmp/merged.hlog" ]] || die "merge wrote no /tmp/merged.hlog"

  log "serve stopped with SIGTERM"
  kill -TERM "$serve_pid"
  local serve_rc=0
  wait "$serve_pid" || serve_rc=$?
  serve_pid=""
  cat "$work/serve.out" >&2
  ((serve_rc == 0)) || die "serve exited with $serve_rc after SIGTERM"

  check_results "$root/tmp/merged.json" "$work/serve.out" "$connections" "$count"
  log "the image works: serve, stress (every byte verified), merge; serve stopped cleanly"
}

# The commands of docs/container.md's pods, one a line: the server's (the Deployment's args),
# an agent's (the Indexed Job's) and the merge pod's, each with its values made short and local:
# loopback and a free port (PORT in the agent's environment), C connections of N round trips in
# two segments, /tmp for the shared volume. Every replacement must apply, so a changed example
# fails here until this is changed with it.
doc_commands() {
  python3 - "$repo/docs/container.md" "$1" "$2" <<'EOF'
import json, re, sys

path, connections, count = sys.argv[1], sys.argv[2], sys.argv[3]
blocks = re.findall(r"^```yaml\n(.*?)^```", open(path).read(), re.M | re.S)

def block(kind):
    found = [b for b in blocks if re.search(rf"^kind: {kind}$", b, re.M)]
    if len(found) != 1:
        sys.exit(f"container.sh: {path}: {len(found)} yaml blocks of kind {kind}, expected 1")
    return found[0]

def edit(what, cmd, replacements):
    for old, new, times in replacements:
        if cmd.count(old) != times:
            sys.exit(f"container.sh: {path}: the {what} command has {cmd.count(old)} of {old!r}, "
                     f"expected {times}: {cmd}")
        cmd = cmd.replace(old, new)
    return cmd

# The Deployment: args: ['...'] (a single-quoted flow scalar).
m = re.search(r"^ *args: \['((?:[^']|'')*)'\]$", block("Deployment"), re.M)
serve = m and m.group(1).replace("''", "'")
# The Job: args: then one plain scalar over several lines, folded into one.
m = re.search(r"^( *)args:\n\1- (.*?)\n(?!\1  )", block("Job"), re.M | re.S)
agent = m and " ".join(line.strip() for line in m.group(2).splitlines())
# The merge pod: command: ["sh", "-c", "..."].
m = re.search(r"^ *command: (\[.*\])$", block("Pod"), re.M)
merge = m and json.loads(m.group(1))[2]
if not (serve and agent and merge):
    sys.exit(f"container.sh: {path}: cannot find the serve, agent or merge command")

print(edit("serve", serve, [("--bind 0.0.0.0", "--bind 127.0.0.1 --port 0", 1)]))
print(edit("agent", agent, [
    (" 3333 ", ' "$PORT" ', 1),
    ("--connections 3000", f"--connections {connections}", 1),
    ("--rate 30000 --duration 60", f"--count {count}", 1),
    ("/3 ", "/2 ", 1),
    ("/out/", "/tmp/", 2),
]))
print(edit("merge", merge, [("/out/", "/tmp/", 4)]))
EOF
}

# Checks the merged result $1 against serve's summary in $2: C connections of N round trips each,
# every one verified, and every byte the agents verified is a byte serve echoed.
check_results() {
  local merged=$1 serve_out=$2 connections=$3 count=$4
  python3 - "$merged" "$serve_out" "$connections" "$count" <<'EOF'
import json, re, sys

merged_path, serve_path, connections, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
r = json.load(open(merged_path))
out = open(serve_path).read()
problems = []

def want(what, got, expected):
    if got != expected:
        problems.append(f"{what}: {got!r}, expected {expected!r}")

want("agents merged", len(r.get("merged_from", [])), 2)
want("round trips", r.get("messages"), connections * count)
want("errors", r.get("errors"), 0)
m = re.search(r"summary: .*?: (\d+) connections served, .*?\(exactly (\d+) bytes echoed, (\d+) received\); no connection errors", out)
if not m:
    problems.append("serve's summary line is missing or reports connection errors")
else:
    served, echoed, received = map(int, m.groups())
    want("connections served", served, connections)
    want("bytes echoed (serve)", echoed, received)
    want("bytes echoed (serve) vs verified (stress)", echoed, r.get("bytes"))
if problems:
    sys.exit("container.sh: " + "; ".join(problems))
print(f"checked: {r['messages']} round trips over {connections} connections, {r['bytes']} bytes verified, as many echoed by serve", file=sys.stderr)
EOF
}

case "${1:-}" in
context) cmd_context ;;
build) cmd_build ;;
test) cmd_test ;;
push) cmd_push "${2:-}" ;;
clean) cmd_clean ;;
*)
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
  ;;
esac
