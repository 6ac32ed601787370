#!/usr/bin/env bash
# On the CPU machine, before a GPU session: fills the two ignored folders that GPU calls carry.
#   .deps/debs   the Debian packages the build needs and the GPU machine lacks (unpacked there by
#                scripts/gpu/setup-deps.sh)
#   .gpu-carry/data   the tokenizers and tiny shakespeare from ../shared/data (the bench cases need
#                no data; the GPT-2 profile and tests read these)
# With a commit argument it also builds that commit's wattwise as the same-call baseline
# (.gpu-carry/base, scripts/gpu/build_baseline.sh). Then: run(carry=[".deps", ".gpu-carry"]).
#   bash scripts/gpu/prepare_carry.sh [BASELINE_COMMIT]
set -euo pipefail
cd "$(dirname "$0")/../.."
shared=${WW_SHARED:-../shared}
[ -d "$shared/data" ] || { echo "prepare_carry: no $shared/data (set WW_SHARED)" >&2; exit 1; }
mkdir -p .deps/debs
"$shared/tools/device-deps" .deps/debs nlohmann-json3-dev libcli11-dev libtomlplusplus-dev libtomlplusplus3 \
  libopenblas-dev libopenblas0 libopenblas0-pthread libopenblas-pthread-dev libutf8proc-dev libutf8proc2 \
  libgtest-dev pkgconf pkgconf-bin libpkgconf3 zlib1g-dev libgfortran5 libquadmath0 >/dev/null
mkdir -p .gpu-carry/data/tokenizers .gpu-carry/data/tinyshakespeare
cp -r "$shared/data/tokenizers/bert-base-uncased" "$shared/data/tokenizers/gpt2" .gpu-carry/data/tokenizers/
cp "$shared/data/tinyshakespeare/input.txt" .gpu-carry/data/tinyshakespeare/
[ $# -ge 1 ] && bash scripts/gpu/build_baseline.sh "$1"
du -sh .deps .gpu-carry
