#!/usr/bin/env bash
# `wattwise eval` on a model that `wattwise train` just wrote (small generated data, no shared data
# needed): the metrics equal the ones training recorded for its best checkpoint, the JSON on stdout,
# in --output and in the run folder agree and match docs/METRICS.md, the data formats (TSV, CSV,
# JSONL, split folders, GLUE folders) and split names, and bad input (clear one-line error, exit 1,
# an existing --output file untouched, nothing half-written on a full disk).
# Usage (ctest): bash eval_cli.sh <wattwise-binary> <source-dir> <shared-data-dir>
source "$(dirname "$0")/../cli_common.sh"
# same_metrics A B: the metrics (not the energy or paths) of two JSON files agree; loss within 1e-5.
same_metrics() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
keys = ["num_examples", "accuracy", "f1", "f1_macro", "precision", "recall", "matthews_correlation", "confusion_matrix"]
ok = all(a[k] == b[k] for k in keys) and abs(a["loss"] - b["loss"]) <= 1e-5 * abs(b["loss"])
if not ok:
    print({k: (a.get(k), b.get(k)) for k in keys + ["loss"]})
sys.exit(0 if ok else 1)
EOF
}
eval_runs() { find "$work/runs" -mindepth 1 -maxdepth 1 -name '*_eval*' 2>/dev/null | wc -l; }

mkdir tok
printf '%s\n' '[PAD]' '[UNK]' '[CLS]' '[SEP]' '[MASK]' a the film movie was is very really plot acting \
  good great fine bad awful poor > tok/vocab.txt
# train.tsv (96 examples) for training; a split folder in each generic format holding the same 12
# examples as its dev split.
python3 - <<'EOF'
import csv, json, os, random
r = random.Random(2)
filler = "a the film movie was is very really plot acting".split()
words = {1: "good great fine".split(), 0: "bad awful poor".split()}
def example(label):
    w = [r.choice(filler) for _ in range(r.randint(3, 8))]
    w.insert(r.randint(0, len(w)), r.choice(words[label]))
    return " ".join(w), label
