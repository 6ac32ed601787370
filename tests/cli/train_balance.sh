#!/usr/bin/env bash
# `wattwise train --data.balance classes` on an unbalanced file (1 positive in 6): every training
# batch of the exported plan holds both classes equally, an epoch is 2 x the larger class's count,
# and the option's misuse (with length bucketing, on a language-modelling run) is one line before
# any run folder. Then `--train.class_weights`: balanced on the same file trains with scikit-learn's
# weights of the training examples, recorded in metrics.json (as docs/METRICS.md documents) and
# config.toml; an explicit list is used as given; a wrong count, a weight <= 0, balanced with a class
# absent from the training split, a language-modelling run: one line naming the key, no run folder.
# Usage (ctest): bash train_balance.sh <wattwise-binary> <source-dir> <shared-data-dir>
source "$(dirname "$0")/../cli_common.sh"

python3 "$src/tests/tools/make_cli_data.py" 160
python3 - <<'PY'
import random
r = random.Random(3)
with open("unbalanced.tsv", "w") as f:
    f.write("text\tlabel\n")
    for i in range(96):
        label = 1 if i % 6 == 0 else 0
        f.write(f"{'good' if label else 'bad'} film {r.choice(['a', 'the', 'plot'])}\t{label}\n")
PY
runs=$work/runs
common=(--model.tokenizer "$work/tok" --data.max_length 16 --run.progress none --run.output_dir "$runs" --run.device cpu
        --train.batch_size 8)
run_of() { ls -d "$runs/"*_"$1" 2>/dev/null | head -1; }

"$bin" train --data.path unbalanced.tsv "${common[@]}" --train.epochs 1 --data.balance classes --run.export_plan true \
  --run.name balanced 2> err_balanced
B=$(run_of balanced)
check "data.balance classes: every batch 4 + 4, one epoch of 2 x the larger class, its examples each once" \
  'python3 - "$B" <<'"'"'PY'"'"'
import collections, json, sys
run = sys.argv[1]
train = [json.loads(line) for line in open(f"{run}/plan/train.jsonl")]
batches = [json.loads(line)["indices"] for line in open(f"{run}/plan/batches.jsonl")]
counts = collections.Counter(e["label"] for e in train)
larger = max(counts.values())
assert sum(len(b) for b in batches) == 2 * larger, (len(batches), counts)
for b in batches:
    labels = collections.Counter(train[i]["label"] for i in b)
    assert labels[0] == labels[1] == len(b) // 2, labels
uses = collections.Counter(i for b in batches for i in b)
major = max(counts, key=counts.get)
assert all(uses[i] == 1 for i, e in enumerate(train) if e["label"] == major), uses
m = json.load(open(f"{run}/metrics.json"))
assert m["train"]["examples"] == 2 * larger, (m["train"]["examples"], larger)
print("  %d examples (%s), one epoch of %d in %d batches" % (len(train), dict(counts), 2 * larger, len(batches)))
PY' || { cat err_balanced; false; }

"$bin" train --data.path unbalanced.tsv "${common[@]}" --train.max_steps 2 --data.balance classes \
  --data.length_bucketing true --run.name bucketed 2> err_bucketed
check "with length bucketing: exit 1, one line naming both keys, no run folder" \
  '[ $? -eq 1 ] && [ "$(wc -l < err_bucketed)" -eq 1 ] && grep -q "data.balance classes and data.length_bucketing" err_bucketed &&
   [ -z "$(run_of bucketed)" ] || { cat err_bucketed; false; }'
"$bin" train --model.arch gpt2 --model.preset tiny --model.tokenizer "$src/tests/fixtures/bpe/tiny" --data.path "$work/text.txt" \
  --data.block_size 32 --data.cache_dir "$work/cache" --run.progress none --run.output_dir "$runs" --run.device cpu \
  --train.max_steps 2 --data.balance classes --run.name lm 2> err_lm
check "on a language-modelling run: exit 1, saying there are no classes" \
  '[ $? -eq 1 ] && grep -q "data.balance classes: language modelling has no classes to balance" err_lm && [ -z "$(run_of lm)" ] || { cat err_lm; false; }'
"$bin" train --data.path unbalanced.tsv "${common[@]}" --train.max_steps 2 --data.balance weights --run.name bad 2> err_bad
check "an unknown value: exit non-zero naming the choices" '[ $? -ne 0 ] && grep -q "data.balance" err_bad && grep -q "classes" err_bad'

