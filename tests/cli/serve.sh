#!/usr/bin/env bash
# `wattwise serve` end to end on a tiny random-init classifier, loopback only, every wait bounded:
# each route and error code, concurrent clients against `wattwise predict`'s labels and scores,
# batching, per-request energy adding up, a 20 s soak at concurrency 16 (no errors, RSS growth under
# 5%), the queue and timeout limits, and SIGTERM under load (exit 0, every admitted request answered,
# emissions.csv written). Servers bind port 0 and report the port in a file, so parallel runs never
# collide. About 45 s.
source "$(dirname "$0")/../cli_common.sh"
data=${3:-}
client="python3 $src/tests/cli/serve_client.py"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done; }
trap 'cleanup; rm -rf "$work"' EXIT

tok=$data/tokenizers/bert-base-uncased
if [ -z "$data" ] || [ ! -f "$tok/vocab.txt" ]; then
  tok=$work/tok; mkdir -p "$tok"
  printf '%s\n' '[PAD]' '[UNK]' '[CLS]' '[SEP]' '[MASK]' {a..z} '##'{a..z} . , the good bad film > "$tok/vocab.txt"
fi
"$bin" init-model --arch bert --preset tiny --tokenizer "$tok" --num-labels 3 -o m >/dev/null 2>&1 || { echo "FAIL: init-model"; exit 1; }

# Texts of many lengths (1 to ~40 tokens), so batches mix lengths and padding is exercised.
python3 - > texts.txt <<'PY'
import random
random.seed(5)
words = ["a", "good", "bad", "film", "the", ".", ",", "story", "end"]
for i in range(48):
    print(" ".join(random.choice(words) for _ in range(1 + (i * 7) % 40)))
PY
"$bin" predict --runs-dir runs --model m --input texts.txt --output ref.jsonl --max-length 64 2>err_predict
check "wattwise predict gives the reference" '[ $? -eq 0 ] || { cat err_predict; false; }'

# start_server NAME ARGS...: starts it in the background, waits (at most 30 s) for its port file.
start_server() {
  local name=$1; shift
  "$bin" serve --model m --max-length 64 --port 0 --port-file "$name.port" "$@" 2>"$name.err" &
  pids+=($!)
  eval "${name}_pid=$!"
  for _ in $(seq 300); do [ -s "$name.port" ] && break; sleep 0.1; done
  eval "${name}_url=http://127.0.0.1:$(cat "$name.port" 2>/dev/null)"
  [ -s "$name.port" ] || { echo "FAIL: $name did not listen within 30 s"; cat "$name.err"; exit 1; }
}
# wait_exit PID: its exit status, killing it after 20 s.
wait_exit() {
  for _ in $(seq 200); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$1" 2>/dev/null && { echo "FAIL: pid $1 still running 20 s after SIGTERM"; kill -KILL "$1"; }
  wait "$1"
}

start_server main --max-batch 8 --max-wait-ms 20 --max-body-bytes 4096 --emissions emissions.csv
$client routes "$main_url" ref.jsonl texts.txt
check "routes, errors, predict parity, batching, energy sums" '[ $? -eq 0 ]'
$client soak "$main_url" "$main_pid" 20
check "soak" '[ $? -eq 0 ]'
$client drain "$main_url" "$main_pid" > drain.out
check "drain under SIGTERM" '[ $? -eq 0 ] || { cat drain.out; false; }'
cat drain.out
wait_exit "$main_pid"; rc=$?
check "SIGTERM: exit 0" '[ $rc -eq 0 ] || { cat main.err; false; }'
check "SIGTERM: every admitted request answered (server's count)" \
  'grep -Eq "stopped: ([0-9]+) requests admitted, \1 answered" main.err || { tail -3 main.err; false; }'
check "emissions.csv: CodeCarbon header and the server's row with energy" \
  'python3 -c "
import csv,sys
rows=list(csv.DictReader(open(\"emissions.csv\")))
sys.exit(0 if len(rows)==1 and rows[0][\"project_name\"]==\"wattwise:serve\" and float(rows[0][\"energy_consumed\"])>0 and float(rows[0][\"duration\"])>20 else 1)"'

start_server limits --max-queue 1 --max-wait-ms 1500 --timeout-ms 300
$client limits "$limits_url"
check "503 on a full queue, 504 on timeout" '[ $? -eq 0 ]'
kill -INT "$limits_pid"; wait_exit "$limits_pid"; rc=$?
check "SIGINT: exit 0" '[ $rc -eq 0 ] || { cat limits.err; false; }'

"$bin" serve --model missing --port 0 2>err_missing
check "a missing model folder: exit 1, named" '[ $? -ne 0 ] && grep -q "missing" err_missing'
"$bin" serve --model m --port 0 --max-batch-tokens 10 2>err_tokens
check "--max-batch-tokens below the input length: exit 1, named" '[ $? -eq 1 ] && grep -q -- "--max-batch-tokens 10" err_tokens'

echo "$fails failed"
[ $fails -eq 0 ]
