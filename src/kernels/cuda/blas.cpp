#include "kernels/cuda/blas.h"

#include <memory>
#include <mutex>
#include <vector>

#include "kernels/cuda/common.h"

namespace ww::kernels::cuda {

namespace {
// 32 MiB: what cuBLASLt's larger fp32 kernels on Hopper ask for at most.
constexpr size_t kLtWorkspaceBytes = size_t(32) << 20;
}  // namespace

void check_cublas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    fail("cuBLAS error in ", what, ": ", cublasGetStatusName(status), " (", cublasGetStatusString(status),
         ")");
}

const BlasContext& blas_context() {
  static std::mutex mutex;
  // unique_ptr: a context's address stays valid when another device's entry is added.
  static std::vector<std::unique_ptr<BlasContext>> contexts;
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  cudaStream_t s = stream();
  std::lock_guard<std::mutex> lock(mutex);
  if (int(contexts.size()) <= device) contexts.resize(size_t(device) + 1);
  if (!contexts[size_t(device)]) contexts[size_t(device)] = std::make_unique<BlasContext>();
  BlasContext& c = *contexts[size_t(device)];
  if (!c.handle) {
    BlasContext fresh;
    check_cublas(cublasCreate(&fresh.handle), "cublasCreate");
    // CUBLAS_DEFAULT_MATH: plain fp32, no TF32 in the classic API (attention's GEMMs).
    check_cublas(cublasSetMathMode(fresh.handle, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
    check_cublas(cublasLtCreate(&fresh.lt_handle), "cublasLtCreate");
    check(cudaMalloc(&fresh.lt_workspace, kLtWorkspaceBytes), "cudaMalloc (cuBLASLt workspace)");
    fresh.lt_workspace_bytes = kLtWorkspaceBytes;
    c = fresh;
  }
  check_cublas(cublasSetStream(c.handle, s), "cublasSetStream");
  return c;
}

}  // namespace ww::kernels::cuda
