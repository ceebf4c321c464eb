#!/usr/bin/env bash
# The runner of the Windows test programs (cargo's target runner, set by scripts/windows.sh):
# `wine PROGRAM ARGS...`, and once more when the program never started. Under a long test run
# Wine now and then fails to start a program (exit status 1, not a line of output); a test
# program that started has printed its harness's `running N tests` line, and a failure of its
# tests is never retried.
set -uo pipefail
out=$(mktemp)
trap 'rm -f "$out"' EXIT
wine "$@" | tee "$out"
status=${PIPESTATUS[0]}
if [[ $status -ne 0 ]] && ! grep -qE '^running [0-9]+ tests?$' "$out"; then
  echo "wine-run.sh: $(basename "$1") did not start under Wine (exit status $status); once more" >&2
  wine "$@"
  status=$?
fi
exit "$status"
