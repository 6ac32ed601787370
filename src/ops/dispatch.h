#pragma once
// The one place where an op picks its kernels by device (CTranslate2's DEVICE_DISPATCH, in C++).
//
// An op checks its arguments, then hands one call per backend to dispatch():
//
//   dispatch(op, out.device(),
//            [&] { kernels::cpu::layernorm_forward(out.data<float>(), ...); },
//            WW_CUDA([&] { kernels::cuda::layernorm_forward(out.raw(), ..., inp.dtype(), ...); }));
//
// The dtype half of the dispatch happens below this line: CPU kernels take f32 only (the op's
// checks reject 16-bit tensors on the CPU), and each CUDA kernel file instantiates its templates
// for f32, f16 and bf16 from the DType it is given (dispatch_activation in device_util.cuh).
//
// WW_CUDA(...) keeps its argument only in a build with the CUDA backend; without it the call is not
// compiled at all (its kernels are not declared), and a cuda tensor gets the error every op has
// always given: "<op>: the CUDA backend does not implement this yet". A second GPU backend adds
// its device case here, a macro like WW_CUDA and its kernel files; an op whose GPU call has the
// same shape changes only in the one lambda it passes.
#include <type_traits>
#include <utility>

#include "ops/extra_checks.h"
#include "wattwise/core/device.h"

namespace ww::ops {

// Stands in for the kernels of a backend this build does not have.
struct NoKernel {};

// Runs `cpu()` for a CPU device and `cuda()` for a cuda device, returning what it returns. When
// `cuda` is NoKernel (a build without CUDA), a cuda device calls `missing()` instead, which must
// not return.
template <typename CpuKernel, typename CudaKernel, typename Missing>
decltype(auto) dispatch(Device device, CpuKernel&& cpu, CudaKernel&& cuda, Missing&& missing) {
  if (device.is_cuda()) {
    if constexpr (std::is_same_v<std::decay_t<CudaKernel>, NoKernel>) {
      missing();
    } else {
      return std::forward<CudaKernel>(cuda)();
    }
  }
  return std::forward<CpuKernel>(cpu)();
}

// The same, where a build without CUDA fails with "<op>: the CUDA backend does not implement this yet".
template <typename CpuKernel, typename CudaKernel>
decltype(auto) dispatch(const char* op, Device device, CpuKernel&& cpu, CudaKernel&& cuda) {
  return dispatch(device, std::forward<CpuKernel>(cpu), std::forward<CudaKernel>(cuda),
                  [op] { cuda_not_implemented(op); });
}

}  // namespace ww::ops

#ifdef WW_HAVE_CUDA
#define WW_CUDA(...) __VA_ARGS__
#else
#define WW_CUDA(...) ::ww::ops::NoKernel{}
#endif
