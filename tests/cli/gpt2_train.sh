#!/usr/bin/env bash
# GPT-2 language modelling through the CLI: `wattwise train` of a tiny GPT-2 (model.arch gpt2, preset
# tiny) on a 60 kB slice of tiny shakespeare with the committed tiny byte-level BPE (1,257 tokens, so
# the run takes seconds on 2 cores), gradient accumulation from train.tokens_per_step, the token
# cache reused by a second run, `wattwise eval` perplexity on the saved model (equal to the run's own
# evaluation), WikiText layout, `wattwise generate` (greedy and seeded sampling), transformers
# loading the saved folder (when installed), and the bad-input errors.
# Usage (ctest): bash gpt2_train.sh <wattwise-binary> <source-dir> <shared-data-dir>
source "$(dirname "$0")/../cli_common.sh"
data=$(realpath -m "$3")
checker=$src/tests/tools/check_metrics_json.py
metrics_doc=$src/docs/METRICS.md
shakespeare=$data/tinyshakespeare/input.txt
if [ ! -f "$shakespeare" ]; then
  echo "SKIP: $shakespeare is missing (the shared data folder)"
  exit 77
fi
tok=$src/tests/fixtures/bpe/tiny
head -c 60000 "$shakespeare" > shakes.txt

# 50 steps of 1,024 tokens: batch 8 x block 64 x grad_accum 2 (from tokens_per_step).
base=(--model.arch gpt2 --model.preset tiny --model.tokenizer "$tok" --data.path "$work/shakes.txt"
      --data.block_size 64 --data.cache_dir "$work/cache" --train.batch_size 8 --train.lr 3e-3
      --train.schedule cosine --train.warmup_steps 5 --run.device cpu --run.progress none
      --run.output_dir "$work/runs" --train.log_every 5)
