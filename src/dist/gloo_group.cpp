// The CPU process group: Gloo's TCP transport, its ring all-reduce and broadcast.
#include <gloo/allgatherv.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/common/error.h>
#include <gloo/math.h>
#include <gloo/reduce_scatter.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/transport/tcp/device.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <utility>
#include <mutex>
#include <thread>
#include <cstring>
#include <limits>

#include "dist_internal.h"
#include "wattwise/core/error.h"

namespace ww::dist {
namespace {

// Gloo's rendezvous interface over our TCP store.
class GlooStore : public gloo::rendezvous::Store {
 public:
  explicit GlooStore(TcpStore& store) : store_(store) {}
  void set(const std::string& key, const std::vector<char>& data) override { store_.set(key, data); }
  std::vector<char> get(const std::string& key) override { return store_.get(key); }
  void wait(const std::vector<std::string>& keys) override {
    for (const std::string& key : keys) store_.get(key);
  }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds&) override { wait(keys); }

 private:
  TcpStore& store_;
};

class GlooGroup : public ProcessGroup {
 public:
  GlooGroup(const World& world, std::unique_ptr<TcpStore> store, std::chrono::milliseconds timeout)
      : store_(std::move(store)), timeout_(timeout) {
    rank_ = world.rank;
    size_ = world.size;
    gloo::transport::tcp::attr attr;
    // GLOO_SOCKET_IFNAME picks the interface, as in PyTorch; else the address rank 0 is reached
    // by decides: loopback for one machine, this host's name for several.
    if (const char* iface = std::getenv("GLOO_SOCKET_IFNAME")) attr.iface = iface;
    else attr.hostname = is_loopback(world.master_addr) ? "127.0.0.1" : host_name();
    try {
      device_ = gloo::transport::tcp::CreateDevice(attr);
      context_ = std::make_shared<gloo::rendezvous::Context>(rank_, size_);
      context_->setTimeout(timeout_);
      GlooStore gloo_store(*store_);
      gloo::rendezvous::PrefixStore prefixed("gloo", gloo_store);
      context_->connectFullMesh(prefixed, device_);
    } catch (const std::exception& e) {
      fail("rank ", rank_, ": cannot connect to the other ranks over Gloo (", first_line(e.what()), ")");
    }
  }

  std::string backend() const override { return "gloo"; }

  ~GlooGroup() override {
    if (!comm_thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    queued_cv_.notify_all();
    comm_thread_.join();
  }

  void all_reduce_sum(const Tensor& values) override {
    check_all_reduce(values);
    if (values.numel() > 0) run("all-reduce", [&] { all_reduce_now(values); });
  }

  void all_reduce_sum_overlapped(const Tensor& values) override {
    check_all_reduce(values);
    if (values.numel() == 0) return;
    if (!comm_thread_.joinable()) comm_thread_ = std::thread([this] { communicate(); });
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(values);
      ++pending_;
    }
    queued_cv_.notify_all();
  }

  void wait_overlapped() override {
    const auto start = std::chrono::steady_clock::now();
    std::unique_lock<std::mutex> lock(mutex_);
    done_cv_.wait(lock, [&] { return pending_ == 0; });
    communication_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  }

  void all_reduce_sum(std::vector<double>& values) override { all_reduce_sum_f64(values.data(), values.size()); }

  void all_reduce_sum_f64(double* values, size_t count) override {
    if (count == 0) return;
    run("all-reduce", [&] {
      gloo::AllreduceOptions opts(context_);
      opts.setOutput(values, count);
      opts.setReduceFunction(static_cast<void (*)(void*, const void*, const void*, size_t)>(&gloo::sum<double>));
      opts.setTimeout(timeout_);
      gloo::allreduce(opts);
    });
  }

  void broadcast(const Tensor& values, int root) override {
    if (!values.device().is_cpu()) fail("gloo broadcast: expected values on the CPU, got ", values.describe());
    broadcast_bytes(values.raw(), values.nbytes(), root);
  }

  void all_gather(const Tensor& full, const std::vector<int64_t>& counts) override {
    if (!full.device().is_cpu() || full.dtype() != DType::F32)
      fail("gloo all-gather: expected f32 values on the CPU, got ", full.describe());
    const std::vector<size_t> elements = checked_parts(full, counts, size_);
    size_t offset = 0;
    for (int r = 0; r < rank_; ++r) offset += elements[r];
    // Gloo reads this rank's part from its own buffer: a copy, not an alias of the output.
    std::vector<float> mine(full.data<float>() + offset, full.data<float>() + offset + elements[rank_]);
    run("all-gather", [&] {
      gloo::AllgathervOptions opts(context_);
      opts.setInput(mine.data(), mine.size());
      opts.setOutput(full.data<float>(), elements);
      opts.setTimeout(timeout_);
      gloo::allgatherv(opts);
    });
  }

