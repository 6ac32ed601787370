#!/usr/bin/env bash
# GPU validation of wattwise's energy figures (docs/ENERGY.md, "GPU validation"). On the H100:
#   scripts/gpu/validate_energy.sh                 # 20 s load + 20 s sampler-only run, ~1.5 min
# It needs a wattwise binary: $WATTWISE, else build/wattwise, else it builds one (CUDA off: the
# meter needs none) into build-energy-validate/. Python needs torch and nvidia-ml-py (pynvml).
# Prints a Markdown table; writes energy_validation.json (+ the load run's files) into $OUT if set.
# Extra arguments go to validate_energy.py (--seconds, --idle-seconds, --gpu, --interval).
# Self-test without a GPU:  scripts/gpu/validate_energy.sh --fake   (needs build/tests/libfake_nvml.so)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

fake=0
args=()
for arg in "$@"; do
  if [ "$arg" = "--fake" ]; then fake=1; else args+=("$arg"); fi
done

bin="${WATTWISE:-}"
if [ -z "$bin" ] && [ -x build/wattwise ]; then bin="$root/build/wattwise"; fi
if [ -z "$bin" ]; then
  echo "validate_energy: building wattwise (CUDA off) into build-energy-validate/ ..."
  cmake -S . -B build-energy-validate -DCMAKE_BUILD_TYPE=Release -DWW_CUDA=OFF -DWW_BENCH=OFF >/dev/null
  cmake --build build-energy-validate -j "$(nproc)" --target wattwise >/dev/null
  bin="$root/build-energy-validate/wattwise"
fi
if ldd "$bin" 2>/dev/null | grep -q "not found"; then
  echo "validate_energy: $bin cannot run here, missing libraries:" >&2
  ldd "$bin" | grep "not found" >&2
  exit 1
fi
"$bin" --version >/dev/null

python3 -c "import pynvml" 2>/dev/null || { echo "validate_energy: python3 lacks pynvml (pip package nvidia-ml-py)" >&2; exit 1; }
python3 -c "import torch" 2>/dev/null || { echo "validate_energy: python3 lacks torch" >&2; exit 1; }

if [ "$fake" = 1 ]; then
  # Self-test on a machine without a GPU: the fake NVML for wattwise and, under its real name, for
  # pynvml; the load runs on the CPU. Short runs.
  lib="$(dirname "$bin")/tests/libfake_nvml.so"
  [ -f "$lib" ] || { echo "validate_energy: $lib not built (cmake --build build --target fake_nvml)" >&2; exit 1; }
  shim=$(mktemp -d)
  trap 'rm -rf "$shim"' EXIT
  ln -s "$lib" "$shim/libnvidia-ml.so.1"
  export WW_NVML_LIBRARY="$lib" LD_LIBRARY_PATH="$shim${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export WW_FAKE_NVML_POWER_W="${WW_FAKE_NVML_POWER_W:-400}"
  args=(--allow-cpu --seconds 3 --idle-seconds 3 "${args[@]}")
fi

export PYTHONUNBUFFERED=1
exec python3 "$root/scripts/gpu/validate_energy.py" --wattwise "$bin" "${args[@]}"
