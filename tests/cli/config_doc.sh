#!/usr/bin/env bash
# docs/CONFIG.md lists every training-config key: its tables are what tests/tools/gen_config_doc.cpp
# generates from the schema (fails when the schema changed and the page was not regenerated), and
# every --section.key flag of `wattwise train --help` appears in it.
# Usage (ctest): bash config_doc.sh <wattwise-binary> <source-dir> <shared-data-dir>
set -uo pipefail
bin=$1 src=$2
doc=$src/docs/CONFIG.md
# tests/CMakeLists.txt builds tests/tools/*.cpp into <build>/tests/tools/.
tool=$(dirname "$bin")/tests/tools/gen_config_doc
if [ ! -x "$tool" ]; then
  echo "FAIL: $tool is missing; build it with: cmake --build <build> --target gen_config_doc" >&2
  exit 1
fi
fails=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fails=$((fails + 1)); fi; }

check "docs/CONFIG.md tables match the schema" '"$tool" "$doc" --check'
flags=$("$bin" train --help | grep -o -- "--[a-z_]*\.[a-z_0-9]*" | sort -u)
check "train --help lists the config keys" '[ "$(echo "$flags" | wc -l)" -ge 40 ]'
missing=$(for f in $flags; do grep -q "| \`${f#--}\` |" "$doc" || echo "${f#--}"; done)
check "every --section.key flag is documented${missing:+ (missing: $missing)}" '[ -z "$missing" ]'

# The check itself notices a stale page.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed 's/| `train.lr` | float | `5e-05` |/| `train.lr` | float | `1e-3` |/' "$doc" > "$work/stale.md"
check "a stale page is reported" '! cmp -s "$doc" "$work/stale.md" && ! "$tool" "$work/stale.md" --check 2>/dev/null'

echo "$fails failed"
[ $fails -eq 0 ]
