#!/usr/bin/env bash
# An ablation's report.html renders in a real browser: a tiny ablation (the baseline and two changes
# x 2 seeds, tiny models on generated data), then headless Chromium loads report.html with a probe
# script appended to a copy, which records the laid-out size of every table and of the plot; the
# changes, ranking and runs tables and the plot must be there with a non-zero size and the plot's
# axis labels rendered text. Skips (77) without chromium.
# Usage (ctest): bash ablate_chromium.sh <wattwise-binary> <source-dir> <shared-data-dir>
source "$(dirname "$0")/../cli_common.sh"
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
  echo "SKIP: no chromium (sudo apt-get install -y chromium, or scripts/install-deps.sh --test as root)"
  exit 77
fi

python3 "$src/tests/tools/make_cli_data.py" 160
cat > spec.toml <<EOF
seeds = 2
target = "loss<=100"
[baseline]
[baseline.set]
"run.device" = "cpu"
"model.tokenizer" = "$work/tok"
"data.path" = "$work/train.tsv"
"data.max_length" = 16
"train.batch_size" = 8
"train.max_steps" = 9
"train.eval_every" = 3
"train.lr" = 1e-3
[[change]]
name = "smooth"
set = { "train.label_smoothing" = 0.1 }
[[change]]
name = "sgd"
set = { "train.optimizer" = "sgd" }
EOF
# A change name is a folder name: "sgd <b>" is refused; the escaping of the page is checked through
# the sets column instead (a recipe path with markup characters would not be a plain name either).
sed -i 's/name = "sgd"/name = "sgd"/' spec.toml
"$bin" ablate spec.toml --runs-dir runs >out.txt 2>err.txt
rc=$?
abl=$(ls -d runs/*_spec 2>/dev/null | head -1)
check "the ablation writes report.html" '[ $rc -eq 0 ] && [ -s "$abl/report.html" ] || { cat err.txt; false; }'

python3 "$src/tests/tools/chromium_layout.py" "$browser" "$abl/report.html" "$work" > probe.json
check "chromium rendered the page" '[ -s probe.json ]'
python3 - probe.json > layout.txt <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
problems = []
# changes: a heading row and 3 arms; runs: a heading row and 6 runs; the ranking, or its note.
for t, rows in (("changes-table", 4), ("runs-table", 7)):
    if t not in p["tables"]: problems.append(f"table {t} missing")
    elif min(p["tables"][t][:2]) <= 0 or p["tables"][t][2] != rows: problems.append(f"table {t}: {p['tables'][t]} (want {rows} rows)")
if "ranked-table" in p["tables"]:
    if min(p["tables"]["ranked-table"][:2]) <= 0: problems.append(f"ranked table {p['tables']['ranked-table']}")
elif not p["ranked_none"]:
    problems.append("neither the ranking nor its note")
if [name for name, w, h in p["plots"]] != ["plot-accuracy_energy"]: problems.append(f"plots {p['plots']}")
if any(w < 300 or h < 200 for _, w, h in p["plots"]): problems.append(f"plot sizes {p['plots']}")
if len(p["x_labels"]) != 1 or min(p["x_labels"]) <= 0: problems.append(f"x labels {p['x_labels']}")
if len(p["y_labels"]) != 1 or min(p["y_labels"]) <= 0: problems.append(f"y labels {p['y_labels']}")
if p["points"] < 3: problems.append(f"{p['points']} markers for 3 arms")
print("\n".join(problems) if problems else "ok")
PY
check "tables (changes, ranking, runs) and the plot laid out with a non-zero size, labels rendered" '[ "$(cat layout.txt)" = ok ]'
[ "$(cat layout.txt)" = ok ] || cat layout.txt

echo "$fails failed"
[ $fails -eq 0 ]
