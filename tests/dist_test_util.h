#pragma once
// Data-parallel tests in one process: each rank a thread with its own rendezvous and Gloo group on
// loopback.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "wattwise/core/tensor.h"
#include "wattwise/dist/process_group.h"
#include "wattwise/dist/store.h"
#include "wattwise/dist/world.h"

namespace ww::testing {

// A socket bound to a port the kernel picks on `address` (listening when asked); sets *port.
inline int bound_socket(in_addr_t address, bool listening, int* port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(address);
  socklen_t length = sizeof addr;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  if (listening) {
    EXPECT_EQ(::listen(fd, 1), 0);
  }
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length), 0);
  *port = ntohs(addr.sin_port);
  return fd;
}

inline dist::World world_of(int rank, int size, int port) {
  dist::World w;
  w.rank = rank, w.size = size, w.local_rank = rank, w.local_size = size;
  w.master_addr = "127.0.0.1";
  w.master_port = port;
  w.launcher = "test";
  return w;
}

// One job's rendezvous port, listening from before any rank starts until the test ends, and
// handed to rank 0's store: a port found free and closed could be taken by another process (a
// parallel test) before rank 0 binds it, and a rank could then meet a stranger's store.
class Rendezvous {
 public:
  Rendezvous() : fd_(dist::listen_for_rendezvous(0, &port_)) {}
  ~Rendezvous() { ::close(fd_); }
  Rendezvous(const Rendezvous&) = delete;
  Rendezvous& operator=(const Rendezvous&) = delete;
  int port() const { return port_; }
  dist::World world(int rank, int size) const {
    dist::World w = world_of(rank, size, port_);
    w.rendezvous_fd = fd_;  // rank 0's store serves on it; the others only connect
    return w;
  }

 private:
  int port_ = 0;
  int fd_;
};

// Runs body(rank) on `size` threads; returns each rank's error message ("" when none).
inline std::vector<std::string> run_ranks(int size, const std::function<void(int)>& body) {
  std::vector<std::string> errors(size);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < size; ++rank)
    threads.emplace_back([&, rank] {
      try {
        body(rank);
      } catch (const std::exception& e) {
        errors[rank] = e.what();
      }
    });
  for (std::thread& t : threads) t.join();
  return errors;
}

// A process group over GPU tensors for thread ranks sharing one GPU (NCCL refuses two ranks on one
// device): every collective copies to the host, runs Gloo's, and copies back.
class HostBridgeGroup : public dist::ProcessGroup {
 public:
  HostBridgeGroup(std::unique_ptr<dist::ProcessGroup> host, Device device) : host_(std::move(host)), device_(device) {
    rank_ = host_->rank();
    size_ = host_->size();
  }
  std::string backend() const override { return "gloo (host copies)"; }
  void all_reduce_sum(const Tensor& values) override {
    bridge(values, [&](const Tensor& h) { host_->all_reduce_sum(h); });
  }
  void all_reduce_sum(std::vector<double>& values) override { host_->all_reduce_sum(values); }
  void all_reduce_sum_f64(double* values, size_t count) override {
    const Tensor on_device = Tensor::view(values, {int64_t(count)}, DType::I64, device_);  // 8-byte elements
    const Tensor h = on_device.to(Device::cpu());
    host_->all_reduce_sum_f64(static_cast<double*>(h.raw()), count);
    on_device.copy_from(h);
  }
  void broadcast(const Tensor& values, int root) override {
    bridge(values, [&](const Tensor& h) { host_->broadcast(h, root); });
  }
  void all_gather(const Tensor& full, const std::vector<int64_t>& counts) override {
    bridge(full, [&](const Tensor& h) { host_->all_gather(h, counts); });
  }
  void reduce_scatter_sum(const Tensor& full, const std::vector<int64_t>& counts) override {
    bridge(full, [&](const Tensor& h) { host_->reduce_scatter_sum(h, counts); });
  }
  void broadcast_bytes(void* data, size_t bytes, int root) override { host_->broadcast_bytes(data, bytes, root); }
  void barrier() override { host_->barrier(); }

 private:
  template <typename F>
  void bridge(const Tensor& values, F&& collective) {
    const Tensor h = values.to(Device::cpu());
    collective(h);
    values.copy_from(h);
  }
  std::unique_ptr<dist::ProcessGroup> host_;
  Device device_;
};

}  // namespace ww::testing
