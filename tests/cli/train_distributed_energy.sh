#!/usr/bin/env bash
# Energy, throughput and scaling of data-parallel `wattwise train` on CPU ranks, one box posing as
# several machines (WW_HOST_NAME), with the fake NVML (tests/tools/fake_nvml.cpp) as each machine's
# two GPUs at 100 W, so the GPU figures are known; the CPU and RAM figures are whatever this machine
# gives (RAPL or the estimates), which is why they are only checked to be there and to add up:
# - 3 ranks, rank 2 on "nodeB": metrics.json's energy.total is the sum of energy_by_machine's parts,
#   nodeB's part is there (ranks [2], its two GPUs by PCI bus id at 100 W x its duration, its CPU
#   and RAM), its power trace is written by rank 0 as power_trace_nodeB.csv, kWh and CO2 follow from
#   the total, emissions.csv's row is the job's, and a checkpoint's energy has nodeB's so far, so a
#   run resumed on 2 machines adds its session's parts to it;
# - communication_share in [0, 1], throughput per rank x ranks = throughput, scaling efficiency
#   from a one-process baseline made here (examples/s for BERT, tokens/s for GPT-2);
# - a bad train.scaling_baseline (missing, not JSON, not a training metrics.json, multi-rank,
#   another model, task or precision) stops every rank before the run folder exists, naming the file.
# Usage (ctest): bash train_distributed_energy.sh <wattwise-binary> <source-dir> <shared-data-dir>
source "$(dirname "$0")/../cli_common.sh"
fake="$(dirname "$bin")/tests/libfake_nvml.so"
if [ ! -f "$fake" ]; then echo "SKIP: $fake not built"; exit 77; fi
export WW_NVML_LIBRARY="$fake" WW_FAKE_NVML_GPUS=2 WW_FAKE_NVML_POWER_W=100
checker=$src/tests/tools/check_metrics_json.py
metrics_doc=$src/docs/METRICS.md

python3 "$src/tests/tools/make_cli_data.py" 160

runs=$work/runs
common=(--train.hidden_dropout 0 --train.attention_dropout 0 --run.progress none --run.output_dir "$runs"
        --run.device cpu --train.max_steps 10 --train.eval_every 5 --energy.interval_ms 20)
bert=(--data.path "$work/train.tsv" --model.tokenizer "$work/tok" --data.max_length 16 --train.batch_size 6 "${common[@]}")
gpt2=(--model.arch gpt2 --model.preset tiny --model.tokenizer "$src/tests/fixtures/bpe/tiny" --data.path "$work/text.txt"
      --data.block_size 32 --data.cache_dir "$work/cache" --data.max_eval_examples 8 --train.batch_size 4 "${common[@]}")
