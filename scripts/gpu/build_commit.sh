#!/usr/bin/env bash
# On the CPU machine: builds wattwise at a commit (CUDA: the sm_90a and PTX targets the commit
# names) in a temporary worktree and copies the stripped binary, and the test programs named, into
# DEST with a COMMIT file, for a GPU call that carries them:
#   - the "before" side of a before/after on one GPU (DEST .gpu-carry/base:
#     scripts/gpu/run.sh --steps ...,ab picks .gpu-carry/base/wattwise by default);
#   - prebuilt binaries for a call that cannot spend minutes building
#     (scripts/gpu/run.sh --prebuilt DEST).
# TEST arguments are test program names or shell globs over them ('*cuda*', 'kernels_*'; '*' for
# all, which may not fit the 64 MiB carry). --pack packs DEST into .gpu-carry/packed/NAME.tar.xz
# (NAME: DEST's folder name) and removes DEST: run.sh unpacks every such archive into .gpu-carry/.
#   bash scripts/gpu/build_commit.sh [--pack] [COMMIT [DEST [TEST...]]]
set -euo pipefail
cd "$(dirname "$0")/../.."
pack=0
[ "${1:-}" = --pack ] && { pack=1; shift; }
commit=${1:-HEAD}
dest=${2:-.gpu-carry/base}
globs=("${@:3}")
# The test programs find their committed fixtures under this folder (compiled in); run.sh links it
# to its checkout on the GPU machine.
tree=/tmp/ww-commit
rm -rf "$tree"
git worktree prune
git worktree add --detach "$tree" "$commit" >/dev/null
# Test program names in that commit's tree: tests/<layer>/<unit>_test.cpp and tests/test_*.cpp.
tests=()
if [ ${#globs[@]} -gt 0 ]; then
  while read -r name; do
    for g in "${globs[@]}"; do
      # shellcheck disable=SC2053  # the glob is the point
      [[ $name == $g ]] && { tests+=("$name"); break; }
    done
  done < <(cd "$tree/tests" && for f in */*_test.cpp test_*.cpp; do
             [ -f "$f" ] && { f=${f%.cpp}; echo "${f/\//_}"; }
           done)
  [ ${#tests[@]} -gt 0 ] || { echo "build_commit: no test program of $commit matches ${globs[*]}" >&2; exit 1; }
fi
# pkg-config sees only the libraries the GPU machine gets from .deps: no cairo (its PNG plots),
# which that machine does not have.
pc=/tmp/ww-commit-pc; rm -rf "$pc"; mkdir -p "$pc"
for f in openblas-pthread/pkgconfig/openblas.pc pkgconfig/libutf8proc.pc pkgconfig/tomlplusplus.pc; do
  ln -s /usr/lib/x86_64-linux-gnu/$f "$pc/"
done
PKG_CONFIG_LIBDIR=$pc cmake -S "$tree" -B "$tree/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=OFF >/dev/null
cmake --build "$tree/build" -j "$(nproc)" --target wattwise "${tests[@]}"
rm -rf "$dest"; mkdir -p "$dest"
cp "$tree/build/wattwise" "$dest/wattwise"
strip "$dest/wattwise"
for t in "${tests[@]}"; do cp "$tree/build/tests/$t" "$dest/$t"; strip "$dest/$t"; done
git -C "$tree" log -1 --format='%h %s' > "$dest/COMMIT"
git worktree remove --force "$tree"
if [ "$pack" = 1 ]; then
  name=$(basename "$dest")
  mkdir -p .gpu-carry/packed
  tar -C "$(dirname "$dest")" -cJf ".gpu-carry/packed/$name.tar.xz" "$name"
  rm -rf "$dest"
  ls -la ".gpu-carry/packed/$name.tar.xz"
else
  ls -la "$dest"
fi
