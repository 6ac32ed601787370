#!/usr/bin/env bash
# `wattwise train` on small generated data (no shared data needed): the run folder and its files,
# re-running the resolved config, never overwriting a run, seed determinism, --set/--section.key
# overrides and their errors, bad input (missing columns, labels outside the label
# set, empty and non-UTF-8 files, an unwritable run folder, a full disk), early stopping, eval_every
# and gradient accumulation step counts. Each run takes well under a second.
# Usage (ctest): bash train_cli.sh <wattwise-binary> <source-dir> <shared-data-dir>
source "$(dirname "$0")/../cli_common.sh"
checker=$src/tests/tools/check_metrics_json.py
metrics_doc=$src/docs/METRICS.md

# A tiny vocabulary and a learnable sentiment task: a filler sentence with one polar word.
mkdir tok
printf '%s\n' '[PAD]' '[UNK]' '[CLS]' '[SEP]' '[MASK]' a the film movie was is very really plot acting \
  good great fine bad awful poor > tok/vocab.txt
python3 - <<'EOF'
import random
r = random.Random(1)
filler = "a the film movie was is very really plot acting".split()
words = {1: "good great fine".split(), 0: "bad awful poor".split()}
with open("train.tsv", "w") as f:
    f.write("text\tlabel\n")
    for i in range(96):
        label = i % 2
        w = [r.choice(filler) for _ in range(r.randint(3, 8))]
        w.insert(r.randint(0, len(w)), r.choice(words[label]))
        f.write(" ".join(w) + "\t" + str(label) + "\n")
EOF

# 96 examples → 76 train / 10 dev / 10 test (stratified 80/10/10); batch 8 → 10 steps per epoch.
base=(--data.path "$work/train.tsv" --model.tokenizer "$work/tok" --data.max_length 16 --train.batch_size 8
      --train.lr 1e-3 --train.log_every 1 --run.progress none --run.output_dir "$work/runs")
