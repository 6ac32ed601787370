#!/usr/bin/env bash
# Learning on real data: a tiny BERT (2 layers x 64) trained from scratch on the full SST-2
# train split (67,349 sentences, max length 64, one epoch) reaches at least 0.77 dev accuracy, within
# 15 minutes on 2 CPU cores. Prints the accuracy and the time. Skips when the shared data is absent.
# Run it alone with: ctest -L data   (or leave it out: ctest -LE data)
# Usage (ctest): bash learn_sst2.sh <wattwise-binary> <source-dir> <shared-data-dir>
set -uo pipefail
bin=$(realpath "$1") data=$3
min_accuracy=0.77
max_seconds=900
sst2=$data/glue/SST-2
tokenizer=$data/tokenizers/bert-base-uncased
if [ ! -f "$sst2/train.tsv" ] || [ ! -f "$sst2/dev.tsv" ] || [ ! -f "$tokenizer/vocab.txt" ]; then
  echo "SKIP: needs $sst2/{train,dev}.tsv and $tokenizer/vocab.txt"
  exit 77
fi
if ! command -v python3 >/dev/null; then
  echo "SKIP: python3 is needed to read metrics.json"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

start=$(date +%s.%N)
timeout "$max_seconds" "$bin" train --data.path "$sst2" --model.tokenizer "$tokenizer" --model.preset tiny \
  --data.max_length 64 --train.epochs 1 --train.batch_size 32 --train.lr 1e-3 --train.warmup_ratio 0.1 \
  --train.schedule linear --run.seed 42 --run.progress lines --run.output_dir "$work/runs" --run.name learn_sst2
rc=$?
seconds=$(python3 -c "import time; print(f'{time.time() - $start:.0f}')")
if [ $rc -eq 124 ]; then
  echo "FAIL: training did not finish within $max_seconds s"
  exit 1
fi
if [ $rc -ne 0 ]; then
  echo "FAIL: wattwise train exited with $rc"
  exit 1
fi
metrics=$(ls "$work"/runs/*_learn_sst2/metrics.json)
python3 - "$metrics" "$min_accuracy" "$seconds" "$max_seconds" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
accuracy, minimum, seconds, limit = m["eval"]["accuracy"], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
print(f"SST-2 dev accuracy {accuracy:.4f} (need >= {minimum}) after {m['train']['steps']} steps, "
      f"{m['train']['examples']} examples; {seconds:.0f} s in all (limit {limit:.0f} s), training loop "
      f"{m['train']['seconds']:.0f} s at {m['train']['samples_per_s']:.0f} examples/s, "
      f"{m['energy']['phases']['training']['energy_j']:.0f} J")
sys.exit(0 if accuracy >= minimum and seconds <= limit else 1)
EOF
