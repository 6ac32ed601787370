#!/usr/bin/env bash
# Weak scaling on the GPUs of one host (docs/DISTRIBUTED.md, "Scaling on several GPUs"): wattwise
# data-parallel with ZeRO 0 and ZeRO 2 against PyTorch DDP and FSDP (SHARD_GRAD_OP), alternating, on
# 1, 2, 4... GPUs, each GPU on the case's own batch; then the loss check (GPT-2 124M trained with
# ZeRO 0 and 2 against one GPU). `scripts/gpu/run.sh --steps build,scaling` runs it; `--help` below.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/gpu/scaling.sh --wattwise BIN [options]

Every result goes to OUT/scaling.jsonl (one JSON object a line: `wattwise bench --json`'s fields
plus side, gpus and round; the loss runs; what was not run and why), and
scripts/gpu/scaling_table.py makes OUT/scaling_table.md of it (also printed).

Bench part, for each round, GPU count N and case (sides alternate: reversed every other round):
  wattwise-zero0   wattwise launch --nproc N -- bench --case C --zero 0
  wattwise-zero2   wattwise launch --nproc N -- bench --case C --zero 2
  pytorch-ddp      torchrun --standalone --nproc-per-node N bench/peer_pytorch_dist.py --dist ddp
  pytorch-fsdp     the same with --dist fsdp
  and at N = 1 the plain processes: wattwise (bench, no launcher) and pytorch (bench/peer_pytorch.py).
Loss part: `wattwise train` of GPT-2 124M on tiny shakespeare (16 x 1024 tokens a step, bf16, dropout
off) for --loss-steps steps: one plain process, then wattwise launch --nproc N with train.zero 0 and 2
for each N (the largest first). Order: round 1 of the bench part, the loss part, then rounds 2..R, so
a deadline that cuts the call leaves one whole round and the loss check.

Options:
  --wattwise BIN        the wattwise binary (required)
  --gpus LIST           GPU counts (default 1,2,4; more than the GPUs present are skipped, saying so)
  --cases LIST          (default gpt2-train-bf16,distilbert-train-bf16)
  --rounds R            (default 2)
  --min-seconds S       each timed window (default 4)
  --steps N, --warmup N timed and warm-up steps (default: each case's)
  --parts LIST          bench,loss (default both)
  --loss-steps N        (default 200)
  --loss-gpus LIST      GPU counts of the loss part (default: --gpus)
  --data DIR            tokenizers/gpt2 and tinyshakespeare/input.txt (default .gpu-carry/data)
  --out DIR             results (default $OUT, else /tmp/ww-out)
  --logs DIR            every run's log and JSON (default OUT/logs/scaling)
  --until EPOCH         start nothing that would end after this time (seconds since 1970; run.sh's
                        deadline), or --deadline S: S seconds from now (default 570)
  --python PY           the peers' interpreter (default python3)
  --device cuda|cpu     cpu: ranks are CPU processes (Gloo), for checking this script without a GPU
  --smoke               tiny shapes in fp32 (GPT-2 and DistilBERT tiny, batch 2, length 16; the loss
                        part: GPT-2 tiny, 4 x 16 tokens a step), for checking this script on a CPU
EOF
}

die() { echo "scaling.sh: $*" >&2; exit 2; }
words() { echo "$1" | tr ',' ' '; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
ww="" gpus=1,2,4 cases=gpt2-train-bf16,distilbert-train-bf16 rounds=2 min_seconds=4 steps="" warmup=""
parts=bench,loss loss_steps=200 loss_gpus="" data=$root/.gpu-carry/data out=${OUT:-/tmp/ww-out} logs="" until=""
deadline_s=570 python=python3 device=cuda smoke=0
command_line="scripts/gpu/scaling.sh $*"
while [ $# -gt 0 ]; do
  arg=$1; shift
  case $arg in
    -h|--help) usage; exit 0 ;;
    --smoke) smoke=1; continue ;;
    --*=*) set -- "${arg#*=}" "$@"; arg=${arg%%=*} ;;
    --*) ;;
    *) die "unexpected argument '$arg' (see --help)" ;;
  esac
  [ $# -gt 0 ] || die "$arg needs a value"
  val=$1; shift
  case $arg in
    --wattwise) ww=$val ;;
    --gpus) gpus=$val ;;
    --cases) cases=$val ;;
    --rounds) rounds=$val ;;
    --min-seconds) min_seconds=$val ;;
    --steps) steps=$val ;;
    --warmup) warmup=$val ;;
    --parts) parts=$val ;;
    --loss-steps) loss_steps=$val ;;
    --loss-gpus) loss_gpus=$val ;;
    --data) data=$val ;;
    --out) out=$val ;;
    --logs) logs=$val ;;
    --until) until=$val ;;
    --deadline) deadline_s=$val ;;
    --python) python=$val ;;
    --device) device=$val ;;
    *) die "unknown option $arg (see --help)" ;;
  esac
