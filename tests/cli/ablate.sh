#!/usr/bin/env bash
# `wattwise ablate`: a tiny ablation (the baseline, two changes and a recipe x 2 seeds; tiny models
# on generated data, well under a second a run) writes ablation.csv, runs.csv, metrics.json,
# report.html and the plot with the right rows and numbers; --resume skips the completed runs
# (their metrics.json untouched), runs a missing one again, replaces an unfinished one and continues
# an interrupted one from its checkpoint; Ctrl-C stops the ablation after the run's graceful stop;
# bad specs fail with one line and no folder; examples/ablations/sst2_tiny.toml runs as written, and
# the GPU ablations as far as a CPU can run them.
# Usage (ctest): bash ablate.sh <wattwise-binary> <source-dir> <shared-data-dir>
source "$(dirname "$0")/../cli_common.sh"

python3 "$src/tests/tools/make_cli_data.py" 160
cat > base.toml <<EOF
[run]
device = "cpu"
[model]
tokenizer = "$work/tok"
[data]
path = "$work/train.tsv"
max_length = 16
[train]
batch_size = 8
max_steps = 12
eval_every = 3
lr = 1e-3
checkpoint_every = 6
EOF
mkdir recipes
printf '[train]\nbatch_size = 16\nlabel_smoothing = 0.1\n' > recipes/green.toml
# The loss of an untrained binary classifier is ~0.69: every run meets this target at step 3.
cat > spec.toml <<'EOF'
name = "tiny"
seeds = [1, 2]
target = "loss<=100"

[baseline]
config = "base.toml"

[[change]]
name = "lr_high"
set = { "train.lr" = 3e-3 }

[[change]]
name = "sgd"
set = { train.optimizer = "sgd", train.lr = 0.05 }

[[change]]
name = "green"
recipe = "recipes/green.toml"
EOF