train() { "$bin" train "${base[@]}" "$@"; }
run_of() { ls -d "$work/runs/"*_"$1" 2>/dev/null | head -1; }
count_runs() { find "$work/runs" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

start=$(date +%s)
train --run.name lm --train.tokens_per_step 1024 --train.max_steps 50 --train.eval_every 25 2>"$work/err"
check "train exits 0" '[ $? -eq 0 ]'
[ "$fails" = 0 ] || cat "$work/err"
A=$(run_of lm)
M=$A/metrics.json
check "run folder with metrics.json, train_log.csv, power_trace.csv, emissions.csv" \
  '(for f in config.toml metrics.json train_log.csv power_trace.csv emissions.csv; do [ -s "$A/$f" ] || exit 1; done)'
check "best_model/ is a GPT-2 folder: config.json, model.safetensors, vocab.json, merges.txt" \
  '(for f in config.json model.safetensors vocab.json merges.txt; do [ -s "$A/best_model/$f" ] || exit 1; done) &&
   grep -q "\"model_type\": \"gpt2\"" "$A/best_model/config.json"'
check "metrics.json matches the schema of docs/METRICS.md" 'python3 "$checker" train "$M" "$metrics_doc"'
check "best_model/: model_max_length is the model's n_positions; dtype and torch_dtype agree" \
  '[ "$(json "$A/best_model/tokenizer_config.json" "m[\"model_max_length\"]")" = "$(json "$A/best_model/config.json" "m[\"n_positions\"]")" ] &&
   [ "$(json "$A/best_model/config.json" "m[\"dtype\"] == m[\"torch_dtype\"]")" = True ]'
# Tokens: 50 steps x 1,024, less the padding of the stream's last (short) sequence at each epoch end.
check "metrics: 50 steps, grad_accum 2 from tokens_per_step 1024, tokens counted" \
  '[ "$(json "$M" "m[\"train\"][\"steps\"], m[\"train\"][\"grad_accum\"], m[\"train\"][\"tokens_per_step\"], 50 * 1024 - 64 * 3 < m[\"train\"][\"tokens\"] <= 50 * 1024")" = "50 2 1024 True" ]'
check "metrics: text format, validation carved from the end, evaluated at steps 25 and 50 (and epoch ends)" \
  '[ "$(json "$M" "m[\"data\"][\"format\"], m[\"data\"][\"eval_split\"], (lambda s: {25, 50} <= set(s) and s == sorted(set(s)) and s[-1] == 50)([h[\"step\"] for h in m[\"eval_history\"]])")" = "text valid True" ]'

# Random init: loss ln(1257) = 7.14; 50 steps bring the validation loss well below 5.5.
check "validation loss falls below 5.5 (perplexity below 245), best model is the last" \
  'json "$M" "m[\"eval\"][\"loss\"] < 5.5 and m[\"best\"][\"step\"] == 50 and m[\"eval_history\"][-1][\"loss\"] < m[\"eval_history\"][0][\"loss\"]" | grep -q True'
check "perplexity is exp(loss)" \
  'json "$M" "abs(m[\"eval\"][\"perplexity\"] - __import__(\"math\").exp(m[\"eval\"][\"loss\"])) < 1e-9 * m[\"eval\"][\"perplexity\"]" | grep -q True'
check "training energy per token (j_per_sample over tokens)" \
  'json "$M" "m[\"energy\"][\"phases\"][\"training\"][\"samples\"] == m[\"train\"][\"tokens\"] and m[\"energy\"][\"phases\"][\"training\"][\"j_per_sample\"] > 0" | grep -q True'
check "train_log.csv: tokens_per_s column, first loss above the last" \
  '[ "$(head -1 "$A/train_log.csv")" = "step,epoch,loss,lr,grad_norm,tokens_per_s,elapsed_s" ] &&
   python3 -c "import csv,sys; r=list(csv.DictReader(open(sys.argv[1]))); sys.exit(not float(r[0][\"loss\"]) > float(r[-1][\"loss\"]) + 1)" "$A/train_log.csv"'
check "token cache built" '[ "$(json "$M" "m[\"data\"][\"token_cache\"][0][\"status\"]")" = "built" ] && [ "$(ls "$work/cache" | wc -l)" = 1 ]'

# Same seed, same data: the same losses; the cache is reused.
train --run.name again --train.tokens_per_step 1024 --train.max_steps 5 2>/dev/null
B=$(run_of again)
check "second run reuses the token cache" '[ "$(json "$B/metrics.json" "m[\"data\"][\"token_cache\"][0][\"status\"]")" = "reused" ]'
check "seeded: the first 5 logged losses of both runs agree" \
  '[ "$(sed -n 2p "$A/train_log.csv" | cut -d, -f1-3)" = "$(sed -n 2p "$B/train_log.csv" | cut -d, -f1-3)" ]'

# The run's config.toml repeats it (resolved metric and n_positions included).
"$bin" train --config "$A/config.toml" --set run.name=rerun --set train.max_steps=5 2>/dev/null
C=$(run_of rerun)
check "config.toml re-runs: same first logged loss" \
  '[ -n "$C" ] && [ "$(sed -n 2p "$A/train_log.csv" | cut -d, -f1-3)" = "$(sed -n 2p "$C/train_log.csv" | cut -d, -f1-3)" ]'
check "config.toml records train.metric loss and model.max_positions 64" \
  'grep -q "^metric = .loss.$" "$A/config.toml" && grep -q "^max_positions = 64" "$A/config.toml"'

# --- eval: the saved model's perplexity on the same validation split equals the run's ---
"$bin" eval --model "$A/best_model" --data shakes.txt --cache-dir "$work/cache" --block-size 64 --device cpu \
  --runs-dir "$work/evals" --output eval.json >/dev/null 2>"$work/eval_err"
check "eval exits 0" '[ $? -eq 0 ]'
grep -q "run folder" "$work/eval_err" || cat "$work/eval_err"
check "eval metrics.json matches the schema" 'python3 "$checker" eval eval.json "$metrics_doc"'
check "eval loss and perplexity equal the run's evaluation of that model (1e-5)" \
  'python3 -c "import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2]))[\"eval\"]; sys.exit(not (abs(a[\"loss\"]-b[\"loss\"]) < 1e-5 and a[\"num_tokens\"] == b[\"num_tokens\"] and a[\"split\"] == \"valid\"))" eval.json "$M"'
check "eval prints loss, perplexity and tokens/s" 'grep -q "perplexity .* tokens/s" "$work/eval_err"'

# WikiText layout: articles split at " = Title = ", splits from its files.
mkdir wiki
python3 - "$work/shakes.txt" <<'EOF'
import sys
text = open(sys.argv[1]).read().split("\n\n")
def write(name, parts):
    with open(f"wiki/wiki.{name}.raw", "w") as f:
        for i, p in enumerate(parts):
            f.write(f" \n = Scene {i} = \n \n {p} \n")
write("train", text[:40]); write("valid", text[40:60]); write("test", text[60:80])
EOF
"$bin" eval --model "$A/best_model" --data wiki --split test --cache-dir "$work/cache" --block-size 64 --device cpu \
  --runs-dir "$work/evals" --output wiki.json >/dev/null 2>&1
check "eval on a WikiText folder (test split)" \
  '[ "$(json wiki.json "m[\"split\"], m[\"num_tokens\"] > 100, m[\"perplexity\"] > 1")" = "test True True" ]'

# --- generate ---
gen() { "$bin" generate --model "$A/best_model" --device cpu "$@"; }
gen --prompt "ROMEO:" --max-new-tokens 30 --greedy >g1.txt 2>g1.err
check "generate exits 0 and prints the prompt and its continuation" '[ $? -eq 0 ] && head -c 6 g1.txt | grep -q "ROMEO:" && [ "$(wc -c <g1.txt)" -gt 8 ]'
check "generate reports tokens/s on stderr" 'grep -q "generated [0-9]* tokens in .* tokens/s" g1.err'
gen --prompt "ROMEO:" --max-new-tokens 30 --greedy >g2.txt 2>/dev/null
check "greedy generation is deterministic" 'cmp -s g1.txt g2.txt'
gen --prompt "ROMEO:" --max-new-tokens 30 --seed 7 --temperature 0.8 --top-k 20 --top-p 0.9 >s1.txt 2>/dev/null
gen --prompt "ROMEO:" --max-new-tokens 30 --seed 7 --temperature 0.8 --top-k 20 --top-p 0.9 >s2.txt 2>/dev/null
check "sampling with a seed is reproducible" 'cmp -s s1.txt s2.txt && [ "$(wc -c <s1.txt)" -gt 8 ]'

# --- transformers loads the saved folder and agrees on the loss of the first validation window ---
if python3 -c "import torch, transformers" 2>/dev/null; then
  "$bin" eval --model "$A/best_model" --data shakes.txt --cache-dir "$work/cache" --block-size 64 --device cpu \
    --runs-dir "$work/evals" --max-sequences 1 --output one.json >/dev/null 2>&1
  check "transformers: GPT2LMHeadModel + tokenizer load best_model/ and give our loss on one window (1e-4)" \
    'python3 - "$A/best_model" shakes.txt one.json <<'"'"'EOF'"'"'
import json, sys, torch, transformers
model = transformers.GPT2LMHeadModel.from_pretrained(sys.argv[1]).eval()
tok = transformers.AutoTokenizer.from_pretrained(sys.argv[1])
ids = tok(open(sys.argv[2]).read())["input_ids"]
valid = ids[len(ids) - int(len(ids) * 0.1):]
x = torch.tensor([valid[:64]])
with torch.no_grad():
    loss = model(x, labels=x).loss.item()
ours = json.load(open(sys.argv[3]))["loss"]
print("transformers", loss, "wattwise", ours)
sys.exit(0 if abs(loss - ours) < 1e-4 else 1)
EOF'
else
  echo "note: torch/transformers not installed, the transformers check is skipped"
fi

# --- run.export_plan: the initial model, the token streams and every micro-batch's windows ---
train --train.max_steps 6 --train.tokens_per_step 1024 --train.eval_every 3 --run.export_plan true --run.name plan \
  > plan.log 2>&1
check "train with run.export_plan exits 0" '[ $? -eq 0 ]'
P=$(run_of plan)
check "the plan holds the initial model, plan.json, both token streams and batches.jsonl" \
  'for f in initial_model/config.json initial_model/model.safetensors initial_model/vocab.json plan.json train_tokens.i32 eval_tokens.i32 batches.jsonl; do [ -s "$P/plan/$f" ] || exit 1; done'
check "plan: 12 micro-batches of 8 distinct in-range windows; tokens in the vocabulary; the initial model is not the trained one" \
  'python3 - "$P" <<'"'"'EOF'"'"'
import json, sys, array
run = sys.argv[1]
plan = json.load(open(f"{run}/plan/plan.json"))
batches = [json.loads(l) for l in open(f"{run}/plan/batches.jsonl")]
tokens = array.array("i"); tokens.frombytes(open(f"{run}/plan/train_tokens.i32", "rb").read())
vocab = json.load(open(f"{run}/plan/initial_model/config.json"))["vocab_size"]
T = plan["block_size"]
windows = (len(tokens) - 2) // (T - 1) + 1  # lm_window_count: windows of T tokens overlapping by one
assert plan["grad_accum"] == 2 and plan["total_steps"] == 6 and plan["batch_size"] == 8, plan
assert plan["train_windows"] == windows, (plan["train_windows"], windows)
assert len(batches) == 12, len(batches)
for b in batches:
    w = b["windows"]
    assert len(w) == 8 and len(set(w)) == 8 and all(0 <= i < windows for i in w), b
assert batches[0]["windows"] != sorted(batches[0]["windows"]), "windows not shuffled"
assert 0 <= min(tokens) and max(tokens) < vocab
init = open(f"{run}/plan/initial_model/model.safetensors", "rb").read()
best = open(f"{run}/best_model/model.safetensors", "rb").read()
assert init != best, "the initial model equals the trained one"
print("plan ok:", len(tokens), "train tokens,", windows, "windows")
EOF'
check "a second run with the same seed exports the same window order" \
  'train --train.max_steps 6 --train.tokens_per_step 1024 --run.export_plan true --run.name plan2 >/dev/null 2>&1 && cmp -s "$P/plan/batches.jsonl" "$(run_of plan2)/plan/batches.jsonl" && cmp -s "$P/plan/initial_model/model.safetensors" "$(run_of plan2)/plan/initial_model/model.safetensors"'

if python3 -c "import torch, transformers" 2>/dev/null; then
  # Without dropout the two frameworks do the same arithmetic up to rounding: the replay of the plan
  # (same initial weights, windows, order, AdamW, cosine schedule, clipping, accumulation) must give
  # our evaluation losses to 1e-4 relative.
  train --train.max_steps 12 --train.tokens_per_step 1024 --train.eval_every 4 --train.weight_decay 0.1 \
    --train.hidden_dropout 0 --train.attention_dropout 0 --run.export_plan true --run.name replay >/dev/null 2>&1
  check "bench/gpt2_replay_pytorch.py replays the plan: every evaluation within 1e-4 of ours" \
    'python3 "$src/bench/gpt2_replay_pytorch.py" "$(run_of replay)" --device cpu --tolerance 1e-4 --out replay.json >/dev/null 2>replay.err'
else
  echo "note: torch/transformers not installed, the PyTorch replay of the plan is skipped"
fi

# --- bad input: one clear line, exit 1, no run folder ---
before=$(count_runs)
bad() {  # bad NAME EXPECTED-TEXT ARGS...
  local name=$1 expected=$2
  shift 2
  "$bin" "$@" >/dev/null 2>"$work/bad_err"
  local rc=$?
  local before_fails=$fails
  check "$name: exit 1 with '$expected'" '[ $rc -eq 1 ] && grep -q -- "$expected" "$work/bad_err" && [ "$(wc -l <"$work/bad_err")" -le 2 ]'
  [ "$fails" = "$before_fails" ] || { echo "  exit $rc, stderr:"; cat "$work/bad_err"; }
}
# (--set overrides a flag given before it.)
bad "missing data" "nope.txt: no such file" train "${base[@]}" --set data.path="$work/nope.txt" --train.max_steps 1
bad "tokens_per_step not a multiple" "not a multiple of train.batch_size x data.block_size" \
  train "${base[@]}" --train.tokens_per_step 1000 --train.max_steps 1
bad "tokens_per_step with grad_accum" "not both" train "${base[@]}" --train.tokens_per_step 1024 --train.grad_accum 2 --train.max_steps 1
bad "block size beyond n_positions" "exceeds the model's n_positions 64" train "${base[@]}" --set data.block_size=128 --train.max_steps 1
bad "classification metric" "does not apply to language modelling" train "${base[@]}" --train.metric accuracy --train.max_steps 1
bad "16-bit on the CPU" "needs a GPU" train "${base[@]}" --train.precision bf16 --train.max_steps 1
bad "classifier key" "data.padding does not apply to language modelling" train "${base[@]}" --data.padding max --train.max_steps 1
printf '%s\n' '[PAD]' '[UNK]' '[CLS]' '[SEP]' hello > vocab.txt
bad "tokenizer without <|endoftext|>" "no \"<|endoftext|>\" token" train "${base[@]}" --set model.tokenizer="$work/vocab.txt" --train.max_steps 1
printf 'ok\n\xff\xfe\n' > bad.txt
bad "non-UTF-8 text" "bad.txt is not valid UTF-8" train "${base[@]}" --set data.path="$work/bad.txt" --train.max_steps 1
bad "LM key on a classifier run" "applies to language modelling only" \
  train --data.path "$work/shakes.txt" --model.tokenizer "$tok" --data.block_size 64 --run.output_dir "$work/runs"
check "no run folder for any of them" '[ "$(count_runs)" = "$before" ]'
bad "generate: not a GPT-2 folder" "not a GPT-2 model folder" generate --model "$work" --prompt hi --device cpu
bad "generate: past n_positions" "exceed the model's n_positions 64" generate --model "$A/best_model" --prompt hi --max-new-tokens 100 --device cpu
bad "generate: empty prompt" "prompt is empty" generate --model "$A/best_model" --prompt "" --device cpu
bad "generate: bad top-p" "top-p must be in" generate --model "$A/best_model" --prompt hi --top-p 0 --device cpu
bad "eval: missing split" "no split 'test'" eval --model "$A/best_model" --data shakes.txt --split test --cache-dir "$work/cache" --device cpu --runs-dir "$work/evals"

echo "took $(($(date +%s) - start)) s"
[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all gpt2_train checks passed"
