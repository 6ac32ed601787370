#!/usr/bin/env bash
# Source this on the GPU machine (which cannot install anything): unpacks the Debian packages that
# travel in .deps/debs (made on the CPU machine with ../shared/tools/device-deps) into /opt/deps and
# points CMake, pkg-config and the loader at them.
#   source scripts/gpu/setup-deps.sh
deps=/opt/deps
if [ ! -f "$deps/.unpacked" ]; then
  mkdir -p "$deps"
  for f in .deps/debs/*.deb; do dpkg -x "$f" "$deps"; done
  touch "$deps/.unpacked"
fi
lib=$deps/usr/lib/x86_64-linux-gnu
# OpenBLAS's Debian .so names come from update-alternatives, which dpkg -x does not run.
ln -sf "$lib/openblas-pthread/libopenblas.so.0" "$lib/libopenblas.so.0" 2>/dev/null || true
# (Gloo installs into usr/lib.)
export LD_LIBRARY_PATH=$lib:$lib/openblas-pthread:$deps/usr/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PKG_CONFIG_PATH=$lib/openblas-pthread/pkgconfig:$lib/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=$deps
if ! command -v pkg-config >/dev/null; then
  mkdir -p "$deps/bin"
  ln -sf "$deps/usr/bin/pkgconf" "$deps/bin/pkg-config"
  export PATH=$deps/bin:$PATH
fi
export CMAKE_PREFIX_PATH=$deps/usr
