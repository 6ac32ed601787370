# Sourced by tests/cli/*.sh that drive wattwise on generated data: resolves the binary and source
# folder from ctest's arguments, makes a scratch folder (removed on exit) and cds into it, and
# defines check (counts failures in $fails) and json (a Python expression over a JSON file's m).
set -uo pipefail
bin=$(realpath "$1") src=$(realpath "$2")
if ! command -v python3 >/dev/null; then
  echo "SKIP: python3 is needed to read metrics.json"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
fails=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fails=$((fails + 1)); fi; }
# json FILE EXPR: prints the Python expression EXPR evaluated with m = the parsed JSON file.
json() { python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print($2)" "$1"; }
# ranks_on_free_port N RANK0_ERR CMD: starts ranks 0..N-1 of a job by hand, each the command CMD (a
# string evaluated with $r the rank and $port the rendezvous port, run in the background, rank 0
# writing its stderr to RANK0_ERR); waits for all and sets $rcs to their exit codes ("0 0 1"). A port
# found free stays free only until someone binds it, and a test running beside this one may take it
# before rank 0 does: rank 0 then stops at once with "MASTER_PORT N is in use", the other ranks are
# stopped, and the job starts again on another port (5 times at most).
ranks_on_free_port() {
  local n=$1 rank0_err=$2 cmd=$3 attempt r pid pids
  for attempt in 1 2 3 4 5; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    pids=()
    for ((r = 0; r < n; ++r)); do
      eval "$cmd &"
      pids+=($!)
    done
    wait "${pids[0]}"
    rcs=$?
    if [ "$rcs" -ne 0 ] && grep -q "MASTER_PORT $port is in use on this machine" "$rank0_err"; then
      echo "note: port $port was taken before rank 0 could bind it; starting the job again on another" >&2
      for pid in "${pids[@]:1}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
      continue
    fi
    for pid in "${pids[@]:1}"; do wait "$pid"; rcs="$rcs $?"; done
    return 0
  done
  echo "rank 0 found its port taken $attempt times in a row" >&2
  return 1
}
