#!/usr/bin/env bash
# CPU-tiny variants of every documented study, as tests/cli/examples_sweeps.sh runs them: the same
# commands and config files as examples/README.md, with a tiny model and a handful of examples so
# that the whole chain (Phase 1 training, the three Phase 2 sweeps, the DistilBERT study) runs on a
# CPU in about a minute. Usage, from the repository root:
#   bash examples/cpu_tiny.sh [WATTWISE] [WORK_DIR] [GLUE_DIR] [TOKENIZER]
# GLUE_DIR must hold SST-2/{train,dev}.tsv (default ../shared/data/glue).
set -euo pipefail
bin=$(realpath "${1:-build/wattwise}")
work=${2:-build/cpu_tiny}
glue=${3:-../shared/data/glue}
tokenizer=${4:-../shared/data/tokenizers/bert-base-uncased}
runs=$work/runs
mkdir -p "$runs"
few=(--max-examples 32 --repeats 1 --min-seconds 0 --warmup 0 --device cpu --quiet)

# Phase 1 (examples/bert_sst2.toml), tiny: 2x64 model, 256 examples, max length 32, one epoch.
"$bin" train --config examples/bert_sst2.toml --model.preset tiny --model.tokenizer "$tokenizer" \
  --data.path "$glue/SST-2" --data.max_length 32 --data.max_train_examples 256 --data.max_eval_examples 64 \
  --train.epochs 1 --train.lr 1e-3 --run.device cpu --run.output_dir "$runs" --run.progress none
model=$(ls -d "$runs"/*_bert_sst2 | tail -1)/best_model

# Phase 2: the three sweeps as written (data path overridden); the tiny model has 2 layers, not 12.
"$bin" sweep --config examples/sweeps/sst2_length.toml --model "$model" --data "$glue/SST-2" "${few[@]}" --runs-dir "$runs"
"$bin" sweep --config examples/sweeps/sst2_layers.toml --model "$model" --data "$glue/SST-2" --layers 2 1 "${few[@]}" --runs-dir "$runs"
"$bin" sweep --config examples/sweeps/sst2_precision.toml --model "$model" --data "$glue/SST-2" "${few[@]}" --runs-dir "$runs"

# The DistilBERT study on SST-2 only, tiny and from scratch.
GLUE=$glue TASKS=SST-2 RUNS=$runs PRESET=tiny TOKENIZER=$tokenizer \
  TRAIN_ARGS="--set data.max_length=32 --set data.max_train_examples=128 --set data.max_eval_examples=32 --set train.epochs=1 --set run.device=cpu --set run.progress=none" \
  SWEEP_ARGS="${few[*]}" bash examples/distilbert_glue_study.sh "$bin"
