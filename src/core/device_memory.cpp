#include "core/device_memory.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "wattwise/core/checked.h"
#include "wattwise/core/device.h"
#include "wattwise/core/error.h"

#ifdef WW_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace ww {

int cuda_device_count() {
#ifdef WW_HAVE_CUDA
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
#else
  return 0;
#endif
}

std::string cuda_pci_bus_id([[maybe_unused]] int index) {
#ifdef WW_HAVE_CUDA
  char bus_id[32] = {};
  if (cudaDeviceGetPCIBusId(bus_id, int(sizeof bus_id), index) != cudaSuccess) {
    cudaGetLastError();
    return "";
  }
  return bus_id;
#else
  return "";
#endif
}

size_t available_memory(Device device) {
  if (device.is_cpu()) {
    std::FILE* f = std::fopen("/proc/meminfo", "r");
    if (f == nullptr) return SIZE_MAX;
    char line[256];
    size_t kib = SIZE_MAX;
    while (std::fgets(line, sizeof(line), f) != nullptr) {
      unsigned long long value = 0;
      if (std::sscanf(line, "MemAvailable: %llu kB", &value) == 1) {
        kib = size_t(value);
        break;
      }
    }
    std::fclose(f);
    return kib == SIZE_MAX ? SIZE_MAX : kib * 1024;
  }
#ifdef WW_HAVE_CUDA
  int current = 0;
  if (cudaGetDevice(&current) != cudaSuccess) return SIZE_MAX;
  if (current != device.index) cudaSetDevice(device.index);
  size_t free_bytes = 0, total = 0;
  const bool ok = cudaMemGetInfo(&free_bytes, &total) == cudaSuccess;
  if (current != device.index) cudaSetDevice(current);
  if (!ok) {
    cudaGetLastError();
    return SIZE_MAX;
  }
  return free_bytes;
#else
  return SIZE_MAX;
#endif
}

void synchronize(Device device) {
  if (device.is_cpu()) return;
#ifdef WW_HAVE_CUDA
  int current = 0;
  if (cudaGetDevice(&current) == cudaSuccess && current != device.index) cudaSetDevice(device.index);
  const cudaError_t status = cudaDeviceSynchronize();
  if (current != device.index) cudaSetDevice(current);
  if (status != cudaSuccess) fail(device.str(), ": ", cudaGetErrorString(status));
#else
  fail(device.str(), ": this build has no CUDA backend");
#endif
}

void check_cuda_device_supported(int index) {
#ifdef WW_HAVE_CUDA
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, index) != cudaSuccess) {
    cudaGetLastError();
    fail("cannot query GPU ", index, " (cudaGetDeviceProperties failed)");
  }
  if (prop.major < 8)
    fail("GPU ", index, " (", prop.name, ") has compute capability ", prop.major, ".", prop.minor,
         "; this build runs on 8.0 (Ampere) and newer (native sm_90a code, compute_80 PTX); use --device cpu");
#else
  (void)index;
#endif
}

namespace {
// Live allocations per device slot (0: the CPU, 1 + i: GPU i) for memory_stats.
struct MemoryTally {
  std::mutex mutex;
  std::map<const void*, size_t> sizes;
  std::vector<MemoryStats> stats;
  MemoryStats& of(Device device) {
    size_t slot = device.is_cpu() ? 0 : 1 + size_t(device.index);
    if (stats.size() <= slot) stats.resize(slot + 1);
    return stats[slot];
  }
};
MemoryTally& tally() {
  static MemoryTally t;
  return t;
}
void record_alloc(const void* p, size_t bytes, Device device) {
  MemoryTally& t = tally();
  std::lock_guard<std::mutex> lock(t.mutex);
  t.sizes[p] = bytes;
  MemoryStats& s = t.of(device);
  s.current += bytes;
  s.peak = std::max(s.peak, s.current);
}
void record_free(const void* p, Device device) {
  MemoryTally& t = tally();
  std::lock_guard<std::mutex> lock(t.mutex);
  auto it = t.sizes.find(p);
  if (it == t.sizes.end()) return;
  t.of(device).current -= it->second;
  t.sizes.erase(it);
}
}  // namespace

