#!/usr/bin/env bash
# Run one test step under a time limit: run_step.sh NAME BUDGET [--no-tests-ok] -- COMMAND...
#
# GNU timeout stops the step and everything it started (its process group: pytest, the workers,
# servers and browsers its tests started) once BUDGET (e.g. 20m) is spent, and kills whatever
# ignores SIGTERM 30 s later: a hang fails the step within its budget instead of running into
# CI's own time limit. With --no-tests-ok, pytest's exit status 5 (no test selected) passes.
set -uo pipefail
name=$1
budget=$2
shift 2
no_tests_ok=0
if [ "${1:-}" = "--no-tests-ok" ]; then
  no_tests_ok=1
  shift
fi
[ "${1:-}" = "--" ] && shift
start=$SECONDS
timeout --kill-after=30s "$budget" "$@"
rc=$?
elapsed=$((SECONDS - start))
case $rc in
  5)
    if [ "$no_tests_ok" = 1 ]; then
      echo "==> $name: no test selected"
      rc=0
    fi
    ;;
  124 | 137)
    echo "==> $name: STOPPED at its time limit of $budget: a test hung, or the step" \
      "outgrew its budget (see the Makefile)" >&2
    ;;
esac
echo "==> $name: exit status $rc after $((elapsed / 60)) min $((elapsed % 60)) s"
exit "$rc"
