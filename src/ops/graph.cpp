#include "wattwise/ops/graph.h"

#include "wattwise/core/error.h"
#ifdef WW_HAVE_CUDA
#include "kernels/cuda/common.h"
#endif

namespace ww::ops {

#ifdef WW_HAVE_CUDA
struct CapturedWork::State {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  int device = 0;
  ~State() {
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
  }
};

CapturedWork CapturedWork::capture(Device device, const std::function<void()>& work) {
  if (!device.is_cuda()) fail("CUDA graph capture needs a cuda device, got ", device.str());
  kernels::cuda::check(cudaSetDevice(device.index), "cudaSetDevice");
  cudaStream_t s = kernels::cuda::stream();
  auto state = std::make_shared<State>();
  state->device = device.index;
  // Thread-local mode: the energy sampler thread may use CUDA/NVML meanwhile.
  kernels::cuda::check(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
  try {
    work();
  } catch (...) {
    cudaGraph_t broken = nullptr;
    cudaStreamEndCapture(s, &broken);
    if (broken) cudaGraphDestroy(broken);
    cudaGetLastError();
    throw;
  }
  cudaError_t status = cudaStreamEndCapture(s, &state->graph);
  if (status != cudaSuccess) {
    cudaGetLastError();
    fail("CUDA graph capture failed (", cudaGetErrorString(status),
         "): the recorded work synchronised or allocated; run without CUDA graphs");
  }
  kernels::cuda::check(cudaGraphInstantiate(&state->exec, state->graph, 0), "cudaGraphInstantiate");
  CapturedWork out;
  out.state_ = std::move(state);
  return out;
}

void CapturedWork::replay() const {
  if (!state_) fail("replay of an empty CUDA graph");
  kernels::cuda::check(cudaGraphLaunch(state_->exec, kernels::cuda::stream()), "cudaGraphLaunch");
}
#else
struct CapturedWork::State {};

CapturedWork CapturedWork::capture(Device device, const std::function<void()>&) {
  fail("CUDA graph capture needs a cuda device and a CUDA build, got ", device.str());
}

void CapturedWork::replay() const { fail("replay of an empty CUDA graph"); }
#endif

}  // namespace ww::ops