"$bin" ablate spec.toml --runs-dir runs >out.txt 2>err.txt
rc=$?
abl=$(ls -d runs/*_tiny 2>/dev/null | head -1)
check "an ablation of 4 arms x 2 seeds: exit 0, 8 runs trained" \
  '[ $rc -eq 0 ] && [ -n "$abl" ] && [ "$(grep -c ": training$" err.txt)" -eq 8 ] && [ "$(ls -d "$abl"/runs/*_s[12] | wc -l)" -eq 8 ] || { cat err.txt; false; }'
missing=$(for f in spec.toml ablation_plan.json ablation.csv runs.csv metrics.json report.html accuracy_energy.svg \
  accuracy_energy.png; do [ -s "$abl/$f" ] || echo "$f"; done)
check "its files: spec.toml, ablation_plan.json, ablation.csv, runs.csv, metrics.json, report.html, the plot (SVG and PNG)${missing:+ (missing: $missing)}" \
  '[ -n "$abl" ] && [ -z "$missing" ]'
q="[\"']"  # config.toml's strings: either TOML quote
check "each run's config: its seed and name, the change's keys, the target without stopping" \
  'grep -q "^seed = 2$" "$abl"/runs/*_sgd_s2/config.toml && grep -Eq "^optimizer = ${q}sgd${q}$" "$abl"/runs/*_sgd_s2/config.toml &&
   grep -Eq "^name = ${q}sgd_s2${q}$" "$abl"/runs/*_sgd_s2/config.toml && grep -q "^batch_size = 16$" "$abl"/runs/*_green_s1/config.toml &&
   grep -Eq "^target = ${q}loss<=100${q}$" "$abl"/runs/*_baseline_s1/config.toml && grep -q "^stop_at_target = false$" "$abl"/runs/*_baseline_s1/config.toml'
check "ablation.csv and metrics.json: one row per arm, the differences paired by seed, the ranking rule, each run's own peak memory" \
  'python3 - "$abl" <<'"'"'PY'"'"'
import csv, json, math, os, statistics, sys
d = sys.argv[1]
rows = {r["name"]: r for r in csv.DictReader(open(os.path.join(d, "ablation.csv")))}
runs = list(csv.DictReader(open(os.path.join(d, "runs.csv"))))
m = json.load(open(os.path.join(d, "metrics.json")))
assert list(rows) == ["baseline", "lr_high", "sgd", "green"], list(rows)
assert len(runs) == 8 and all(r["status"] == "completed" and os.path.isdir(r["dir"]) for r in runs), runs
assert rows["baseline"]["baseline"] == "true" and rows["baseline"]["delta_accuracy_pts_mean"] == ""
assert rows["green"]["sets"] == "recipe recipes/green.toml; train.batch_size=16; train.label_smoothing=0.1", rows["green"]["sets"]
acc = {(r["change"], int(r["seed"])): float(r["accuracy"]) for r in runs}
energy = {(r["change"], int(r["seed"])): float(r["energy_j"]) for r in runs}
for name in ("lr_high", "sgd", "green"):
    r = rows[name]
    assert r["seeds"] == "2" and r["target_reached"] == "2", r
    deltas = [100 * (acc[(name, s)] - acc[("baseline", s)]) for s in (1, 2)]
    mean = statistics.mean(deltas)
    assert abs(float(r["delta_accuracy_pts_mean"]) - mean) < 1e-4 + 1e-5 * abs(mean), (name, r["delta_accuracy_pts_mean"], mean)
    half = 12.706204736 * statistics.stdev(deltas) / math.sqrt(2)
    assert abs(float(r["delta_accuracy_pts_ci_high"]) - (mean + half)) < 1e-3 + 1e-5 * abs(half), (name, r)
    de = [energy[(name, s)] - energy[("baseline", s)] for s in (1, 2)]
    rel = statistics.mean(de) / statistics.mean(energy[("baseline", s)] for s in (1, 2))
    assert abs(float(r["energy_saved_pct"]) + 100 * rel) < 1e-3 * max(1, abs(100 * rel)), (name, r["energy_saved_pct"], rel)
    for col in ("delta_time_to_target_s_mean", "delta_energy_to_target_j_mean", "delta_peak_memory_bytes_mean",
                "delta_throughput_per_s_mean", "kwh_mean", "gco2e_mean", "accuracy_min", "accuracy_max", "energy_j_min"):
        assert r[col] != "", (name, col)
assert [c["name"] for c in m["changes"]] == list(rows) and len(m["runs"]) == 8
ranked = m["ranked"]
for c in m["changes"][1:]:
    ok = c["metrics"]["delta_accuracy_pts_mean"] >= -0.5 - 1e-9
    assert (c["name"] in ranked) == ok, (c["name"], ranked)
saved = [next(c for c in m["changes"] if c["name"] == n)["metrics"]["energy_saved_pct"] for n in ranked]
assert saved == sorted(saved, reverse=True), saved
assert m["frontier"] and all(rows[n]["on_frontier"] == "true" for n in m["frontier"])
# Each run has its own peak memory: the second baseline run, trained after the first green run
# (batch 16; every seed-1 run comes before the seed-2 runs) in the same process, holds less.
peak = {(r["change"], int(r["seed"])): float(r["peak_memory_bytes"]) for r in runs}
assert peak[("baseline", 2)] < peak[("green", 1)], peak
PY'
check "the terminal shows the table and the ranking" 'grep -q "^Ablation against the baseline" out.txt && grep -q "energy saved at <= 0.5 points accuracy loss:" out.txt'
check "report.html is self-contained and holds the tables and the plot" \
  '! grep -Eq "(src|href)=\"(http|//|file:)" "$abl/report.html" && grep -q "id=\"changes-table\"" "$abl/report.html" &&
   grep -q "id=\"runs-table\"" "$abl/report.html" && grep -q "<svg" "$abl/report.html" && grep -q "Energy saved at" "$abl/report.html"'

# Resumed with nothing to do: every run skipped, no metrics.json rewritten, the summaries again.
stamps() { for f in "$abl"/runs/*/metrics.json; do echo "$f $(stat -c %Y.%y "$f")"; done; }
stamps > before.txt
cp "$abl/ablation.csv" ablation_before.csv
sleep 1
"$bin" ablate --resume "$abl" >out2.txt 2>err2.txt
rc=$?
stamps > after.txt
check "--resume of a finished ablation: exit 0, 8 runs skipped, none trained" \
  '[ $rc -eq 0 ] && [ "$(grep -c ": skipped (completed in " err2.txt)" -eq 8 ] && ! grep -q ": training$" err2.txt || { cat err2.txt; false; }'