run_of() { ls -d "$runs/"*_"$1" 2>/dev/null | head -1; }
# Starts a job by hand: rank r of N on the host named by the r-th word of HOSTS; waits for all.
# Sets $rcs to the ranks' exit codes; rank r's stderr goes to $work/<name>_<r>.
job() {  # name, hosts ("nodeA nodeA nodeB"), train args...
  local name=$1 hosts=($2); shift 2
  local n=${#hosts[@]} args=("$@")
  ranks_on_free_port "$n" "$work/${name}_0" 'WW_HOST_NAME=${hosts[$r]} WORLD_SIZE=$n RANK=$r LOCAL_RANK=$r \
    MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$bin" train "${args[@]}" 2> "$work/${name}_$r"'
}

# --- the baselines: one process, the same configurations ---
"$bin" train "${bert[@]}" --run.name bert_1 2> "$work/err_bert_1" || { cat "$work/err_bert_1"; exit 1; }
"$bin" train "${gpt2[@]}" --run.name gpt2_1 2> "$work/err_gpt2_1" || { cat "$work/err_gpt2_1"; exit 1; }
bert_base=$(run_of bert_1)/metrics.json gpt2_base=$(run_of gpt2_1)/metrics.json
"$bin" train "${bert[@]}" --run.name bert_one_baseline --train.scaling_baseline "$bert_base" 2> "$work/err_one"
check "one process with train.scaling_baseline: runs, says the key is ignored, no distributed object" \
  '[ $? -eq 0 ] && grep -q "train.scaling_baseline is for data-parallel runs" "$work/err_one" &&
   [ "$(json "$(run_of bert_one_baseline)/metrics.json" "\"distributed\" in m")" = False ] || { cat "$work/err_one"; false; }'

# --- 3 ranks on two "machines": nodeA (ranks 0, 1) and nodeB (rank 2); ZeRO 1, so each checkpoint
# also has every rank write its optimizer shard (after the energy exchange, on every rank alike) ---
job bert_3 "nodeA nodeA nodeB" "${bert[@]}" --run.name bert_3 --train.checkpoint_every 5 --train.zero 1 \
  --train.scaling_baseline "$bert_base"
R=$(run_of bert_3)
check "3 ranks on 2 machines: every rank exits 0, one run folder, metrics.json valid and documented" \
  '[ "$rcs" = "0 0 0" ] && [ -d "$R" ] && python3 "$checker" train "$R/metrics.json" "$metrics_doc" ||
   { echo "exit codes: $rcs"; cat "$work"/bert_3_*; false; }'
check "only rank 0's folder: the other ranks wrote no run folder of their own" '[ "$(ls "$runs" | grep -c bert_3)" -eq 1 ]'
check "ZeRO 1: each checkpoint holds the three ranks' optimizer shards" \
  '[ "$(ls "$R/checkpoints/step_5"/optimizer.rank*.safetensors | wc -l)" -eq 3 ] &&
   [ "$(ls "$R/checkpoints/step_10"/optimizer.rank*.safetensors | wc -l)" -eq 3 ]'
check "energy: the total is the sum of the machines' parts; nodeB's part (rank 2, two GPUs at 100 W, CPU, RAM) is there" \
  'python3 - "$R" <<'"'"'PY'"'"'
import json, sys
run = sys.argv[1]
m = json.load(open(f"{run}/metrics.json"))
total, machines = m["energy"]["total"], m["distributed"]["energy_by_machine"]
assert [x["host"] for x in machines] == ["nodeA", "nodeB"], machines
assert [x["ranks"] for x in machines] == [[0, 1], [2]], machines
close = lambda a, b: abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1.0)
for key in ("energy_j", "gpu_j", "cpu_j", "ram_j"):
    parts = sum(x[key] for x in machines)
    assert close(total[key], parts), (key, total[key], parts)
for x in machines:
    assert close(x["energy_j"], x["gpu_j"] + x["cpu_j"] + x["ram_j"]), x
    assert x["cpu_j"] > 0 and x["ram_j"] > 0, x
    assert [g["pci_bus_id"] for g in x["gpus"]] == ["0000:10:00.0", "0000:11:00.0"], x["gpus"]
    for g in x["gpus"]:  # the fake GPUs draw 100 W the whole time
        expected = 100.0 * x["duration_s"]
        assert g["measured"] and abs(g["energy_j"] - expected) <= 0.2 * expected + 0.2, (g, expected)
b = machines[1]
assert b["energy_j"] > 0 and b["power_trace"] == "power_trace_nodeB.csv", b
# nodeB meters appear among the sources of the total, named by its host, and nowhere in an evaluation.
ids = [s["source"] for s in total["sources"] if s["source"].startswith("nodeB/")]
assert "nodeB/gpu0" in ids and "nodeB/gpu1" in ids, ids
assert any(i.startswith("nodeB/cpu") for i in ids) and any(i.startswith("nodeB/ram") for i in ids), ids
training = m["energy"]["phases"]["training"]
assert any(s["source"] == "nodeB/gpu0" for s in training["sources"]), training["sources"]
assert training["energy_j"] > b["energy_j"], (training["energy_j"], b["energy_j"])
for name, phase in m["energy"]["phases"].items():
    if name.startswith("evaluation"):
        assert not any("/" in s["source"] for s in phase["sources"]), (name, phase["sources"])
