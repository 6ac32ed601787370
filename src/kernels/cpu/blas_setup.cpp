#include "kernels/cpu/blas_setup.h"

#include <cblas.h>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

namespace ww::kernels::cpu {

const char* blas_core_name() { return openblas_get_corename(); }

void reexec_with_fast_blas_if_needed(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE")) return;  // the user's choice, or we already re-executed
  if (std::strcmp(blas_core_name(), "Prescott") != 0) return;
  const char* core = nullptr;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    core = "SkylakeX";
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    core = "Haswell";
  if (!core) return;
  setenv("OPENBLAS_CORETYPE", core, 1);
  execv("/proc/self/exe", argv);
  // execv failed (no /proc?): carry on with the slow kernels; results are the same.
}

}  // namespace ww::kernels::cpu
