#!/usr/bin/env bash
# `wattwise init-model` + `wattwise predict`: input formats, output order, and bad input (clear
# one-line error, non-zero exit, an existing output file left untouched).
set -uo pipefail
bin=$1 src=$2 data=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fails=$((fails + 1)); fi; }

tok=$data/tokenizers/bert-base-uncased
if [ ! -f "$tok/vocab.txt" ]; then
  tok=$work/tok; mkdir -p "$tok"
  printf '%s\n' '[PAD]' '[UNK]' '[CLS]' '[SEP]' '[MASK]' {a..z} '##'{a..z} . , the good bad film > "$tok/vocab.txt"
fi

"$bin" init-model --arch bert --preset tiny --tokenizer "$tok" --num-labels 3 -o "$work/m" >/dev/null 2>&1
check "init-model writes HF layout" '[ -f "$work/m/config.json" ] && [ -f "$work/m/model.safetensors" ] && [ -f "$work/m/vocab.txt" ]'
"$bin" init-model --arch bert --preset tiny --tokenizer "$tok" -o "$work/m" >/dev/null 2>"$work/err"
check "init-model refuses a non-empty folder" '[ $? -ne 0 ] && grep -q "not empty" "$work/err"'

printf '%s\n' '{"text": "a good film"}' '{"text": "the bad film", "text_pair": "good"}' '{"text": ""}' > "$work/in.jsonl"
"$bin" predict --runs-dir "$work/runs" --model "$work/m" --input "$work/in.jsonl" --output "$work/out.jsonl" 2>"$work/err"
check "predict jsonl exits 0" '[ $? -eq 0 ]'
check "one output line per input" '[ "$(wc -l < "$work/out.jsonl")" -eq 3 ]'
check "output has ids, logits, probs, label and name" 'head -1 "$work/out.jsonl" | grep -q "\"input_ids\":\[.*\"label\":.*\"label_name\":\"LABEL_.*\"logits\":\[.*\"probs\":\["'

check "predict writes a run folder with metrics.json, power_trace.csv and emissions.csv" 'd=$(ls -d "$work"/runs/*_predict | head -1); [ -f "$d/metrics.json" ] && [ -f "$d/power_trace.csv" ] && [ -f "$d/emissions.csv" ] && python3 -c "import json,sys; m=json.load(open(sys.argv[1])); assert m[\"examples\"]==3 and m[\"energy\"][\"phases\"][\"inference\"][\"energy_j\"]>0" "$d/metrics.json"'

