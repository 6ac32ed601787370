#!/usr/bin/env bash
# Scratch check for behaviour-preserving refactors: trains tiny BERT, DistilBERT and GPT-2 on the CPU
# with fixed seeds (dropout on, gradient accumulation, fp32), one BLAS kernel family and thread
# count, and prints the SHA-256 of every saved checkpoint and log of losses. Run it with the binary
# before and after a change on the same machine and diff the two outputs: they must be identical.
# Usage: dev/same_training.sh WATTWISE_BINARY WORK_DIR   (needs ../shared/data: SST-2, tinyshakespeare)
set -euo pipefail
bin=$(realpath "$1")
work=$2
here=$(cd "$(dirname "$0")/.." && pwd)
data=$here/../shared/data
rm -rf "$work"; mkdir -p "$work"
export OPENBLAS_CORETYPE=Haswell OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2
head -n 401 "$data/glue/SST-2/train.tsv" > "$work/sst2.tsv"
head -c 60000 "$data/tinyshakespeare/input.txt" > "$work/shakes.txt"
common=(--run.device cpu --run.progress none --run.output_dir "$work/runs" --run.seed 3 --train.log_every 1)
for arch in bert distilbert; do
  "$bin" train "${common[@]}" --run.name "$arch" --model.arch "$arch" --model.preset tiny \
    --model.tokenizer "$data/tokenizers/bert-base-uncased" --data.path "$work/sst2.tsv" --data.text_column sentence --data.max_length 32 \
    --train.batch_size 8 --train.grad_accum 2 --train.lr 1e-3 --train.max_steps 12 --train.eval_every 6 >/dev/null 2>&1
done
"$bin" train "${common[@]}" --run.name gpt2 --model.arch gpt2 --model.preset tiny \
  --model.tokenizer "$here/tests/fixtures/bpe/tiny" --data.path "$work/shakes.txt" --data.block_size 64 \
  --data.cache_dir "$work/cache" --train.batch_size 8 --train.tokens_per_step 1024 --train.lr 3e-3 \
  --train.max_steps 12 --train.eval_every 6 >/dev/null 2>&1
cd "$work/runs"
for run in *; do
  name=${run#*_}  # the folder is <UTC time>_<run.name>
  echo "$name checkpoint: $(sha256sum < "$run/best_model/model.safetensors")"
  echo "$name losses: $(cut -d, -f1-5 "$run/train_log.csv" | sha256sum)"
done