done
[ -n "$ww" ] || die "--wattwise BIN is required"
[ -x "$ww" ] || die "no executable wattwise at $ww"
ww=$(realpath "$ww")
case $device in cuda|cpu) ;; *) die "--device: cuda or cpu" ;; esac
for p in $(words "$parts"); do case $p in bench|loss) ;; *) die "--parts: bench, loss" ;; esac; done
loss_gpus=${loss_gpus:-$gpus}
for n in $(words "$gpus $loss_gpus"); do [[ $n =~ ^[1-9][0-9]*$ ]] || die "--gpus: positive counts, got '$n'"; done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds: a positive count"
has_part() { [[ " $(words "$parts") " == *" $1 "* ]]; }

mkdir -p "$out"
out=$(realpath "$out")
logs=${logs:-$out/logs/scaling}
mkdir -p "$logs"
logs=$(realpath "$logs")
data=$(realpath -m "$data")
jsonl=$out/scaling.jsonl
: > "$jsonl"  # this call's results only: scaling_table.py merges the files of several calls
work=$(mktemp -d /tmp/ww-scaling.XXXXXX)
trap 'rm -rf "$work"' EXIT
[ -n "$until" ] || until=$(( $(date +%s) + deadline_s ))
left() { echo $(( until - $(date +%s) )); }
# A timeout for one command: at most $1 seconds, never past the deadline (5 s to spare).
cap() { local l; l=$(( $(left) - 5 )); [ "$1" -lt "$l" ] && echo "$1" || echo $(( l > 1 ? l : 1 )); }
say() { echo "scaling: $*"; }
export PYTHONUNBUFFERED=1
# NVLink multicast stays off on shared multi-GPU hosts (NCCL, PyTorch, NVSHMEM), whatever the caller set.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
# CPU ranks share the cores: one thread each (as torchrun sets for its ranks), or OpenMP threads
# spinning against each other slow every side by an order of magnitude.
if [ "$device" = cpu ]; then export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}; fi

# The loss part's model and shapes: GPT-2 124M, 16 x 1024 tokens a step, bf16 (tiny ones with --smoke).
smoke_case=() loss_preset=small loss_block=1024 loss_batch=16 loss_precision=bf16
if [ "$smoke" = 1 ]; then
  smoke_case=(--preset tiny --batch 2 --seq-len 16 --precision fp32)
  loss_preset=tiny loss_block=16 loss_batch=4 loss_precision=fp32
fi

# A JSON line into scaling.jsonl: a file's objects with these fields added, or one object built here.
record() {  # json-file-or-"-" key=value...   (values are JSON when they parse, else strings)
  "$python" - "$jsonl" "$@" <<'PY'
import json, sys
out, src, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
extra = {}
for p in pairs:
    k, v = p.split("=", 1)
    try:
        extra[k] = json.loads(v)
    except ValueError:
        extra[k] = v
objs = [{}] if src == "-" else [json.loads(l) for l in open(src) if l.strip()]
with open(out, "a") as f:
    for o in objs:
        o.update(extra)
        f.write(json.dumps(o) + "\n")
PY
}
not_run() {  # part side gpus case round reason
  record - schema=wattwise-scaling-not-run/1 "part=$1" "side=$2" "gpus=$3" "case=$4" "round=$5" "reason=$6"
  say "not run: $1 $2 N=$3 $4 round $5: $6"
}

# ---------------------------------------------------------------------------------------------
# What is here: GPUs, torch, ZeRO in `wattwise bench`, the data of the loss part.
present=0
if [ "$device" = cuda ]; then
  present=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
  gpu_name=$(nvidia-smi --query-gpu=name,driver_version,power.limit --format=csv,noheader 2>/dev/null | head -1 || true)
