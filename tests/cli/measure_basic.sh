#!/usr/bin/env bash
# `wattwise measure` without a GPU: exit codes come back, the summary says the GPU figure is absent,
# the three files are written and parse, run folders are never reused or overwritten.
set -u
bin=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export WW_NVML_LIBRARY=/nonexistent/libnvidia-ml.so.1  # no GPU here, even on a GPU machine
fail() { echo "FAIL: $*"; exit 1; }

"$bin" measure --interval 20 -- sh -c 'exit 3' 2>err.txt
rc=$?
[ "$rc" = 3 ] || fail "sh -c 'exit 3' gave $rc, expected 3"
grep -q "exited with code 3" err.txt || fail "summary lacks the exit code: $(cat err.txt)"

"$bin" measure --interval 50 -- sleep 1 2>err.txt
rc=$?
[ "$rc" = 0 ] || fail "sleep 1 gave $rc"
cat err.txt
grep -q "GPU   absent (no NVML" err.txt || fail "summary does not say the GPU figure is absent"
grep -q "CPU .* J  cpu: estimated: TDP\|CPU .* J  cpu:package-0: measured: RAPL" err.txt ||
  grep -q "CPU .* J  cpu" err.txt || fail "no CPU line"
grep -q "RAM .* J" err.txt || fail "no RAM line"
grep -q "gCO2e" err.txt || fail "no carbon figure"

