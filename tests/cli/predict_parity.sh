#!/usr/bin/env bash
# wattwise predict vs transformers, both directions, on real texts (skips without torch or data).
set -uo pipefail
bin=$1 src=$2 data=$3
python3 -c "import torch, transformers" 2>/dev/null || { echo "skip: python3 torch/transformers not installed"; exit 77; }
[ -d "$data" ] || { echo "skip: $data is absent"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$src/scripts/check_predict_parity.py" --wattwise "$bin" --data "$data" --work "$work/pp"