else
  present=$(getconf _NPROCESSORS_ONLN)  # (nproc would follow OMP_NUM_THREADS)
  gpu_name="cpu: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)"
fi
torch_version=$("$python" -c 'import torch, transformers; print(torch.__version__, "transformers", transformers.__version__)' 2>/dev/null || true)
zero_flag=0
bench_help=$("$ww" bench --help 2>/dev/null || true)
if [[ $bench_help == *--zero* ]]; then zero_flag=1; fi
# The run's description first, so the table can name the GPU kind, the command and the peers.
record - schema=wattwise-scaling-meta/1 "command=$command_line" "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  "host=$(hostname)" "device=$device" "gpu=$gpu_name" "gpus_present=$present" \
  "host_cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(getconf _NPROCESSORS_ONLN) logical cores" \
  "wattwise=$("$ww" --version 2>/dev/null | head -1)" "torch=${torch_version:-none}" \
  "min_seconds=$min_seconds" "rounds=$rounds" "loss_steps=$loss_steps" "smoke=$smoke"
say "$gpu_name; $present present; torch ${torch_version:-missing}; bench --zero: $([ $zero_flag = 1 ] && echo yes || echo no)"

# The cases as wattwise defines them (the peers build the same model from its config.json).
"$ww" bench --case list --json "$work/cases.jsonl" "${smoke_case[@]}" > /dev/null
"$python" - "$work" "$(words "$cases")" <<'PY' > "$work/cases.txt"
import json, sys
work, wanted = sys.argv[1], sys.argv[2].split()
defined = {c["case"]: c for c in (json.loads(l) for l in open(f"{work}/cases.jsonl") if l.strip())}
for name in wanted:
    c = defined.get(name)
    if c is None:
        sys.exit(f"scaling.sh: unknown case {name}")
    if c["mode"] != "train" or "error" in c:
        sys.exit(f"scaling.sh: case {name} does not run data-parallel: {c.get('error', c['mode'])}")
    json.dump(c["model_config"], open(f"{work}/{name}.config.json", "w"))
    print(name, c["arch"], c["preset"], c["batch"], c["seq_len"], c["precision"], c["steps"], c["warmup"])
PY
declare -A arch preset batch seq_len precision case_steps case_warmup
while read -r c a p b t x s w; do
  arch[$c]=$a preset[$c]=$p batch[$c]=$b seq_len[$c]=$t precision[$c]=$x case_steps[$c]=${steps:-$s}
  case_warmup[$c]=${warmup:-$w}
done < "$work/cases.txt"

# ---------------------------------------------------------------------------------------------
declare -A longest  # per side and case: the most seconds one run took (the estimate for the next)
# The estimate: that side's longest run of the case, else the longest of its tool's other sides
# (wattwise-*, pytorch-*), else the default.
estimate() {  # side case default
  local k s=${longest[$1/$2]:-}
  if [ -z "$s" ]; then
    for k in "${!longest[@]}"; do
      if [[ $k == "${1%%-*}"*/$2 ]] && [ "${longest[$k]}" -gt "${s:-0}" ]; then s=${longest[$k]}; fi
    done
  fi
  echo "${s:-$3}"
}
# Per-run bookkeeping: the longest time of the side and case, and the line saying what was measured.
took() {  # side case seconds
  if [ "$3" -gt "${longest[$1/$2]:-0}" ]; then longest[$1/$2]=$3; fi
}
rate() {  # bench json
  "$python" -c 'import json, sys
r = json.load(open(sys.argv[1]))
key, unit = ("tokens_per_s", "tokens/s") if r["arch"] == "gpt2" else ("samples_per_s", "samples/s")
print("%s %s" % (format(r[key], ",.1f"), unit))' "$1"
}

