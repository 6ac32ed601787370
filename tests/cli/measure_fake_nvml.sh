#!/usr/bin/env bash
# `wattwise measure` with the fake NVML (tests/tools/fake_nvml.cpp) standing in for a GPU: the GPU
# figure comes from the energy counter and matches the scripted power; without a counter it is
# integrated from power samples.
set -u
bin=$1
fake="$(dirname "$bin")/tests/libfake_nvml.so"
if [ ! -f "$fake" ]; then echo "skipped: $fake not built"; exit 77; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*"; exit 1; }
export WW_NVML_LIBRARY="$fake" WW_FAKE_NVML_POWER_W=300

"$bin" measure --interval 20 --out counter -- sleep 0.5 2>err.txt || fail "measure failed"
cat err.txt
grep -q "GPU .* J  gpu0 Fake NVIDIA GPU: measured: nvml total energy counter" err.txt ||
  fail "GPU line missing or without provenance"
WW_FAKE_NVML_ENERGY=unsupported "$bin" measure --interval 20 --out power -- sleep 0.5 2>err.txt ||
  fail "measure failed"
grep -q "trapezoid integration (no energy counter on this GPU)" err.txt || fail "$(cat err.txt)"
python3 - <<'PY' || fail "GPU energy off"
import csv, json
for run in ("counter", "power"):
    e = json.load(open(f"{run}/metrics.json"))["energy"]["run"]
    expected = 300 * e["duration_s"]
    assert abs(e["gpu_j"] - expected) < 0.02 * expected, (run, e["gpu_j"], expected)
    trace = list(csv.DictReader(open(f"{run}/power_trace.csv")))
    assert float(trace[-1]["gpu0_power_w"]) == 300.0
    assert json.load(open(f"{run}/metrics.json"))["host"]["gpu_model"] == "1 x Fake NVIDIA GPU"
    row = next(csv.DictReader(open(f"{run}/emissions.csv")))
    assert row["gpu_count"] == "1" and float(row["gpu_energy"]) > 0
print("fake NVML ok")
PY
echo "measure_fake_nvml: ok"