# kWh and CO2 from the total of the job, with the one carbon factor.
c = total["carbon"]
assert close(total["kwh"], total["energy_j"] / 3.6e6), total
assert close(total["gco2e"], total["kwh"] * c["pue"] * c["intensity_g_per_kwh"]), total
print("  total %.2f J = nodeA %.2f J + nodeB %.2f J" % (total["energy_j"], machines[0]["energy_j"], b["energy_j"]))
PY'
check "emissions.csv: one row for the job (every machine's kWh, 4 GPUs)" \
  'python3 - "$R" <<'"'"'PY'"'"'
import csv, json, sys
run = sys.argv[1]
rows = list(csv.DictReader(open(f"{run}/emissions.csv")))
machines = json.load(open(f"{run}/metrics.json"))["distributed"]["energy_by_machine"]
assert len(rows) == 1, rows
row = rows[0]
kwh = sum(x["energy_j"] for x in machines) / 3.6e6
gpu_kwh = sum(x["gpu_j"] for x in machines) / 3.6e6
assert abs(float(row["energy_consumed"]) - kwh) <= 1e-6 * kwh, (row["energy_consumed"], kwh)
assert abs(float(row["gpu_energy"]) - gpu_kwh) <= 1e-6 * kwh, (row["gpu_energy"], gpu_kwh)
assert row["gpu_count"] == "4" and row["gpu_model"] == "4 x Fake NVIDIA GPU", row
PY'
check "power_trace_nodeB.csv: nodeB's samples of its two GPUs, written by rank 0" \
  'python3 - "$R/power_trace_nodeB.csv" <<'"'"'PY'"'"'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) >= 2, len(rows)
assert float(rows[-1]["gpu0_power_w"]) == 100.0 and float(rows[-1]["gpu1_power_w"]) == 100.0, rows[-1]
assert float(rows[-1]["gpu1_energy_j"]) > 0 and "cpu_energy_j" in rows[-1], rows[-1]
PY'
check "a checkpoint's energy so far has nodeB's (collected from it at the checkpoint)" \
  'python3 - "$R/checkpoints/step_5/trainer_state.json" <<'"'"'PY'"'"'
import json, sys
e = json.load(open(sys.argv[1]))["energy"]
for window in (e["total"], e["phases"]["training"]):
    b = [s for s in window["sources"] if s["source"] == "nodeB/gpu0"]
    assert b and b[0]["energy_j"] > 0, window["sources"]
PY'
check "throughput per rank, communication share, scaling efficiency against the one-process run" \
  'python3 - "$R/metrics.json" "$bert_base" <<'"'"'PY'"'"'
import json, sys
m, base = (json.load(open(p)) for p in sys.argv[1:3])
d, t = m["distributed"], m["train"]
assert 0 <= d["communication_share"] <= 1, d["communication_share"]
assert abs(d["samples_per_s_per_rank"] * 3 - t["samples_per_s"]) <= 1e-9 * t["samples_per_s"], (d, t)
assert "tokens_per_s_per_rank" not in d
b = d["scaling_baseline"]
assert b["path"] == sys.argv[2] and b["batch_size"] == 6 and b["samples_per_s"] == base["train"]["samples_per_s"], b
expected = t["samples_per_s"] / (3 * base["train"]["samples_per_s"])
assert abs(d["scaling_efficiency"] - expected) <= 1e-9 * expected, (d["scaling_efficiency"], expected)
print("  communication share %.3f, scaling efficiency %.3f" % (d["communication_share"], d["scaling_efficiency"]))
PY'

# Resumed on 2 ranks, one per machine: the total is the checkpoint's plus this session's machines.
cp "$R/checkpoints/step_10/trainer_state.json" "$work/state_10.json"
cp "$R/metrics.json" "$work/three_ranks.json"  # a baseline to refuse, below
job resumed "nodeA nodeB" --resume "$R" --train.max_steps 15
check "resumed on 2 machines: total = the checkpoint's + this session's parts; nodeB's second trace" \
  '[ "$rcs" = "0 0" ] && [ -s "$R/power_trace_nodeB_2.csv" ] && python3 - "$R/metrics.json" "$work/state_10.json" <<'"'"'PY'"'"'