train = [example(i % 2) for i in range(96)]
dev = [example(i % 2) for i in range(12)]
with open("train.tsv", "w") as f:
    f.write("text\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in train))
for fmt in ("tsv", "csv", "jsonl"):
    os.mkdir(fmt)
    for split, rows in (("train", train), ("dev", dev)):
        with open(f"{fmt}/{split}.{fmt}", "w", newline="") as f:
            if fmt == "tsv":
                f.write("text\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows))
            elif fmt == "csv":
                w = csv.writer(f)
                w.writerow(["text", "label"])
                w.writerows(rows)
            else:
                f.write("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in rows))
os.mkdir("SST-2")
for split, rows in (("train", train), ("dev", dev)):
    with open(f"SST-2/{split}.tsv", "w") as f:
        f.write("sentence\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows))
EOF

"$bin" train --data.path "$work/train.tsv" --model.tokenizer tok --data.max_length 16 --train.batch_size 8 \
  --train.epochs 2 --train.lr 1e-3 --run.progress none --run.output_dir "$work/runs" --run.name model 2>"$work/err"
check "training a model to evaluate" '[ $? -eq 0 ]'
T=$(ls -d "$work/runs/"*_model | head -1)
model=$T/best_model

# --- the dev split training used: same metrics as training recorded for the best checkpoint ---
"$bin" eval --model "$model" --data train.tsv --split dev --output out.json --runs-dir "$work/runs" >stdout.json 2>"$work/err"
check "eval exits 0" '[ $? -eq 0 ]'
E=$(ls -d "$work/runs/"*_eval | head -1)
check "eval run folder runs/<UTC>_eval with metrics.json, power_trace.csv, emissions.csv" \
  '[[ "$(basename "$E")" =~ ^[0-9]{8}T[0-9]{6}Z_eval$ ]] && [ -s "$E/metrics.json" ] && [ -s "$E/power_trace.csv" ] && [ -s "$E/emissions.csv" ]'
check "metrics.json matches the schema of docs/METRICS.md" 'python3 "$src/tests/tools/check_metrics_json.py" eval "$E/metrics.json" "$src/docs/METRICS.md"'
check "--output, stdout and the run folder hold the same JSON" \
  'cmp -s out.json "$E/metrics.json" && python3 -c "import json,sys; sys.exit(json.load(open(\"stdout.json\")) != json.load(open(\"out.json\")))"'
check "split, model and data recorded" \
  '[ "$(json out.json "m[\"split\"], m[\"num_examples\"], m[\"model\"] == \"$model\", m[\"data\"]")" = "dev 10 True train.tsv" ]'
python3 -c "import json; json.dump(json.load(open('$T/metrics.json'))['eval'], open('train_eval.json', 'w'))"
check "same metrics as training's best evaluation (accuracy, confusion matrix, loss within 1e-5)" 'same_metrics out.json train_eval.json'
check "energy: one evaluation phase over 10 samples" \
  '[ "$(json out.json "\",\".join(m[\"energy\"][\"phases\"]), m[\"energy\"][\"phases\"][\"evaluation\"][\"samples\"], m[\"energy\"][\"total\"][\"energy_j\"] > 0")" = "evaluation 10 True" ]'

"$bin" eval --model "$model" --data train.tsv --split validation --output alias.json --runs-dir "$work/runs" >/dev/null 2>"$work/err"
check "--split validation is dev" '[ $? -eq 0 ] && [ "$(json alias.json "m[\"split\"]")" = "dev" ] && same_metrics alias.json out.json'
"$bin" eval --model "$model" --data train.tsv --split test --output test.json --runs-dir "$work/runs" >/dev/null 2>"$work/err"
check "--split test: the carved test split" '[ $? -eq 0 ] && [ "$(json test.json "m[\"split\"], m[\"num_examples\"]")" = "test 10" ]'
check "each eval gets its own run folder" '[ "$(eval_runs)" -eq 3 ]'

# --- data formats: a split folder in TSV, CSV and JSONL, and a GLUE folder, give the same metrics ---
for fmt in tsv csv jsonl SST-2; do
  "$bin" eval --model "$model" --data "$fmt" --output "$fmt.json" --runs-dir "$work/runs" >/dev/null 2>"$work/err"
  check "eval on $fmt (default split dev): 12 examples" '[ $? -eq 0 ] && [ "$(json "$fmt.json" "m[\"split\"], m[\"num_examples\"]")" = "dev 12" ]'
done
check "TSV, CSV, JSONL and GLUE folders give the same metrics" \
  'same_metrics csv.json tsv.json && same_metrics jsonl.json tsv.json && same_metrics SST-2.json tsv.json'
"$bin" eval --model "$model" --data jsonl/dev.jsonl --split train --output file.json --runs-dir "$work/runs" >/dev/null 2>"$work/err"
check "a single file's train split" '[ $? -eq 0 ] && [ "$(json file.json "m[\"split\"]")" = "train" ]'

# --- a held-out file with one class: the label set comes from the model (config.json's id2label) ---
python3 - <<'PY'
import csv
rows = list(csv.DictReader(open("tsv/dev.tsv"), delimiter="\t"))
with open("ones.tsv", "w") as f:
    f.write("text\tlabel\n" + "".join(f"{r['text']}\t{r['label']}\n" for r in rows if r["label"] == "1"))
with open("named.tsv", "w") as f:  # the same dev split, labels as names
    f.write("text\tlabel\n" + "".join(f"{r['text']}\t{'pos' if r['label'] == '1' else 'neg'}\n" for r in rows))
with open("named_pos.tsv", "w") as f:
    f.write("text\tlabel\n" + "".join(f"{r['text']}\tpos\n" for r in rows if r["label"] == "1"))
PY
# all_class_1 FILE: every example of the metrics JSON is in class 1 (row 0 of the confusion matrix empty)
all_class_1() { [ "$(json "$1" "m[\"confusion_matrix\"][0] == [0, 0] and sum(m[\"confusion_matrix\"][1]) == m[\"num_examples\"] > 0")" = True ]; }
"$bin" eval --model "$model" --data ones.tsv --split train --output ones.json --runs-dir "$work/runs" >/dev/null 2>"$work/err"
check "single-class file (integer labels): scored as class 1 of the model's 2" \
  '[ $? -eq 0 ] && all_class_1 ones.json'
# The model's classes named neg/pos in config.json: names map by name, a one-class file too.
cp -r "$model" named_model
python3 - <<'PY'
import json
c = json.load(open("named_model/config.json"))
c["id2label"], c["label2id"] = {"0": "neg", "1": "pos"}, {"neg": 0, "pos": 1}
json.dump(c, open("named_model/config.json", "w"), indent=2)
PY
"$bin" eval --model named_model --data named.tsv --split train --output named.json --runs-dir "$work/runs" >/dev/null 2>"$work/err"
"$bin" eval --model "$model" --data tsv/dev.tsv --split train --output numbered.json --runs-dir "$work/runs" >/dev/null 2>>"$work/err"
check "labels given as the model's names score as their indices" '[ -s named.json ] && same_metrics named.json numbered.json'
"$bin" eval --model named_model --data named_pos.tsv --split train --output named_pos.json --runs-dir "$work/runs" >/dev/null 2>"$work/err"
check "single-class file (label names): exit 0, all in the model's class 'pos'" \
  '[ $? -eq 0 ] && all_class_1 named_pos.json'
# The model's names are LABEL_0/LABEL_1 (as init-model and transformers write them): --label-names
# says which data label is which class.
cp -r "$model" plain_model
python3 -c "
import json; c = json.load(open('plain_model/config.json'))
c['id2label'], c['label2id'] = {'0': 'LABEL_0', '1': 'LABEL_1'}, {'LABEL_0': 0, 'LABEL_1': 1}
json.dump(c, open('plain_model/config.json', 'w'))"
"$bin" eval --model plain_model --data named_pos.tsv --split train --runs-dir "$work/runs" >/dev/null 2>"$work/err"
check "single-class file the model cannot name: exit 1 suggesting --label-names" \
  '[ $? -eq 1 ] && grep -q "has 1 labels but the model has 2 (--label-names NAME,... gives the model.s classes in id order)" "$work/err"'
"$bin" eval --model plain_model --data named_pos.tsv --split train --label-names neg,pos --output plain.json \
  --runs-dir "$work/runs" >/dev/null 2>"$work/err"
check "--label-names neg,pos: the one-class file is class 1" \
  '[ $? -eq 0 ] && all_class_1 plain.json'
"$bin" eval --model plain_model --data named.tsv --split train --output plain_inferred.json --runs-dir "$work/runs" >/dev/null 2>"$work/err"
check "labels that are not the model's names are still inferred from the data (neg, pos sorted)" \
  '[ $? -eq 0 ] && same_metrics plain_inferred.json numbered.json'
"$bin" eval --model plain_model --data named.tsv --split train --label-names neg,pos,other --runs-dir "$work/runs" >/dev/null 2>"$work/err"
check "--label-names of the wrong length: exit 1 naming both counts" \
  '[ $? -eq 1 ] && grep -q -- "--label-names: 3 names but the model has 2 classes" "$work/err"'

# --- bad input: exit 1, one line naming the culprit, --output untouched, no run folder ---
echo "keep me" > existing.json
runs_before=$(eval_runs)
eval_error() {  # eval_error <description> <pattern> <eval args...>
  local what=$1 pattern=$2
  shift 2
  "$bin" eval --output existing.json --runs-dir "$work/runs" "$@" >/dev/null 2>"$work/err"
  local rc=$?
  check "$what: exit 1 naming ${pattern}" '[ $rc -eq 1 ] && grep -q -- "$pattern" "$work/err" && [ "$(wc -l < "$work/err")" -eq 1 ]'
}
eval_error "missing model folder" "$work/nomodel" --model "$work/nomodel" --data train.tsv
"$bin" init-model --arch bert --preset tiny --tokenizer tok --num-labels 3 -o three >/dev/null 2>&1
printf 'text\tlabel\ngood\t0\nbad\t1\nfilm\t2\n' > three.tsv
eval_error "model with 2 labels on 3-label data" "has 3 labels but the model has 2" --model "$model" --data three.tsv --split train
# Fewer classes in the data than the model has is fine (the model's id2label names them), with a note.
"$bin" eval --model three --data train.tsv --runs-dir "$work/runs3" >/dev/null 2>"$work/err"
check "model with 3 labels on 2-label data: exit 0 with a note naming the class not in the data" \
  '[ $? -eq 0 ] && grep -q "note: train.tsv holds labels of 2 of the model.s 3 classes (none of: LABEL_2)" "$work/err"'
eval_error "split the data set lacks" "has no split 'test'" --model "$model" --data SST-2 --split test
eval_error "unknown split name" "has no split 'holdout'" --model "$model" --data train.tsv --split holdout
printf 'text\tlabel\ngood\t1\nbad \xff\t0\n' > latin.tsv
eval_error "non-UTF-8 data" "latin.tsv:3: invalid UTF-8" --model "$model" --data latin.tsv --split train
: > empty.csv
eval_error "empty data file" "empty.csv: empty file" --model "$model" --data empty.csv
printf 'text,sentiment\ngood,1\n' > nolabel.csv
eval_error "missing label column" "nolabel.csv:1: missing column 'label'" --model "$model" --data nolabel.csv
eval_error "max length beyond the model" "max_position_embeddings" --model "$model" --data train.tsv --max-length 100000
# Numeric flags out of range are usage errors (exit 2) naming the flag, what it means and its range.
for flag in "--batch-size 0" "--batch-size 99999999999999999999" "--calibration 0" "--max-length -1"; do
  "$bin" eval --output existing.json --runs-dir "$work/runs" --model "$model" --data train.tsv $flag >/dev/null 2>"$work/err"
  check "$flag: exit 2 naming the flag and its range" \
    '[ $? -eq 2 ] && grep -q -- "^${flag% *}: ${flag#* } is out of range (" "$work/err"'
done
"$bin" eval --model "$model" --data train.tsv --calibration 0 >/dev/null 2>"$work/err"
check "--calibration 0 says what the flag means" \
  'grep -qx -- "--calibration: 0 is out of range (1..1000000): the number of examples that calibrate the int8/fp8 input scales" "$work/err"'
check "existing --output untouched by every error" '[ "$(cat existing.json)" = "keep me" ]'
check "no eval run folder for bad input" '[ "$(eval_runs)" -eq "$runs_before" ]'

# --- a full disk (EFBIG under ulimit -f): clear error, --output untouched, nothing half-written ---
before=$(cd "$work/runs" && find . -type f -exec sha1sum {} + | sort)
(ulimit -f 2; exec "$bin" eval --model "$model" --data train.tsv --output existing.json --runs-dir "$work/runs") >/dev/null 2>"$work/err"
rc=$?
check "full disk: exit 1 with a clear error" '[ $rc -eq 1 ] && grep -q "wattwise: error: cannot write .*File too large" "$work/err"'
check "full disk: --output untouched" '[ "$(cat existing.json)" = "keep me" ]'
check "full disk: no temporary files, no metrics.json in the new folder" \
  '[ -z "$(find "$work" -name ".*.tmp-*")" ] && [ "$(find "$work/runs" -name metrics.json | wc -l)" -eq "$(echo "$before" | grep -c /metrics.json)" ]'
check "full disk: earlier runs untouched" \
  '(cd "$work/runs" && echo "$before" | sha1sum --check --quiet)'

# --- columns by name and standard input: a file whose text column is not `text` ---
python3 - <<'EOF'
import csv
rows = list(csv.DictReader(open("train.tsv"), delimiter="\t"))[:12]
with open("renamed.tsv", "w") as f:
    f.write("review\tstars\n" + "".join(f"{r['text']}\t{r['label']}\n" for r in rows))
with open("named.tsv", "w") as f:
    f.write("text\tlabel\n" + "".join(f"{r['text']}\t{r['label']}\n" for r in rows))
EOF
"$bin" eval --model "$model" --data renamed.tsv --split train --runs-dir "$work/runs" 2>"$work/err_cols" >/dev/null
check "other column names without options: exit 1, the header and the options to use" \
  '[ $? -eq 1 ] && grep -q "missing column .text. (the header has: review, stars); choose the column with data.text_column (eval: --text-column)" "$work/err_cols"'
"$bin" eval --model "$model" --data named.tsv --split train --runs-dir "$work/runs" --output named.json 2>/dev/null >/dev/null
"$bin" eval --model "$model" --data - --split train --text-column review --label-column stars --runs-dir "$work/runs" \
  --output renamed.json < renamed.tsv 2>"$work/err_stdin" >/dev/null
check "--text-column review --label-column stars from stdin: the metrics of the same rows read by name" \
  '[ $? -eq 0 ] && [ "$(json renamed.json "m[\"accuracy\"], m[\"loss\"], m[\"num_examples\"]")" = "$(json named.json "m[\"accuracy\"], m[\"loss\"], m[\"num_examples\"]")" ] || { cat "$work/err_stdin"; false; }'
check "standard input leaves no copy behind" '[ -z "$(ls -d "${TMPDIR:-/tmp}"/*_wattwise_stdin 2>/dev/null)" ]'

# --- a Hugging Face hub id, found in the hub's cache (huggingface_hub's layout) ---
hub=$work/hub
commit=0123456789abcdef0123456789abcdef01234567
mkdir -p "$hub/models--org--tiny/refs" "$hub/models--org--tiny/snapshots/$commit"
cp "$model"/* "$hub/models--org--tiny/snapshots/$commit/"
printf '%s' "$commit" > "$hub/models--org--tiny/refs/main"
HF_HUB_CACHE=$hub "$bin" eval --model org/tiny --data named.tsv --split train --runs-dir "$work/runs" --output hub.json \
  2>"$work/err_hub" >/dev/null
check "eval --model org/tiny (HF_HUB_CACHE): the cached snapshot, the same metrics as its folder" \
  '[ $? -eq 0 ] && [ "$(json hub.json "m[\"accuracy\"], m[\"loss\"]")" = "$(json named.json "m[\"accuracy\"], m[\"loss\"]")" ] || { cat "$work/err_hub"; false; }'
HF_HUB_CACHE=$hub "$bin" train --model.path org/tiny --data.path "$work/train.tsv" --data.max_length 16 --train.max_steps 2 \
  --run.progress none --run.output_dir "$work/runs" --run.name from_hub 2>"$work/err_hub_train"
check "train --model.path org/tiny fine-tunes the cached model; config.toml keeps the id" \
  '[ $? -eq 0 ] && grep -q "^path = .org/tiny.$" "$(ls -d "$work/runs/"*_from_hub)/config.toml" || { cat "$work/err_hub_train"; false; }'
HF_HUB_CACHE=$hub "$bin" eval --model org/other --data named.tsv --split train --runs-dir "$work/runs" 2>"$work/err_hub_missing" >/dev/null
check "an id not in the cache: exit non-zero, where it looked and how to fetch it" \
  '[ $? -ne 0 ] && grep -q "org/other: no such folder, and not in the Hugging Face cache" "$work/err_hub_missing" &&
   grep -q "hf download org/other" "$work/err_hub_missing" || { cat "$work/err_hub_missing"; false; }'

echo "$fails failed"
[ $fails -eq 0 ]
