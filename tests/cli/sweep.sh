#!/usr/bin/env bash
# `wattwise sweep` on a tiny model on the CPU (generated data, no shared data needed): pareto.csv has
# one row per point of the axes' product with consistent frontier flags, the 16-bit configurations
# are skipped with the reason under --skip-failed (and stop the sweep without it), metrics.json
# matches docs/METRICS.md, the plots and report.html exist; then `wattwise pareto` and
# `wattwise report` over the run, a --config file, and bad input.
# Usage (ctest): bash sweep.sh <wattwise-binary> <source-dir> <shared-data-dir>
source "$(dirname "$0")/../cli_common.sh"

printf '%s\n' '[PAD]' '[UNK]' '[CLS]' '[SEP]' '[MASK]' a the film movie was is very really plot acting \
  good great fine bad awful poor > vocab.txt
python3 - <<'PY'
import random
r = random.Random(3)
filler = "a the film movie was is very really plot acting".split()
words = {1: "good great fine".split(), 0: "bad awful poor".split()}
with open("data.tsv", "w") as f:
    f.write("text\tlabel\n")
    for i in range(60):
        w = [r.choice(filler) for _ in range(r.randint(3, 12))]
        w.insert(r.randint(0, len(w)), r.choice(words[i % 2]))
        f.write(" ".join(w) + f"\t{i % 2}\n")
PY
"$bin" init-model --arch bert --preset tiny --tokenizer vocab.txt --num-labels 2 --max-positions 32 -o model >/dev/null 2>&1
check "a tiny model to sweep" '[ -f model/config.json ]'

# 2 x 2 x 2 x 2 = 16 configurations; fp16 needs a GPU: 8 skipped on the CPU.
"$bin" sweep --model model --data data.tsv --split dev --device cpu --seq-lens 16 8 --layers 2 1 \
  --precisions fp32 fp16 --batch-sizes 1 4 --skip-failed --repeats 2 --min-seconds 0.1 --warmup 1 --runs-dir runs >out.txt 2>err.txt
