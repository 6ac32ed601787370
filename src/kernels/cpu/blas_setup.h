#pragma once

namespace ww::kernels::cpu {

// Two settings that the libraries read once, when they are loaded, so the only fix is environment
// variables set before start; when either is missing this re-executes the program with it set.
// Returns only if no re-execution was needed or possible. A variable the user set is kept; the ones
// added are taken out of the environment again once the libraries have read them, so commands the
// program starts inherit the user's environment.
// - OPENBLAS_CORETYPE: Debian 12's OpenBLAS (0.3.21) does not recognise recent Xeons and falls back
//   to its generic "Prescott" kernels, about 8x slower sgemm; on a CPU with AVX-512 or AVX2 this
//   names SkylakeX or Haswell.
// - OMP_WAIT_POLICY=PASSIVE: our OpenMP threads and OpenBLAS's own pthreads share the cores, and
//   libgomp's default spinning after each parallel region starves the BLAS threads (2 cores:
//   DistilBERT CPU inference 84-90 → 53-80 ms/example, training +30-70% samples/s); idle threads
//   that sleep also draw less CPU power during GPU runs.
void reexec_with_fast_runtime_if_needed(char** argv);

// The kernel set OpenBLAS chose ("SkylakeX", "Prescott", ...).
const char* blas_core_name();

}  // namespace ww::kernels::cpu
