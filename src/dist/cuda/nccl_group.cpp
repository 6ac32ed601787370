// The GPU process group: NCCL on wattwise's stream, so collectives queue behind the backward pass
// that produced the gradients without a host wait. NCCL's unique id travels through the rendezvous.
// libnccl.so.2 is opened when a GPU job starts (as NVML is), so wattwise runs where NCCL is not
// installed until someone trains on several GPUs; nccl.h gives the types only.
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <type_traits>
#include <thread>

#include "../../kernels/cuda/common.h"
#include "../dist_internal.h"
#include "wattwise/core/error.h"

namespace ww::dist {
namespace {

// The NCCL functions wattwise calls, from libnccl.so.2.
struct NcclApi {
  decltype(&::ncclGetUniqueId) ncclGetUniqueId;
  decltype(&::ncclCommInitRankConfig) ncclCommInitRankConfig;
  decltype(&::ncclCommDestroy) ncclCommDestroy;
  decltype(&::ncclCommAbort) ncclCommAbort;
  decltype(&::ncclCommGetAsyncError) ncclCommGetAsyncError;
  decltype(&::ncclGetErrorString) ncclGetErrorString;
  decltype(&::ncclGetLastError) ncclGetLastError;
  decltype(&::ncclAllReduce) ncclAllReduce;
  decltype(&::ncclBroadcast) ncclBroadcast;
  decltype(&::ncclReduce) ncclReduce;
  decltype(&::ncclGroupStart) ncclGroupStart;
  decltype(&::ncclGroupEnd) ncclGroupEnd;
};

const NcclApi& nccl() {
  static const NcclApi api = [] {
    void* library = ::dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!library)
      fail("distributed training on GPUs needs NCCL, and libnccl.so.2 cannot be opened (", ::dlerror(),
           "): install NCCL (it comes with the CUDA toolkit, or pip install nvidia-nccl-cu13) or put its folder "
           "on LD_LIBRARY_PATH");
    auto load = [&](auto& function, const char* name) {
      function = reinterpret_cast<std::remove_reference_t<decltype(function)>>(::dlsym(library, name));
      if (!function) fail("libnccl.so.2 has no ", name, " (NCCL 2.18 or newer is needed)");
    };
    NcclApi a{};
    load(a.ncclGetUniqueId, "ncclGetUniqueId");
    load(a.ncclCommInitRankConfig, "ncclCommInitRankConfig");
    load(a.ncclCommDestroy, "ncclCommDestroy");
    load(a.ncclCommAbort, "ncclCommAbort");
    load(a.ncclCommGetAsyncError, "ncclCommGetAsyncError");
    load(a.ncclGetErrorString, "ncclGetErrorString");
    load(a.ncclGetLastError, "ncclGetLastError");
    load(a.ncclAllReduce, "ncclAllReduce");
    load(a.ncclBroadcast, "ncclBroadcast");
    load(a.ncclReduce, "ncclReduce");
    load(a.ncclGroupStart, "ncclGroupStart");
    load(a.ncclGroupEnd, "ncclGroupEnd");
    return a;
  }();
  return api;
}

class NcclGroup : public ProcessGroup {
 public:
  NcclGroup(const World& world, Device device, std::unique_ptr<TcpStore> store, std::chrono::milliseconds timeout)
      : store_(std::move(store)), device_(device), timeout_(timeout) {
    rank_ = world.rank;
    size_ = world.size;
    kernels::cuda::check(cudaSetDevice(device.index), "cudaSetDevice");
    ncclUniqueId id{};
    if (rank_ == 0) {
      check(nccl().ncclGetUniqueId(&id), "ncclGetUniqueId");
      store_->set("nccl/id", std::vector<char>(id.internal, id.internal + sizeof id.internal));
    } else {
      const std::vector<char> bytes = store_->get("nccl/id");
      if (bytes.size() != sizeof id.internal) fail("rank ", rank_, ": the NCCL id from rank 0 has the wrong size");
      std::copy(bytes.begin(), bytes.end(), id.internal);
    }
    // Non-blocking initialisation, polled against the timeout: a missing rank is an error, not a hang.
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    check(nccl().ncclCommInitRankConfig(&comm_, size_, id, rank_, &config), "ncclCommInitRankConfig");
    wait_for_comm("initialisation");
    kernels::cuda::check(cudaMalloc(&scratch_, kScratchDoubles * sizeof(double)), "cudaMalloc (NCCL scratch)");
    kernels::cuda::check(cudaStreamCreateWithFlags(&comm_stream_, cudaStreamNonBlocking), "cudaStreamCreate (NCCL)");
    kernels::cuda::check(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming), "cudaEventCreate");
    kernels::cuda::check(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming), "cudaEventCreate");
  }

  ~NcclGroup() override {
    if (comm_) nccl().ncclCommDestroy(comm_);
    if (scratch_) cudaFree(scratch_);
    if (ready_) cudaEventDestroy(ready_);
    if (done_) cudaEventDestroy(done_);
    if (comm_stream_) cudaStreamDestroy(comm_stream_);
  }

  std::string backend() const override { return "nccl"; }

  void all_reduce_sum(const Tensor& values) override {
    if (!sum_values(values)) return;
    timed([&] {
      queue_all_reduce(values, kernels::cuda::stream());
      wait_for_stream("all-reduce");
    });
  }

  // On the communication stream, after the work queued so far on wattwise's stream (an event
  // between them, so a CUDA-graph recording takes both streams in).
  void all_reduce_sum_overlapped(const Tensor& values) override {
    if (!sum_values(values)) return;
    kernels::cuda::check(cudaEventRecord(ready_, kernels::cuda::stream()), "cudaEventRecord");
    kernels::cuda::check(cudaStreamWaitEvent(comm_stream_, ready_, 0), "cudaStreamWaitEvent");
    queue_all_reduce(values, comm_stream_);
    overlapped_ = true;
  }

  void wait_overlapped() override {
    if (!overlapped_) return;
    kernels::cuda::check(cudaEventRecord(done_, comm_stream_), "cudaEventRecord");
    kernels::cuda::check(cudaStreamWaitEvent(kernels::cuda::stream(), done_, 0), "cudaStreamWaitEvent");
    overlapped_ = false;
  }

  bool can_record() const override { return true; }

  // Host-side waits only: the stream is not touched while recording.
  void all_reduce_sum_recorded(const Tensor& values) override {
    if (sum_values(values)) timed([&] { queue_all_reduce(values, kernels::cuda::stream()); });
  }

  void wait(const char* what) override { timed([&] { wait_for_stream(what); }); }

  void all_reduce_sum(std::vector<double>& values) override {
    if (values.empty()) return;
    timed([&] {
      cudaStream_t stream = kernels::cuda::stream();
      for (size_t first = 0; first < values.size(); first += kScratchDoubles) {  // through the scratch in pieces
        const size_t count = std::min(kScratchDoubles, values.size() - first), bytes = count * sizeof(double);
        kernels::cuda::check(cudaMemcpyAsync(scratch_, values.data() + first, bytes, cudaMemcpyHostToDevice, stream),
                             "cudaMemcpyAsync");
        check(nccl().ncclAllReduce(scratch_, scratch_, count, ncclFloat64, ncclSum, comm_, stream), "ncclAllReduce");
        kernels::cuda::check(cudaMemcpyAsync(values.data() + first, scratch_, bytes, cudaMemcpyDeviceToHost, stream),
                             "cudaMemcpyAsync");
        wait_for_stream("all-reduce");
      }
    });
  }

  void all_reduce_sum_f64(double* values, size_t count) override {
    if (count == 0) return;
    timed([&] {
      check(nccl().ncclAllReduce(values, values, count, ncclFloat64, ncclSum, comm_, kernels::cuda::stream()),
            "ncclAllReduce");
      wait_for_comm("all-reduce");
    });
  }

  void broadcast(const Tensor& values, int root) override {
    if (values.device() != device_) fail("nccl broadcast: expected values on ", device_.str(), ", got ", values.describe());
    if (values.numel() == 0) return;
    timed([&] {
      check(nccl().ncclBroadcast(values.raw(), values.raw(), values.nbytes(), ncclUint8, root, comm_, kernels::cuda::stream()),
            "ncclBroadcast");
      wait_for_comm("broadcast");
    });
  }

  // NCCL's all-gather wants equal parts: one broadcast per rank instead, issued as a group.
  void all_gather(const Tensor& full, const std::vector<int64_t>& counts) override {
    per_part("all-gather", full, counts, [&](float* part, size_t n, int owner) {
      check(nccl().ncclBroadcast(part, part, n, ncclFloat32, owner, comm_, kernels::cuda::stream()), "ncclBroadcast");
    });
  }

  // Likewise ncclReduceScatter wants equal parts: one in-place reduce to each part's rank, grouped.
  void reduce_scatter_sum(const Tensor& full, const std::vector<int64_t>& counts) override {
    per_part("reduce-scatter", full, counts, [&](float* part, size_t n, int owner) {
      check(nccl().ncclReduce(part, part, n, ncclFloat32, ncclSum, owner, comm_, kernels::cuda::stream()), "ncclReduce");
    });
  }

  void broadcast_bytes(void* data, size_t bytes, int root) override {
    if (bytes == 0) return;
    timed([&] {
      cudaStream_t stream = kernels::cuda::stream();
      void* device_copy = nullptr;
      kernels::cuda::check(cudaMallocAsync(&device_copy, bytes, stream), "cudaMallocAsync (NCCL broadcast)");
      kernels::cuda::check(cudaMemcpyAsync(device_copy, data, bytes, cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync");
      check(nccl().ncclBroadcast(device_copy, device_copy, bytes, ncclUint8, root, comm_, stream), "ncclBroadcast");
      kernels::cuda::check(cudaMemcpyAsync(data, device_copy, bytes, cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync");
      kernels::cuda::check(cudaFreeAsync(device_copy, stream), "cudaFreeAsync");
      wait_for_stream("broadcast");
    });
  }

  void barrier() override {
    std::vector<double> one = {1.0};
    all_reduce_sum(one);
  }

 private:
  static constexpr size_t kScratchDoubles = 64;

  // Whether `values` (f32 on this GPU, else an error) has anything to sum.
  bool sum_values(const Tensor& values) const {
    if (values.device() != device_ || values.dtype() != DType::F32)
      fail("nccl all-reduce: expected f32 values on ", device_.str(), ", got ", values.describe());
    return values.numel() > 0;
  }

  // The in-place sum of `values` queued on `stream`, without waiting for it to run.
  void queue_all_reduce(const Tensor& values, cudaStream_t stream) {
    check(nccl().ncclAllReduce(values.raw(), values.raw(), size_t(values.numel()), ncclFloat32, ncclSum, comm_, stream),
          "ncclAllReduce");
    wait_for_enqueue("all-reduce");
  }

  // One NCCL call per rank's part of `full` (call(part, elements, owner)), issued as one group.
  template <typename PerPart>
  void per_part(const char* what, const Tensor& full, const std::vector<int64_t>& counts, PerPart&& call) {
    if (full.device() != device_ || full.dtype() != DType::F32)
      fail("nccl ", what, ": expected f32 values on ", device_.str(), ", got ", full.describe());
    const std::vector<size_t> elements = checked_parts(full, counts, size_);
    timed([&] {
      float* base = static_cast<float*>(full.raw());
      check(nccl().ncclGroupStart(), "ncclGroupStart");
      size_t offset = 0;
      for (int r = 0; r < size_; ++r) {
        if (elements[r] > 0) call(base + offset, elements[r], r);
        offset += elements[r];
      }
      check(nccl().ncclGroupEnd(), "ncclGroupEnd");
      wait_for_comm(what);
    });
  }

  void check(ncclResult_t result, const char* what) {
    if (result == ncclSuccess || result == ncclInProgress) return;
    const char* last = comm_ ? nccl().ncclGetLastError(comm_) : nullptr;
    fail("rank ", rank_, ": ", what, " failed: ", nccl().ncclGetErrorString(result), last && *last ? std::string(" (") + last + ")" : "");
  }

  // Polls the communicator until it is idle or reports an error, at most the timeout; on timeout
  // the communicator is aborted so this rank exits instead of hanging behind a dead peer.
  void wait_for_comm(const char* what) {
    wait_for_enqueue(what);
    wait_for_stream(what);
  }

  // A non-blocking communicator may still be queuing the operation when the call returns.
  void wait_for_enqueue(const char* what) {
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    for (;;) {
      ncclResult_t state = ncclSuccess;
      nccl().ncclCommGetAsyncError(comm_, &state);
      if (state == ncclSuccess) return;
      if (state != ncclInProgress) check(state, what);
      if (std::chrono::steady_clock::now() > deadline) abort_after(what);
      std::this_thread::yield();
    }
  }

  void wait_for_stream(const char* what) {
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    cudaStream_t stream = kernels::cuda::stream();
    for (;;) {
      const cudaError_t done = cudaStreamQuery(stream);
      if (done == cudaSuccess) return;
      if (done != cudaErrorNotReady) kernels::cuda::check(done, what);
      ncclResult_t state = ncclSuccess;
      nccl().ncclCommGetAsyncError(comm_, &state);
      if (state != ncclSuccess && state != ncclInProgress) check(state, what);
      if (std::chrono::steady_clock::now() > deadline) abort_after(what);
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }

  [[noreturn]] void abort_after(const char* what) {
    nccl().ncclCommAbort(comm_);
    comm_ = nullptr;
    fail("rank ", rank_, ": NCCL ", what, " timed out after ", timeout_.count() / 1000,
         " s waiting for another rank (one has hung or died; run.dist_timeout_s sets the wait)");
  }

  template <typename F>
  void timed(F&& collective) {
    const auto start = std::chrono::steady_clock::now();
    collective();
    communication_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  std::unique_ptr<TcpStore> store_;
  Device device_;
  std::chrono::milliseconds timeout_;
  ncclComm_t comm_ = nullptr;
  double* scratch_ = nullptr;
  cudaStream_t comm_stream_ = nullptr;  // the overlapped sums
  cudaEvent_t ready_ = nullptr, done_ = nullptr;
  bool overlapped_ = false;
};

}  // namespace

std::unique_ptr<ProcessGroup> make_nccl_group(const World& world, Device device, std::unique_ptr<TcpStore> store,
                                              std::chrono::milliseconds timeout) {
  return std::make_unique<NcclGroup>(world, device, std::move(store), timeout);
}

}  // namespace ww::dist
