#!/usr/bin/env bash
# The main job behind `make demo`. Today: write a random-init DistilBERT in Hugging Face layout and
# classify a handful of reviews with `wattwise predict` (the predictions are those of an untrained
# model: the point is the pipeline, checkpoint layout and speed). Later issues grow this into the
# fine-tune → sweep → Pareto report story.
set -euo pipefail
wattwise=${1:-build/wattwise}
here=$(cd "$(dirname "$0")/.." && pwd)
work=${WW_DEMO_DIR:-$here/build/demo}
mkdir -p "$work"

tokenizer=$here/../shared/data/tokenizers/bert-base-uncased
if [ ! -f "$tokenizer/vocab.txt" ]; then
  # No real tokenizer files here: a small WordPiece vocabulary (specials, characters, common words).
  tokenizer=$work/tokenizer
  mkdir -p "$tokenizer"
  {
    printf '%s\n' '[PAD]' '[UNK]' '[CLS]' '[SEP]' '[MASK]'
    for c in {a..z} {0..9} . , ! '?' "'" '"' - '(' ')' ':' ';'; do printf '%s\n' "$c"; done
    for c in {a..z} {0..9}; do printf '##%s\n' "$c"; done
    printf '%s\n' the a an and or but of to in is was it this that film movie great good bad \
      terrible wonderful boring plot acting story love loved hate hated not very really best worst \
      ever one with for as on at by from i you he she they we my his her their be been are were
  } > "$tokenizer/vocab.txt"
  echo "demo: no ../shared/data tokenizer found; using a generated $(wc -l < "$tokenizer/vocab.txt")-token vocabulary"
fi

"$wattwise" init-model --arch distilbert --preset mini --tokenizer "$tokenizer" \
  --num-labels 2 --max-positions 128 --seed 7 -o "$work/model" --force

cat > "$work/reviews.jsonl" <<'JSON'
{"text": "A wonderful film: the acting is superb and the story moved me."}
{"text": "Boring, predictable and far too long. I want my two hours back."}
{"text": "Not the best movie ever, but the cast clearly had fun."}
{"text": "The plot makes no sense and the dialogue is terrible."}
{"text": "Is it good?", "text_pair": "Yes, it is one of the best films of the year."}
JSON

"$wattwise" predict --model "$work/model" --input "$work/reviews.jsonl" \
  --output "$work/predictions.jsonl" --max-length 128 --batch-size 4 --runs-dir "$work/runs"

echo
echo "demo: predictions of a random-init DistilBERT (untrained, so the labels are arbitrary):"
python3 - "$work/reviews.jsonl" "$work/predictions.jsonl" <<'PY' 2>/dev/null || cat "$work/predictions.jsonl"
import json, sys
texts = [json.loads(l)["text"] for l in open(sys.argv[1])]
for text, line in zip(texts, open(sys.argv[2])):
    p = json.loads(line)
    print(f"  {p['label_name']:8s} p={max(p['probs']):.3f}  {len(p['input_ids']):3d} tokens  {text[:60]}")
PY
echo "demo: model in $work/model (loads in transformers unchanged), predictions in $work/predictions.jsonl"
