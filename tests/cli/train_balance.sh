#!/usr/bin/env bash
# `wattwise train --data.balance classes` on an unbalanced file (1 positive in 6): every training
# batch of the exported plan holds both classes equally, an epoch is 2 x the larger class's count,
# and the option's misuse (with length bucketing, on a language-modelling run) is one line before
# any run folder.
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
PY' || cat err_balanced

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

[ "$fails" -eq 0 ]