check "the runs' metrics.json untouched" 'cmp -s before.txt after.txt'
check "the same ablation.csv" 'cmp -s ablation_before.csv "$abl/ablation.csv"'

# A missing run runs again; a run left unfinished without a checkpoint is replaced; one with a
# checkpoint is continued in place.
rm -rf "$abl"/runs/*_sgd_s2
unfinished=$(ls -d "$abl"/runs/*_green_s1)
rm -rf "$unfinished/metrics.json" "$unfinished/checkpoints"
printf '{"status": "running"}\n' > "$unfinished/status.json"
interrupted=$(ls -d "$abl"/runs/*_lr_high_s1)
rm -rf "$interrupted/metrics.json" "$interrupted/checkpoints/step_12"
printf '{"status": "interrupted"}\n' > "$interrupted/status.json"
grep -v -e "_sgd_s2/" -e "_green_s1/" -e "_lr_high_s1/" before.txt > kept_before.txt
"$bin" ablate --resume "$abl" >out3.txt 2>err3.txt
rc=$?
check "--resume: 5 skipped, the missing and the unfinished runs trained, the interrupted one continued" \
  '[ $rc -eq 0 ] && [ "$(grep -c ": skipped (completed in " err3.txt)" -eq 5 ] && [ "$(grep -c ": training$" err3.txt)" -eq 2 ] &&
   grep -q "sgd seed 2: training" err3.txt && grep -q "green seed 1: removing .*(running, no checkpoint" err3.txt &&
   grep -q "lr_high seed 1: resuming .*(interrupted, with a checkpoint)" err3.txt || { cat err3.txt; false; }'
stamps | grep -v -e "_sgd_s2/" -e "_green_s1/" -e "_lr_high_s1/" > kept_after.txt
check "the 5 completed runs untouched; 8 completed runs again" \
  'cmp -s kept_before.txt kept_after.txt && [ "$(ls "$abl"/runs/*/metrics.json | wc -l)" -eq 8 ] && [ "$(ls -d "$abl"/runs/* | wc -l)" -eq 8 ]'
check "the continued run: resumed once, all 12 steps" \
  '[ "$(json "$interrupted/metrics.json" "m[\"run\"][\"status\"], m[\"run\"][\"resumes\"], m[\"train\"][\"steps\"]")" = "completed 1 12" ]'

# Ctrl-C: the run in progress stops gracefully (checkpoint, metrics.json interrupted), the ablation
# stops with 130 and says how to continue; a dry run of --resume would continue that run.
cat > long.toml <<'EOF'
seeds = [1]
[baseline]
config = "base.toml"
[baseline.set]
"train.max_steps" = 1000000
"train.eval_every" = 0
[[change]]
name = "sgd"
set = { "train.optimizer" = "sgd" }
EOF
set -m  # its own process group: a shell ignores SIGINT in background jobs otherwise
"$bin" ablate long.toml --runs-dir long_runs >/dev/null 2>err_int.txt &
pid=$!
set +m
# Once the first run's folder says it is running, its graceful handler is in place (300 s at most).
for _ in $(seq 3000); do ls long_runs/*_long/runs/*/status.json >/dev/null 2>&1 && break; sleep 0.1; done
kill -INT $pid
for _ in $(seq 3000); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
kill -9 $pid 2>/dev/null
wait $pid
rc=$?
long=$(ls -d long_runs/*_long 2>/dev/null | head -1)
stopped=$(ls -d "$long"/runs/*_s1 2>/dev/null)  # the one run started: the first arm in seed 1's order
arm=$(basename "$stopped" | sed -E 's/^[0-9]{8}T[0-9]{6}Z_(.*)_s1$/\1/')
check "SIGINT: exit 130, the run interrupted with a checkpoint, the way to continue said" \
  '[ $rc -eq 130 ] && grep -q "to continue: wattwise ablate --resume $long" err_int.txt && [ "$(echo "$stopped" | wc -w)" -eq 1 ] &&
   [ "$(json "$stopped/metrics.json" "m[\"run\"][\"status\"]")" = interrupted ] &&
   ls -d "$stopped"/checkpoints/step_* >/dev/null && [ ! -e "$long/ablation.csv" ] || { cat err_int.txt; false; }'
"$bin" ablate --resume "$long" --dry-run 2>err_dry.txt
check "--resume --dry-run: the interrupted run would resume, the other would run" \
  'grep -q "$arm seed 1: would resume from its checkpoint" err_dry.txt && [ "$(grep -c "seed 1: would run$" err_dry.txt)" -eq 1 ] || { cat err_dry.txt; false; }'

# Bad specs and flags: one line naming the file, line and key; exit 1; no folder.
bad() {  # bad NAME EXPECTED-TEXT CHANGES: spec.toml with its changes replaced by CHANGES
  local name=$1 expected=$2
  { sed -n '1,/^\[\[change\]\]/p' spec.toml | head -n -1; printf '%b' "$3"; } > "$name.toml"
  "$bin" ablate "$name.toml" --runs-dir bad_runs 2>"err_$name.txt"
  local rc=$?
  check "bad spec $name: exit 1, one line with '$expected', no folder" \
    '[ $rc -eq 1 ] && [ "$(wc -l < "err_$name.txt")" -eq 1 ] && grep -qF "$expected" "err_$name.txt" && [ ! -e bad_runs ] || { cat "err_$name.txt"; false; }'
}
bad typo "typo.toml:10: unknown key 'train.precison' (did you mean 'train.precision'?)" \
  '[[change]]\nname = "x"\nset = { "train.precison" = "bf16" }\n'
bad twice "twice.toml:12: change name 'x' is already used (twice.toml:9)" \
  '[[change]]\nname = "x"\nset = { "train.lr" = 0.1 }\n[[change]]\nname = "x"\nset = { "train.lr" = 0.2 }\n'
bad recipe "recipe.toml:10: recipe nothere.toml: no such file" '[[change]]\nname = "x"\nrecipe = "nothere.toml"\n'
bad range "range.toml:10: train.batch_size 0 is out of range" '[[change]]\nname = "x"\nset = { "train.batch_size" = 0 }\n'
"$bin" ablate --resume runs/nothing 2>err_resume.txt
check "--resume of a missing folder: exit 1, one line" '[ $? -eq 1 ] && [ "$(wc -l < err_resume.txt)" -eq 1 ] && grep -q "no such ablation folder" err_resume.txt'
"$bin" ablate spec.toml --dry-run --runs-dir dry_runs 2>err_dry_new.txt
check "--dry-run: exit 0, the plan shown, nothing written" \
  '[ $? -eq 0 ] && grep -q "4 arms x 2 seeds = 8 training runs (dry run" err_dry_new.txt && [ ! -e dry_runs ]'

# examples/ablations/sst2_tiny.toml as written, from the repository root, on generated SST-2-shaped
# data with a short budget and one seed.
python3 "$src/tests/tools/make_sst2_like.py" glue/SST-2 3 128 32
(cd "$src" && "$bin" ablate examples/ablations/sst2_tiny.toml --seeds 1 --runs-dir "$work/example_runs" \
   --set data.path="$work/glue/SST-2" --set model.tokenizer="$work/tok" --set train.max_steps=4 \
   --set train.eval_every=2) >out_example.txt 2>err_example.txt
rc=$?
example=$(ls -d example_runs/*_sst2_tiny 2>/dev/null | head -1)
check "examples/ablations/sst2_tiny.toml: 7 arms x 1 seed, ablation.csv and report.html" \
  '[ $rc -eq 0 ] && [ "$(tail -n +2 "$example/ablation.csv" | wc -l)" -eq 7 ] && [ -s "$example/report.html" ] || { tail -5 err_example.txt; false; }'

# The GPU ablations of docs/GUIDELINES.md (scripts/gpu/run.sh's guidelines step), as far as a CPU
# can run them: gpt2_adaptive.toml end to end with the CPU's device and precision, a tiny model on
# the committed tiny BPE and a short baseline (the adaptive arm keeps its own 120 steps), then the
# step's summary script over it; minilm_sst2_green.toml validated up to its first bf16 arm.
(cd "$src" && "$bin" ablate examples/ablations/gpt2_adaptive.toml --seeds 1 --runs-dir "$work/gpu_runs" \
   --set run.device=cpu --set train.precision=fp32 --set model.preset=tiny \
   --set model.tokenizer="$src/tests/fixtures/bpe/tiny" --set data.path="$work/text.txt" \
   --set data.cache_dir="$work/cache" --set data.block_size=16 --set train.batch_size=2 \
   --set train.max_steps=4) >out_gpt2.txt 2>err_gpt2.txt
rc=$?
gpt2=$(ls -d gpu_runs/*_gpt2_adaptive 2>/dev/null | head -1)
check "examples/ablations/gpt2_adaptive.toml on the CPU: 2 arms x 1 seed, the change's 120 adaptive steps" \
  '[ $rc -eq 0 ] && [ "$(tail -n +2 "$gpt2/ablation.csv" | wc -l)" -eq 2 ] &&
   [ "$(json "$(ls "$gpt2"/runs/*_adaptive_accum_s1/metrics.json)" "m[\"train\"][\"steps\"]")" = 120 ] || { tail -5 err_gpt2.txt; false; }'
python3 "$src/scripts/gpu/guidelines_summary.py" "$gpt2" --tokens-or-time-ratio 0.8 >summary_gpt2.txt 2>&1
rc=$?
check "scripts/gpu/guidelines_summary.py over it: both arms, the verdict, the tokens to the baseline's best loss" \
  '[ $rc -eq 0 ] && grep -q "^guidelines gpt2_adaptive: 2 of 2 runs completed" summary_gpt2.txt &&
   grep -q "adaptive_accum: tokens to target .*: \(met\|not met\)$" summary_gpt2.txt &&
   grep -q "seed 1: baseline best .* tokens" summary_gpt2.txt &&
   grep -q "adaptive_accum to the baseline.s best loss: tokens .*, 1 of 1 seeds reached it (bound 0.8x either): \(met\|not met\)$" summary_gpt2.txt ||
   { cat summary_gpt2.txt; false; }'
# Language-modelling runs write train.metric and model.max_positions into config.toml as they
# resolved them (the spec leaves both at their defaults): --resume still knows them as finished.
"$bin" ablate --resume "$gpt2" >out_gpt2_resume.txt 2>err_gpt2_resume.txt
check "--resume of the finished language-modelling ablation: exit 0, both runs skipped, none trained" \
  '[ $? -eq 0 ] && [ "$(grep -c ": skipped (completed in " err_gpt2_resume.txt)" -eq 2 ] && ! grep -q ": training$" err_gpt2_resume.txt ||
   { cat err_gpt2_resume.txt; false; }'
"$bin" init-model --arch bert --preset tiny --tokenizer tok -o tiny_bert --seed 1 >/dev/null 2>&1
(cd "$src" && "$bin" ablate examples/ablations/minilm_sst2_green.toml --dry-run --set run.device=cpu \
   --set model.path="$work/tiny_bert" --set data.path="$work/glue/SST-2") 2>err_minilm.txt
rc=$?
check "examples/ablations/minilm_sst2_green.toml: its baseline validates on the CPU, its bf16 arm needs a GPU" \
  '[ $rc -eq 1 ] && grep -q "minilm_sst2_green.toml:[0-9]*: bf16: train.precision bf16 needs a GPU" err_minilm.txt || { cat err_minilm.txt; false; }'

echo "$fails failed"
[ "$fails" -eq 0 ]
