#!/usr/bin/env bash
# Model folders as untrusted input, end to end through the commands that load them (predict, eval,
# generate, train with model.path, init-model): sizes past what the config's keys may hold or the
# machine can fit, a config that does not describe its checkpoint, a tokenizer id far past its
# vocabulary, NaN/Inf weights (refused unless --allow-nonfinite / model.allow_nonfinite, and then
# non-finite logits are an error). Each case: one line naming the file and key or tensor, a
# non-zero exit within seconds, nothing written.
# Usage (ctest): bash bad_models.sh <wattwise-binary> <source-dir> <shared-data-dir>
source "$(dirname "$0")/../cli_common.sh"

mkdir tok
printf '%s\n' '[PAD]' '[UNK]' '[CLS]' '[SEP]' '[MASK]' a the film good bad > tok/vocab.txt
"$bin" init-model --arch bert --preset tiny --tokenizer tok -o bert >/dev/null 2>&1
printf 'a good film\nthe bad film\n' > in.txt
for i in $(seq 1 40); do echo "the film was good and the play was bad, said the man $i"; done > lm.txt
"$bin" train --model.arch gpt2 --model.preset tiny --model.tokenizer "$src/tests/fixtures/bpe/tiny" --data.path lm.txt \
  --data.block_size 16 --train.batch_size 2 --train.max_steps 1 --run.progress none --run.output_dir trained >/dev/null 2>&1
cp -r trained/*/best_model gpt2 2>/dev/null
check "init-model writes a BERT folder, train a GPT-2 one" '[ -f bert/model.safetensors ] && [ -f gpt2/model.safetensors ]'
printf 'text,label\na good film,1\nthe bad film,0\n' > data.csv

# edit FOLDER KEY VALUE: a copy of FOLDER (as "edited") with config.json's KEY set to VALUE (JSON).
edit() {
  rm -rf edited && cp -r "$1" edited
  python3 - "$2" "$3" <<'PY'
import json, sys
c = json.load(open("edited/config.json"))
c[sys.argv[1]] = json.loads(sys.argv[2])
json.dump(c, open("edited/config.json", "w"))
PY
}
# refused DESCRIPTION PATTERN COMMAND...: exits non-zero within 20 s with PATTERN on stderr, leaving
# no run folder and no output file.
refused() {
  local what=$1 pattern=$2
  shift 2
  rm -rf runs out.jsonl
  timeout 20 "$@" > /dev/null 2> err
  local rc=$?
  check "$what: refused ($pattern)" '[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q -- "$pattern" err'
  check "$what: nothing written" '[ ! -e out.jsonl ] && [ -z "$(ls runs 2>/dev/null)" ]'
  [ "$fails" = 0 ] || { echo "   rc $rc, stderr:"; head -3 err; }
}
predict=("$bin" predict --model edited --input in.txt --output out.jsonl --runs-dir runs)

# --- sizes ---
refused "init-model --max-positions 2^56+1" "--max-positions: 72057594037927937 is out of range" \
  "$bin" init-model --tokenizer tok --max-positions 72057594037927937 -o runs/m
refused "train --model.max_positions 2^56+1 (gpt2)" "model.max_positions 72057594037927937 is out of range" \
  "$bin" train --model.arch gpt2 --model.tokenizer "$src/tests/fixtures/bpe/tiny" --data.path in.txt \
  --model.max_positions 72057594037927937 --run.output_dir runs
edit bert num_hidden_layers 100000000
refused "num_hidden_layers 1e8" "config.json: describes a model of .* (num_hidden_layers 100000000" "${predict[@]}"
edit bert hidden_size 1000000000
refused "hidden_size 1e9" "hidden_size 1000000000" "${predict[@]}"
edit bert vocab_size 4000000000
refused "vocab_size 4e9" "config.json: vocab_size 4000000000 is out of range" "${predict[@]}"
edit bert max_position_embeddings 2000000000
refused "max_position_embeddings 2e9" "max_position_embeddings 2000000000" "${predict[@]}"
edit bert pad_token_id 1099511627776
refused "pad_token_id 2^40" "key 'pad_token_id' = 1099511627776 is out of range" "${predict[@]}"
edit gpt2 n_layer 2000000000
refused "gpt2 n_layer 2e9" "n_layer 2000000000" "$bin" generate --model edited --prompt "a" --max-new-tokens 2

# --- a tokenizer id far past the vocabulary ---
rm -rf edited && cp -r bert edited && rm -f edited/vocab.txt
python3 - <<'PY'
import json
t = json.load(open("bert/tokenizer.json"))
t["model"]["vocab"]["far"] = 2147483647
json.dump(t, open("edited/tokenizer.json", "w"))
PY
refused "tokenizer id 2^31-1" 'tokenizer.json: token "far" has id 2147483647' "${predict[@]}"

# --- NaN and Inf weights ---
# poison FOLDER TENSOR VALUE: a copy (as "edited") whose TENSOR's first element is VALUE.
poison() {
  rm -rf edited && cp -r "$1" edited
  python3 - "$2" "$3" <<'PY'
import json, struct, sys
path = "edited/model.safetensors"
data = bytearray(open(path, "rb").read())
n = struct.unpack("<Q", data[:8])[0]
header = json.loads(data[8:8 + n])
begin = 8 + n + header[sys.argv[1]]["data_offsets"][0]
assert header[sys.argv[1]]["dtype"] == "F32"
data[begin:begin + 4] = struct.pack("<f", float(sys.argv[2]))
open(path, "wb").write(data)
PY
}
poison bert classifier.bias nan
refused "predict, NaN in classifier.bias" "tensor 'classifier.bias' holds 1 non-finite value (the first, nan" "${predict[@]}"
refused "eval, NaN in classifier.bias" "tensor 'classifier.bias' holds 1 non-finite value" \
  "$bin" eval --model edited --data data.csv --split train --runs-dir runs
refused "train model.path, NaN in classifier.bias" "model.allow_nonfinite" \
  "$bin" train --model.path edited --data.path data.csv --run.output_dir runs --train.max_steps 1
refused "predict --allow-nonfinite: NaN logits are an error" "in.txt: example 1: the model's logits are not finite" \
  "${predict[@]}" --allow-nonfinite
check "predict --allow-nonfinite warned about the tensor" 'grep -q "warning: .*classifier.bias.*loaded anyway" err'
refused "eval --allow-nonfinite: NaN logits are an error" "logits are not finite" \
  "$bin" eval --model edited --data data.csv --split train --runs-dir runs --allow-nonfinite
poison gpt2 transformer.ln_f.weight inf
refused "generate, Inf in ln_f" "tensor 'transformer.ln_f.weight' holds 1 non-finite value (the first, inf" \
  "$bin" generate --model edited --prompt "a" --max-new-tokens 2
refused "generate --allow-nonfinite: non-finite logits are an error" "next-token logits are not finite" \
  "$bin" generate --model edited --prompt "a" --max-new-tokens 2 --allow-nonfinite

# The untouched folders still work.
rm -rf edited && cp -r bert edited
"${predict[@]}" 2>/dev/null
check "a clean model predicts" '[ $? -eq 0 ] && [ "$(wc -l < out.jsonl)" -eq 2 ]'

[ "$fails" = 0 ] && echo "all passed" || { echo "$fails failed"; exit 1; }
