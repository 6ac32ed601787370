#include "kernels/cpu/blas_setup.h"

#include <cblas.h>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>

namespace ww::kernels::cpu {

const char* blas_core_name() { return openblas_get_corename(); }

namespace {

// The OpenBLAS core type to ask for, or null when OpenBLAS chose well (or the user chose).
const char* better_blas_core() {
  if (std::getenv("OPENBLAS_CORETYPE")) return nullptr;  // the user's choice, or we already re-executed
  if (std::strcmp(blas_core_name(), "Prescott") != 0) return nullptr;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  return nullptr;
}

}  // namespace

void reexec_with_fast_runtime_if_needed(char** argv) {
  // The re-executed program: the libraries have read the variables while loading, so take them out
  // again, and the commands we start (`wattwise measure -- CMD`, the PyTorch peers) see the user's
  // environment unchanged.
  if (const char* added = std::getenv("WW_ADDED_ENV")) {
    const std::string names = added;
    for (size_t begin = 0; begin < names.size();) {
      const size_t end = std::min(names.find(',', begin), names.size());
      unsetenv(names.substr(begin, end - begin).c_str());
      begin = end + 1;
    }
    unsetenv("WW_ADDED_ENV");
    return;
  }
  std::string added;
  if (const char* core = better_blas_core()) {
    setenv("OPENBLAS_CORETYPE", core, 1);
    added += "OPENBLAS_CORETYPE,";
  }
  if (!std::getenv("OMP_WAIT_POLICY")) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    added += "OMP_WAIT_POLICY,";
  }
  if (added.empty()) return;
  setenv("WW_ADDED_ENV", added.c_str(), 1);
  execv("/proc/self/exe", argv);
  // execv failed (no /proc?): carry on as loaded; results are the same, only slower.
  unsetenv("WW_ADDED_ENV");
}

}  // namespace ww::kernels::cpu
