#!/usr/bin/env bash
# On the GPU machine: builds a standalone probe of dev/cuda (nvcc + cuBLASLt only, seconds) and
# runs it with its arguments; its Markdown table goes to $OUT/NAME.md and the output. With
# WW_PROBE_NCU=1 it runs it once more under Nsight Compute and lists each kernel's duration and name.
#   bash dev/cuda_probe.sh lm_head_gemm 10
#   bash dev/cuda_probe.sh mlp_epilogue_gemm 10
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
name=${1:?usage: dev/cuda_probe.sh NAME [ARGS...]}; shift
OUT=${OUT:-/tmp/ww-out}; mkdir -p "$OUT"
nvcc -O2 -std=c++17 -gencode=arch=compute_90a,code=sm_90a "dev/cuda/$name.cu" -lcublasLt -o "/tmp/$name" \
  > "$OUT/${name}_build.log" 2>&1 || { tail -20 "$OUT/${name}_build.log"; exit 1; }
timeout 120 "/tmp/$name" "$@" | tee "$OUT/$name.md"
if [ "${WW_PROBE_NCU:-0}" = 1 ]; then
  ncu_bin=$(command -v ncu || find /opt/nvidia/nsight-compute -name ncu -type f 2>/dev/null | head -1)
  "$ncu_bin" --clock-control none --metrics gpu__time_duration.sum --csv --print-units base "/tmp/$name" 1 \
    > "$OUT/ncu_$name.csv" 2> "$OUT/ncu_$name.err"
  python3 - "$OUT/ncu_$name.csv" <<'PY'
import csv, io, sys
text = open(sys.argv[1], errors="replace").read(); text = text[text.find('"ID"'):]
for row in csv.DictReader(io.StringIO(text)):
    if row.get("Metric Name") == "gpu__time_duration.sum":
        print(f'{float(row["Metric Value"]) / 1e6:8.3f} ms  {row["Kernel Name"][:110]}')
PY
fi
