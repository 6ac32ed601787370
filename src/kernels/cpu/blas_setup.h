#pragma once

namespace ww::kernels::cpu {

// Debian 12's OpenBLAS (0.3.21) does not recognise recent Xeons and falls back to its generic
// "Prescott" kernels, about 8x slower sgemm. It reads its core type once, when it is loaded, so the
// only fix is an environment variable set before start: when that fallback is detected on a CPU
// with AVX-512 or AVX2 and the user has not chosen OPENBLAS_CORETYPE, this re-executes the program
// with it set (SkylakeX or Haswell). Returns only if no re-execution was needed or possible.
void reexec_with_fast_blas_if_needed(char** argv);

// The kernel set OpenBLAS chose ("SkylakeX", "Prescott", ...).
const char* blas_core_name();

}  // namespace ww::kernels::cpu
