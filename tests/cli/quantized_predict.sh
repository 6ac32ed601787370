#!/usr/bin/env bash
# `wattwise predict` and `wattwise eval` with the quantized precisions on the CPU: int8-weight and
# int8 (W8A8, calibrated) run and record the quantization in metrics.json (the eval file still
# matches docs/METRICS.md); fp8 on the CPU, a bad --calibration and an unreadable --calibration-data
# are clear one-line errors with a non-zero exit.
# Usage (ctest): bash quantized_predict.sh <wattwise-binary> <source-dir> <shared-data-dir>
source "$(dirname "$0")/../cli_common.sh"

mkdir tok
printf '%s\n' '[PAD]' '[UNK]' '[CLS]' '[SEP]' '[MASK]' a the film movie was is very really plot acting \
  good great fine bad awful poor > tok/vocab.txt
python3 - <<'PY'
import random
r = random.Random(5)
filler = "a the film movie was is very really plot acting".split()
words = {1: "good great fine".split(), 0: "bad awful poor".split()}
rows = []
for i in range(40):
    w = [r.choice(filler) for _ in range(r.randint(3, 10))]
    w.insert(r.randint(0, len(w)), r.choice(words[i % 2]))
    rows.append((" ".join(w), i % 2))
with open("dev.tsv", "w") as f:
    f.write("text\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows))
with open("texts.txt", "w") as f:
    f.write("".join(t + "\n" for t, _ in rows))
with open("calibration.txt", "w") as f:
    f.write("".join(t + "\n" for t, _ in reversed(rows[:10])))
PY
"$bin" init-model --arch bert --preset tiny --tokenizer tok --num-labels 2 -o m >/dev/null 2>"$work/err"
check "init-model" '[ $? -eq 0 ] || { cat "$work/err"; false; }'

"$bin" predict --device cpu --runs-dir runs --model m --input texts.txt --output fp32.jsonl 2>err_fp32
check "predict fp32" '[ $? -eq 0 ]'
for p in int8-weight int8; do
  "$bin" predict --device cpu --precision $p --calibration 16 --runs-dir runs_$p --model m --input texts.txt \
    --output $p.jsonl 2>err_$p
  check "predict --precision $p exits 0" '[ $? -eq 0 ] && [ "$(wc -l < $p.jsonl)" -eq 40 ]'
  d=$(ls -d runs_$p/*_predict | head -1)
  want_cal=$([ $p = int8 ] && echo 16 || echo 0)
  want_method=$([ $p = int8 ] && echo max-abs || echo none)
  check "predict $p: metrics.json records precision and calibration" \
    '[ "$(json "$d/metrics.json" "m[\"precision\"], m[\"quantization\"], m[\"calibration_examples\"], m[\"calibration_method\"]")" = "$p $p $want_cal $want_method" ]'
  check "predict $p: logits close to fp32 (relative Frobenius < 0.1) and labels agree on >= 90%" 'python3 - fp32.jsonl $p.jsonl <<'"'"'PY'"'"'
import json, math, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
num = sum((x - y) ** 2 for p, q in zip(a, b) for x, y in zip(p["logits"], q["logits"]))
den = sum(x * x for p in a for x in p["logits"])
agree = sum(p["label"] == q["label"] for p, q in zip(a, b)) / len(a)
print(f"relative error {math.sqrt(num / den):.3e}, agreement {agree:.3f}")
sys.exit(0 if math.sqrt(num / den) < 0.1 and agree >= 0.9 and num > 0 else 1)
PY'
done

"$bin" eval --device cpu --precision int8 --calibration 8 --calibration-data calibration.txt --runs-dir runs_eval \
  --model m --data dev.tsv --split train --output eval.json >/dev/null 2>err_eval
check "eval --precision int8 with --calibration-data exits 0" '[ $? -eq 0 ] || { cat err_eval; false; }'
check "eval metrics.json records the quantization" \
  '[ "$(json eval.json "m[\"execution\"][\"precision\"], m[\"execution\"][\"quantization\"], m[\"execution\"][\"calibration_examples\"], m[\"execution\"][\"calibration_method\"]")" = "int8 int8 8 max-abs" ] && json eval.json "m[\"execution\"][\"calibration_data\"]" | grep -q "calibration.txt"'
check "eval metrics.json matches docs/METRICS.md" 'python3 "$src/tests/tools/check_metrics_json.py" eval eval.json "$src/docs/METRICS.md"'

"$bin" predict --device cpu --precision fp8 --runs-dir runs --model m --input texts.txt --output fp8.jsonl 2>err_fp8
check "fp8 on the cpu: exit 1, one line naming precision, device and the 8.9+ requirement" \
  '[ $? -eq 1 ] && grep -q "fp8" err_fp8 && grep -q "cpu" err_fp8 && grep -q "compute capability 8.9+" err_fp8 && [ "$(wc -l < err_fp8)" -eq 1 ] && [ ! -e fp8.jsonl ]'
"$bin" eval --device cpu --precision fp8 --runs-dir runs --model m --data dev.tsv --split train 2>err_fp8_eval >/dev/null
check "eval fp8 on the cpu: exit 1" '[ $? -eq 1 ] && grep -q "compute capability 8.9+" err_fp8_eval'
"$bin" predict --device cpu --precision int8 --calibration 0 --model m --input texts.txt --output x.jsonl 2>err_zero
check "--calibration 0: usage error" '[ $? -eq 2 ]'
"$bin" predict --device cpu --precision int8 --calibration-data missing.txt --runs-dir runs --model m --input texts.txt \
  --output x.jsonl 2>err_missing
check "missing --calibration-data: exit 1 naming the file" '[ $? -eq 1 ] && grep -q "missing.txt" err_missing'

echo "$fails failed"
[ $fails -eq 0 ]
