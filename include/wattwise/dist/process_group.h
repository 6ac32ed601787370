#pragma once
// Collectives between the ranks of a distributed job, from existing engines: Gloo over TCP on the
// CPU (CPU training and every test of the distributed path), NCCL on GPUs. wattwise writes no
// networking of its own beyond the rendezvous (store.h).
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "wattwise/core/device.h"
#include "wattwise/core/tensor.h"
#include "wattwise/dist/world.h"

namespace ww::dist {

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  int rank() const { return rank_; }
  int size() const { return size_; }
  virtual std::string backend() const = 0;  // "gloo" or "nccl"
  // Every rank's `values` (f32, on this group's device) summed, in place. The result is the same
  // bits on every rank (each element is reduced once and then copied), so replicas stay identical.
  virtual void all_reduce_sum(const Tensor& values) = 0;
  // The same for a few host numbers (losses, counts, flags).
  virtual void all_reduce_sum(std::vector<double>& values) = 0;
  // The same for `count` doubles in this group's device memory (a GPU group: on its GPU, queued on
  // wattwise's stream; a CPU group: host memory): a sharded optimizer step's sum of squares.
  virtual void all_reduce_sum_f64(double* values, size_t count) = 0;
  // Rank `root`'s `values` copied to every rank, in place.
  virtual void broadcast(const Tensor& values, int root) = 0;
  // `full` (f32, on this group's device) is laid out as consecutive parts, counts[r] elements for
  // rank r; each rank has written its own part, and afterwards every rank holds all of them.
  virtual void all_gather(const Tensor& full, const std::vector<int64_t>& counts) = 0;
  // The reverse (ZeRO 2's gradients): `full` (f32, on this group's device) laid out as all_gather's
  // parts; afterwards this rank's part holds the sum of every rank's values of it, in place. The
  // other parts are left unspecified (the buffer is the collective's workspace).
  virtual void reduce_scatter_sum(const Tensor& full, const std::vector<int64_t>& counts) = 0;
  // Host bytes from rank `root` to every rank, in place (all ranks pass the same size).
  virtual void broadcast_bytes(void* data, size_t bytes, int root) = 0;
  // Rank `root`'s text to every rank (the others' `text` is replaced; its size may differ).
  void broadcast_text(std::string& text, int root);
  virtual void barrier() = 0;
  // DDP's overlap: queues the sum of `values` (a part of the gradients backward has finished) and
  // returns while it runs beside the computation that follows (CPU: on the group's communication
  // thread; GPU: on its communication stream, after the work queued so far). `values` must be
  // neither read nor written until wait_overlapped(), which waits for every queued sum (GPU: makes
  // wattwise's stream wait for them; both steps can be recorded in a CUDA graph). The same result
  // as all_reduce_sum; only the time waited in wait_overlapped() counts as communication time.
  // The default runs the sum at once.
  virtual void all_reduce_sum_overlapped(const Tensor& values) { all_reduce_sum(values); }
  virtual void wait_overlapped() {}
  // For a training step recorded in a CUDA graph (GPU groups): whether all_reduce_sum_recorded is
  // available, which queues the all-reduce on wattwise's stream and returns without waiting (a
  // recording cannot wait), so it is captured with the kernels around it. Every rank must then
  // record and replay alike (NCCL's rule for captured collectives). wait() afterwards waits for
  // the stream under the group's timeout: a dead or hung peer is an error there, not a hang.
  virtual bool can_record() const { return false; }
  virtual void all_reduce_sum_recorded(const Tensor& values);
  virtual void wait(const char* /*what*/) {}
  // Seconds spent in collectives so far (host wall time, waits for slower ranks included).
  double communication_seconds() const { return communication_seconds_; }

 protected:
  int rank_ = 0, size_ = 1;
  double communication_seconds_ = 0;
};

struct JoinOptions {
  // How long a collective (or the rendezvous) may wait for the other ranks before this rank gives
  // up with an error naming what it waited for: a rank that died or hangs stops the job.
  std::chrono::milliseconds timeout = std::chrono::minutes(30);
  // What every rank must agree on (configuration, wattwise version): a rank whose fingerprint
  // differs from rank 0's makes every rank refuse to start, naming it.
  std::string fingerprint;
  // Called with a line to show while rank 0 waits for ranks that have not joined yet, or another
  // rank for rank 0 (every `report_every`): a wrong WORLD_SIZE, a wrong MASTER_ADDR or a rank that
  // never started is visible before the timeout.
  std::function<void(const std::string&)> waiting;
  std::chrono::milliseconds report_every = std::chrono::seconds(30);
};

// Joins the job `world` describes, with Gloo when `device` is the CPU and NCCL when it is a GPU.
std::unique_ptr<ProcessGroup> join(const World& world, Device device, const JoinOptions& options);

}  // namespace ww::dist
