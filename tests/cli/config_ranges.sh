#!/usr/bin/env bash
# Every number of the training configuration is checked against its key's range (docs/CONFIG.md's
# range column) wherever it comes from: a --section.key flag, --set, or the TOML file. The error is
# one line naming the origin, the key, the value and the range; nothing is truncated or wraps
# around, and no run folder is created.
# Usage (ctest): bash config_ranges.sh <wattwise-binary> <source-dir> <shared-data-dir>
source "$(dirname "$0")/../cli_common.sh"

printf '%s\n' '[PAD]' '[UNK]' '[CLS]' '[SEP]' '[MASK]' a good bad film > vocab.txt
{ printf 'text\tlabel\n'; for i in $(seq 10); do printf 'a good film\t1\na bad film\t0\n'; done; } > data.tsv
base=(--data.path data.tsv --model.tokenizer vocab.txt --run.output_dir "$work/runs" --run.progress none)

range_error() {  # range_error <description> <pattern> <train args...>
  local what=$1 pattern=$2
  shift 2
  "$bin" train "${base[@]}" "$@" >/dev/null 2>"$work/err"
  local rc=$?
  check "$what: exit 1 naming ${pattern}" \
    '[ $rc -eq 1 ] && grep -qF -- "$pattern" "$work/err" && [ "$(wc -l < "$work/err")" -eq 1 ]'
}
range_error "int64 max batch size" "--train.batch_size: train.batch_size 9223372036854775807 is out of range (1..1048576)" \
  --train.batch_size 9223372036854775807
range_error "batch size beyond int64" "train.batch_size 99999999999999999999 is out of range (1..1048576)" \
  --train.batch_size 99999999999999999999
range_error "negative eval_every" "--train.eval_every: train.eval_every -1 is out of range (0..1000000000)" --train.eval_every -1
range_error "negative max_train_examples" "data.max_train_examples -1 is out of range (0..1000000000)" --set data.max_train_examples=-1
range_error "negative momentum" "--train.momentum: train.momentum must be in [0, 1), got -1" --train.momentum -1
range_error "negative seed" "run.seed -1 is out of range (0..9223372036854775807)" --run.seed -1
range_error "zero Adam epsilon" "train.eps must be positive, got 0" --train.eps 0
range_error "a dropout of 2" "train.hidden_dropout must be in [0, 1) (or -1 to keep the model's), got 2" --train.hidden_dropout 2
range_error "sampling every 5 ms" "energy.interval_ms 5 is out of range (10..3600000)" --energy.interval_ms 5
printf '[train]\nbatch_size = 4\nwarmup_steps = 99999999999\n' > big.toml
range_error "warmup_steps in the file" "big.toml:3: train.warmup_steps 99999999999 is out of range (0..1000000000)" --config big.toml
printf '[energy]\ncarbon_intensity = -5.0\n' > neg.toml
range_error "negative intensity in the file" "neg.toml:2: energy.carbon_intensity must not be negative (or -1 for the table's), got -5" \
  --config neg.toml
check "no run folder for any of them" '[ ! -e "$work/runs" ]'

# In range, the same keys run (the limits are not too tight): a minimal run at the edges.
"$bin" train "${base[@]}" --train.max_steps 1 --train.batch_size 1 --train.eval_every 0 --train.momentum 0 \
  --train.optimizer sgd --data.max_train_examples 0 --run.seed 0 --energy.interval_ms 10 >/dev/null 2>"$work/err"
check "values at the edges of their ranges are accepted" '[ $? -eq 0 ] && [ "$(ls "$work/runs" | wc -l)" -eq 1 ]'

echo "$fails failed"
[ $fails -eq 0 ]
