#!/usr/bin/env bash
# The GPU-machine driver: one call builds (or takes prebuilt binaries), tests, benchmarks, profiles
# and validates, step by step, inside one deadline. `scripts/gpu/run.sh --help` prints the usage.
set -uo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/gpu/run.sh [--steps STEP,...] [options]

One call on the GPU machine: the steps named, in the order named, inside one deadline (a device
call may run 10 minutes). Works from the repository root whatever the current folder; unpacks the
Debian packages carried in .deps (scripts/gpu/setup-deps.sh) and every .gpu-carry/packed/*.tar.xz
into .gpu-carry/ (scripts/gpu/prepare_carry.sh fills both on the CPU machine). Results in $OUT
(default /tmp/ww-out): summary.txt (one line per result; also printed), ab.jsonl and bench.jsonl
(the ab and bench steps' `wattwise bench` runs), the harness's bench_<gpu>_<date>.json/.md, a
step's own result files, and every log in logs.tar.gz (a device call returns at most 8 files).

Steps (default: build,test):
  build          Release CUDA build in build/: wattwise, plus the test programs --tests selects
                 when test, timing or parity follow (a warm machine rebuilds only what changed)
  test           the test programs --tests selects, each under --test-timeout (GPU tests skip
                 without a GPU, so every program runs anywhere); --ctest: through ctest instead
  timing         the kernel timing reports: the disabled *Timing* tests of every test program
  dp1            the data-parallel path over one rank (NCCL, WORLD_SIZE=1) against a plain
                 process, same binary, alternating: `wattwise bench` of --ab-cases, --ab-rounds
  ab             before/after on one GPU: `wattwise bench` of --ab-cases, the new binary and the
                 --base binary alternating (which goes first swaps every round), --ab-rounds rounds
  harness        bench/run_harness.py: wattwise, PyTorch eager and torch.compile alternating
  bench          `wattwise bench` of --bench-cases, ours alone
  profile        Nsight Compute (clocks untouched) for each --profile item
  energy         the energy validation (scripts/gpu/validate_energy.sh)
  parity         full-size parity with transformers (bert-base, distilbert-base, random init)
  cpu-bench      tokenizer throughput against HF tokenizers; CPU inference on 2 cores against
                 PyTorch eager, 2 alternating rounds (needs a build: build/bench/)
  e2e            predict on the GPU against the CPU and bf16/fp16 against fp32 (fused and reference
                 attention), then tiny BERT trained 300 steps on SST-2 on the GPU
  memory         peak memory of DistilBERT-base training, 32 x 256, fp32/bf16 x checkpointing
                 none/every/sqrt (needs data/aclImdb.tar.gz)
  imdb           DistilBERT-shaped model from scratch on IMDB, length 256, bf16, per --imdb-runs
  sweep          BERT-base trained one epoch on SST-2, then `wattwise sweep` over precision x
                 length x attention (pareto.csv, report.html)
  gpt2-converge  GPT-2 124M from scratch on tiny shakespeare with the plan exported, replayed in
                 transformers; the validation-loss curves compared (2% bound)
  minilm         all-MiniLM-L6-v2 fine-tuned by wattwise and replayed in PyTorch from the same
                 start (bench/minilm_side_by_side.py), then the saved model in transformers
  scaling        weak scaling on --scaling-gpus GPUs (scripts/gpu/scaling.sh): wattwise ZeRO 0 and 2
                 against PyTorch DDP and FSDP alternating, then GPT-2's loss with ZeRO 0 and 2 against
                 one GPU; $OUT/scaling.jsonl and scaling_table.md (scripts/gpu/scaling_table.py)
  guidelines     issue 30's measurements for docs/GUIDELINES.md, per --guidelines: `wattwise ablate`
                 of examples/ablations/gpt2_adaptive.toml (tiny shakespeare) and
                 minilm_sst2_green.toml (the MiniLM checkpoint, SST-2) with this machine's folders;
                 $OUT/guidelines_<item>_ablation.csv and _metrics.json, scripts/gpu/guidelines_summary.py
                 in the summary, the runs' metrics and logs in logs.tar.gz

Binaries:
  --prebuilt DIR       take wattwise and the test programs from DIR (scripts/gpu/build_commit.sh
                       output) instead of build/; no build step needed
  --new FILE           the "after" wattwise of ab (default: the one under test)
  --base FILE          the "before" wattwise of ab (default .gpu-carry/base/wattwise)

Tests:
  --tests GLOBS        test programs (names, shell globs, comma or space separated; default '*':
                       all, CPU tests too), e.g. '*cuda* kernels_* ops_* models_*'
  --test-filter F      gtest filter (default: every test)
  --test-timeout S     per program (default 300)
  --test-jobs N        programs run side by side (default 4)
  --ctest              run ctest -LE 'fuzz|data' in build/ (command-line tests included)
  --timing-filter F    gtest filter of the timing step (default '*Timing*')

Harness:
  --cases LIST         (default gpt2-train-bf16,distilbert-train-bf16,distilbert-train-fp16,
                       distilbert-train-fp32,bert-train-bf16,bert-infer-fp16-b1,bert-infer-fp16-b32,
                       bert-infer-fp16-b256,distilbert-infer-fp16-b32,minilm-train-bf16; or all)
  --compile-cases LIST torch.compile for these (default gpt2-train-bf16,distilbert-train-bf16; all)
  --rounds N           rounds per case (default 3)
  --min-seconds S      each run's timed window (default: the harness's, 6 s)
  --harness-args ARGS  more harness flags, e.g. "--no-compile", "--one-shot-peers", "--quick"
  The harness starts no case that would end after the deadline and lists those left out.

ab and bench:
  --ab-cases LIST      (default gpt2-train-bf16,distilbert-train-bf16,bert-train-bf16; all: the
                       harness's --cases). Every run goes to $OUT/ab.jsonl with its side, and a
                       table gives each side's median rate, its spread, and new/base
  --ab-rounds N        (default 2)
  --ab-min-seconds S   each run's timed window (default 2)
  --bench-cases LIST   (default gpt2-train-bf16)
  --bench-args ARGS    more `wattwise bench` flags, e.g. "--attention reference --min-seconds 3"

Profiles (--profile repeats; default gpt2-step):
  gpt2-step                   kernel durations of a GPT-2 124M training step (`wattwise train`)
  attention                   Nsight Compute sections of the fused attention kernels, GPT-2 step
  CASE:SKIP:COUNT             kernel durations of COUNT kernels of `wattwise bench --case CASE`
                              after SKIP (initialisation, warm-up)
  details:CASE:REGEX:SKIP:COUNT  speed-of-light, memory, occupancy, launch and warp-state
                              sections of the kernels matching REGEX (caches kept warm)
  --ncu-cache all|none        Nsight Compute's cache flush between kernels for the duration
                              profiles (default all; none keeps the caches warm, as a graph
                              replay does: batch-1 inference partly runs from L2)

Other steps:
  --task sst2|imdb     minilm's task (default sst2; the checkpoint and IMDB do not fit one carry:
                       run imdb on a warm machine after sst2, which keeps the checkpoint in build/carry)
  --seeds "S ..."      minilm seeds (default "42 43 44")
  --lr-sweep "LR ..."  minilm learning-rate sweep before the seeds (default: the recipe's)
  --skip-pytorch       minilm: wattwise only
  --train-args ARGS    minilm: more `wattwise train` overrides
  --gpt2-steps N       gpt2-converge steps (default 500)
  --imdb-runs "LR:EPOCHS:SMOOTHING ..."  imdb runs (default 1e-4:3:0)
  --sweep-train N      sweep: SST-2 training sentences (default 24000)

Guidelines:
  --guidelines LIST    which ablations, in this order (default gpt2,minilm): gpt2 (tiny shakespeare
                       and the GPT-2 tokenizer, in every .gpu-carry), minilm (the checkpoint and SST-2:
                       prepare_carry.sh --with minilm --with glue; the checkpoint may instead be a
                       warm machine's build/carry/minilm)
  --guidelines-args ARGS  more `wattwise ablate` flags for each, e.g. "--seeds 1"
  --guidelines-resume  continue each one's newest unfinished ablation in build/guidelines/ (a call
                       that the deadline cut short, on the same warm machine) instead of a new one

Scaling (scripts/gpu/scaling.sh --help says more):
  --scaling-gpus LIST        GPU counts (default 1,2,4; more than present: skipped, saying so)
  --scaling-cases LIST       (default gpt2-train-bf16,distilbert-train-bf16)
  --scaling-rounds R         (default 2)
  --scaling-min-seconds S    each timed window (default 4)
  --scaling-parts LIST       bench,loss (default both)
  --scaling-loss-steps N     (default 200)
  --scaling-loss-gpus LIST   GPU counts of the loss check (default: --scaling-gpus)

General:
  --deadline S         seconds after the start by which the call is done (default 570); each step
                       gets what is left, and one with under 30 s left is skipped
  --data DIR           data sets and tokenizers (default .gpu-carry/data)
  -h, --help           this text

Examples (carry .deps and .gpu-carry):
  scripts/gpu/run.sh --steps build,test,ab,harness --tests '*cuda*' --min-seconds 2
  scripts/gpu/run.sh --prebuilt .gpu-carry/prebuilt --base .gpu-carry/base/wattwise --steps ab,harness
  scripts/gpu/run.sh --steps build,profile --profile gpt2-step --profile attention
  scripts/gpu/run.sh --steps build,minilm --task sst2
  scripts/gpu/run.sh --steps build,scaling --scaling-gpus 1,2,4 --deadline 540
  scripts/gpu/run.sh --steps build,guidelines --guidelines gpt2
  scripts/gpu/run.sh --steps guidelines --guidelines minilm   (then, warm: carry .gpu-carry/minilm)
EOF
}

die() { echo "run.sh: $*" >&2; exit 2; }
words() { echo "$1" | tr ',' ' '; }
commas() { echo "$1" | tr -s ' ,' ',' | sed 's/^,//; s/,$//'; }

steps=build,test prebuilt="" new_bin="" base_bin=.gpu-carry/base/wattwise
tests='*' test_filter='*' test_timeout=300 test_jobs=4 use_ctest=0 timing_filter='*Timing*'
cases=gpt2-train-bf16,distilbert-train-bf16,distilbert-train-fp16,distilbert-train-fp32,bert-train-bf16,bert-infer-fp16-b1,bert-infer-fp16-b32,bert-infer-fp16-b256,distilbert-infer-fp16-b32,minilm-train-bf16
compile_cases=gpt2-train-bf16,distilbert-train-bf16 rounds=3 min_seconds="" harness_args=""
ab_cases=gpt2-train-bf16,distilbert-train-bf16,bert-train-bf16 ab_rounds=2 ab_min_seconds=2
bench_cases=gpt2-train-bf16 bench_args=""
profiles=() ncu_cache=all
task=sst2 seeds="42 43 44" lr_sweep="" skip_pytorch=0 train_args="" gpt2_steps=500
imdb_runs=1e-4:3:0 sweep_train=24000 deadline_s=570 data=.gpu-carry/data
scaling_gpus=1,2,4 scaling_cases=gpt2-train-bf16,distilbert-train-bf16 scaling_rounds=2 scaling_min_seconds=4
scaling_parts=bench,loss scaling_loss_steps=200 scaling_loss_gpus=""
guidelines=gpt2,minilm guidelines_args="" guidelines_resume=0

while [ $# -gt 0 ]; do
  arg=$1; shift
  case $arg in
    -h|--help) usage; exit 0 ;;
    --ctest) use_ctest=1; continue ;;
    --skip-pytorch) skip_pytorch=1; continue ;;
    --guidelines-resume) guidelines_resume=1; continue ;;
    --*=*) set -- "${arg#*=}" "$@"; arg=${arg%%=*} ;;
    --*) ;;
    *) die "unexpected argument '$arg' (see --help)" ;;
  esac
  [ $# -gt 0 ] || die "$arg needs a value"
  val=$1; shift
  case $arg in
    --steps) steps=$val ;;
    --prebuilt) prebuilt=$val ;;
    --new) new_bin=$val ;;
    --base) base_bin=$val ;;
    --tests) tests=$val ;;
    --test-filter) test_filter=$val ;;
    --test-timeout) test_timeout=$val ;;
    --test-jobs) test_jobs=$val ;;
    --timing-filter) timing_filter=$val ;;
    --cases) cases=$val ;;
    --compile-cases) compile_cases=$val ;;
    --rounds) rounds=$val ;;
    --min-seconds) min_seconds=$val ;;
    --harness-args) harness_args=$val ;;
    --ab-cases) ab_cases=$val ;;
    --ab-rounds) ab_rounds=$val ;;
    --ab-min-seconds) ab_min_seconds=$val ;;
    --bench-cases) bench_cases=$val ;;
    --bench-args) bench_args=$val ;;
    --profile) profiles+=("$val") ;;
    --ncu-cache) ncu_cache=$val ;;
    --task) task=$val ;;
    --seeds) seeds=$val ;;
    --lr-sweep) lr_sweep=$val ;;
    --train-args) train_args=$val ;;
    --gpt2-steps) gpt2_steps=$val ;;
    --imdb-runs) imdb_runs=$val ;;
    --sweep-train) sweep_train=$val ;;
    --scaling-gpus) scaling_gpus=$val ;;
    --scaling-cases) scaling_cases=$val ;;
    --scaling-rounds) scaling_rounds=$val ;;
    --scaling-min-seconds) scaling_min_seconds=$val ;;
    --scaling-parts) scaling_parts=$val ;;
    --scaling-loss-steps) scaling_loss_steps=$val ;;
    --scaling-loss-gpus) scaling_loss_gpus=$val ;;
    --guidelines) guidelines=$val ;;
    --guidelines-args) guidelines_args=$val ;;
    --deadline) deadline_s=$val ;;
    --data) data=$val ;;
    *) die "unknown option $arg (see --help)" ;;
  esac
done
[ ${#profiles[@]} -gt 0 ] || profiles=(gpt2-step)
all_steps=" build test timing dp1 ab harness bench profile energy parity cpu-bench e2e memory imdb sweep gpt2-converge minilm scaling guidelines "
for s in $(words "$steps"); do
  [[ $all_steps == *" $s "* ]] || die "unknown step '$s' (steps:$all_steps)"
done
for s in $(words "$guidelines"); do
  case $s in gpt2|minilm) ;; *) die "--guidelines: gpt2 and/or minilm, not '$s'" ;; esac
done
case $task in sst2|imdb) ;; *) die "--task: sst2 or imdb" ;; esac
case $ncu_cache in all|none) ;; *) die "--ncu-cache: all or none" ;; esac
has_step() { [[ " $(words "$steps") " == *" $1 "* ]]; }

# ---------------------------------------------------------------------------------------------
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
root=$PWD
OUT=${OUT:-/tmp/ww-out}; mkdir -p "$OUT"
logs=$OUT/logs; mkdir -p "$logs"
summary=$OUT/summary.txt
say() { echo "$*" | tee -a "$summary"; }
start=$(date +%s)
deadline=$(( start + deadline_s ))
left() { echo $(( deadline - $(date +%s) )); }
# A timeout for one command: at most $1 seconds, and never past the deadline (5 s to spare).
cap() { local l; l=$(( $(left) - 5 )); [ "$1" -lt "$l" ] && echo "$1" || echo $(( l > 1 ? l : 1 )); }
export PYTHONUNBUFFERED=1

# shellcheck source=scripts/gpu/setup-deps.sh
[ -d .deps/debs ] && source scripts/gpu/setup-deps.sh
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee -a "$summary"
fi
# The peers' speed follows the host CPU's (their Python launch rate): name it beside the GPU.
say "host: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(nproc) logical cores"
for f in .gpu-carry/packed/*.tar.xz; do
  [ -f "$f" ] && tar -C .gpu-carry -xJf "$f" && say "unpacked $f"
done
# NCCL (dlopen'd by GPU data-parallel runs): the system's, else the one PyTorch's wheels bring.
if ! ldconfig -p 2>/dev/null | grep -q 'libnccl.so.2 '; then
  nccl_dir=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null)
  [ -f "$nccl_dir/libnccl.so.2" ] && export LD_LIBRARY_PATH=$nccl_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
say "nccl: $( (ldconfig -p 2>/dev/null | grep -o '/[^ ]*libnccl.so.2$' | head -1; ls "${nccl_dir:-/nonexistent}"/libnccl.so.2 2>/dev/null) | head -1)"
ncu_bin=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
data=$(realpath -m "$data")

if [ -n "$prebuilt" ]; then
  bin=$prebuilt/wattwise test_dir=$prebuilt
  say "prebuilt: $(cat "$prebuilt/COMMIT" 2>/dev/null || echo "$prebuilt")"
  # Test programs find committed fixtures under the source folder they were built in
  # (build_commit.sh's worktree): point that folder at this checkout.
  [ -e /tmp/ww-commit ] || ln -s "$root" /tmp/ww-commit
else
  bin=build/wattwise test_dir=build/tests
fi
bin=$(realpath -m "$bin") test_dir=$(realpath -m "$test_dir") base_bin=$(realpath -m "$base_bin")
ab_new=$(realpath -m "${new_bin:-$bin}")
# The MiniLM checkpoint travels in .gpu-carry/minilm; build/carry keeps it on a warm machine for a
# later call that carries something else (IMDB and the checkpoint do not fit one carry). The
# real-checkpoint tests read it from WW_MINILM_DIR.
minilm=$root/build/carry/minilm
if [ -f .gpu-carry/minilm/model.safetensors ]; then
  rm -rf "$minilm"; mkdir -p "$(dirname "$minilm")"; cp -r .gpu-carry/minilm "$minilm"
  say "kept the MiniLM checkpoint in build/carry/minilm"
fi
[ -f "$minilm/model.safetensors" ] && export WW_MINILM_DIR=${WW_MINILM_DIR:-$minilm}

# The test programs of this tree: tests/<layer>/<unit>_test.cpp builds <layer>_<unit>_test,
# tests/test_*.cpp builds test_*; --tests globs select among them.
tree_test_programs() {
  local f
  for f in tests/*/*_test.cpp; do [ -f "$f" ] && { f=${f#tests/}; echo "${f%.cpp}" | tr / _; }; done
  for f in tests/test_*.cpp; do [ -f "$f" ] && basename "$f" .cpp; done
}
matches_tests() {  # name
  local g globs
  read -ra globs <<< "$(words "$tests")"
  for g in "${globs[@]}"; do
    # shellcheck disable=SC2053  # the glob is the point
    [[ $1 == $g ]] && return 0
  done
  return 1
}
# Test programs present in the test folder (built or prebuilt), selected by --tests.
present_test_programs() {
  local f n
  for f in "$test_dir"/*_test "$test_dir"/test_*; do
    n=$(basename "$f")
    [ -f "$f" ] && [ -x "$f" ] && [[ $n != *.* ]] && matches_tests "$n" && echo "$n"
  done | sort -u
}

# ---------------------------------------------------------------------------------------------
step_build() {
  [ -z "$prebuilt" ] || { say "build: not needed with --prebuilt"; return 0; }
  local targets=(--target wattwise) t
  if has_step test || has_step timing || has_step parity; then
    if [ "$tests" = '*' ] || [ "$use_ctest" = 1 ]; then
      targets=()  # everything
    else
      for t in $(tree_test_programs); do matches_tests "$t" && targets+=("$t"); done
    fi
  fi
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DWW_CUDA=ON -DWW_SHARED_DATA="$data" \
      > "$logs/build.log" 2>&1 || { tail -30 "$logs/build.log" | tee -a "$summary"; say "build: configure failed"; return 1; }
  # The CPU inference benchmark needs Google Benchmark (carried by prepare_carry.sh).
  if [ ${#targets[@]} -gt 0 ] && has_step cpu-bench; then
    cmake --build build --target help | grep -q bench_inference_cpu && targets+=(bench_inference_cpu)
  fi
  timeout "$(cap 600)" cmake --build build -j "$(nproc)" "${targets[@]}" >> "$logs/build.log" 2>&1 ||
    { grep -E "error" -A3 "$logs/build.log" | head -40 | tee -a "$summary"; say "build: failed"; return 1; }
  say "build: $(( $(date +%s) - start )) s (${targets[*]:-all targets})"
}

# One line per test program (rc, tests passed, failed, skipped) and its failure lines.
report_test() {  # name log rc
  say "$1: rc $3, $(grep -cE '^\[       OK' "$2") ok, $(grep -cE '^\[  FAILED' "$2") failed lines, $(grep -cE '^\[  SKIPPED' "$2") skipped"
  grep -E "^\[  FAILED|Failure|error:|Expected|Which is|actual" "$2" | head -20 | tee -a "$summary"
}

step_test() {
  if [ "$use_ctest" = 1 ]; then
    [ -z "$prebuilt" ] || { say "test: --ctest needs a build tree, not --prebuilt"; return 1; }
    (cd build && timeout "$(cap 1200)" ctest -LE 'fuzz|data' -j "$test_jobs" --timeout "$test_timeout" \
      --output-on-failure) > "$logs/ctest.log" 2>&1
    say "ctest: rc $?"
    grep -E "tests passed|The following tests|Failed|\*\*\*" "$logs/ctest.log" | head -40 | tee -a "$summary"
    return 0
  fi
  local programs t n=0 rc failed=0
  mapfile -t programs < <(present_test_programs)
  [ ${#programs[@]} -gt 0 ] || { say "test: no test program in $test_dir matches '$tests'"; return 1; }
  mkdir -p "$logs/tests"
  for t in "${programs[@]}"; do
    [ "$(left)" -gt 20 ] || { say "test: no time left for $t and the rest"; break; }
    (timeout "$(cap "$test_timeout")" "$test_dir/$t" --gtest_filter="$test_filter" > "$logs/tests/$t.log" 2>&1
     echo $? > "$logs/tests/$t.rc") &
    n=$(( n + 1 ))
    [ "$n" -lt "$test_jobs" ] || { wait -n; n=$(( n - 1 )); }
  done
  wait
  for t in "${programs[@]}"; do
    [ -f "$logs/tests/$t.rc" ] || continue
    rc=$(cat "$logs/tests/$t.rc")
    report_test "$t" "$logs/tests/$t.log" "$rc"
    [ "$rc" = 0 ] || failed=$(( failed + 1 ))
  done
  [ "$failed" = 0 ] || { say "test: $failed of ${#programs[@]} programs failed"; return 1; }
}

# Every present test program with a gtest filter; `ran` lists those that ran a test.
run_filtered() {  # log-prefix filter extra-gtest-args...
  local prefix=$1 filter=$2 t rc; shift 2
  ran=()
  for t in $(tests='*' present_test_programs); do
    [ "$(left)" -gt 20 ] || { say "$prefix: no time left for $t and the rest"; break; }
    timeout "$(cap 300)" "$test_dir/$t" --gtest_filter="$filter" "$@" > "$logs/${prefix}_$t.log" 2>&1
    rc=$?
    if grep -qE '^\[==========\] Running 0 tests' "$logs/${prefix}_$t.log"; then
      rm -f "$logs/${prefix}_$t.log"
    else
      say "$prefix $t: rc $rc"
      ran+=("$t")
    fi
  done
}

step_timing() {
  local t
  run_filtered timing "$timing_filter" --gtest_also_run_disabled_tests
  for t in "${ran[@]}"; do
    grep -vE "^\[|^$|^Note" "$logs/timing_$t.log" | head -40 | tee -a "$summary"
  done
  return 0
}

step_parity() {
  local fx=/tmp/ww-parity t
  timeout "$(cap 240)" python3 scripts/make_parity_fixtures.py --out "$fx" --size base > "$logs/parity_fixtures.log" 2>&1 ||
    { say "parity: fixtures failed (rc $?)"; tail -5 "$logs/parity_fixtures.log" | tee -a "$summary"; return 1; }
  export WW_PARITY_FIXTURES=$fx/bert_base,$fx/distilbert_base
  run_filtered parity 'ParityExternal.*'
  for t in "${ran[@]}"; do
    grep -E "base:|OK|FAILED|Failure" "$logs/parity_$t.log" | tee -a "$summary"
  done
  unset WW_PARITY_FIXTURES
}

# The name a binary's runs carry: new/base, and the commit build_commit.sh wrote beside it.
side_name() {  # binary role
  local n=$2
  [ -f "$(dirname "$1")/COMMIT" ] && n=$n-$(cut -c1-7 "$(dirname "$1")/COMMIT")
  echo "$n"
}

# One side's `wattwise bench` run of a case for ab and dp1, with the environment assignments given
# after the log (one JSON file per run: `bench --json` writes its file anew).
side_bench() {  # binary case json log [NAME=value...]
  local tool=$1 c=$2 json=$3 log=$4; shift 4
  env "$@" timeout "$(cap 120)" "$tool" bench --case "$c" --device cuda --min-seconds "$ab_min_seconds" \
    --json "$json" > "$log" 2>&1
}

step_ab() {
  [ -x "$base_bin" ] || { say "ab: no baseline binary $base_bin (scripts/gpu/prepare_carry.sh --base COMMIT)"; return 1; }
  [ -x "$ab_new" ] || { say "ab: no binary $ab_new"; return 1; }
  local round c tool side name order list=$ab_cases
  [ "$ab_cases" = all ] && list=$cases
  say "ab: new $(side_name "$ab_new" new), base $(side_name "$base_bin" base)"
  rm -f "$logs"/ab_new_*.json "$logs"/ab_base_*.json
  for round in $(seq 1 "$ab_rounds"); do
    # New first in odd rounds, base first in even ones, so a drift in clocks or temperature
    # during the call does not favour one side.
    order=("$ab_new" "$base_bin")
    [ $(( round % 2 )) = 0 ] && order=("$base_bin" "$ab_new")
    for c in $(words "$list"); do
      for tool in "${order[@]}"; do
        [ "$(left)" -gt 30 ] || { say "ab: no time left"; break 3; }
        if [ "$tool" = "$base_bin" ]; then side=base; else side=new; fi
        name=$(side_name "$tool" "$side")
        side_bench "$tool" "$c" "$logs/ab_${side}_${c}_$round.json" "$logs/ab_${c}_${name}_$round.log"
        say "round $round $c $name: rc $? $(grep -E '^wattwise' "$logs/ab_${c}_${name}_$round.log" | tr -s ' ')"
      done
    done
  done
  # Per case: each side's median and spread, and new/base, so "the same within run-to-run noise"
  # can be read off directly. Every run, with its side, in $OUT/ab.jsonl.
  compare_sides ab new base "$OUT/ab.jsonl"
  return 0
}

# The table of two sides' `bench --json` files $logs/<prefix>_<side>_<case>_<round>.json: per case
# each side's median rate and spread, and the ratios; every run, with its side, into <out>.
compare_sides() {  # prefix new-side base-side out
  python3 - "$logs" "$1" "$2" "$3" "$4" <<'PY' 2>&1 | tee -a "$summary"
import glob, json, os, statistics, sys
logs, prefix, new, base, out = sys.argv[1:6]
runs = {}
with open(out, "w") as f:
    for side in (new, base):
        for path in sorted(glob.glob(os.path.join(logs, f"{prefix}_{side}_*.json"))):
            for line in open(path):
                if not line.strip(): continue
                r = json.loads(line); r["side"] = side
                f.write(json.dumps(r) + "\n")
                runs.setdefault(r["case"], {}).setdefault(side, []).append(r)
def stat(rs, key):
    v = [r[key] for r in rs if r.get(key) is not None]
    if not v: return None, None
    m = statistics.median(v)
    return m, (max(v) - min(v)) / m * 100 if m else 0.0
def energy(r):
    per = r.get("tokens") if r["case"].startswith("gpt2") else r.get("samples")
    return r["energy_j"] / per if r.get("energy_j") is not None and per else None
print(f"| case | rate {new} (spread) | rate {base} (spread) | {new}/{base} | J {new}/{base} | peak {new}/{base} |")
print("| --- | --- | --- | --- | --- | --- |")
for case, sides in runs.items():
    if set(sides) != {new, base}: continue
    key = "tokens_per_s" if case.startswith("gpt2") else "samples_per_s"
    for rs in sides.values():
        for r in rs: r["_j"] = energy(r)
    (rn, sn), (rb, sb) = stat(sides[new], key), stat(sides[base], key)
    jn, jb = stat(sides[new], "_j")[0], stat(sides[base], "_j")[0]
    pn, pb = stat(sides[new], "peak_memory_bytes")[0], stat(sides[base], "peak_memory_bytes")[0]
    ratio = lambda a, b: f"{a / b:.3f}" if a and b else "-"
    print(f"| {case} | {rn:,.1f} ({sn:.1f}%) | {rb:,.1f} ({sb:.1f}%) | {ratio(rn, rb)} | {ratio(jn, jb)} | {ratio(pn, pb)} |")
PY
}

# Data parallel over one rank against one plain process, same binary, alternating: the
# world-size-1 overhead of the collectives (NCCL all-reduce of the gradients, the loss and the
# loop's agreement each step; no CUDA graph with a group).
step_dp1() {
  local round c side list=$ab_cases world
  [ "$ab_cases" = all ] && list=$cases
  rm -f "$logs"/dp1_*.json
  for round in $(seq 1 "$ab_rounds"); do
    for c in $(words "$list"); do
      for side in $([ $(( round % 2 )) = 1 ] && echo "nccl1 plain" || echo "plain nccl1"); do
        [ "$(left)" -gt 30 ] || { say "dp1: no time left"; break 3; }
        world=()
        [ "$side" = nccl1 ] && world=(WORLD_SIZE=1 RANK=0 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1
          "MASTER_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')")
        side_bench "$bin" "$c" "$logs/dp1_${side}_${c}_$round.json" "$logs/dp1_${c}_${side}_$round.log" "${world[@]}"
        say "round $round $c $side: rc $? $(grep -E '^wattwise' "$logs/dp1_${c}_${side}_$round.log" | tr -s ' ')"
      done
    done
  done
  compare_sides dp1 nccl1 plain "$OUT/dp1.jsonl"
}

step_harness() {
  local dir=$logs/harness budget=$(( $(left) - 15 ))
  mkdir -p "$dir"
  say "harness: budget $budget s"
  # shellcheck disable=SC2086  # harness_args are words
  timeout "$(cap $(( budget + 60 )))" python3 bench/run_harness.py --wattwise "$bin" --out "$dir" --device cuda \
    --cases "$(commas "$cases")" --compile-cases "$(commas "$compile_cases")" --rounds "$rounds" \
    ${min_seconds:+--min-seconds "$min_seconds"} --budget-s "$budget" $harness_args \
    2> "$dir/harness.log" | tail -80 | tee -a "$summary"
  local rc=${PIPESTATUS[0]}
  say "harness: rc $rc; $(tail -1 "$dir/harness.log")"
  cp "$dir"/bench_*.json "$dir"/bench_*.md "$OUT/" 2>/dev/null
  return "$rc"
}

step_bench() {
  local c
  for c in $(words "$bench_cases"); do
    [ "$(left)" -gt 30 ] || { say "bench: no time left"; return 0; }
    # shellcheck disable=SC2086  # bench_args are words
    timeout "$(cap 120)" "$bin" bench --case "$c" --device cuda $bench_args --json "$OUT/bench.jsonl" \
      > "$logs/bench_$c.log" 2>&1
    say "bench $c: rc $?"
    tail -4 "$logs/bench_$c.log" | tee -a "$summary"
  done
}

# GPT-2 124M training on tiny shakespeare, 16 x 1024 tokens, bf16: `wattwise train`'s arguments
# in gpt2_args (the gpt2-step profile and gpt2-converge).
set_gpt2_args() {  # run-dir warmup-steps max-steps
  gpt2_args=(train --model.arch gpt2 --model.preset small --model.tokenizer "$data/tokenizers/gpt2"
    --data.path "$data/tinyshakespeare/input.txt" --data.block_size 1024 --train.batch_size 16
    --train.tokens_per_step 16384 --train.precision bf16 --train.lr 6e-4 --train.schedule cosine
    --train.warmup_steps "$2" --train.max_steps "$3" --train.weight_decay 0.1
    --data.cache_dir "$1/cache" --run.device cuda --run.output_dir "$1/runs" --run.progress lines)
}

ncu_durations() {  # name skip count command...  (kernel durations, summed per kernel name)
  local name=$1 skip=$2 count=$3; shift 3
  timeout "$(cap 600)" "$ncu_bin" --clock-control none --cache-control "$ncu_cache" \
    --metrics gpu__time_duration.sum --csv --print-units base --launch-skip "$skip" --launch-count "$count" \
    "$@" > "$logs/ncu_$name.csv" 2> "$logs/ncu_$name.err"
  say "profile $name: rc $?"
  python3 scripts/gpu/ncu_summary.py "$logs/ncu_$name.csv" --top 30 | tee -a "$summary"
}

ncu_sections() {  # name cache-control regex skip count command...  (sections averaged per kernel name)
  local name=$1 cache=$2 regex=$3 skip=$4 count=$5; shift 5
  timeout "$(cap 600)" "$ncu_bin" --clock-control none --cache-control "$cache" --csv --page details \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats \
    --section WarpStateStats --section ComputeWorkloadAnalysis -k "regex:$regex" \
    --launch-skip "$skip" --launch-count "$count" "$@" > "$logs/ncu_$name.csv" 2> "$logs/ncu_$name.err"
  say "profile $name ($regex): rc $?"
  python3 scripts/gpu/ncu_summary.py "$logs/ncu_$name.csv" --details | tee -a "$summary"
}

step_profile() {
  [ -n "$ncu_bin" ] || { say "profile: no Nsight Compute (ncu)"; return 1; }
  local item c regex skip count
  for item in "${profiles[@]}"; do
    [ "$(left)" -gt 60 ] || { say "profile $item: no time left"; continue; }
    case $item in
      gpt2-step)
        # 600 kernels after the first 1,500 (set-up and the first steps): a little over one step.
        rm -rf /tmp/ww-gpt2-prof
        set_gpt2_args /tmp/ww-gpt2-prof 1 12
        ncu_durations gpt2_step 1500 600 "$bin" "${gpt2_args[@]}" ;;
      attention)
        # The mma forward, dK/dV and dQ kernels of GPT-2's second step (causal, T = 1024, dropout 0.1).
        ncu_sections attention all 'flash_(forward|dkdv|dq)_mma' 36 36 "$bin" bench --case gpt2-train-bf16 \
          --device cuda --steps 2 --warmup 1 --min-seconds 0 ;;
      details:*)
        IFS=: read -r _ c regex skip count <<< "$item"
        ncu_sections "details_$c" none "$regex" "$skip" "$count" "$bin" bench --case "$c" --device cuda \
          --steps 4 --warmup 2 --min-seconds 0 ;;
      *:*:*)
        IFS=: read -r c skip count <<< "$item"
        ncu_durations "$c" "$skip" "$count" "$bin" bench --case "$c" --device cuda --steps 4 --warmup 2 \
          --min-seconds 0 ;;
      *) say "profile: unknown item '$item' (gpt2-step, attention, CASE:SKIP:COUNT, details:CASE:REGEX:SKIP:COUNT)" ;;
    esac
  done
}

step_energy() {
  WATTWISE=$bin OUT=$logs timeout "$(cap 300)" bash scripts/gpu/validate_energy.sh > "$logs/energy_validation.log" 2>&1
  local rc=$?
  say "energy validation: rc $rc"
  tail -12 "$logs/energy_validation.log" | tee -a "$summary"
  return "$rc"
}

step_cpu_bench() {
  timeout "$(cap 300)" python3 scripts/tokenizer_parity.py --wattwise "$bin" --data "$data" --bench \
    > "$logs/tokenizer_bench.log" 2>&1
  say "tokenizer throughput: rc $?"
  tail -8 "$logs/tokenizer_bench.log" | tee -a "$summary"
  local cpu_bench=build/bench/bench_inference_cpu round
  [ -x "$cpu_bench" ] || { say "cpu inference: no $cpu_bench (a build, not --prebuilt)"; return 1; }
  for round in 1 2; do
    [ "$(left)" -gt 60 ] || { say "cpu inference: no time left"; return 0; }
    OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 timeout "$(cap 200)" taskset -c 0,1 "$cpu_bench" \
      --benchmark_min_time=3 --benchmark_repetitions=1 2>&1 | grep -E "Inference" | tee -a "$summary"
    timeout "$(cap 200)" taskset -c 0,1 python3 scripts/bench_cpu_inference_torch.py --threads 2 2>&1 |
      grep ms/example | tee -a "$summary"
  done
}

step_e2e() {
  local w=/tmp/ww-e2e tok=$data/tokenizers/bert-base-uncased p a
  rm -rf "$w"; mkdir -p "$w"
  "$bin" init-model --arch bert --preset mini --tokenizer "$tok" -o "$w/m" --seed 3 > "$logs/e2e.log" 2>&1 ||
    { say "e2e: init-model failed"; return 1; }
  head -800 "$data/glue/SST-2/dev.tsv" > "$w/dev.tsv"
  "$bin" predict --model "$w/m" --input "$w/dev.tsv" --output "$w/pred_cpu.jsonl" --device cpu \
    --runs-dir "$w/runs" >> "$logs/e2e.log" 2>&1
  for p in fp32 bf16 fp16; do
    for a in fused reference; do
      "$bin" predict --model "$w/m" --input "$w/dev.tsv" --output "$w/pred_${p}_$a.jsonl" --device cuda \
        --precision "$p" --attention "$a" --runs-dir "$w/runs" >> "$logs/e2e.log" 2>&1
    done
  done
  python3 - "$w" <<'PY' 2>&1 | tee -a "$summary"
import json, os, sys
w = sys.argv[1]
def load(n):
    path = f"{w}/pred_{n}.jsonl"
    return [json.loads(l) for l in open(path)] if os.path.exists(path) else None
ref = load("fp32_reference")
if ref is None:
    sys.exit("e2e: no fp32 reference predictions on the GPU")
for n in ["cpu", "fp32_fused", "bf16_fused", "bf16_reference", "fp16_fused", "fp16_reference"]:
    o = load(n)
    if o is None:
        print(f"predict {n}: missing"); continue
    d = max(abs(x - y) for p, q in zip(o, ref) for x, y in zip(p["logits"], q["logits"]))
    agree = sum(p["label"] == q["label"] for p, q in zip(o, ref)) / len(ref)
    print(f"predict {n} vs cuda fp32 reference: {len(ref)} examples, max |logit diff| {d:.2e}, same label {agree:.4f}")
PY
  timeout "$(cap 180)" "$bin" train --data.path "$data/glue/SST-2" --model.tokenizer "$tok" --model.preset tiny \
    --data.max_length 64 --train.max_steps 300 --train.lr 1e-3 --train.warmup_ratio 0.1 --run.device cuda \
    --run.progress lines --run.output_dir "$w/runs" --train.eval_every 300 > "$logs/e2e_train.log" 2>&1
  say "e2e train (tiny BERT, SST-2, 300 steps): rc $?"
  tail -6 "$logs/e2e_train.log" | tee -a "$summary"
}

step_memory() {
  local w=/tmp/ww-mem tok=$data/tokenizers/bert-base-uncased p c
  rm -rf "$w"; mkdir -p "$w"
  "$bin" init-model --arch distilbert --preset base --tokenizer "$tok" -o "$w/distil" --seed 1 > "$logs/memory.log" 2>&1
  for p in fp32 bf16; do
    for c in none every sqrt; do
      [ "$(left)" -gt 30 ] || { say "memory: no time left"; break 2; }
      timeout "$(cap 120)" "$bin" train --model.path "$w/distil" --data.path "$data/aclImdb.tar.gz" \
        --data.max_length 256 --data.padding max --data.clean_html true --data.max_train_examples 1280 \
        --data.eval_split "" --train.max_steps 30 --train.batch_size 32 --train.precision "$p" \
        --train.checkpointing "$c" --run.device cuda --run.progress none --run.output_dir "$w/runs" \
        --run.name "mem_${p}_$c" > "$logs/memory_${p}_$c.log" 2>&1 || tail -3 "$logs/memory_${p}_$c.log" | tee -a "$summary"
    done
  done
  python3 - "$w/runs" <<'PY' 2>&1 | tee -a "$summary"
import glob, json, sys
rows = {}
for f in sorted(glob.glob(sys.argv[1] + "/*/metrics.json")):
    m = json.load(open(f)); t = m["train"]; e = m["execution"]
    rows[(e["precision"], e["checkpointing"])] = (e["peak_memory_bytes"], e["activation_bytes"], t["samples_per_s"])
for (p, c), (peak, act, sps) in sorted(rows.items()):
    base = rows.get((p, "none"), (peak,))[0]
    print(f"{p:5s} checkpointing {c:6s}: peak {peak/2**20:8.0f} MiB ({100*(1-peak/base):5.1f}% less), "
          f"activations {act/2**20:7.0f} MiB, {sps:7.0f} samples/s")
PY
  cp "$w"/runs/*/metrics.json "$logs/" 2>/dev/null
  return 0
}

step_imdb() {
  local w=/tmp/ww-imdb tok=$data/tokenizers/bert-base-uncased spec lr epochs ls f
  rm -rf "$w"; mkdir -p "$w"
  for spec in $imdb_runs; do
    [ "$(left)" -gt 60 ] || { say "imdb: no time left for $spec"; break; }
    IFS=: read -r lr epochs ls <<< "$spec"
    timeout "$(cap 400)" "$bin" train --data.path "$data/aclImdb.tar.gz" --model.tokenizer "$tok" \
      --model.arch distilbert --model.preset base --data.max_length 256 --data.clean_html true \
      --data.eval_split dev --data.split_ratios 0.9,0.1,0 --data.test_split test --train.epochs "$epochs" \
      --train.batch_size 32 --train.lr "$lr" --train.warmup_ratio 0.1 --train.weight_decay 0.01 \
      --train.label_smoothing "$ls" --train.precision bf16 --run.device cuda --run.progress lines \
      --run.output_dir "$w/runs" --run.name "imdb_${lr}_${epochs}_$ls" > "$logs/imdb_$spec.log" 2>&1
    say "imdb from scratch, lr $lr, $epochs epochs, label smoothing $ls: rc $?"
    grep -v "^train:" "$logs/imdb_$spec.log" | tail -8 | tee -a "$summary"
  done
  for f in "$w"/runs/*/metrics.json; do [ -f "$f" ] && cp "$f" "$logs/$(basename "$(dirname "$f")").json"; done
  return 0
}

step_sweep() {
  local w=/tmp/ww-sweep model sw
  rm -rf "$w"; mkdir -p "$w"
  timeout "$(cap 150)" "$bin" train --model.arch bert --model.preset base \
    --model.tokenizer "$data/tokenizers/bert-base-uncased" --data.path "$data/glue/SST-2" --data.max_length 128 \
    --data.max_train_examples "$sweep_train" --train.epochs 1 --train.batch_size 32 --train.lr 1e-4 \
    --train.warmup_ratio 0.1 --train.precision bf16 --run.device cuda --run.output_dir "$w/runs" \
    --run.name bert_base_sst2 --run.progress lines > "$logs/sweep_train.log" 2>&1
  say "sweep: training rc $? $(grep -E 'eval at|training energy' "$logs/sweep_train.log" | tail -2 | tr '\n' ' ')"
  model=$(ls -d "$w"/runs/*bert_base_sst2/best_model 2>/dev/null | head -1)
  [ -n "$model" ] || { say "sweep: no trained model"; return 1; }
  timeout "$(cap 240)" "$bin" sweep --model "$model" --data "$data/glue/SST-2" --split dev --device cuda \
    --precisions fp32 fp16 int8-weight fp8 --seq-lens 128 64 32 --attention fused reference --batch-sizes 32 \
    --skip-failed --repeats 3 --warmup 1 --runs-dir "$w/sweeps" --name bert_base_sweep > "$logs/sweep.log" 2>&1
  say "sweep: rc $?"
  tail -40 "$logs/sweep.log" >> "$summary"
  sw=$(ls -d "$w"/sweeps/*bert_base_sweep 2>/dev/null | head -1)
  [ -n "$sw" ] || return 1
  cp "$sw/pareto.csv" "$sw/report.html" "$OUT/" 2>/dev/null
  cp "$sw/metrics.json" "$logs/sweep_metrics.json" 2>/dev/null
  return 0
}

step_gpt2_converge() {
  local g=/tmp/ww-gpt2-val run
  rm -rf "$g"; mkdir -p "$g"
  # Warmup 50 and cosine, an evaluation every 50 steps on 64 windows; the replay needs time too.
  set_gpt2_args "$g" 50 "$gpt2_steps"
  timeout "$(cap $(( $(left) - 90 )))" "$bin" "${gpt2_args[@]}" --train.eval_every 50 \
    --data.max_eval_examples 64 --run.export_plan true --run.name gpt2_val > "$logs/gpt2_converge.log" 2>&1
  say "gpt2 $gpt2_steps steps: rc $? at $(( $(date +%s) - start )) s"
  grep -E "eval at|tokens/s|energy" "$logs/gpt2_converge.log" | tail -14 | tee -a "$summary"
  run=$(ls -d "$g"/runs/*gpt2_val 2>/dev/null | head -1)
  [ -n "$run" ] || return 1
  cp "$run/metrics.json" "$OUT/gpt2_metrics.json"
  timeout "$(cap 400)" python3 bench/gpt2_replay_pytorch.py "$run" --device cuda --out "$OUT/gpt2_replay.json" \
    > "$logs/gpt2_replay.log" 2>&1
  say "gpt2 replay: rc $? at $(( $(date +%s) - start )) s"
  tail -16 "$logs/gpt2_replay.log" | tee -a "$summary"
}

step_minilm() {
  local out=$logs/minilm_$task run len d flags=()
  [ "$skip_pytorch" = 1 ] && flags+=(--skip-pytorch)
  [ -f "$minilm/model.safetensors" ] ||
    { say "minilm: no checkpoint: carry .gpu-carry/minilm (scripts/gpu/prepare_carry.sh --with minilm)"; return 1; }
  # shellcheck disable=SC2086  # seeds, the sweep and the overrides are words
  timeout "$(cap 560)" python3 bench/minilm_side_by_side.py --wattwise "$bin" --model "$minilm" --data-root "$data" \
    --task "$task" --seeds $seeds ${lr_sweep:+--lr-sweep $lr_sweep} --out "$out" \
    "${flags[@]}" -- $train_args > "$logs/minilm_$task.log" 2>&1
  say "minilm $task: rc $?"
  grep -vE "^\s*$" "$logs/minilm_$task.log" | tail -40 | tee -a "$summary"
  cp "$out"/side_by_side* "$OUT/" 2>/dev/null
  # The saved model of the first seed in transformers: the same predictions as wattwise predict.
  run=$(ls -d "$out"/runs_"$task"/*_"${task}"_seed* 2>/dev/null | head -1)
  [ -n "$run" ] || return 0
  len=$([ "$task" = imdb ] && echo 256 || echo 128)
  for d in cuda cpu; do
    [ "$(left)" -gt 30 ] || break
    timeout "$(cap 120)" python3 bench/check_saved_model.py --wattwise "$bin" --model "$run/best_model" \
      --texts "$run/plan/eval.jsonl" --limit "$([ $d = cuda ] && echo 872 || echo 200)" --max-length "$len" \
      --device "$d" --work "/tmp/ww-check-$d" 2>&1 | tail -3 | tee -a "$summary"
  done
}

step_scaling() {
  # scaling.sh keeps to the call's deadline itself (10 s kept for packing the outputs); its progress
  # goes to the log, its table to the summary.
  timeout "$(cap $(( $(left) - 5 )))" bash scripts/gpu/scaling.sh --wattwise "$bin" --gpus "$scaling_gpus" \
    --cases "$scaling_cases" --rounds "$scaling_rounds" --min-seconds "$scaling_min_seconds" \
    --parts "$scaling_parts" --loss-steps "$scaling_loss_steps" --loss-gpus "${scaling_loss_gpus:-$scaling_gpus}" \
    --data "$data" --out "$OUT" --logs "$logs/scaling" --until $(( deadline - 10 )) > "$logs/scaling.log" 2>&1
  local rc=$?
  # Each run's rate and seconds (what the next calls can plan with), then the table.
  grep -E '^scaling: (round|loss) ' "$logs/scaling.log" | tee -a "$summary"
  say "scaling: rc $rc; $(grep -c '^scaling: not run' "$logs/scaling.log") run(s) left out (logs/scaling.log)"
  [ -f "$OUT/scaling_table.md" ] && tee -a "$summary" < "$OUT/scaling_table.md" | grep -v '^- \(bench\|loss\) '
  return "$rc"
}

# Issue 30's ablations (docs/GUIDELINES.md), each spec with this machine's model and data folders
# given as --set. The ablation folders stay while the machine is warm, so a call that the deadline
# cut short can be continued by the next (--guidelines-resume).
step_guidelines() {
  local work=$root/build/guidelines item spec name dir rc failed=0 sets check
  # In RAM when there is room: every improvement rewrites best_model/ with an fsync, and the disk's
  # speed would otherwise enter the time and energy to target that the ablations compare.
  [ "$(df -k --output=avail /dev/shm 2>/dev/null | tail -1)" -gt $(( 16 * 1024 * 1024 )) ] 2>/dev/null &&
    work=/dev/shm/ww-guidelines
  mkdir -p "$work"
  say "guidelines: run folders in $work"
  for item in $(words "$guidelines"); do
    # The ablation is stopped 40 s before the deadline (killed 20 s later if it has not ended): the
    # run it stops writes a checkpoint (GPT-2's weights and optimizer state, about 1.5 GB) that
    # --guidelines-resume continues from.
    [ "$(left)" -gt 100 ] || { say "guidelines $item: no time left"; failed=1; continue; }
    case $item in
      gpt2)
        spec=examples/ablations/gpt2_adaptive.toml name=gpt2_adaptive check=(--tokens-or-time-ratio 0.8)
        sets=(--set "data.path=$data/tinyshakespeare/input.txt" --set "model.tokenizer=$data/tokenizers/gpt2"
          --set "data.cache_dir=$work/cache") ;;
      minilm)
        spec=examples/ablations/minilm_sst2_green.toml name=minilm_sst2_green check=(--energy-ratio 0.6)
        sets=(--set "model.path=$minilm" --set "data.path=$data/glue/SST-2") ;;
    esac
    dir=""
    if [ "$guidelines_resume" = 1 ]; then
      # The newest folder of this spec without the metrics.json an ablation writes when it completes.
      dir=$(ls -d "$work"/*_"$name" 2>/dev/null | tail -1)
      [ -f "$dir/metrics.json" ] && dir=""
    fi
    if [ -n "$dir" ]; then
      say "guidelines $item: resuming $dir"
      timeout -k 20 "$(cap $(( $(left) - 40 )))" "$bin" ablate --resume "$dir" > "$logs/guidelines_$item.log" 2>&1
    else
      if [ "$item" = minilm ] && [ ! -f "$minilm/model.safetensors" ]; then
        say "guidelines minilm: no checkpoint: carry .gpu-carry/minilm (scripts/gpu/prepare_carry.sh --with minilm)"
        failed=1; continue
      fi
      if [ "$item" = minilm ] && [ ! -f "$data/glue/SST-2/train.tsv" ]; then
        say "guidelines minilm: no $data/glue/SST-2: carry it (scripts/gpu/prepare_carry.sh --with glue)"
        failed=1; continue
      fi
      # shellcheck disable=SC2086  # guidelines_args are words
      timeout -k 20 "$(cap $(( $(left) - 40 )))" "$bin" ablate "$spec" --runs-dir "$work" "${sets[@]}" \
        --set run.progress=lines $guidelines_args > "$logs/guidelines_$item.log" 2>&1
    fi
    rc=$?
    say "guidelines $item: rc $rc at $(( $(date +%s) - start )) s"
    # One line per run (quality, seconds, joules), then the ablation's own table when it completed.
    grep -E '^(ablate: \[.*(J|skipped.*)|ablate: interrupted.*|wattwise: error.*)$' "$logs/guidelines_$item.log" | tee -a "$summary"
    sed -n '/^Ablation against the baseline/,/^energy saved/p' "$logs/guidelines_$item.log" | tee -a "$summary"
    [ "$rc" = 0 ] || failed=1
    # A new ablation names its folder in its first line (none when the spec was refused).
    [ -n "$dir" ] || dir=$(sed -n 's/^ablate: .* training runs (.*) in \(.*\)$/\1/p' "$logs/guidelines_$item.log" | head -1)
    [ -f "$dir/ablation_plan.json" ] || continue
    python3 scripts/gpu/guidelines_summary.py "$dir" "${check[@]}" 2>&1 | tee -a "$summary"
    cp "$dir/ablation.csv" "$OUT/guidelines_${item}_ablation.csv" 2>/dev/null
    cp "$dir/metrics.json" "$OUT/guidelines_${item}_metrics.json" 2>/dev/null
    # Everything else of the folder into logs.tar.gz, but no weights: best_model/ and checkpoints/.
    mkdir -p "$logs/guidelines_$item"
    tar -C "$dir" --exclude=best_model --exclude=checkpoints --exclude='*.png' -cf - . | tar -C "$logs/guidelines_$item" -xf -
  done
  return "$failed"
}

# The device returns at most 8 files, each under 16 MiB: checkpoints and plans are dropped, the
# logs go into one archive, and at most 6 result files stay beside it and summary.txt.
pack_outputs() {
  find "$logs" \( -name "*.safetensors" -o -path "*plan*" -name "*.jsonl" \) -delete 2>/dev/null
  local f n=0
  for f in "$OUT"/* "$OUT"/.[!.]*; do
    [ -e "$f" ] || continue
    case ${f##*/} in summary.txt|logs|logs.tar.gz) continue ;; esac
    n=$(( n + 1 ))
    [ "$n" -le 6 ] || mv "$f" "$logs/"
  done
  tar -C "$OUT" -czf "$OUT/logs.tar.gz" logs && rm -rf "$logs"
}

# ---------------------------------------------------------------------------------------------
for s in $(words "$steps"); do
  if [ "$(left)" -lt 30 ]; then
    say "$s: skipped, $(left) s left"
    continue
  fi
  step_start=$(date +%s)
  "step_${s//-/_}"
  rc=$?
  say "== $s: rc $rc, $(( $(date +%s) - step_start )) s"
  # Nothing can run without the binary: a failed build ends the call.
  [ "$s" = build ] && [ $rc -ne 0 ] && break
done
say "total: $(( $(date +%s) - start )) s"
pack_outputs
