#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/fuzz_*.cpp, with AddressSanitizer and UBSan) using clang and
# runs each one for a short time on its seed corpus (fuzz/corpus/<name without fuzz_>/).
#
#   bash scripts/run-fuzzers.sh                      # 20 s per target
#   WW_FUZZ_SECONDS=600 bash scripts/run-fuzzers.sh  # a longer hunt
#
# Environment: WW_FUZZ_SECONDS (default 20), WW_FUZZ_BUILD (default build/fuzz), WW_FUZZ_JOBS
# (build jobs, default 2), CXX_FUZZ (the clang++ to use).
# New inputs found go to <build>/corpus/<name>/ (the committed seeds stay as they are); a crashing
# input is saved as <build>/artifacts/<target>-crash-<hash>: replay it with <build>/<target> FILE.
# Exit status: 0 no crash, 1 a build failure or a crash, 77 clang or libFuzzer missing (skip).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${WW_FUZZ_BUILD:-$root/build/fuzz}
seconds=${WW_FUZZ_SECONDS:-20}
jobs=${WW_FUZZ_JOBS:-2}

cxx=${CXX_FUZZ:-}
if [ -z "$cxx" ]; then
  for candidate in clang++ clang++-14 clang++-15 clang++-16 clang++-17 clang++-18; do
    if command -v "$candidate" >/dev/null 2>&1; then
      cxx=$(command -v "$candidate")
      break
    fi
  done
fi
if [ -z "$cxx" ]; then
  echo "SKIP: clang++ not found; fuzzing needs clang with libFuzzer (apt-get install clang libclang-rt-14-dev)"
  exit 77
fi

# libFuzzer ships separately from clang on Debian (libclang-rt-*-dev): probe for it.
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' > "$probe/probe.cpp"
if ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe/probe.cpp" -o "$probe/probe" 2>"$probe/log"; then
  echo "SKIP: $cxx cannot link a libFuzzer program (apt-get install libclang-rt-14-dev):"
  head -5 "$probe/log"
  exit 77
fi

launcher=()
if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
mkdir -p "$build"
echo "== building fuzz targets with $cxx into $build"
cmake -S "$root/fuzz" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "${launcher[@]}" >"$build/configure.log" 2>&1 || { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j "$jobs" >"$build/build.log" 2>&1 || { tail -50 "$build/build.log"; exit 1; }

mkdir -p "$build/artifacts" "$build/logs"
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
shopt -s nullglob
for source in "$root"/fuzz/fuzz_*.cpp; do
  target=$(basename "$source" .cpp)
  name=${target#fuzz_}
  seeds=$root/fuzz/corpus/$name
  found=$build/corpus/$name
  mkdir -p "$found"
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$build/artifacts/$target-")
  if [ -f "$root/fuzz/$name.dict" ]; then args+=(-dict="$root/fuzz/$name.dict"); fi
  corpora=("$found")
  if [ -d "$seeds" ]; then corpora+=("$seeds"); fi

  log=$build/logs/$target.log
  echo "== $target: ${seconds}s (seeds: ${seeds#"$root"/}, log: $log)"
  if "$build/$target" "${args[@]}" "${corpora[@]}" >"$log" 2>&1; then
    grep -E "stat::number_of_executed_units|Done [0-9]+ runs" "$log" | tail -2 | sed 's/^/   /'
  else
    echo "FAIL: $target crashed or misbehaved; the end of its log:"
    tail -40 "$log"
    failed+=("$target")
  fi
done

if ((${#failed[@]})); then
  echo "fuzzing found problems in: ${failed[*]} (inputs in $build/artifacts/)"
  exit 1
fi
echo "fuzzing: no crash"
