#!/usr/bin/env bash
# `--run.export_plan true` writes a replayable plan (for the PyTorch side-by-side): the initial
# model, the examples and every micro-batch's indices. Checks the plan covers each epoch exactly once,
# that bench/minilm_pytorch.py replays it (when torch/transformers are installed: same number of
# optimizer steps, a sane accuracy), and that bench/check_saved_model.py finds transformers and
# `wattwise predict` agreeing on the saved model.
set -uo pipefail
bin=$1 src=$2 data=$3
[ -f "$data/glue/SST-2/train.tsv" ] || { echo "skip: $data/glue/SST-2 is absent"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$bin" train --data.path "$data/glue/SST-2" --model.tokenizer "$data/tokenizers/bert-base-uncased" \
  --model.arch bert --model.preset tiny --data.max_train_examples 96 --data.max_eval_examples 40 \
  --train.epochs 2 --train.batch_size 16 --run.device cpu --run.export_plan true --run.output_dir "$work/runs" \
  --run.progress none > "$work/train.log" 2>&1 || { cat "$work/train.log"; fail "wattwise train"; }
run=$(ls -d "$work"/runs/*/)
plan=$run/plan
for f in train.jsonl eval.jsonl batches.jsonl initial_model/config.json initial_model/model.safetensors initial_model/vocab.txt; do
  [ -s "$plan/$f" ] || fail "plan/$f is missing or empty"
done
python3 - "$plan" <<'PY' || exit 1
import json, sys
plan = sys.argv[1]
train = [json.loads(l) for l in open(f"{plan}/train.jsonl", encoding="utf-8")]
evals = [json.loads(l) for l in open(f"{plan}/eval.jsonl", encoding="utf-8")]
batches = [json.loads(l) for l in open(f"{plan}/batches.jsonl")]
assert len(train) == 96 and len(evals) == 40, (len(train), len(evals))
assert all(isinstance(r["text"], str) and r["label"] in (0, 1) for r in train)
epochs = sorted({b["epoch"] for b in batches})
assert epochs == [0, 1], epochs
for e in epochs:
    seen = sorted(i for b in batches if b["epoch"] == e for i in b["indices"])
    assert seen == list(range(96)), f"epoch {e} does not cover each example once"
orders = [[i for b in batches if b["epoch"] == e for i in b["indices"]] for e in epochs]
assert orders[0] != orders[1], "the two epochs have the same order (no shuffling?)"
print(f"plan: {len(batches)} batches over {len(epochs)} epochs, every example once per epoch")
PY

if ! python3 -c "import torch, transformers" 2>/dev/null; then
  echo "skip (partly): torch/transformers not installed, so the replay and the transformers check did not run"
  exit 0
fi
python3 "$src/bench/minilm_pytorch.py" "$run" --device cpu --out "$work/replay.json" > "$work/replay.log" 2>&1 ||
  { tail -20 "$work/replay.log"; fail "bench/minilm_pytorch.py"; }
python3 - "$work/replay.json" <<'PY' || exit 1
import json, sys
r = json.load(open(sys.argv[1]))
assert r["steps"] == 12, f"replay took {r['steps']} optimizer steps, expected 12 (2 epochs x 6 batches)"
assert len(r["eval_history"]) == 2 and 0.0 <= r["best_eval_accuracy"] <= 1.0, r["eval_history"]
print(f"replay: {r['steps']} steps, eval accuracy {[h['accuracy'] for h in r['eval_history']]}")
PY
python3 "$src/bench/check_saved_model.py" --wattwise "$bin" --model "$run/best_model" --texts "$plan/eval.jsonl" \
  --limit 40 --work "$work/check" || fail "transformers and wattwise predict disagree on the saved model"
echo "ok"