train() { "$bin" train "${base[@]}" "$@"; }
run_of() { ls -d "$work/runs/"*_"$1" 2>/dev/null | head -1; }  # the folder of run.name $1
count_runs() { find "$work/runs" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
losses() { cut -d, -f1-5 "$1/train_log.csv"; }  # step,epoch,loss,lr,grad_norm (not timings)
no_debris() { [ -z "$(find "$work/runs" -name '.*.tmp-*' -o -name '*.partial' -o -name '*.old')" ]; }

# --- one run and its folder ---
train --run.name basic --train.epochs 2 2>"$work/err"
check "basic run exits 0" '[ $? -eq 0 ]'
A=$(run_of basic)
check "run folder is runs/<UTC>_basic" '[[ "$(basename "$A")" =~ ^[0-9]{8}T[0-9]{6}Z_basic$ ]]'
check "folder has config.toml, metrics.json, train_log.csv, power_trace.csv, emissions.csv" \
  '(for f in config.toml metrics.json train_log.csv power_trace.csv emissions.csv; do [ -s "$A/$f" ] || exit 1; done)'
check "best_model/ in Hugging Face layout" \
  '[ -f "$A/best_model/config.json" ] && [ -f "$A/best_model/model.safetensors" ] && [ -f "$A/best_model/vocab.txt" ]'
check "metrics.json matches the schema of docs/METRICS.md" 'python3 "$checker" train "$A/metrics.json" "$metrics_doc"'
# What Hugging Face reads from the folder: the tokenizer truncates at the model's positions, the
# special tokens are named, floats are Python floats, dtype and torch_dtype agree.
check "best_model/: tokenizer_config.json with model_max_length 512 and the special tokens; config.json floats as HF writes them" \
  '[ "$(json "$A/best_model/tokenizer_config.json" "m[\"model_max_length\"], m[\"cls_token\"], m[\"pad_token\"]")" = "512 [CLS] [PAD]" ] &&
   [ "$(json "$A/best_model/config.json" "m[\"initializer_range\"], m[\"layer_norm_eps\"], m[\"dtype\"], m[\"torch_dtype\"]")" = "0.02 1e-12 float32 float32" ]'
check "metrics: 20 steps over 2 epochs of 76 examples" \
  '[ "$(json "$A/metrics.json" "m[\"train\"][\"steps\"], m[\"train\"][\"examples\"], m[\"data\"][\"train_examples\"], m[\"train\"][\"epochs\"]")" = "20 152 76 2.0" ]'
check "metrics: dev and test carved out of train, 10 dev examples" \
  '[ "$(json "$A/metrics.json" "\",\".join(m[\"data\"][\"derived_splits\"]), m[\"data\"][\"eval_examples\"]")" = "dev,test 10" ]'
check "metrics: evaluated at each epoch end, best is one of them" \
  '[ "$(json "$A/metrics.json" "[h[\"step\"] for h in m[\"eval_history\"]], m[\"best\"][\"step\"] in (10, 20)")" = "[10, 20] True" ]'
check "metrics: eval is the best evaluation" \
  'json "$A/metrics.json" "[h for h in m[\"eval_history\"] if h[\"step\"] == m[\"best\"][\"step\"]][0][\"accuracy\"] == m[\"eval\"][\"accuracy\"] == m[\"best\"][\"value\"]" | grep -q True'
check "metrics: energy phases training, evaluation_1, evaluation_2" \
  '[ "$(json "$A/metrics.json" "\",\".join(sorted(m[\"energy\"][\"phases\"]))")" = "evaluation_1,evaluation_2,training" ]'
check "train_log.csv: header and one row per step (log_every 1)" \
  '[ "$(head -1 "$A/train_log.csv")" = "step,epoch,loss,lr,grad_norm,samples_per_s,elapsed_s" ] && [ "$(tail -n +2 "$A/train_log.csv" | cut -d, -f1 | tr "\n" " ")" = "$(seq -s " " 1 20) " ]'
check "train_log.csv: finite losses and learning rates" \
  'python3 -c "import csv,math,sys; rows=list(csv.DictReader(open(sys.argv[1]))); sys.exit(0 if all(math.isfinite(float(r[\"loss\"])) and float(r[\"lr\"])>0 for r in rows) else 1)" "$A/train_log.csv"'
check "power_trace.csv: header and samples" '[ "$(head -c 7 "$A/power_trace.csv")" = "time_s," ] && [ "$(wc -l < "$A/power_trace.csv")" -ge 2 ]'
check "emissions.csv: CodeCarbon header and one row for this run" \
  '[ "$(head -1 "$A/emissions.csv" | cut -d, -f1-3)" = "timestamp,project_name,run_id" ] && [ "$(wc -l < "$A/emissions.csv")" -eq 2 ] && grep -q ",wattwise:basic," "$A/emissions.csv"'
check "config.toml is the resolved configuration (every key)" \
  'grep -q "^epochs = 2$" "$A/config.toml" && grep -q "^optimizer = .adamw.$" "$A/config.toml" && grep -q "^\[energy\]$" "$A/config.toml"'
check "no temporary files or folders left" 'no_debris'

# --- best_model/ serves predict ---
printf '%s\n' '{"text": "a good film"}' '{"text": "the plot was awful"}' > in.jsonl
"$bin" predict --model "$A/best_model" --input in.jsonl --output out.jsonl 2>"$work/err"
check "predict loads best_model/ (labels named from the data)" \
  '[ $? -eq 0 ] && [ "$(wc -l < out.jsonl)" -eq 2 ] && grep -q "\"label_name\":\"[01]\"" out.jsonl'

# --- re-running the resolved config; seeds ---
"$bin" train --config "$A/config.toml" 2>"$work/err"
check "re-run with config.toml as --config exits 0" '[ $? -eq 0 ]'
B=$(ls -d "$work/runs/"*_basic* | grep -v "^$A\$" | head -1)
check "re-run gets a new folder, the first is kept" '[ -n "$B" ] && [ "$B" != "$A" ] && [ -f "$A/metrics.json" ]'
check "re-run resolves to the same config.toml" 'cmp -s "$A/config.toml" "$B/config.toml"'
check "same seed: identical train_log losses (dropout on)" 'cmp -s <(losses "$A") <(losses "$B")'
train --run.name seed7 --train.epochs 2 --run.seed 7 2>"$work/err"
check "different seed: different losses" '[ $? -eq 0 ] && ! cmp -s <(losses "$A") <(losses "$(run_of seed7)")'

# --- never overwriting: folders for this run name already exist for the next seconds ---
now=$(date +%s)
for i in 0 1 2 3 4 5; do
  d=$work/runs/$(date -u -d "@$((now + i))" +%Y%m%dT%H%M%SZ)_clash
  mkdir -p "$d" && echo "earlier run" > "$d/marker"
done
train --run.name clash --train.max_steps 1 2>"$work/err"
check "a clash with an existing run folder gets a _2 suffix" \
  '[ $? -eq 0 ] && [ "$(ls -d "$work/runs/"*_clash_2 | wc -l)" -eq 1 ] && [ -f "$(ls -d "$work/runs/"*_clash_2)/metrics.json" ]'
check "existing run folders untouched" \
  '[ "$(cat "$work/runs/"*_clash/marker | sort -u)" = "earlier run" ] && [ "$(find "$work/runs/"*_clash -type f | wc -l)" -eq 6 ]'

# --- overrides: file < --section.key < --set ---
printf '[train]\nlr = 0.01\nbatch_size = 4\nschedule = "constant"\nmax_steps = 2\n[run]\nname = "over"\n' > over.toml
"$bin" train --config over.toml --data.path "$work/train.tsv" --model.tokenizer "$work/tok" --run.progress none \
  --run.output_dir "$work/runs" --train.lr 0.02 --set train.lr=0.03 --train.log_every 1 2>"$work/err"
rc=$?
C=$(run_of over)
check "overrides: exit 0" '[ $rc -eq 0 ] && [ -n "$C" ]'
check "overrides: --set beats the flag, the flag beats the file" 'grep -q "^lr = 0.03$" "$C/config.toml"'
check "overrides: keys from the file kept" 'grep -q "^batch_size = 4$" "$C/config.toml" && grep -q "^max_steps = 2$" "$C/config.toml"'
check "overrides: the step used lr 0.03" '[ "$(sed -n 2p "$C/train_log.csv" | cut -d, -f4)" = "0.03" ]'

# --- configuration errors: named, before any work (no run folder) ---
runs_before=$(count_runs)
config_error() {  # config_error <description> <pattern> <train args...>
  local what=$1 pattern=$2
  shift 2
  train "$@" 2>"$work/err"
  local rc=$?
  check "$what: exit 1 naming it (${pattern})" '[ $rc -eq 1 ] && grep -q -- "$pattern" "$work/err" && [ "$(wc -l < "$work/err")" -eq 1 ]'
}
config_error "unknown key via --set" "did you mean 'train.lr'" --set train.lrr=1
config_error "unknown key via flag" "did you mean '--train.lr'" --train.lrr 1
config_error "key without section" "did you mean 'train.epochs'" --set epochs=1
printf '[train]\nbatchsize = 4\n' > typo.toml
config_error "unknown key in the file" "typo.toml:2: unknown key 'train.batchsize' (did you mean 'train.batch_size'?)" --config typo.toml
config_error "invalid number" "invalid value 'many' for train.epochs" --train.epochs many
config_error "invalid choice" "expected one of adamw, adam, sgd" --set train.optimizer=adamx
config_error "invalid boolean" "invalid value 'maybe' for data.clean_html" --data.clean_html maybe
config_error "out of range" "train.warmup_ratio must be in \[0, 1)" --set train.warmup_ratio=1.5
config_error "metric of another task" "train.metric 'pearson' does not apply" --set train.metric=pearson
config_error "16-bit precision on the cpu" "train.precision bf16 needs a GPU" --set train.precision=bf16 --run.device cpu
config_error "fused attention on the cpu" "model.attention fused needs a GPU" --set model.attention=fused --run.device cpu
config_error "bad checkpointing" "expected none, every, every-K" --set train.checkpointing=often
check "no run folder for configuration errors" '[ "$(count_runs)" -eq "$runs_before" ]'

# --- bad input: named file (and line), exit 1, one line, no run folder ---
data_error() {  # data_error <description> <pattern> <data path>
  local what=$1 pattern=$2 data=$3
  train --set data.path="$data" 2>"$work/err"
  local rc=$?
  check "$what: exit 1 naming ${pattern}" '[ $rc -eq 1 ] && grep -q -- "$pattern" "$work/err" && [ "$(wc -l < "$work/err")" -eq 1 ]'
}
printf 'text\tsentiment\ngood\t1\nbad\t0\n' > nolabel.tsv
data_error "missing label column" "nolabel.tsv:1: missing column 'label'" nolabel.tsv
printf 'review,label\ngood,1\nbad,0\n' > notext.csv
data_error "missing text column" "notext.csv:1: missing column 'text'" notext.csv
printf '{"text": "good", "label": 1}\n{"text": "bad"}\n' > nolabel.jsonl
data_error "missing JSONL key" "nolabel.jsonl:2: missing key 'label'" nolabel.jsonl
mkdir SST-2 && printf 'sentence\tlabel\ngood\t1\nbad\t0\n' > SST-2/train.tsv && printf 'sentence\tlabel\ngood\t1\nbad\t2\n' > SST-2/dev.tsv
data_error "label outside the GLUE label set" "SST-2/dev.tsv:3: label '2' is not in the label set" SST-2
printf 'text\tlabel\ngood\t0\nbad\t3\n' > gap.tsv
data_error "integer labels with a gap" "gap.tsv:3: label 3 implies class ids 0..3" gap.tsv
: > empty.tsv
data_error "empty TSV" "empty.tsv: empty file" empty.tsv
: > empty.jsonl
data_error "empty JSONL" "empty.jsonl: empty file" empty.jsonl
printf 'text\tlabel\n' > header_only.tsv
data_error "header only" "header_only.tsv: no examples" header_only.tsv
printf 'text\tlabel\ngood\t1\nbad \xff\xfe\t0\n' > latin.tsv
data_error "non-UTF-8 bytes" "latin.tsv:3: invalid UTF-8" latin.tsv
printf 'text,label\ngood,1\nbad,0\n' > two.csv
data_error "too few examples for a dev split" "two.csv: split 'dev' is empty" two.csv
data_error "missing data set" "nowhere.tsv: no such file" nowhere.tsv
check "no run folder for bad input" '[ "$(count_runs)" -eq "$runs_before" ]'

touch blocker
train --set run.output_dir="$work/blocker/runs" 2>"$work/err"
check "run.output_dir under a regular file: exit 1 naming it" '[ $? -eq 1 ] && grep -q "blocker/runs: cannot create the runs folder" "$work/err"'

# --- a full disk: the write fails (EFBIG under ulimit -f), nothing half-written, old runs untouched ---
snapshot() { (cd "$work/runs" && find . -type f -exec sha1sum {} + | sort); }
for limit_kib in 1 64; do  # 1 KiB: config.toml fails; 64 KiB: the checkpoint fails
  before=$(snapshot)
  before_runs=$(ls "$work/runs")
  (ulimit -f "$limit_kib"; exec "$bin" train "${base[@]}" --run.name full$limit_kib --train.max_steps 2) 2>"$work/err"
  rc=$?
  F=$(run_of full$limit_kib)
  check "full disk ($limit_kib KiB): exit 1 with a clear error" \
    '[ $rc -eq 1 ] && grep -q "wattwise: error: cannot write .*File too large" "$work/err" && [ "$(wc -l < "$work/err")" -eq 1 ]'
  check "full disk ($limit_kib KiB): no temporary file or partial folder, no metrics.json" \
    'no_debris && [ ! -e "$F/metrics.json" ] && [ ! -e "$F/best_model" ]'
  check "full disk ($limit_kib KiB): a config.toml there is complete" '[ ! -e "$F/config.toml" ] || grep -q "^\[energy\]$" "$F/config.toml"'
  check "full disk ($limit_kib KiB): previous runs untouched" \
    '[ "$(snapshot | grep -v "^[0-9a-f]*  ./$(basename "$F")/")" = "$before" ]'
  rm -rf "$F"
  check "full disk ($limit_kib KiB): no other folder appeared" '[ "$(ls "$work/runs")" = "$before_runs" ]'
done

# --- early stopping: a learning rate too small to change any weight, so the metric never improves ---
for metric in loss accuracy; do
  train --run.name stop_$metric --train.max_steps 20 --train.eval_every 1 --train.early_stopping_patience 2 \
    --train.optimizer sgd --train.momentum 0 --set train.lr=1e-12 --train.metric $metric 2>"$work/err"
  S=$(run_of stop_$metric)
  check "early stopping on $metric: stops after 1 best + 2 evaluations without improvement" \
    '[ "$(json "$S/metrics.json" "m[\"train\"][\"steps\"], m[\"train\"][\"stopped_early\"], len(m[\"eval_history\"]), m[\"best\"][\"step\"]")" = "3 True 3 1" ]'
done
train --run.name nostop --train.max_steps 20 --train.eval_every 1 --train.optimizer sgd --train.momentum 0 \
  --set train.lr=1e-12 --train.metric loss 2>"$work/err"
check "without patience the same run goes on to max_steps" \
  '[ "$(json "$(run_of nostop)/metrics.json" "m[\"train\"][\"steps\"], m[\"train\"][\"stopped_early\"], len(m[\"eval_history\"])")" = "20 False 20" ]'

# --- eval_every and epoch ends; gradient accumulation ---
train --run.name every4 --train.epochs 2 --train.eval_every 4 2>"$work/err"
E=$(run_of every4)
check "eval_every 4 over 2 epochs of 10 steps: 4, 8, 10 (epoch end), 12, 16, 20" \
  '[ "$(json "$E/metrics.json" "[h[\"step\"] for h in m[\"eval_history\"]]")" = "[4, 8, 10, 12, 16, 20]" ]'
check "eval_every: epochs of the evaluations" \
  '[ "$(json "$E/metrics.json" "[round(h[\"epoch\"], 3) for h in m[\"eval_history\"]]")" = "[0.4, 0.8, 1.0, 1.2, 1.6, 2.0]" ]'
check "eval_every: energy window per evaluation" \
  '[ "$(json "$E/metrics.json" "sum(k.startswith(\"evaluation_\") for k in m[\"energy\"][\"phases\"])")" = "6" ]'
train --run.name accum --train.epochs 1 --train.grad_accum 2 2>"$work/err"
check "grad_accum 2: 5 optimizer steps per epoch of 10 micro-batches" \
  '[ "$(json "$(run_of accum)/metrics.json" "m[\"train\"][\"steps\"], m[\"train\"][\"examples\"]")" = "5 76" ]'

# --- a test split: the best model scored at the end; data.max_eval_examples caps dev and test ---
train --run.name tested --train.epochs 1 --set data.test_split=test --data.max_eval_examples 6 2>"$work/err"
T=$(run_of tested)
check "test split: metrics.test of the best model on 6 test examples, dev capped to 6" \
  '[ "$(json "$T/metrics.json" "m[\"test\"][\"split\"], m[\"test\"][\"num_examples\"], m[\"eval\"][\"num_examples\"], m[\"data\"][\"test_split\"]")" = "test 6 6 test" ]'
check "test split: an energy phase for the test pass, and the schema holds" \
  '[ "$(json "$T/metrics.json" "m[\"energy\"][\"phases\"][\"test\"][\"samples\"]")" = "6" ] && python3 "$checker" train "$T/metrics.json" "$metrics_doc"'

# --- Hugging Face Trainer vocabulary: TrainingArguments names as flags and from a JSON ---
"$bin" train --data.path "$work/train.tsv" --model.tokenizer "$work/tok" --run.progress none --run.output_dir "$work/runs" \
  --run.name hf_flags --max_steps 2 --learning_rate 3e-4 --per_device_train_batch_size 4 \
  --gradient_accumulation_steps=2 --lr_scheduler_type cosine --fp16 false 2>"$work/err_hf"
H=$(run_of hf_flags)
check "HF flags (--learning_rate 3e-4, --per_device_train_batch_size 4, ...) are the run's train.lr, batch_size, ..." \
  '[ -n "$H" ] && grep -q "^lr = 3e-04$" "$H/config.toml" && grep -q "^batch_size = 4$" "$H/config.toml" &&
   grep -q "^grad_accum = 2$" "$H/config.toml" && grep -q "^schedule = .cosine.$" "$H/config.toml" &&
   grep -q "^max_steps = 2$" "$H/config.toml" || { cat "$work/err_hf"; false; }'
sed 's|"output_dir": "runs"|"output_dir": "'"$work"'/runs"|' "$src/tests/fixtures/hf/training_args.json" > "$work/args.json"
"$bin" train --data.path "$work/train.tsv" --model.tokenizer "$work/tok" --run.progress none --hf-args "$work/args.json" \
  --train.eval_every 0 2>"$work/err_hfjson"
J=$(run_of hf)
check "--hf-args: a whole transformers 5 TrainingArguments JSON, its fields without effect listed, flags after it win" \
  '[ -n "$J" ] && grep -q "^lr = 2e-05$" "$J/config.toml" && grep -q "^batch_size = 16$" "$J/config.toml" &&
   grep -q "^seed = 7$" "$J/config.toml" && grep -q "fields without effect here, skipped: .*report_to" "$work/err_hfjson" ||
   { cat "$work/err_hfjson"; false; }'
train --run.name hf_both --learning_rate 1e-4 2>"$work/err_both"  # base gives --train.lr
check "an HF flag and the wattwise flag of the same key: exit 1, both named" \
  '[ $? -eq 1 ] && grep -q "\-\-learning_rate and \-\-train.lr both set train.lr" "$work/err_both" || { cat "$work/err_both"; false; }'
train --run.name hf_typo --learning_rat 1e-4 2>"$work/err_typo"
check "a misspelt HF flag: exit 1, the nearest name" \
  '[ $? -eq 1 ] && grep -q "unknown option .--learning_rat. (did you mean .--learning_rate.?)" "$work/err_typo"'
train --run.name hf_bad --lr_scheduler_type polynomial 2>"$work/err_poly"
check "an HF value wattwise cannot honour: exit 1, what it has instead, no run folder" \
  '[ $? -eq 1 ] && grep -q "lr_scheduler_type .polynomial. is not supported (wattwise has linear, cosine" "$work/err_poly" && [ -z "$(run_of hf_bad)" ]'

check "no temporary files or folders left at the end" 'no_debris'
echo "$fails failed"
[ $fails -eq 0 ]
