#!/usr/bin/env bash
# Token ids of `wattwise tokenize` must equal Hugging Face tokenizers' on >5,000 real texts (IMDB,
# SST-2, pairs), the hard cases in tests/data and every Unicode code point (scripts/tokenizer_parity.py).
# Usage: tokenizer_parity.sh <wattwise> <source-dir> <shared-data-dir>
set -uo pipefail
ww="$1"; src="$2"; data="$3"
if ! python3 -c "import tokenizers" 2> /dev/null; then
  echo "SKIP: python3 cannot import tokenizers (pip install tokenizers)"
  exit 77
fi
for needed in aclImdb.tar.gz glue/SST-2/train.tsv glue/SST-2/dev.tsv tokenizers/bert-base-uncased/tokenizer.json \
              tokenizers/bert-base-uncased/vocab.txt; do
  if [ ! -e "$data/$needed" ]; then
    echo "SKIP: $data/$needed is missing (real data sets not available)"
    exit 77
  fi
done
exec python3 "$src/scripts/tokenizer_parity.py" --wattwise "$ww" --data "$data"