# --- class weights in the loss ---
"$bin" train --data.path unbalanced.tsv "${common[@]}" --train.epochs 1 --train.class_weights balanced \
  --run.export_plan true --run.name weighted 2> err_weighted
W=$(run_of weighted)
check "train.class_weights balanced: n / (2 x count) of the training examples in metrics.json and config.toml" \
  'python3 - "$W" <<'"'"'PY'"'"'
import collections, json, math, sys
run = sys.argv[1]
train = [json.loads(line) for line in open(f"{run}/plan/train.jsonl")]
counts = collections.Counter(e["label"] for e in train)
want = [len(train) / (2 * counts[c]) for c in (0, 1)]
m = json.load(open(f"{run}/metrics.json"))
got = m["train"]["class_weights"]
assert len(got) == 2 and all(abs(g - w) < 1e-6 * w for g, w in zip(got, want)), (got, want)
assert got[1] > got[0] > 0, got  # the rare class weighs more
assert math.isfinite(m["train"]["final_loss"]), m["train"]["final_loss"]
toml = open(f"{run}/config.toml").read()
line = next(l for l in toml.splitlines() if l.startswith("class_weights"))
assert line.split("#")[0].replace(chr(39), chr(34)).strip() == "class_weights = \"balanced\"", line
resolved = [float(x) for x in line.split("# resolved to ")[1].split()[0].split(",")]
assert resolved == got, (resolved, got)
print("  %d examples (%s): weights %s; %s" % (len(train), dict(counts), got, line))
PY' || { cat err_weighted; false; }
check "its metrics.json matches the schema of docs/METRICS.md" \
  'python3 "$src/tests/tools/check_metrics_json.py" train "$W/metrics.json" "$src/docs/METRICS.md"'
check "a run without class weights records null" \
  '[ "$(json "$B/metrics.json" "m[\"train\"][\"class_weights\"]")" = None ]'
"$bin" train --data.path unbalanced.tsv "${common[@]}" --train.max_steps 2 --train.class_weights "1,4.5" \
  --train.label_smoothing 0.1 --run.name explicit 2> err_explicit
check "an explicit list (with label smoothing): used as given" \
  '[ "$(json "$(run_of explicit)/metrics.json" "m[\"train\"][\"class_weights\"]")" = "[1, 4.5]" ] || { cat err_explicit; false; }'

one_line_error() {  # name, expected text, then the extra arguments
  local name=$1 text=$2
  shift 2
  "$bin" train --data.path "${data:-unbalanced.tsv}" "${common[@]}" --train.max_steps 2 --run.name "$name" "$@" 2> "err_$name"
  local rc=$?
  check "$name: exit 1, one line naming train.class_weights ($text), no run folder" \
    '[ $rc -eq 1 ] && [ "$(wc -l < "err_$name")" -eq 1 ] && grep -q "train.class_weights" "err_$name" &&
     grep -qF -- "$text" "err_$name" && [ -z "$(run_of "$name")" ] || { cat "err_$name"; false; }'
}
one_line_error count "3 weights for a model with 2 labels" --train.class_weights 1,2,3
one_line_error negative "weight 2 is -1" --train.class_weights 1,-1
one_line_error zero "weight 1 is 0" --train.class_weights 0,1
one_line_error word "'heavy' is not a number" --train.class_weights heavy
# Three classes, the third with one example: the carved dev split (trained on here) has none of it.
python3 - <<'PY'
with open("three.tsv", "w") as f:
    f.write("text\tlabel\n")
    for i in range(60):
        f.write(f"{['bad', 'good'][i % 2]} film {i}\t{i % 2}\n")
    f.write("fine film\t2\n")
PY
data=three.tsv one_line_error absent "class 2 ('2') has no example" --train.class_weights balanced \
  --data.train_split dev --data.eval_split test
"$bin" train --model.arch gpt2 --model.preset tiny --model.tokenizer "$src/tests/fixtures/bpe/tiny" --data.path "$work/text.txt" \
  --data.block_size 32 --data.cache_dir "$work/cache" --run.progress none --run.output_dir "$runs" --run.device cpu \
  --train.max_steps 2 --train.class_weights balanced --run.name lm_weights 2> err_lm_weights
check "class weights on a language-modelling run: exit 1 naming the key" \
  '[ $? -eq 1 ] && grep -q "train.class_weights does not apply to language modelling" err_lm_weights && [ -z "$(run_of lm_weights)" ] || { cat err_lm_weights; false; }'

[ "$fails" -eq 0 ]