import json, sys
m, state = (json.load(open(p)) for p in sys.argv[1:3])
machines = m["distributed"]["energy_by_machine"]
assert [x["ranks"] for x in machines] == [[0], [1]] and machines[1]["power_trace"] == "power_trace_nodeB_2.csv", machines
before, total = state["energy"]["total"]["energy_j"], m["energy"]["total"]["energy_j"]
expected = before + sum(x["energy_j"] for x in machines)
assert abs(total - expected) <= 1e-9 * expected, (total, expected)
PY' || { echo "exit codes: $rcs"; cat "$work"/resumed_*; false; }

# GPT-2 on 2 ranks, each its own machine: rates in tokens/s.
job gpt2_2 "nodeA nodeB" "${gpt2[@]}" --run.name gpt2_2 --train.scaling_baseline "$gpt2_base"
G=$(run_of gpt2_2)
check "GPT-2, 2 ranks on 2 machines: tokens/s per rank and scaling efficiency in tokens/s; parts add up" \
  '[ "$rcs" = "0 0" ] && python3 "$checker" train "$G/metrics.json" "$metrics_doc" && python3 - "$G/metrics.json" "$gpt2_base" <<'"'"'PY'"'"'
import json, sys
m, base = (json.load(open(p)) for p in sys.argv[1:3])
d, t = m["distributed"], m["train"]
assert abs(d["tokens_per_s_per_rank"] * 2 - t["tokens_per_s"]) <= 1e-9 * t["tokens_per_s"], (d, t)
assert d["scaling_baseline"]["tokens_per_s"] == base["train"]["tokens_per_s"]
expected = t["tokens_per_s"] / (2 * base["train"]["tokens_per_s"])
assert abs(d["scaling_efficiency"] - expected) <= 1e-9 * expected, (d["scaling_efficiency"], expected)
machines = d["energy_by_machine"]
assert [x["ranks"] for x in machines] == [[0], [1]], machines
total = m["energy"]["total"]["energy_j"]
assert abs(total - sum(x["energy_j"] for x in machines)) <= 1e-9 * total, (total, machines)
PY' || { echo "exit codes: $rcs"; cat "$work"/gpt2_2_*; false; }

# --- bad baselines: every rank stops before the run folder exists, naming the file ---
echo "not json {" > "$work/garbage.json"
echo '{"run": {"status": "completed"}}' > "$work/not_metrics.json"
python3 - "$bert_base" "$work/bf16.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["execution"]["precision"] = "bf16"
json.dump(m, open(sys.argv[2], "w"))
PY
rejected() {  # label, baseline file, expected text
  local before file=$2 text=$3
  before=$(ls "$runs" | wc -l)
  job bad "nodeA nodeB" "${bert[@]}" --run.name bad --train.scaling_baseline "$file"
  check "bad baseline ($1): both ranks exit 1 naming the file and the key, no run folder" \
    '[ "$rcs" = "1 1" ] && [ "$(ls "$runs" | wc -l)" -eq "$before" ] &&
     grep -qF "train.scaling_baseline: $file$text" "$work/bad_0" && grep -qF "(rank 1): train.scaling_baseline: $file" "$work/bad_1" ||
     { echo "exit codes: $rcs"; cat "$work/bad_0" "$work/bad_1"; false; }'
}
rejected "missing" "$work/missing.json" ": cannot read it"
rejected "not JSON" "$work/garbage.json" " is not the metrics.json of a wattwise training run (not JSON)"
rejected "not a training metrics.json" "$work/not_metrics.json" " is not the metrics.json of a wattwise training run (no run.device)"
rejected "multi-rank" "$work/three_ranks.json" " is a run of 3 ranks (distributed.ranks)"
rejected "another model and task" "$gpt2_base" " trained another model: its model.arch is \"gpt2\""
rejected "another precision" "$work/bf16.json" " ran execution.precision bf16, this run fp32"

[ $fails -eq 0 ] && echo "train_distributed_energy: ok" || { echo "train_distributed_energy: $fails failure(s)"; exit 1; }
