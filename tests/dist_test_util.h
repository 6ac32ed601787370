#pragma once
// Data-parallel tests in one process: each rank a thread with its own rendezvous and Gloo group on
// loopback.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <thread>
#include <vector>

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

// A port nobody listens on now.
inline int free_port() {
  int port = 0;
  ::close(bound_socket(INADDR_LOOPBACK, false, &port));
  return port;
}

inline dist::World world_of(int rank, int size, int port) {
  dist::World w;
  w.rank = rank, w.size = size, w.local_rank = rank, w.local_size = size;
  w.master_addr = "127.0.0.1";
  w.master_port = port;
  w.launcher = "test";
  return w;
}

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

}  // namespace ww::testing