# The command of one side's run of a case on N GPUs, into the array `cmd`.
side_command() {  # side N case json
  local side=$1 n=$2 c=$3 json=$4
  local common=(--case "$c" --device "$device" --min-seconds "$min_seconds" --steps "${case_steps[$c]}"
    --warmup "${case_warmup[$c]}")
  local shape=(--arch "${arch[$c]}" --preset "${preset[$c]}" --batch "${batch[$c]}" --seq-len "${seq_len[$c]}"
    --precision "${precision[$c]}" --config "$work/$c.config.json")
  case $side in
    wattwise) cmd=("$ww" bench "${common[@]}" "${smoke_case[@]}" --json "$json") ;;
    wattwise-zero0|wattwise-zero2)
      local z=()
      [ "$zero_flag" = 1 ] && z=(--zero "${side#wattwise-zero}")
      cmd=("$ww" launch --nproc "$n" -- bench "${common[@]}" "${smoke_case[@]}" "${z[@]}" --json "$json") ;;
    pytorch) cmd=("$python" "$root/bench/peer_pytorch.py" --mode eager --task train "${common[@]}" "${shape[@]}"
      --json "$json") ;;
    pytorch-ddp|pytorch-fsdp)
      cmd=("$python" -m torch.distributed.run --standalone --nproc-per-node "$n" "$root/bench/peer_pytorch_dist.py"
        --dist "${side#pytorch-}" "${common[@]}" "${shape[@]}" --json "$json") ;;
  esac
}

bench_round() {  # round
  local r=$1 n c side sides json log rc t0 s guess
  for n in $(words "$gpus"); do
    for c in $(words "$cases"); do
      sides=(wattwise-zero0 wattwise-zero2 pytorch-ddp pytorch-fsdp)
      [ "$n" = 1 ] && sides=(wattwise wattwise-zero0 wattwise-zero2 pytorch pytorch-ddp pytorch-fsdp)
      # Reversed every other round, so a drift in clocks or temperature favours no side.
      if [ $(( r % 2 )) = 0 ]; then mapfile -t sides < <(printf '%s\n' "${sides[@]}" | tac); fi
      for side in "${sides[@]}"; do
        if [ "$n" -gt "$present" ]; then not_run bench "$side" "$n" "$c" "$r" "only $present GPU(s) here"; continue; fi
        if [ "$side" = wattwise-zero2 ] && [ "$zero_flag" = 0 ]; then
          not_run bench "$side" "$n" "$c" "$r" "this wattwise has no bench --zero"; continue
        fi
        if [[ $side == pytorch* ]] && [ -z "$torch_version" ]; then
          not_run bench "$side" "$n" "$c" "$r" "$python cannot import torch and transformers"; continue
        fi
        # Before any run of the case: about 30 s for ours, 60 s for a peer (Python, torch and
        # transformers imported, torchrun started).
        guess=$(estimate "$side" "$c" "$([[ $side == pytorch* ]] && echo 60 || echo 30)")
        if [ $(( $(left) - 10 )) -lt "$guess" ]; then
          not_run bench "$side" "$n" "$c" "$r" "deadline: $(left) s left, a run takes about $guess s"; continue
        fi
        json=$logs/${side}_${n}gpu_${c}_r$r.json log=$logs/${side}_${n}gpu_${c}_r$r.log
        rm -f "$json"
        side_command "$side" "$n" "$c" "$json"
        t0=$(date +%s)
        rc=0
        timeout "$(cap 300)" "${cmd[@]}" > "$log" 2>&1 || rc=$?
        s=$(( $(date +%s) - t0 ))
        took "$side" "$c" "$s"
        if [ "$rc" = 0 ] && [ -s "$json" ]; then
          record "$json" "side=$side" "gpus=$n" "round=$r" "run_s=$s"
          say "round $r N=$n $c $side: $(rate "$json") ($s s)"
        else
          not_run bench "$side" "$n" "$c" "$r" "rc $rc after $s s: $(grep -v '^\s*$' "$log" | tail -1 | cut -c1-200)"
        fi
      done
    done
  done
  return 0
}

