#!/usr/bin/env bash
# Builds wattwise at a commit (default HEAD) on this CPU machine (CUDA: the sm_90a and PTX targets
# the commit names, no sm_75) and puts the binary in .gpu-carry/base/wattwise, so a GPU session can
# bench it next to the working tree's build in the same call (scripts/gpu/session_attention_check.sh):
# before/after on one GPU. A second argument puts the build elsewhere (DEST/wattwise, plus the test
# programs named after it, stripped): a prebuilt binary for a short GPU call that cannot spend
# minutes building (scripts/gpu/session_prebuilt.sh).
#   bash scripts/gpu/build_baseline.sh [COMMIT [DEST [TEST_TARGET...]]]
set -euo pipefail
cd "$(dirname "$0")/../.."
commit=${1:-HEAD}
dest=${2:-.gpu-carry/base}
tests=("${@:3}")
tree=/tmp/ww-baseline
rm -rf "$tree"
git worktree prune
git worktree add --detach "$tree" "$commit" >/dev/null
# pkg-config sees only the libraries the GPU machine gets from .deps: no cairo (its PNG plots),
# which that machine does not have.
pc=/tmp/ww-baseline-pc; rm -rf "$pc"; mkdir -p "$pc"
for f in openblas-pthread/pkgconfig/openblas.pc pkgconfig/libutf8proc.pc pkgconfig/tomlplusplus.pc; do
  ln -s /usr/lib/x86_64-linux-gnu/$f "$pc/"
done
PKG_CONFIG_LIBDIR=$pc cmake -S "$tree" -B "$tree/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=OFF >/dev/null
cmake --build "$tree/build" -j "$(nproc)" --target wattwise "${tests[@]}"
mkdir -p "$dest"
cp "$tree/build/wattwise" "$dest/wattwise"
for t in "${tests[@]}"; do cp "$tree/build/tests/$t" "$dest/$t"; strip "$dest/$t"; done
strip "$dest/wattwise"
git -C "$tree" log -1 --format='%h %s' > "$dest/COMMIT"
git worktree remove --force "$tree"
ls -la "$dest"
