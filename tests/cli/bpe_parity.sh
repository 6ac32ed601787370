#!/usr/bin/env bash
# GPT-2 byte-level BPE: ids of `wattwise tokenize` must equal Hugging Face tokenizers' on >5,000 real
# texts (tiny shakespeare, IMDB, SST-2), pairs, truncation to 64 and 1024, the hard cases and every
# Unicode code point (scripts/make_bpe_fixtures.py --parity). About a minute on two cores.
# Usage: bpe_parity.sh <wattwise> <source-dir> <shared-data-dir>
set -uo pipefail
ww="$1"; src="$2"; data="$3"
if ! python3 -c "import tokenizers" 2> /dev/null; then
  echo "SKIP: python3 cannot import tokenizers (pip install tokenizers)"
  exit 77
fi
for needed in aclImdb.tar.gz glue/SST-2/train.tsv glue/SST-2/dev.tsv tinyshakespeare/input.txt \
              tokenizers/gpt2/vocab.json tokenizers/gpt2/merges.txt; do
  if [ ! -e "$data/$needed" ]; then
    echo "SKIP: $data/$needed is missing (real data sets not available)"
    exit 77
  fi
done
exec python3 "$src/scripts/make_bpe_fixtures.py" --parity --wattwise "$ww" --data "$data"
