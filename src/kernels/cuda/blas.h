#pragma once
// cuBLAS / cuBLASLt plumbing: one handle of each plus one cuBLASLt workspace per device, bound to
// kernels::cuda::stream(); status checks that throw ww::Error naming the call.
#include <cublasLt.h>
#include <cublas_v2.h>

#include <cstddef>

namespace ww::kernels::cuda {

// How fp32 GEMMs may compute. Fp32 (the default everywhere) is exact IEEE fp32 accumulation
// (CUBLAS_COMPUTE_32F); Tf32 lets tensor cores round the inputs to TF32 (a later speed switch).
enum class GemmPrecision { Fp32, Tf32 };

void check_cublas(cublasStatus_t status, const char* what);

struct BlasContext {
  cublasHandle_t handle = nullptr;      // classic API, math mode pure fp32, on stream()
  cublasLtHandle_t lt_handle = nullptr;
  void* lt_workspace = nullptr;
  size_t lt_workspace_bytes = 0;
};

// The current device's context (created on first use; lives until the process ends). The
// classic handle's stream is re-bound to stream() on every call, so it is always current.
const BlasContext& blas_context();

}  // namespace ww::kernels::cuda