# GPT-2 124M, 16 x 1024 tokens a step, bf16, as the gpt2-train-bf16 case and gpt2-converge train;
# dropout off: with it each rank draws its own masks (docs/DISTRIBUTED.md), and the runs on 1 and N
# GPUs would differ by those, not by the data parallelism. No evaluation: the training loss is compared.
loss_part() {
  local tok=$data/tokenizers/gpt2 text=$data/tinyshakespeare/input.txt spec n z side name run d rc t0 s guess order
  if [ ! -f "$text" ] || [ ! -f "$tok/vocab.json" ]; then
    not_run loss all - gpt2-loss - "no $text or $tok (carry .gpu-carry: scripts/gpu/prepare_carry.sh)"
    return 0
  fi
  local train=(train --model.arch gpt2 --model.preset "$loss_preset" --model.tokenizer "$tok" --data.path "$text"
    --data.block_size "$loss_block" --train.batch_size "$loss_batch" --train.precision "$loss_precision"
    --train.lr 6e-4 --train.schedule cosine
    --train.warmup_steps $(( loss_steps / 10 )) --train.max_steps "$loss_steps" --train.weight_decay 0.1
    --data.eval_split "" --train.hidden_dropout 0 --train.attention_dropout 0 --data.cache_dir "$work/cache"
    --run.device "$device" --run.output_dir "$work/loss_runs" --run.progress none)
  # The plain process first (the reference), then the largest N first.
  order=(wattwise:1:0)
  for n in $(words "$loss_gpus" | tr ' ' '\n' | sort -rnu); do order+=("wattwise-zero0:$n:0" "wattwise-zero2:$n:2"); done
  for spec in "${order[@]}"; do
    IFS=: read -r side n z <<< "$spec"
    if [ "$n" -gt "$present" ]; then not_run loss "$side" "$n" gpt2-loss - "only $present GPU(s) here"; continue; fi
    guess=$(estimate "$side" gpt2-loss 60)
    if [ $(( $(left) - 10 )) -lt "$guess" ]; then
      not_run loss "$side" "$n" gpt2-loss - "deadline: $(left) s left, a run takes about $guess s"; continue
    fi
    name=loss_${side}_${n}gpu
    # The plain process has no launcher and no ZeRO stage; the others run train.zero 0 or 2.
    local job=("${train[@]}")
    [ "$side" = wattwise ] || job=(launch --nproc "$n" -- "${train[@]}" --train.zero "$z")
    t0=$(date +%s)
    rc=0
    timeout "$(cap 400)" "$ww" "${job[@]}" --run.name "$name" > "$logs/$name.log" 2>&1 || rc=$?
    s=$(( $(date +%s) - t0 ))
    took "$side" gpt2-loss "$s"
    run=""
    for d in "$work"/loss_runs/*_"$name"; do
      if [ -d "$d" ]; then run=$d; fi
    done
    if [ "$rc" != 0 ] || [ ! -f "$run/metrics.json" ]; then
      not_run loss "$side" "$n" gpt2-loss - "rc $rc after $s s: $(grep -v '^\s*$' "$logs/$name.log" | tail -1 | cut -c1-200)"
      continue
    fi
    cp "$run/metrics.json" "$logs/$name.metrics.json"
    "$python" - "$run/metrics.json" "$work/loss.json" "$side" "$n" "$z" "$s" "$loss_preset" <<'PY'
import json, sys
path, dest, side, n, z, s, preset = sys.argv[1:8]
m = json.load(open(path)); t = m["train"]; d = m.get("distributed") or {}
json.dump({"schema": "wattwise-scaling-loss/1", "side": side, "gpus": int(n), "zero": int(z), "run_s": int(s),
           "model": f"gpt2 {preset}", "block_size": m["data"].get("block_size"),
           "steps": t["steps"], "final_loss": t["final_loss"], "tokens_per_s": t.get("tokens_per_s"),
           "batch_size": t["batch_size"], "precision": m["execution"].get("precision"),
           "memory_per_rank": d.get("memory_per_rank")}, open(dest, "w"))
PY
    record "$work/loss.json"
    say "loss N=$n $side: $(grep -o '"final_loss": [0-9.e+-]*' "$work/loss.json") after $s s"
    rm -rf "$run"  # its best_model (0.5 GB) is not needed
  done
  return 0
}

# ---------------------------------------------------------------------------------------------
start=$(date +%s)
has_part bench && bench_round 1
has_part loss && loss_part
if has_part bench; then
  for r in $(seq 2 "$rounds"); do bench_round "$r"; done
fi
say "$(( $(date +%s) - start )) s; table:"
"$python" "$here/scaling_table.py" "$jsonl" --out "$out/scaling_table.md" || say "table: failed (rc $?)"