printf 'sentence\tlabel\na good film\t1\nthe bad film\t0\n' > "$work/in.tsv"
"$bin" predict --runs-dir "$work/runs" --model "$work/m" --input "$work/in.tsv" --output "$work/out_tsv.jsonl" 2>"$work/err"
check "predict tsv" '[ $? -eq 0 ] && [ "$(wc -l < "$work/out_tsv.jsonl")" -eq 2 ]'
printf 'a good film\nthe bad film\n' > "$work/in.txt"
"$bin" predict --runs-dir "$work/runs" --model "$work/m" --input "$work/in.txt" --output "$work/out_txt.jsonl" --batch-size 1 2>"$work/err"
check "predict plain text, batch 1, same logits as tsv" '[ $? -eq 0 ] && diff <(sed "s/\"probs.*//" "$work/out_txt.jsonl") <(sed "s/\"probs.*//" "$work/out_tsv.jsonl") >/dev/null || python3 -c "
import json,sys
a=[json.loads(l) for l in open(\"$work/out_txt.jsonl\")]; b=[json.loads(l) for l in open(\"$work/out_tsv.jsonl\")]
sys.exit(0 if all(max(abs(x-y) for x,y in zip(p[\"logits\"],q[\"logits\"]))<1e-5 for p,q in zip(a,b)) else 1)"'

# Columns by name, standard input and output: the same predictions as from the file.
printf '%s\n' '{"review": "a good film"}' '{"review": "the bad film", "other": "good"}' > "$work/in_review.jsonl"
"$bin" predict --runs-dir "$work/runs" --model "$work/m" --input - --output - --text-column review \
  < "$work/in_review.jsonl" > "$work/out_stdin.jsonl" 2>"$work/err"
check "--text-column review from stdin to stdout: the labels of the same texts from in.txt, nothing else on stdout" \
  '[ $? -eq 0 ] && [ "$(wc -l < "$work/out_stdin.jsonl")" -eq 2 ] &&
   [ "$(python3 -c "import json; print([json.loads(l)[\"label\"] for l in open(\"$work/out_stdin.jsonl\")])")" = "$(python3 -c "import json; print([json.loads(l)[\"label\"] for l in open(\"$work/out_txt.jsonl\")])")" ] || { cat "$work/err"; false; }'
printf 'id\treview\tother\n1\ta good film\tthe bad film\n' > "$work/in_pair.tsv"
"$bin" predict --runs-dir "$work/runs" --model "$work/m" --input "$work/in_pair.tsv" --output "$work/out_pair.jsonl" \
  --text-column review --text-pair-column other 2>"$work/err"
check "--text-column/--text-pair-column on a TSV: a pair ([CLS] a [SEP] b [SEP]: two [SEP])" \
  '[ $? -eq 0 ] && [ "$(python3 -c "import json; ids = json.loads(open(\"$work/out_pair.jsonl\").readline())[\"input_ids\"]; print(ids.count(ids[-1]))")" -eq 2 ] || { cat "$work/err"; false; }'
"$bin" predict --runs-dir "$work/runs" --model "$work/m" --input "$work/in_pair.tsv" --output "$work/out_bad.jsonl" --text-column text 2>"$work/err"
check "a column the header lacks: exit 1, the header named" '[ $? -eq 1 ] && grep -q "in_pair.tsv:1: missing column .text. (the header has: id, review, other)" "$work/err"'

echo "keep me" > "$work/existing.jsonl"
"$bin" predict --runs-dir "$work/runs" --model "$work/missing" --input "$work/in.txt" --output "$work/existing.jsonl" 2>"$work/err"
check "missing model folder: exit 1, names the path" '[ $? -eq 1 ] && grep -q "$work/missing" "$work/err" && [ "$(wc -l < "$work/err")" -eq 1 ]'
check "existing output untouched" '[ "$(cat "$work/existing.jsonl")" = "keep me" ]'

cp -r "$work/m" "$work/broken"
head -c 1000 "$work/m/model.safetensors" > "$work/broken/model.safetensors"
"$bin" predict --runs-dir "$work/runs" --model "$work/broken" --input "$work/in.txt" --output "$work/existing.jsonl" 2>"$work/err"
check "truncated safetensors: exit 1, names the file" '[ $? -eq 1 ] && grep -q "broken/model.safetensors" "$work/err"'
check "existing output still untouched" '[ "$(cat "$work/existing.jsonl")" = "keep me" ]'

printf 'fine\n\xff\xfe bad bytes\n' > "$work/bad.txt"
"$bin" predict --runs-dir "$work/runs" --model "$work/m" --input "$work/bad.txt" --output "$work/o.jsonl" 2>"$work/err"
check "invalid UTF-8: exit 1, names file and line 2" '[ $? -eq 1 ] && grep -q "bad.txt:2" "$work/err" && [ ! -e "$work/o.jsonl" ]'

"$bin" predict --runs-dir "$work/runs" --model "$work/m" --input "$work/in.txt" --output "$work/o.jsonl" --max-length 100000 2>"$work/err"
check "max length beyond the model: exit 1" '[ $? -eq 1 ] && grep -q "max_position_embeddings" "$work/err"'
"$bin" predict --runs-dir "$work/runs" --model "$work/m" --input "$work/in.txt" 2>"$work/err"
check "missing --output: usage error exit 2" '[ $? -eq 2 ]'

# --- --output must not be the --input: not by the same path, nor through a symlink or hard link ---
printf 'a good film\nthe bad film\n' > "$work/texts.txt"
cp "$work/texts.txt" "$work/texts.orig"
ln -s "$work/texts.txt" "$work/texts_link.jsonl"
ln "$work/texts.txt" "$work/texts_hard.jsonl"
runs_before=$(ls "$work/runs" | wc -l)
for out in "$work/texts.txt" "$work/./texts.txt" "$work/texts_link.jsonl" "$work/texts_hard.jsonl"; do
  "$bin" predict --runs-dir "$work/runs" --model "$work/m" --input "$work/texts.txt" --output "$out" 2>"$work/err"
  rc=$?
  check "--output ${out#$work/} is the input: exit 1, input untouched" \
    '[ $rc -eq 1 ] && grep -q -- "--output .* is the --input file .*: writing it would destroy the input" "$work/err" && cmp -s "$work/texts.txt" "$work/texts.orig"'
done
"$bin" predict --runs-dir "$work/runs" --model "$work/m" --input "$work/texts_link.jsonl" --output "$work/texts.txt" 2>"$work/err"
check "--input a symlink to the --output file: exit 1" '[ $? -eq 1 ] && cmp -s "$work/texts.txt" "$work/texts.orig"'
check "no run folder for a refused output" '[ "$(ls "$work/runs" | wc -l)" -eq "$runs_before" ]'

# --- a failed run leaves no debris: a full disk (EFBIG under ulimit -f) removes the run folder, and
# writes no output; init-model removes the model folder it made (an empty folder given stays empty) ---
(ulimit -f 2; exec "$bin" predict --runs-dir "$work/runs" --model "$work/m" --input "$work/in.txt" --output "$work/full.jsonl") 2>"$work/err"
check "predict on a full disk: exit 1, no output, no new run folder" \
  '[ $? -eq 1 ] && grep -q "File too large" "$work/err" && [ ! -e "$work/full.jsonl" ] && [ "$(ls "$work/runs" | wc -l)" -eq "$runs_before" ]'
(ulimit -f 8; exec "$bin" init-model --arch bert --preset tiny --tokenizer "$tok" -o "$work/m_full") 2>"$work/err"
check "init-model on a full disk: exit 1, no half-written model folder" '[ $? -eq 1 ] && [ ! -e "$work/m_full" ]'
mkdir "$work/m_empty"
(ulimit -f 8; exec "$bin" init-model --arch bert --preset tiny --tokenizer "$tok" -o "$work/m_empty") 2>"$work/err"
check "init-model on a full disk into an empty folder: it stays, empty" '[ $? -eq 1 ] && [ -d "$work/m_empty" ] && [ -z "$(ls -A "$work/m_empty")" ]'
check "no temporary files left" '[ -z "$(find "$work" -name ".*.tmp-*")" ]'

echo "$fails failed"
[ $fails -eq 0 ]
