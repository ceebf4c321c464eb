# Results pages, shared by the scripts in benches/ (sourced, not run): with PAGE set, a script
# writes the tables it printed as a page of docs/results/, under what was measured, the date, the
# machine, the kernel and the exact command. PAGE=1 writes docs/results/<name>.md; any other
# value is the page's path (relative to where the script was called from). The page is replaced,
# never appended to. Without PAGE nothing is written.
#
#   page_init NAME TITLE WHAT VAR...   first thing in a script, before it changes directory or
#                                      applies its defaults: the page's name, title and one
#                                      paragraph on what is measured; records the command (each
#                                      VAR the caller set, then the script) and the start time
#   page_keep FILE                     after a run: keeps the run's date, machine and command in
#                                      FILE.page, so that FROM=FILE reprints the page of that run
#   page_from FILE                     with FROM=FILE: the page takes the date, machine and
#                                      command kept in FILE.page (when there is one)
#   ... | page_write                   the tables (Markdown) on stdin: printed, and written as
#                                      the page when PAGE is set
#   ... | page_save                    the same, not printed (the script printed them as it went)
# shellcheck shell=bash

page_init() {
  PAGE_NAME=$1 PAGE_TITLE=$2 PAGE_WHAT=$3
  shift 3
  local repo v q
  repo=$(cd "$(dirname "$0")/.." && pwd)
  PAGE_FILE=""
  case "${PAGE:-}" in
    "") ;;
    1) PAGE_FILE=$repo/docs/results/$PAGE_NAME.md ;;
    /*) PAGE_FILE=$PAGE ;;
    *) PAGE_FILE=$PWD/$PAGE ;;
  esac
  PAGE_CMD=""
  for v in "$@"; do
    if [[ -n "${!v+set}" ]]; then
      q=${!v}
      [[ "$q" =~ ^[A-Za-z0-9_./:,+=-]+$ ]] || q="\"$q\""
      PAGE_CMD+="$v=$q "
    fi
  done
  PAGE_CMD+="benches/$(basename "$0")"
  PAGE_START=$(date -u '+%Y-%m-%d %H:%M')
  PAGE_LOAD0=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo -)
  PAGE_MACHINE="$(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
  PAGE_KERNEL=$(uname -sr)
  PAGE_COMMIT=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || true)
  if [[ -n "$PAGE_COMMIT" ]] && ! git -C "$repo" diff --quiet HEAD 2>/dev/null; then
    PAGE_COMMIT+=" with uncommitted changes"
  fi
  PAGE_DATE=""
}

# The date as `YYYY-MM-DD HH:MM-HH:MM UTC` (the start and now), and the machine with its load.
page_finish_date() {
  if [[ -z "$PAGE_DATE" ]]; then
    PAGE_DATE="$PAGE_START-$(date -u '+%H:%M') UTC"
    PAGE_MACHINE+="; load average $PAGE_LOAD0 at the start, $(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo -) at the end"
  fi
}

page_keep() {
  page_finish_date
  printf 'date\t%s\nmachine\t%s\nkernel\t%s\ncommand\t%s\ncommit\t%s\n' "$PAGE_DATE" \
    "$PAGE_MACHINE" "$PAGE_KERNEL" "$PAGE_CMD" "$PAGE_COMMIT" >"$1.page"
}

page_from() {
  if [[ -f "$1.page" ]]; then
    local k v
    while IFS=$'\t' read -r k v; do
      case "$k" in
        date) PAGE_DATE=$v ;;
        machine) PAGE_MACHINE=$v ;;
        kernel) PAGE_KERNEL=$v ;;
        command) PAGE_CMD=$v ;;
        commit) PAGE_COMMIT=$v ;;
      esac
    done <"$1.page"
  else
    PAGE_DATE="not kept with $(basename "$1")"
    PAGE_MACHINE="not kept" PAGE_KERNEL="not kept" PAGE_CMD="not kept" PAGE_COMMIT=""
  fi
}

page_write() {
  local tables
  tables=$(cat)
  printf '%s\n' "$tables"
  page_save <<<"$tables"
}

page_save() {
  local tables
  tables=$(cat)
  [[ -n "$PAGE_FILE" ]] || return 0
  page_finish_date
  mkdir -p "$(dirname "$PAGE_FILE")"
  {
    echo "# $PAGE_TITLE"
    echo
    echo "$PAGE_WHAT"
    echo
    echo "- date: $PAGE_DATE"
    echo "- machine: $PAGE_MACHINE"
    echo "- kernel: $PAGE_KERNEL"
    echo "- command: \`$PAGE_CMD\`"
    [[ -z "$PAGE_COMMIT" ]] || echo "- ringport: commit $PAGE_COMMIT"
    echo
    printf '%s\n' "$tables"
  } >"$PAGE_FILE"
  echo "page: $PAGE_FILE" >&2
}