runs=(runs/*_measure*)
[ "${#runs[@]}" = 2 ] || fail "expected two distinct run folders, got: ${runs[*]}"
last=$(ls -d runs/*_measure* | tail -1)
python3 - "$last" <<'PY' || fail "files do not parse"
import csv, json, sys
run = sys.argv[1]
m = json.load(open(f"{run}/metrics.json"))
assert m["command"] == ["sleep", "1"], m["command"]
assert m["exit_code"] == 0
e = m["energy"]["run"]
assert 0.9 < e["duration_s"] < 5, e["duration_s"]
assert e["gpu_present"] is False and e["gpu_j"] is None
assert e["energy_j"] > 0 and abs(e["energy_j"] - e["cpu_j"] - e["ram_j"]) < 1e-6
assert abs(e["kwh"] - e["energy_j"] / 3.6e6) < 1e-15
assert abs(e["gco2e"] - e["kwh"] * e["carbon"]["pue"] * e["carbon"]["intensity_g_per_kwh"]) < 1e-12
assert all(s["provenance"].startswith(("measured: ", "estimated: ")) for s in e["sources"])
rows = list(csv.DictReader(open(f"{run}/emissions.csv")))
assert len(rows) == 1
r = rows[0]
assert abs(float(r["energy_consumed"]) - e["kwh"]) < 1e-12
assert abs(float(r["emissions"]) - e["gco2e"] / 1000) < 1e-15
assert r["gpu_count"] == "0"
trace = list(csv.DictReader(open(f"{run}/power_trace.csv")))
assert len(trace) >= 10, len(trace)  # 1 s at 50 ms
t = [float(x["time_s"]) for x in trace]
assert t == sorted(t)
print("files ok:", run, len(trace), "trace rows")
PY

# --out: an existing run is never overwritten.
"$bin" measure --out mine -- true 2>/dev/null || fail "--out mine failed"
[ -f mine/metrics.json ] || fail "--out mine wrote no metrics.json"
"$bin" measure --out mine -- true 2>err.txt
rc=$?
[ "$rc" = 1 ] || fail "reusing --out gave $rc, expected 1"
grep -q "refusing to overwrite" err.txt || fail "no refusal message: $(cat err.txt)"

# A command that cannot be started: 127 when there is none, 126 when it is not executable (as a
# shell says); a bad country is refused before anything runs. None of these leaves a run folder.
runs_before=$(ls runs | wc -l)
"$bin" measure -- /nonexistent/command 2>err.txt
[ $? = 127 ] || fail "a missing command should give 127"
printf '#!/bin/sh\nexit 0\n' > not-executable
chmod -x not-executable
"$bin" measure -- ./not-executable 2>err.txt
rc=$?
[ "$rc" = 126 ] || fail "a non-executable command gave $rc, expected 126 (127 is for 'not found')"
grep -q "cannot run './not-executable': Permission denied" err.txt || fail "unclear error: $(cat err.txt)"
"$bin" measure -- "$work" 2>err.txt
rc=$?
[ "$rc" = 126 ] || fail "a folder as the command gave $rc, expected 126"
"$bin" measure --country Narnia -- touch should_not_exist 2>err.txt
[ $? = 1 ] && [ ! -e should_not_exist ] || fail "bad --country must fail before running"
grep -q "unknown country or region 'Narnia'" err.txt || fail "unclear error: $(cat err.txt)"
[ "$(ls runs | wc -l)" = "$runs_before" ] || fail "a command that did not run left a run folder: $(ls runs)"
"$bin" measure --out never -- ./not-executable 2>/dev/null
[ ! -e never ] || fail "--out folder made for a command that could not start was left behind"

# A full disk (EFBIG under ulimit -f; SIGXFSZ must not kill us): the command's exit code wins, our
# failure is one line on stderr, and no half-written run is left (no *.tmp, no folder made for it;
# a given folder keeps only what it had).
# (stderr goes through a pipe: the file-size limit would stop our messages to a file too)
for limit_kib in 0 1; do
  (ulimit -f $limit_kib; exec "$bin" measure --out full$limit_kib -- sh -c 'exit 3') 2>&1 | cat > err.txt
  rc=${PIPESTATUS[0]}
  [ "$rc" = 3 ] || fail "full disk ($limit_kib KiB): got $rc, expected the command's 3"
  grep -q "wattwise measure: error: cannot write the results to full$limit_kib" err.txt ||
    fail "full disk ($limit_kib KiB): no error on stderr: $(cat err.txt)"
  [ ! -e full$limit_kib ] || fail "full disk ($limit_kib KiB): left $(ls -la full$limit_kib)"
done
mkdir given && echo "keep me" > given/notes.txt
(ulimit -f 1; exec "$bin" measure --out given -- sh -c 'exit 3') 2>&1 | cat > err.txt
rc=${PIPESTATUS[0]}
[ "$rc" = 3 ] || fail "full disk into a given folder: got $rc, expected 3"
[ "$(ls given)" = notes.txt ] && [ "$(cat given/notes.txt)" = "keep me" ] ||
  fail "full disk into a given folder: left $(ls given)"
[ -z "$(find . -name '*.tmp')" ] || fail "temporary files left: $(find . -name '*.tmp')"
# A command that succeeded but could not be measured does not exit 0.
(ulimit -f 0; exec "$bin" measure --out full_ok -- true) 2>&1 | cat > err.txt
rc=${PIPESTATUS[0]}
[ "$rc" = 1 ] || fail "full disk after a command that succeeded: got $rc, expected 1 (nothing was measured)"
# A CodeCarbon 3 emissions.csv already in the folder: our row goes under its header.
mkdir shared_cc && printf '%s\n' "run_id,timestamp,duration,project_name,emissions,wue" "abc,2025-01-01T00:00:00,1,codecarbon,0.1,0" \
  > shared_cc/emissions.csv
"$bin" measure --out shared_cc --project mine -- true 2>err.txt
rc=$?
[ "$rc" = 0 ] && [ -s shared_cc/metrics.json ] || fail "CodeCarbon's emissions.csv in --out: rc $rc, $(cat err.txt)"
[ "$(sed -n 3p shared_cc/emissions.csv | cut -d, -f4)" = mine ] && [ "$(wc -l < shared_cc/emissions.csv)" = 3 ] ||
  fail "our row is not under CodeCarbon's header: $(cat shared_cc/emissions.csv)"

# Two runs started together on the same --out: exactly one claims it, the other is refused (the
# folder is claimed with an exclusive create, not checked and then written). Both wait on a FIFO
# the test holds open and start when it writes a line for each: together, without sleeps.
mkfifo gate
exec 3<>gate
for trial in $(seq 40); do
  (read -r _ < gate; exec "$bin" measure --out race$trial -- sh -c 'echo a > /dev/null') 2>err_a.txt &
  a=$!
  (read -r _ < gate; exec "$bin" measure --out race$trial -- sh -c 'echo b > /dev/null') 2>err_b.txt &
  b=$!
  printf 'go\ngo\n' >&3
  wait $a; rc_a=$?
  wait $b; rc_b=$?
  [ "$((rc_a + rc_b))" = 1 ] && [ "$rc_a" = 0 -o "$rc_b" = 0 ] ||
    fail "race $trial: exit codes $rc_a and $rc_b, expected one 0 and one 1"
  cat err_a.txt err_b.txt | grep -q "already holds a run (.*); refusing to overwrite it" ||
    fail "race $trial: the loser gave no refusal"
  winner=$([ "$rc_a" = 0 ] && echo a || echo b)
  python3 -c "import json,sys; m=json.load(open('race$trial/metrics.json')); sys.exit(m['command'][2] != 'echo $winner > /dev/null')" ||
    fail "race $trial: metrics.json is not the winner's"
  [ "$(wc -l < race$trial/emissions.csv)" = 2 ] || fail "race $trial: emissions.csv has other than one row"
done
exec 3>&-
# The measured command gets the user's environment: wattwise re-executes itself with
# OMP_WAIT_POLICY (and perhaps OPENBLAS_CORETYPE) set for its own libraries, and takes them out
# again before it starts anything; a value the user set passes through unchanged.
env -u OMP_WAIT_POLICY -u OPENBLAS_CORETYPE "$bin" measure --out env1 -- env > env1.txt 2>/dev/null ||
  fail "measure -- env failed"
grep -qE "^(OMP_WAIT_POLICY|OPENBLAS_CORETYPE|WW_ADDED_ENV)=" env1.txt &&
  fail "the measured command saw wattwise's own settings: $(grep -E '^(OMP_|OPENBLAS_|WW_ADDED)' env1.txt)"
OMP_WAIT_POLICY=ACTIVE "$bin" measure --out env2 -- env > env2.txt 2>/dev/null || fail "measure -- env failed"
grep -qx "OMP_WAIT_POLICY=ACTIVE" env2.txt || fail "the user's OMP_WAIT_POLICY did not reach the command"
echo "measure_basic: ok"
