#!/usr/bin/env bash
# The DistilBERT inference study: for each GLUE task, fine-tune DistilBERT, then sweep the serving
# precisions (examples/sweeps/distilbert_study.toml: fp32 baseline, bf16 and fp16 mixed precision,
# fp16 + fused attention, int8 PTQ) for accuracy, latency and energy; at the end one report over
# every task's sweep. Run from the repository root:
#   DISTILBERT=path/to/distilbert-base-uncased bash examples/distilbert_glue_study.sh
# Without DISTILBERT a base-size DistilBERT is trained from scratch (said on screen): the commands
# are the ones to run with the real checkpoint. Environment (all optional):
#   GLUE=../shared/data/glue   TASKS="SST-2 MRPC CoLA RTE QNLI STS-B"   RUNS=runs
#   PRESET=base (size of a from-scratch model)   TOKENIZER=../shared/data/tokenizers/bert-base-uncased
#   TRAIN_ARGS: extra train settings as --set key=value (they win over the ones below);
#   SWEEP_ARGS: extra sweep flags (examples/cpu_tiny.sh shrinks both)
set -euo pipefail
bin=${1:-build/wattwise}
glue=${GLUE:-../shared/data/glue}
tasks=${TASKS:-SST-2 MRPC CoLA RTE QNLI STS-B}
runs=${RUNS:-runs}
tokenizer=${TOKENIZER:-../shared/data/tokenizers/bert-base-uncased}
read -r -a train_args <<< "${TRAIN_ARGS:-}"
read -r -a sweep_args <<< "${SWEEP_ARGS:-}"
if [ -n "${DISTILBERT:-}" ]; then
  model_args=(--model.path "$DISTILBERT")
else
  model_args=(--model.arch distilbert --model.preset "${PRESET:-base}" --model.tokenizer "$tokenizer")
  echo "study: no DISTILBERT checkpoint given: training DistilBERT-${PRESET:-base} FROM SCRATCH on each task"
fi
sweeps=()
for task in $tasks; do
  if [ ! -f "$glue/$task/train.tsv" ]; then
    echo "study: skip $task (no $glue/$task/train.tsv)"
    continue
  fi
  name=study_$(echo "$task" | tr -d '-' | tr '[:upper:]' '[:lower:]')
  metric=accuracy
  case $task in CoLA) metric=matthews_correlation ;; STS-B) metric=pearson ;; MRPC | QQP) metric=f1 ;; esac
  "$bin" train "${model_args[@]}" --run.name "$name" --run.output_dir "$runs" --data.path "$glue/$task" \
    --data.max_length 128 --train.epochs 3 --train.batch_size 32 --train.lr 5e-5 --train.warmup_ratio 0.06 \
    --train.weight_decay 0.01 --train.metric "$metric" "${train_args[@]}"
  trained=$(ls -d "$runs"/*_"$name" | tail -1)
  objectives=accuracy:max,joules_per_example:min,latency_p50_ms:min
  [ "$task" = STS-B ] && objectives=pearson:max,joules_per_example:min,latency_p50_ms:min
  "$bin" sweep --config examples/sweeps/distilbert_study.toml --model "$trained/best_model" --data "$glue/$task" \
    --objectives "$objectives" --runs-dir "$runs" --name "${name}_sweep" "${sweep_args[@]}"
  sweeps+=("$(ls -d "$runs"/*_"${name}_sweep" | tail -1)")
done
if ((${#sweeps[@]})); then
  "$bin" report "${sweeps[@]}" --runs-dir "$runs"
else
  echo "study: no GLUE task found under $glue" >&2
  exit 1
fi