rc=$?
check "sweep exits 0" '[ $rc -eq 0 ]'
[ $rc -eq 0 ] || cat err.txt
S=$(ls -d runs/*_sweep 2>/dev/null | head -1)
check "run folder runs/<UTC>_sweep" '[[ "$(basename "$S")" =~ ^[0-9]{8}T[0-9]{6}Z_sweep$ ]]'
python3 - "$S/pareto.csv" > csv_check.txt <<'PY'
import csv, itertools, sys
rows = list(csv.DictReader(open(sys.argv[1])))
problems = []
axes = {"layers": ["2", "1"], "max_length": ["16", "8"], "precision": ["fp32", "fp16"], "batch_size": ["1", "4"]}
got = sorted(tuple(r[a] for a in axes) for r in rows)
want = sorted(itertools.product(*axes.values()))
if got != want: problems.append(f"configs {got} != product {want}")
base = [r for r in rows if r["baseline"] == "true"]
if len(base) != 1 or [base[0][a] for a in axes] != ["2", "16", "fp32", "1"]: problems.append(f"baseline {base}")
ok = [r for r in rows if r["status"] == "ok"]
skipped = [r for r in rows if r["status"] == "skipped"]
if {r["precision"] for r in skipped} != {"fp16"} or len(skipped) != 8: problems.append(f"skipped {len(skipped)}")
if not all("needs a GPU" in r["reason"] for r in skipped): problems.append("skip reason lacks 'needs a GPU'")
if any(r["on_frontier"] == "true" or r["tied_with"] for r in skipped): problems.append("a skipped config on the frontier")
# Frontier flags and ties against the definition (accuracy max, J/example min, latency p50 min, the
# last two within their spread over passes, [<m>_min, <m>_max] widened to hold the value): q dominates
# r when at least as good everywhere, better somewhere, and beyond the spread wherever it is better;
# a row only exactly dominated is a tie with the rows that beat it.
header = next(csv.reader(open(sys.argv[1])))
if header[header.index("on_frontier") + 1] != "tied_with": problems.append(f"no tied_with after on_frontier: {header}")
def key(r):
    out = [(-float(r["accuracy"]),) * 3]
    for m in ("joules_per_example", "latency_p50_ms"):
        v = float(r[m])
        out.append((v, min(v, float(r[m + "_min"])), max(v, float(r[m + "_max"]))))
    return out
def relation(q, r):
    a, b = key(q), key(r)
    if any(x[0] > y[0] for x, y in zip(a, b)) or a == b or all(x[0] == y[0] for x, y in zip(a, b)): return None
    return "beyond" if all(x[2] < y[1] for x, y in zip(a, b) if x[0] < y[0]) else "exact"
for r in ok:
    rel = {q["config"]: relation(q, r) for q in ok if q is not r}
    on = "beyond" not in rel.values()
    tied = sorted(c for c, x in rel.items() if x == "exact") if on else []
    if (r["on_frontier"] == "true") != on: problems.append(f"{r['config']}: on_frontier={r['on_frontier']}")
    if r["tied_with"].split() != tied: problems.append(f"{r['config']}: tied_with={r['tied_with']!r}, expected {tied}")
for r in ok:
    for m in ["accuracy", "latency_p50_ms", "latency_p50_ms_min", "latency_p50_ms_max", "latency_p95_ms", "throughput_per_s",
              "throughput_per_s_min", "throughput_per_s_max", "joules_per_example", "joules_per_example_min",
              "joules_per_example_max", "spread_blocks", "peak_memory_bytes", "gco2e_per_1000", "examples"]:
        if r[m] == "" or float(r[m]) < 0: problems.append(f"{r['config']}: {m}={r[m]!r}")
    # Without a GPU energy counter every pass is its own energy block; with one, blocks group passes.
    if not 1 <= float(r["spread_blocks"]) <= float(r["passes"]): problems.append(f"{r['config']}: {r['spread_blocks']} blocks, {r['passes']} passes")
    for m in ["joules_per_example", "latency_p50_ms", "throughput_per_s"]:
        if not (float(r[m + "_min"]) <= float(r[m + "_max"])): problems.append(f"{m} spread inverted")
    if float(r["latency_p50_ms"]) > float(r["latency_p95_ms"]): problems.append("p50 > p95")
    if not r["energy_provenance"]: problems.append("no energy provenance")
print("\n".join(problems) if problems else "ok")
PY
check "pareto.csv: the 16-config product, one baseline, fp16 skipped with the reason, frontier flags right" \
  '[ "$(cat csv_check.txt)" = ok ]'
[ "$(cat csv_check.txt)" = ok ] || cat csv_check.txt
check "metrics.json matches the schema of docs/METRICS.md" \
  'python3 "$src/tests/tools/check_metrics_json.py" sweep "$S/metrics.json" "$src/docs/METRICS.md"'
check "metrics.json: 16 configs, 8 skipped, the frontier listed" \
  '[ "$(json "$S/metrics.json" "m[\"sweep\"][\"configs\"], m[\"sweep\"][\"skipped\"], len(m[\"frontier\"]) > 0")" = "16 8 True" ]'
python3 - "$S" > frontier_json.txt <<'PY'
import csv, json, sys
rows = {r["config"]: r for r in csv.DictReader(open(sys.argv[1] + "/pareto.csv"))}
m = json.load(open(sys.argv[1] + "/metrics.json"))
problems = []
for c in m["configs"]:
    r = rows[c["config"]]
    want = "no" if r["on_frontier"] != "true" else "tie" if r["tied_with"] else "yes"
    if c["frontier"] != want or c.get("tied_with", []) != r["tied_with"].split(): problems.append(f"{c['config']}: {c}")
if sorted(m["frontier"]) != sorted(k for k, r in rows.items() if r["on_frontier"] == "true"): problems.append("frontier list")
print("\n".join(problems) if problems else "ok")
PY
check "metrics.json: configs[].frontier and tied_with as pareto.csv says" '[ "$(cat frontier_json.txt)" = ok ]'
[ "$(cat frontier_json.txt)" = ok ] || cat frontier_json.txt
check "power_trace.csv and emissions.csv" '[ -s "$S/power_trace.csv" ] && [ -s "$S/emissions.csv" ]'
for axis in layers max_length precision batch_size; do
  for kind in energy_accuracy energy_latency; do
    check "$kind"_"$axis plots (PNG signature, SVG with axis labels)" \
      '[ "$(head -c 8 "$S/${kind}_$axis.png" | od -An -tx1 | tr -d " \n")" = 89504e470d0a1a0a ] && grep -q "energy per example (J)" "$S/${kind}_$axis.svg"'
  done
done
check "report.html with the tables and inline plots" \
  'grep -q "id=\"frontier-table\"" "$S/report.html" && [ "$(grep -c "<svg" "$S/report.html")" -eq 8 ]'
check "the frontier table is printed" 'grep -q "Pareto frontier over accuracy:max" out.txt && grep -q "c000\*" out.txt'

# --- without --skip-failed the first failing configuration stops the sweep, naming it ---
"$bin" sweep --model model --data data.tsv --device cpu --precisions fp32 fp16 --repeats 1 --runs-dir runs2 >/dev/null 2>err.txt
check "fp16 on the CPU without --skip-failed: exit 1 naming the config and --skip-failed" \
  '[ $? -eq 1 ] && grep -q "c001 (precision=fp16).*needs a GPU.*--skip-failed" err.txt'
check "a failed sweep removes its run folder (no power_trace.csv without metrics.json)" '[ -d runs2 ] && [ -z "$(ls runs2)" ]'

# --- quantized precisions: int8-weight and int8 quantize (calibrated) on the CPU; fp8 is skipped ---
"$bin" sweep --model model --data data.tsv --device cpu --precisions fp32 int8-weight int8 fp8 --skip-failed \
  --repeats 1 --warmup 0 --runs-dir runs6 --quiet >/dev/null 2>err.txt
check "quantized sweep exits 0" '[ $? -eq 0 ]'
Q=$(ls -d runs6/*_sweep 2>/dev/null | head -1)
python3 - "$Q" > quant_rows.txt <<'PY'
import csv, json, sys
rows = {r["precision"]: r for r in csv.DictReader(open(sys.argv[1] + "/pareto.csv"))}
m = json.load(open(sys.argv[1] + "/metrics.json"))
q = {c["knobs"]["precision"]: c.get("quantization", {}).get("quantization") for c in m["configs"]}
print(rows["int8-weight"]["status"], rows["int8"]["status"], rows["fp8"]["status"], "fp8" in rows["fp8"]["reason"], q["int8-weight"], q["int8"])
PY
check "int8-weight and int8 measured with their quantization recorded, fp8 skipped naming fp8" \
  '[ "$(cat quant_rows.txt)" = "ok ok skipped True int8-weight int8" ]'
[ -s quant_rows.txt ] && cat quant_rows.txt

# --- wattwise pareto over the sweep, other objectives ---
"$bin" pareto "$S" --objectives accuracy:max,throughput_per_s:max --runs-dir runs3 >pareto.txt 2>err.txt
check "pareto exits 0 and writes a new pareto.csv" '[ $? -eq 0 ] && [ -s "$(ls -d runs3/*_pareto | head -1)/pareto.csv" ]'
check "pareto prints the frontier over the objectives" 'grep -q "accuracy:max,throughput_per_s:max" pareto.txt'
# A pareto.csv from before the tied_with column reads (and the new one written has it).
mkdir old_run
python3 - "$S/pareto.csv" old_run/pareto.csv <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
drop = rows[0].index("tied_with")
csv.writer(open(sys.argv[2], "w", newline="")).writerows([r[:drop] + r[drop + 1:] for r in rows])
PY
"$bin" pareto old_run --runs-dir runs3b >pareto_old.txt 2>err.txt
check "pareto reads a pareto.csv without tied_with and writes one with it" \
  '[ $? -eq 0 ] && head -1 "$(ls -d runs3b/*_pareto | head -1)/pareto.csv" | grep -q ",on_frontier,tied_with," || cat err.txt'
"$bin" pareto "$S" --objectives accuracy:max,watts:min --runs-dir runs3 >/dev/null 2>err.txt
check "pareto with an unknown metric: exit 1 naming it" '[ $? -eq 1 ] && grep -q "objective watts: no such metric" err.txt'

# --- wattwise report (writes RUN_DIR/report.html again) ---
rm "$S/report.html"
"$bin" report "$S" >/dev/null 2>err.txt
check "report regenerates report.html" '[ $? -eq 0 ] && grep -q "id=\"configs-table\"" "$S/report.html"'

# --- a --config file; a flag given on the command line wins ---
cat > sweep.toml <<TOML
model = "model"
data = "data.tsv"
device = "cpu"
repeats = 1
warmup = 0
[axes]
max_length = [12, 6]
dynamic_padding = ["on", "off"]
TOML
"$bin" sweep --config sweep.toml --batch-sizes 2 --runs-dir runs4 --quiet >/dev/null 2>err.txt
C=$(ls -d runs4/*_sweep 2>/dev/null | head -1)
python3 -c "import csv; r = list(csv.DictReader(open('$C/pareto.csv'))); print(len(r), *sorted({x['batch_size'] for x in r}), *sorted({x['dynamic_padding'] for x in r}))" > config_rows.txt
check "--config: the file's axes plus --batch-sizes (4 configs)" '[ "$(cat config_rows.txt)" = "4 2 off on" ]'
sed -i "1i bogus = 1" sweep.toml
"$bin" sweep --config sweep.toml --runs-dir runs4 >/dev/null 2>err.txt
check "unknown key in the config file: exit 1 naming file and key" '[ $? -eq 1 ] && grep -q "sweep.toml:.*unknown key .bogus." err.txt'

# --- bad axis values: an error before any run folder ---
"$bin" sweep --model model --data data.tsv --device cpu --layers 3 --runs-dir runs5 >/dev/null 2>err.txt
check "--layers beyond the model: exit 1, no run folder" '[ $? -eq 1 ] && grep -q "the model has 2 encoder layers" err.txt && [ ! -d runs5 ]'
"$bin" sweep --model model --data data.tsv --device cpu --seq-lens 64 --runs-dir runs5 >/dev/null 2>err.txt
check "--seq-lens beyond the positions: exit 1" '[ $? -eq 1 ] && grep -q "max_position_embeddings 32" err.txt'

# --- interrupted (SIGTERM, SIGHUP; Ctrl-C is SIGINT, which a script's background job ignores)
# mid-measurement: the run folder goes, nothing half-written. 2,000 examples at batch 1 keep
# --min-seconds 60 measuring long after the folder appears. ---
python3 -c "
import random; r = random.Random(4)
w = 'a the film movie was is very really plot acting good great fine bad awful poor'.split()
print('text\tlabel'); [print(' '.join(r.choice(w) for _ in range(6)) + '\t%d' % (i % 2)) for i in range(2000)]" > long.tsv
for sig in TERM HUP; do
  "$bin" sweep --model model --data long.tsv --split train --batch-sizes 1 --device cpu --repeats 1 --warmup 0 \
    --min-seconds 60 --runs-dir runs9 --quiet >/dev/null 2>err.txt &
  pid=$!
  for _ in $(seq 400); do ls runs9/*_sweep/power_trace.csv >/dev/null 2>&1 && break; sleep 0.05; done
  check "SIG$sig: the sweep started (its run folder exists)" 'ls runs9/*_sweep/power_trace.csv >/dev/null 2>&1'
  kill -$sig $pid
  wait $pid
  rc=$?
  check "SIG$sig mid-sweep: ends as the signal would ($((128 + $(kill -l $sig)))) and removes its run folder" \
    '[ $rc -eq $((128 + $(kill -l $sig))) ] && [ -z "$(ls runs9)" ]'
done

# --- integers out of range, from the file or a flag: named with the range, nothing runs ---
printf 'model = "model"\ndata = "data.tsv"\ndevice = "cpu"\nwarmup = 99999999999\n' > big.toml
"$bin" sweep --config big.toml --runs-dir runs8 >/dev/null 2>err.txt
check "warmup = 99999999999 in the file: exit 1 naming file, line, key and range; no run folder" \
  '[ $? -eq 1 ] && grep -q "big.toml:4: warmup 99999999999 is out of range (0..1000)" err.txt && [ ! -e runs8 ]'
printf 'model = "model"\ndata = "data.tsv"\n[axes]\nbatch_size = [4, 9223372036854775807]\n' > big.toml
"$bin" sweep --config big.toml --runs-dir runs8 >/dev/null 2>err.txt
check "an axis value out of range in the file: exit 1 naming it" \
  '[ $? -eq 1 ] && grep -q "big.toml:4: axes.batch_size 9223372036854775807 is out of range (1..1048576)" err.txt && [ ! -e runs8 ]'
for flag in "--repeats 0" "--repeats 99999999999" "--warmup -1" "--batch-sizes 0" "--max-examples -1"; do
  "$bin" sweep --model model --data data.tsv --device cpu $flag --runs-dir runs8 >/dev/null 2>err.txt
  check "$flag: usage error naming the flag and its range" \
    '[ $? -eq 2 ] && grep -q -- "^${flag% *}: ${flag#* } is out of range (" err.txt && [ ! -e runs8 ]'
done

# --- --name is a folder-name suffix: nothing is written outside --runs-dir ---
"$bin" sweep --model model --data data.tsv --device cpu --repeats 1 --warmup 0 --runs-dir deep/a/b \
  --name 'x/../../../escaped' >/dev/null 2>err.txt
check "--name with '/': exit 1 naming it, nothing written" \
  '[ $? -eq 1 ] && grep -q "name .x/../../../escaped. must be a plain folder-name suffix" err.txt && [ ! -e deep ] && [ -z "$(find . -name "*escaped*")" ]'
printf 'model = "model"\ndata = "data.tsv"\nname = ".."\n' > name.toml
"$bin" sweep --config name.toml --runs-dir runs8 >/dev/null 2>err.txt
check "name = \"..\" in the file: exit 1 naming file and line" \
  '[ $? -eq 1 ] && grep -q "name.toml:3: name .\.\.. must be a plain folder-name suffix" err.txt && [ ! -e runs8 ]'

echo "$fails failed"
[ $fails -eq 0 ]
