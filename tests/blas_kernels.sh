#!/usr/bin/env bash
# The numerical CPU tests again under each OpenBLAS kernel family this CPU can run, and once with an
# odd thread count: OpenBLAS picks its GEMM kernels by CPU model and splits work by thread count,
# each summing in its own order, so a bound that holds only on the machine it was written on
# (Intel or AMD, SSE or AVX-512, 2 or 64 cores) fails here instead of on a user's machine.
# OPENBLAS_CORETYPE forces a kernel family in Debian's DYNAMIC_ARCH build.
# Usage: blas_kernels.sh <build>/tests
set -uo pipefail
tests_dir=${1:?usage: blas_kernels.sh BUILD/tests}
# The numerical programs: every one of the kernels, ops, models and train layers (tests/<layer>/).
binaries=()
for program in "$tests_dir"/{kernels,ops,models,train}_*_test; do
  [ -x "$program" ] && binaries+=("$(basename "$program")")
done

flags=$(grep -m1 '^flags' /proc/cpuinfo)
has() { [[ " $flags " == *" $1 "* ]]; }
cores=()
has pni && cores+=(Prescott)
has avx && cores+=(Sandybridge)
has avx2 && has fma && cores+=(Haswell Zen)
has avx512f && has avx512bw && has avx512vl && has avx512dq && cores+=(SkylakeX)
if ((${#cores[@]} == 0)); then
  echo "blas_kernels: no known OpenBLAS kernel family for this CPU's flags; skipping"
  exit 77
fi

failed=()
run_all() {  # label, then environment assignments
  local label=$1
  shift
  for binary in "${binaries[@]}"; do
    local log="$tests_dir/blas_kernels.$label.$binary.log"
    if ! env "$@" "$tests_dir/$binary" --gtest_brief=1 >"$log" 2>&1; then
      echo "FAILED with $*: $binary"
      grep -E "Failure|FAILED|Expected|Which is|actual|worst" "$log" | head -20
      failed+=("$label/$binary")
    fi
  done
  echo "$*: ${#binaries[@]} test programs run"
}
for core in "${cores[@]}"; do run_all "$core" OPENBLAS_CORETYPE="$core"; done
run_all threads3 OMP_NUM_THREADS=3 OPENBLAS_NUM_THREADS=3
((${#failed[@]} == 0)) || { echo "failed: ${failed[*]}"; exit 1; }
echo "all passed under: ${cores[*]} and 3 threads"
