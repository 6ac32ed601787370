#pragma once
// The rendezvous of a distributed job: a small key-value store that rank 0 serves on
// MASTER_ADDR:MASTER_PORT and every rank uses as a client (what torch.distributed's TCPStore does).
// The collective libraries need it once, to exchange their own addresses (Gloo's full mesh, NCCL's
// unique id); wattwise also uses it to check that every rank runs the same configuration. All data
// moves through Gloo or NCCL, never through the store.
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace ww::dist {

// A socket listening on `port` of every interface, as rank 0's store listens (a port in use is an
// error naming it); port 0 takes one the kernel picks, and *bound says which. For a port chosen
// before the ranks start (`wattwise launch`, tests): a port found free, closed and bound again
// later can be taken in between by another process, while this socket holds it until rank 0's
// store serves on it (World::rendezvous_fd).
int listen_for_rendezvous(int port, int* bound);

class TcpStore {
 public:
  // Rank 0 (`serve`) listens on `host`:`port` first (a port in use is an error naming it), or, when
  // `listening` is a socket, on that one (a copy: the caller keeps its own), which must already
  // listen on `port`; then every rank connects, retrying until `timeout` (rank 0 may start last);
  // meanwhile `waiting` (if given) is called every `report_every` with the seconds so far.
  TcpStore(const std::string& host, int port, bool serve, std::chrono::milliseconds timeout,
           const std::function<void(double)>& waiting = {},
           std::chrono::milliseconds report_every = std::chrono::seconds(30), int listening = -1);
  ~TcpStore();
  TcpStore(const TcpStore&) = delete;
  TcpStore& operator=(const TcpStore&) = delete;

  void set(const std::string& key, const std::vector<char>& value);
  // Waits until the key is set (by any rank), at most the timeout; then an error naming the key.
  // While it waits, `waiting` (if given) is called every `report_every` with the seconds so far.
  std::vector<char> get(const std::string& key, const std::function<void(double)>& waiting = {},
                        std::chrono::milliseconds report_every = std::chrono::seconds(30));
  std::chrono::milliseconds timeout() const { return timeout_; }

 private:
  void serve_loop();
  void close_all();
  int listen_fd_ = -1, wake_fd_[2] = {-1, -1}, client_fd_ = -1;
  std::string host_;
  int port_ = 0;
  std::chrono::milliseconds timeout_;
  std::thread server_;
};

}  // namespace ww::dist
