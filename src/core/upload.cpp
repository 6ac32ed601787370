#include "wattwise/core/upload.h"

#include <algorithm>
#include <cstring>

#include "core/device_memory.h"
#include "wattwise/core/error.h"

#ifdef WW_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace ww {

struct HostToDevice::State {
  void* staging = nullptr;  // pinned host memory
  size_t capacity = 0, used = 0;
  bool in_group = false;
#ifdef WW_HAVE_CUDA
  cudaEvent_t done = nullptr;
  bool pending = false;
  ~State() {
    if (done) cudaEventDestroy(done);
    if (staging) cudaFreeHost(staging);
  }
#endif
};

HostToDevice::HostToDevice() : state_(std::make_unique<State>()) {}
HostToDevice::~HostToDevice() = default;
HostToDevice::HostToDevice(HostToDevice&&) noexcept = default;
HostToDevice& HostToDevice::operator=(HostToDevice&&) noexcept = default;

#ifdef WW_HAVE_CUDA
namespace {
void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) fail("CUDA error in ", what, ": ", cudaGetErrorString(status));
}
}  // namespace

void HostToDevice::begin() {
  State& s = *state_;
  if (s.pending) check(cudaEventSynchronize(s.done), "cudaEventSynchronize (staging buffer reuse)");
  s.pending = false;
  s.used = 0;
  s.in_group = true;
}

void HostToDevice::upload(const Tensor& dst, const Tensor& src) {
  State& s = *state_;
  WW_CHECK(s.in_group, "HostToDevice::upload outside begin()/end()");
  WW_CHECK(dst.device().is_cuda() && src.device().is_cpu() && dst.dtype() == src.dtype() &&
               dst.numel() == src.numel(),
           "upload of ", src.describe(), " into ", dst.describe());
  const size_t bytes = src.nbytes(), aligned = (bytes + 255) / 256 * 256;
  if (s.used + aligned > s.capacity) {
    // Grow: wait for copies already enqueued from the old buffer in this group, then replace it.
    check(cudaStreamSynchronize(static_cast<cudaStream_t>(detail::cuda_stream())), "cudaStreamSynchronize");
    if (s.staging) cudaFreeHost(s.staging);
    s.staging = nullptr;
    s.capacity = std::max<size_t>(2 * (s.used + aligned), size_t(1) << 16);
    check(cudaMallocHost(&s.staging, s.capacity), "cudaMallocHost (input staging)");
    s.used = 0;
  }
  char* slot = static_cast<char*>(s.staging) + s.used;
  std::memcpy(slot, src.raw(), bytes);
  check(cudaMemcpyAsync(dst.raw(), slot, bytes, cudaMemcpyHostToDevice,
                        static_cast<cudaStream_t>(detail::cuda_stream())),
        "cudaMemcpyAsync (input upload)");
  s.used += aligned;
}

void HostToDevice::end() {
  State& s = *state_;
  if (!s.done) check(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming), "cudaEventCreate");
  check(cudaEventRecord(s.done, static_cast<cudaStream_t>(detail::cuda_stream())), "cudaEventRecord");
  s.pending = true;
  s.in_group = false;
}
#else
void HostToDevice::begin() { state_->in_group = true; }
void HostToDevice::upload(const Tensor& dst, const Tensor& src) { dst.copy_from(src); }
void HostToDevice::end() { state_->in_group = false; }
#endif

}  // namespace ww
