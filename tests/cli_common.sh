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
