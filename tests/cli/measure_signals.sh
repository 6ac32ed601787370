#!/usr/bin/env bash
# Signals sent to `wattwise measure` reach the command, and its fate becomes wattwise's exit code.
set -u
bin=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export WW_NVML_LIBRARY=/nonexistent/libnvidia-ml.so.1
fail() { echo "FAIL: $*"; exit 1; }

wait_for_child() {  # until the measured command runs (its marker file exists)
  for _ in $(seq 100); do [ -e "$1" ] && return 0; sleep 0.05; done
  fail "the command never started"
}

# The command traps SIGTERM and exits 42: that 42 proves the signal was forwarded.
"$bin" measure -- sh -c 'trap "kill \$!; exit 42" TERM; touch started1; sleep 30 >/dev/null 2>&1 & wait' 2>/dev/null &
pid=$!
wait_for_child started1
kill -TERM "$pid"
wait "$pid"
rc=$?
[ "$rc" = 42 ] || fail "SIGTERM: got exit code $rc, expected 42 from the command's trap"

# An untrapped SIGTERM kills the command: 128 + 15.
"$bin" measure -- sh -c 'touch started2; exec sleep 30' 2>/dev/null &
pid=$!
wait_for_child started2
sleep 0.1
kill -TERM "$pid"
wait "$pid"
rc=$?
[ "$rc" = 143 ] || fail "untrapped SIGTERM: got $rc, expected 143"

# SIGINT and SIGHUP are forwarded too (the command starts with default dispositions).
for sig in INT HUP; do
  rm -f started3
  "$bin" measure -- sh -c 'touch started3; exec sleep 30' 2>/dev/null &
  pid=$!
  wait_for_child started3
  sleep 0.1
  kill -"$sig" "$pid"
  wait "$pid"
  rc=$?
  expected=$((128 + $(kill -l "$sig")))
  [ "$rc" = "$expected" ] || fail "SIG$sig: got $rc, expected $expected"
done
ls runs/*/metrics.json >/dev/null || fail "no results written after a signal"
echo "measure_signals: ok"
