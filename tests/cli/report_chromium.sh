#!/usr/bin/env bash
# `wattwise report` renders in a real browser: headless Chromium loads report.html (plus a probe
# script appended to a copy) and the probe records the laid-out size of every table and plot; the
# baseline, frontier and configuration tables and every plot must be present with a non-zero size,
# and the plots' axis labels must be rendered text. Skips (77) without chromium.
# Usage (ctest): bash report_chromium.sh <wattwise-binary> <source-dir> <shared-data-dir>
source "$(dirname "$0")/../cli_common.sh"
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
  echo "SKIP: no chromium (sudo apt-get install -y chromium, or scripts/install-deps.sh --test as root)"
  exit 77
fi

# A sweep's pareto.csv (2 axes, 6 configurations, one skipped), written as the sweep writes it.
mkdir run
python3 - <<'PY'
import csv
rows = []
cols = ["run", "config", "max_length", "precision", "baseline", "status", "on_frontier", "accuracy", "f1",
        "latency_p50_ms", "latency_p95_ms", "throughput_per_s", "joules_per_example", "joules_per_example_min",
        "joules_per_example_max", "joules_per_correct", "peak_memory_bytes", "gco2e_per_1000", "energy_provenance", "reason"]
data = [("128", "fp32", 0.91, 4.0, 0.50), ("64", "fp32", 0.89, 2.2, 0.27), ("32", "fp32", 0.84, 1.3, 0.15),
        ("128", "fp16", 0.91, 1.5, 0.20), ("64", "fp16", 0.88, 1.0, 0.12)]
w = csv.writer(open("run/pareto.csv", "w", newline=""))
w.writerow(cols)
for i, (n, p, acc, lat, j) in enumerate(data):
    w.writerow(["run", f"c{i:03d}", n, p, "true" if i == 0 else "false", "ok", "true" if i in (3, 4) else "false",
                acc, acc - 0.01, lat, lat * 1.2, 1000 / lat, j, j * 0.95, j * 1.05, j / acc, 1 << 28, j * 0.1,
                "gpu0: measured: nvml total energy counter", ""])
w.writerow(["run", "c005", "32", "fp16", "false", "skipped", "false"] + [""] * 11 + ["", "fp16 needs <a GPU>"])
PY
"$bin" report run >out.txt 2>err.txt
rc=$?
check "wattwise report writes run/report.html" '[ $rc -eq 0 ] && [ -s run/report.html ]'
[ $rc -eq 0 ] || cat err.txt
check "report.html is self-contained (no external src/href)" '! grep -Eq "(src|href)=\"(http|//|file:)" run/report.html'
check "the skip reason is escaped" 'grep -q "fp16 needs &lt;a GPU&gt;" run/report.html'

python3 "$src/tests/tools/chromium_layout.py" "$browser" run/report.html "$work" > probe.json
check "chromium rendered the page" '[ -s probe.json ]'
python3 - probe.json > layout.txt <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
problems = []
for t, rows in (("baseline-table", 2), ("frontier-table", 3), ("configs-table", 7), ("skipped-table", 2)):
    if t not in p["tables"]: problems.append(f"table {t} missing")
    elif min(p["tables"][t][:2]) <= 0 or p["tables"][t][2] != rows: problems.append(f"table {t}: {p['tables'][t]} (want {rows} rows)")
want = {f"plot-{k}_{a}" for k in ("energy_accuracy", "energy_latency") for a in ("max_length", "precision")}
got = {name for name, w, h in p["plots"]}
if got != want: problems.append(f"plots {sorted(got)} != {sorted(want)}")
if any(w < 300 or h < 200 for _, w, h in p["plots"]): problems.append(f"plot sizes {p['plots']}")
if len(p["x_labels"]) != 4 or min(p["x_labels"]) <= 0: problems.append(f"x labels {p['x_labels']}")
if len(p["y_labels"]) != 4 or min(p["y_labels"]) <= 0: problems.append(f"y labels {p['y_labels']}")
if p["frontier_lines"] < 1: problems.append("no frontier line drawn")
print("\n".join(problems) if problems else "ok")
PY
check "tables (baseline, frontier, all, skipped) and 4 plots laid out with non-zero size, labels rendered" \
  '[ "$(cat layout.txt)" = ok ]'
[ "$(cat layout.txt)" = ok ] || cat layout.txt

echo "$fails failed"
[ $fails -eq 0 ]
