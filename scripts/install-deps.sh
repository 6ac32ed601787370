#!/usr/bin/env bash
# Makes sure the Debian packages wattwise builds with are installed. As root it installs what is
# missing with apt-get; otherwise it prints the exact apt-get line and fails, changing nothing.
# With --test it also makes the Python packages the parity tests compare against importable
# (pip, best effort: those tests skip with a message when they cannot be had).
set -euo pipefail

packages=(cmake make g++ pkg-config ccache python3 nlohmann-json3-dev libcli11-dev
          libtomlplusplus-dev libgloo-dev libcpp-httplib-dev libcairo2-dev libopenblas-dev libutf8proc-dev zlib1g-dev libgtest-dev libbenchmark-dev
          clang libclang-rt-14-dev)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "install-deps: missing Debian packages. Run this, then try again:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

if [ "${1:-}" = "--test" ]; then
  # Headless Chromium renders report.html in tests/cli/report_chromium.sh (which skips without it).
  if ! command -v chromium >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
      echo "install-deps: installing chromium for the report test"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null ||
        echo "install-deps: warning: could not install chromium; the report test will skip"
    else
      echo "install-deps: note: without chromium (sudo apt-get install -y chromium) the report test skips"
    fi
  fi
  python_packages=(tokenizers safetensors numpy)
  need=()
  for p in "${python_packages[@]}"; do
    python3 -c "import $p" 2>/dev/null || need+=("$p")
  done
  if ((${#need[@]})); then
    echo "install-deps: pip installing ${need[*]} for the parity tests"
    python3 -m pip install --quiet "${need[@]}" 2>/dev/null ||
      python3 -m pip install --quiet --break-system-packages "${need[@]}" ||
      echo "install-deps: warning: could not pip install ${need[*]}; tests that need them will skip"
  fi
fi
