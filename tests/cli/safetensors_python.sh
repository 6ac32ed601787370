#!/usr/bin/env bash
# Cross-check with Python's safetensors: files written by Python are read by wattwise and the other
# way round (tests/tools/safetensors_python_check.py says what is compared).
# Usage (ctest): bash safetensors_python.sh <wattwise-binary> <source-dir> <shared-data-dir>
set -euo pipefail
wattwise=$1
source_dir=$2

if ! python3 -c "import safetensors, numpy" 2>/dev/null; then
  echo "SKIP: python3 with safetensors and numpy is needed (python3 -m pip install safetensors numpy)"
  exit 77
fi

# tests/CMakeLists.txt builds tests/tools/*.cpp into <build>/tests/tools/.
tool=${WW_SAFETENSORS_TOOL:-$(dirname "$wattwise")/tests/tools/safetensors_tool}
if [ ! -x "$tool" ]; then
  echo "FAIL: $tool is missing; build it with: cmake --build <build> --target safetensors_tool" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$source_dir/tests/tools/safetensors_python_check.py" "$tool" "$work"