MemoryStats memory_stats(Device device) {
  MemoryTally& t = tally();
  std::lock_guard<std::mutex> lock(t.mutex);
  return t.of(device);
}

void reset_peak_memory(Device device) {
  MemoryTally& t = tally();
  std::lock_guard<std::mutex> lock(t.mutex);
  MemoryStats& s = t.of(device);
  s.peak = s.current;
}

}  // namespace ww

namespace ww::detail {

namespace {
#ifdef WW_HAVE_CUDA
void check_cuda(cudaError_t status, const char* what, size_t bytes = 0) {
  if (status == cudaSuccess) return;
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    throw OutOfMemoryError(detail::concat("out of GPU memory allocating ", format_bytes(double(bytes)),
                                          "; try a smaller batch, activation checkpointing or a lower "
                                          "precision"), bytes);
  }
  fail("CUDA error in ", what, ": ", cudaGetErrorString(status));
}
#endif

#ifndef WW_HAVE_CUDA
[[noreturn]] void no_cuda() {
  fail("this wattwise build has no CUDA backend (configure with -DWW_CUDA=ON on a machine with nvcc)");
}
#endif
}  // namespace

void* device_alloc(size_t bytes, Device device) {
  if (device.is_cpu()) {
    size_t rounded = (bytes + 255) / 256 * 256;  // matches Arena::kAlignment
    void* p = std::aligned_alloc(256, rounded == 0 ? 256 : rounded);
    if (!p)
      throw OutOfMemoryError(detail::concat("out of host memory allocating ", format_bytes(double(bytes)), " (",
                                            bytes, " bytes)"),
                             bytes);
    record_alloc(p, rounded, device);
    return p;
  }
#ifdef WW_HAVE_CUDA
  check_cuda(cudaSetDevice(device.index), "cudaSetDevice");
  void* p = nullptr;
  check_cuda(cudaMalloc(&p, bytes == 0 ? 256 : bytes), "cudaMalloc", bytes);
  record_alloc(p, bytes, device);
  return p;
#else
  no_cuda();
#endif
}

void device_free(void* ptr, Device device) {
  if (!ptr) return;
  record_free(ptr, device);
  if (device.is_cpu()) {
    std::free(ptr);
    return;
  }
#ifdef WW_HAVE_CUDA
  cudaFree(ptr);  // never throws from a destructor path
#endif
}

void device_copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memmove(dst, src, bytes);
    return;
  }
#ifdef WW_HAVE_CUDA
  // On the kernels' stream, so the copy follows the work that produced its source; then wait, so
  // the host may read (or reuse) its side at once.
  cudaStream_t stream = static_cast<cudaStream_t>(cuda_stream());
  check_cuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream), "cudaMemcpyAsync");
  check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize (after a copy)");
#else
  no_cuda();
#endif
}

void device_zero(void* ptr, size_t bytes, Device device) {
  if (bytes == 0) return;
  if (device.is_cpu()) {
    std::memset(ptr, 0, bytes);
    return;
  }
#ifdef WW_HAVE_CUDA
  // Ordered with the kernels on their stream: no host wait needed.
  check_cuda(cudaMemsetAsync(ptr, 0, bytes, static_cast<cudaStream_t>(cuda_stream())), "cudaMemsetAsync");
#else
  no_cuda();
#endif
}

void* cuda_stream() {
#ifdef WW_HAVE_CUDA
  static std::mutex mutex;
  static std::vector<cudaStream_t> streams;
  int device = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  std::lock_guard<std::mutex> lock(mutex);
  if (int(streams.size()) <= device) streams.resize(size_t(device) + 1, nullptr);
  if (!streams[size_t(device)])
    check_cuda(cudaStreamCreateWithFlags(&streams[size_t(device)], cudaStreamNonBlocking), "cudaStreamCreate");
  return streams[size_t(device)];
#else
  no_cuda();
#endif
}

}  // namespace ww::detail