  // Gloo's halving-doubling reduce-scatter, which leaves this rank's sums at the start of the
  // buffer: copied to the rank's part afterwards. Built once per shape (it registers its buffer
  // with every peer and sizes its receive space), then rerun. Building one takes the next of the
  // context's communication slots, so every rank must rebuild at the same calls: the decision
  // rests on the shape alone (the same on every rank), never on the caller's buffer address (a
  // rank's temporaries may land at a reused address where another rank's do not: their slots
  // then part and both wait forever). The values pass through a buffer the group owns.
  void reduce_scatter_sum(const Tensor& full, const std::vector<int64_t>& counts) override {
    if (!full.device().is_cpu() || full.dtype() != DType::F32)
      fail("gloo reduce-scatter: expected f32 values on the CPU, got ", full.describe());
    const std::vector<size_t> elements = checked_parts(full, counts, size_);
    if (full.numel() == 0 || size_ == 1) return;
    if (full.numel() > std::numeric_limits<int>::max())
      fail("gloo reduce-scatter of ", full.numel(), " elements: Gloo counts them in an int");
    // Gloo's algorithm waits forever for a rank whose part is empty (fewer elements than ranks):
    // the whole sum on every rank is the same result there.
    if (std::find(elements.begin(), elements.end(), size_t(0)) != elements.end()) return all_reduce_sum(full);
    std::vector<int> receive(elements.begin(), elements.end());
    float* data = full.data<float>();
    if (!reduce_scatter_ || reduce_scatter_counts_ != receive) {
      reduce_scatter_.reset();
      reduce_scatter_buffer_.assign(size_t(full.numel()), 0.0f);
      run("reduce-scatter setup", [&] {
        reduce_scatter_ = std::make_unique<gloo::ReduceScatterHalvingDoubling<float>>(
            context_, std::vector<float*>{reduce_scatter_buffer_.data()}, int(full.numel()), receive);
      });
      reduce_scatter_counts_ = receive;
    }
    std::memcpy(reduce_scatter_buffer_.data(), data, size_t(full.numel()) * sizeof(float));
    run("reduce-scatter", [&] { reduce_scatter_->run(); });
    size_t offset = 0;
    for (int r = 0; r < rank_; ++r) offset += elements[r];
    std::memcpy(data + offset, reduce_scatter_buffer_.data(), elements[rank_] * sizeof(float));
  }

  void broadcast_bytes(void* data, size_t bytes, int root) override {
    if (bytes == 0) return;
    run("broadcast", [&] {
      gloo::BroadcastOptions opts(context_);
      opts.setOutput(static_cast<uint8_t*>(data), bytes);
      opts.setRoot(root);
      opts.setTimeout(timeout_);
      gloo::broadcast(opts);
    });
  }

  void barrier() override {
    run("barrier", [&] {
      gloo::BarrierOptions opts(context_);
      opts.setTimeout(timeout_);
      gloo::barrier(opts);
    });
  }

 private:
  static void check_all_reduce(const Tensor& values) {
    if (!values.device().is_cpu() || values.dtype() != DType::F32)
      fail("gloo all-reduce: expected f32 values on the CPU, got ", values.describe());
  }

  void all_reduce_now(const Tensor& values) {
    gloo::AllreduceOptions opts(context_);
    opts.setOutput(values.data<float>(), size_t(values.numel()));
    opts.setReduceFunction(static_cast<void (*)(void*, const void*, const void*, size_t)>(&gloo::sum<float>));
    opts.setTimeout(timeout_);
    gloo::allreduce(opts);
  }

  // The communication thread: the overlapped sums, one at a time, in the order queued (the same on
  // every rank). After a failure the rest are dropped: wait_overlapped() reports the first error.
  void communicate() {
    for (;;) {
      Tensor values;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        queued_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;  // the group is going away: what is left is dropped
        values = queue_.front();
        queue_.pop_front();
      }
      std::exception_ptr error;
      if (!failed_) {
        try {
          run("all-reduce", [&] { all_reduce_now(values); }, /*counted=*/false);
        } catch (...) {
          error = std::current_exception();
        }
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (error && !error_) error_ = error;
        if (error) failed_ = true;
        --pending_;
      }
      done_cv_.notify_all();
    }
  }

  template <typename F>
  void run(const char* what, F&& collective, bool counted = true) {
    const auto start = std::chrono::steady_clock::now();
    try {
      collective();
    } catch (const gloo::Exception& e) {
      const std::string message = first_line(e.what());
      if (message.find("imed out") != std::string::npos)  // Gloo says "Timed out" for a peer that hangs
        fail("rank ", rank_, ": ", what, " timed out after ", timeout_.count() / 1000,
             " s waiting for another rank (one has hung or died; run.dist_timeout_s sets the wait)");
      fail("rank ", rank_, ": ", what, " failed: another rank stopped or cannot be reached (", message, ")");
    }
    if (counted)
      communication_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  std::unique_ptr<TcpStore> store_;
  std::chrono::milliseconds timeout_;
  std::shared_ptr<gloo::transport::Device> device_;
  std::shared_ptr<gloo::rendezvous::Context> context_;
  std::unique_ptr<gloo::ReduceScatterHalvingDoubling<float>> reduce_scatter_;
  std::vector<float> reduce_scatter_buffer_;  // the algorithm's buffer (its address registered with the peers)
  std::vector<int> reduce_scatter_counts_;     // the shape it was built for
  // The overlapped sums' queue and thread (started by the first one).
  std::thread comm_thread_;
  std::mutex mutex_;
  std::condition_variable queued_cv_, done_cv_;
  std::deque<Tensor> queue_;
  size_t pending_ = 0;
  bool stopping_ = false, failed_ = false;
  std::exception_ptr error_;
};

}  // namespace

std::unique_ptr<ProcessGroup> make_gloo_group(const World& world, std::unique_ptr<TcpStore> store,
                                              std::chrono::milliseconds timeout) {
  return std::make_unique<GlooGroup>(world, std::move(store), timeout);
}

}  // namespace ww::dist
