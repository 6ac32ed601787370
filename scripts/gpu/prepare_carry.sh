#!/usr/bin/env bash
# On the CPU machine, before a GPU call: fills the ignored folders that scripts/gpu/run.sh's calls
# carry (name both in the call's carry; 64 MiB together at most):
#   .deps/debs        the Debian packages the build needs and the GPU machine lacks (run.sh unpacks
#                     them with scripts/gpu/setup-deps.sh)
#   .gpu-carry/data   the tokenizers and tiny shakespeare from ../shared/data (the bench cases need
#                     no data; the GPT-2 profile, gpt2-converge and the tests read these)
# Options:
#   --base COMMIT       that commit's wattwise, packed as .gpu-carry/packed/base.tar.xz (run.sh
#                       unpacks it into .gpu-carry/base, the ab step's default "before")
#   --prebuilt COMMIT   that commit's wattwise and the --tests programs, packed as
#                       .gpu-carry/packed/prebuilt.tar.xz (run.sh --prebuilt .gpu-carry/prebuilt)
#   --tests GLOBS       test programs for --prebuilt (names or globs, e.g. '*cuda* kernels_*')
#   --with glue         SST-2, packed (.gpu-carry/packed/glue.tar.xz): e2e, sweep, minilm sst2
#   --with imdb         aclImdb.tar.gz (27 MB): memory, imdb, minilm imdb
#   --with minilm       the all-MiniLM-L6-v2 checkpoint in fp16 (44 MB; scripts/gpu/pack_minilm.py):
#                       minilm and the real-checkpoint tests. It does not fit beside IMDB: run.sh
#                       keeps it in build/carry for a later call on the warm machine
#   bash scripts/gpu/prepare_carry.sh [--base COMMIT] [--prebuilt COMMIT [--tests GLOBS]] [--with WHAT]...
set -euo pipefail
cd "$(dirname "$0")/../.."
shared=${WW_SHARED:-../shared}
base="" prebuilt="" tests=() with=()
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || { echo "prepare_carry: $1 needs a value" >&2; exit 2; }
  case $1 in
    --base) base=$2 ;;
    --prebuilt) prebuilt=$2 ;;
    --tests) read -ra tests <<< "$(echo "$2" | tr ',' ' ')" ;;
    --with) with+=("$2") ;;
    *) echo "prepare_carry: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
[ -d "$shared/data" ] || { echo "prepare_carry: no $shared/data (set WW_SHARED)" >&2; exit 1; }
mkdir -p .deps/debs
"$shared/tools/device-deps" .deps/debs nlohmann-json3-dev libcli11-dev libtomlplusplus-dev libtomlplusplus3 \
  libopenblas-dev libopenblas0 libopenblas0-pthread libopenblas-pthread-dev libutf8proc-dev libutf8proc2 \
  libgtest-dev libbenchmark-dev libbenchmark1debian pkgconf pkgconf-bin libpkgconf3 zlib1g-dev \
  libgfortran5 libquadmath0 libgloo-dev libgloo0 libhiredis0.14 libibverbs1 libnl-3-200 libnl-route-3-200 \
  libcpp-httplib-dev libcpp-httplib0.11 libssl-dev libbrotli-dev libbrotli1 >/dev/null
mkdir -p .gpu-carry/data/tokenizers .gpu-carry/data/tinyshakespeare .gpu-carry/packed
cp -r "$shared/data/tokenizers/bert-base-uncased" "$shared/data/tokenizers/gpt2" .gpu-carry/data/tokenizers/
cp "$shared/data/tinyshakespeare/input.txt" .gpu-carry/data/tinyshakespeare/
for w in "${with[@]}"; do
  case $w in
    glue) tar -C "$shared/data" -cJf .gpu-carry/packed/glue.tar.xz --transform 's,^,data/,' glue/SST-2 ;;
    imdb) cp "$shared/data/aclImdb.tar.gz" .gpu-carry/data/ ;;
    minilm) python3 scripts/gpu/pack_minilm.py >/dev/null ;;
    *) echo "prepare_carry: --with glue, imdb or minilm" >&2; exit 2 ;;
  esac
done
[ -z "$base" ] || bash scripts/gpu/build_commit.sh --pack "$base" .gpu-carry/base
[ -z "$prebuilt" ] || bash scripts/gpu/build_commit.sh --pack "$prebuilt" .gpu-carry/prebuilt "${tests[@]}"
du -sh .deps .gpu-carry
total=$(du -scb .deps .gpu-carry | tail -1 | cut -f1)
[ "$total" -le $(( 64 * 1024 * 1024 )) ] ||
  echo "prepare_carry: .deps and .gpu-carry hold $(( total / 1048576 )) MiB, over a call's 64 MiB: carry less" >&2
