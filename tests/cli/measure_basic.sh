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

# A command that cannot be started: 127, and a bad country is refused before anything runs.
"$bin" measure -- /nonexistent/command 2>err.txt
[ $? = 127 ] || fail "a missing command should give 127"
"$bin" measure --country Narnia -- touch should_not_exist 2>err.txt
[ $? = 1 ] && [ ! -e should_not_exist ] || fail "bad --country must fail before running"
grep -q "unknown country or region 'Narnia'" err.txt || fail "unclear error: $(cat err.txt)"
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
