#!/usr/bin/env bash
# MFU in `wattwise train`'s metrics.json: the model FLOPs of every micro-batch trained (GPT-2: the
# formula of bench and the peers, from the saved config), their rate, and the peak they are divided
# by (train.peak_tflops; none known for a CPU: mfu null, saying what to give); a data-parallel job
# counts the job's micro-batches once. Tiny models on generated data.
# Usage (ctest): bash train_mfu.sh <wattwise-binary> <source-dir> <shared-data-dir>
source "$(dirname "$0")/../cli_common.sh"
checker=$src/tests/tools/check_metrics_json.py
metrics_doc=$src/docs/METRICS.md

python3 "$src/tests/tools/make_cli_data.py" 160
runs=$work/runs
gpt2=(--model.arch gpt2 --model.preset tiny --model.tokenizer "$src/tests/fixtures/bpe/tiny" --data.path "$work/text.txt"
      --data.block_size 32 --data.cache_dir "$work/cache" --data.max_eval_examples 8 --run.progress none
      --run.output_dir "$runs" --run.device cpu --train.batch_size 4 --train.max_steps 6 --train.eval_every 3
      --train.hidden_dropout 0 --train.attention_dropout 0)
run_of() { ls -d "$runs/"*_"$1" 2>/dev/null | head -1; }

"$bin" train "${gpt2[@]}" --run.name plain 2> err_plain
P=$(run_of plain)
check "GPT-2 on the CPU: model FLOPs as 6 x matmul parameters x tokens + 12 L C T x tokens per step; no peak known" \
  'python3 - "$P" <<'"'"'PY'"'"'
import json, sys
run = sys.argv[1]
m = json.load(open(f"{run}/metrics.json"))
c = json.load(open(f"{run}/best_model/config.json"))
V, C, L, T, B = c["vocab_size"], c["n_embd"], c["n_layer"], 32, 4
matmul = V * C + L * (12 * C * C + 13 * C) + 2 * C
per_step = 6 * matmul * B * T + 12 * L * C * T * B * T
t = m["train"]
assert t["steps"] == 6 and abs(t["model_flops"] - 6 * per_step) <= 1e-9 * per_step, (t["model_flops"], 6 * per_step)
assert abs(t["model_flops_per_step"] - per_step) <= 1e-9 * per_step, t
assert abs(t["achieved_tflops"] - t["model_flops"] / t["seconds"] / 1e12) <= 1e-9 * t["achieved_tflops"], t
assert t["peak_tflops"] is None and t["mfu"] is None and "give train.peak_tflops" in t["peak_source"], t
PY' || cat err_plain
check "metrics.json valid and documented" 'python3 "$checker" train "$P/metrics.json" "$metrics_doc"'

"$bin" train "${gpt2[@]}" --train.peak_tflops 0.25 --run.name peak 2> err_peak
check "train.peak_tflops: mfu = achieved / peak, the source named" \
  'json "$(run_of peak)/metrics.json" "abs(m[\"train\"][\"mfu\"] - m[\"train\"][\"achieved_tflops\"] / 0.25) < 1e-12 and m[\"train\"][\"peak_source\"] == \"train.peak_tflops\"" | grep -q True || { cat err_peak; false; }'

"$bin" launch --nproc 2 -- train "${gpt2[@]}" --train.peak_tflops 0.25 --run.name two 2> err_two
check "2 ranks: the same model FLOPs as one process (the job's micro-batches, once), the peak of 2 devices" \
  'json "$(run_of two)/metrics.json" "m[\"train\"][\"model_flops\"] == $(json "$P/metrics.json" "m[\"train\"][\"model_flops\"]") and m[\"train\"][\"peak_tflops\"] == 0.5 and m[\"train\"][\"peak_source\"].endswith(\"x 2 devices\")" | grep -q True || { cat err_two; false; }'

"$bin" train "${gpt2[@]}" --train.peak_tflops -1 --run.name neg 2> err_neg
check "a negative peak: exit 2 or 1, one line naming train.peak_tflops" \
  '[ $? -ne 0 ] && grep -q "train.peak_tflops" err_neg && [ -z "$(run_of neg)" ]'

[ "$fails" -eq 0 ]
