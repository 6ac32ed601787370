#include "wattwise/dist/store.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>

#include "wattwise/core/error.h"

namespace ww::dist {
namespace {

// Messages: a one-byte operation, a 4-byte key length and the key, then for a set a 4-byte value
// length and the value. A set is answered with 'K'; a get, once the key exists, with the value's
// length and the value.
constexpr char kSet = 'S', kGet = 'G', kDone = 'K';
constexpr uint32_t kMaxField = 64u << 20;

std::string where(const std::string& host, int port) { return host + ":" + std::to_string(port); }

// Sends all of `data` or returns false.
bool send_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t sent = ::send(fd, p, n, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) return false;
    p += sent, n -= size_t(sent);
  }
  return true;
}

// Reads exactly n bytes: false on a closed connection, a timeout or an error (errno says which).
bool recv_all(int fd, void* data, size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t got = ::recv(fd, p, n, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got == 0) errno = ECONNRESET;
    if (got <= 0) return false;
    p += got, n -= size_t(got);
  }
  return true;
}

void append_field(std::string& out, const char* data, size_t n) {
  const uint32_t length = uint32_t(n);
  out.append(reinterpret_cast<const char*>(&length), 4);
  out.append(data, n);
}

// One client connection as the server reads it.
struct Peer {
  int fd = -1;
  std::string pending;  // bytes received, not yet a whole message
};

// The server's side of one message at the front of `pending`: consumed and answered, or left
// whole for more bytes. False when the peer sent garbage.
bool serve_message(Peer& peer, std::map<std::string, std::vector<char>>& values,
                   std::map<std::string, std::vector<int>>& waiting) {
  std::string& in = peer.pending;
  auto field_at = [&](size_t at, std::string& field) -> int {  // 1 ok, 0 incomplete, -1 bad
    if (in.size() < at + 4) return 0;
    uint32_t n;
    std::memcpy(&n, in.data() + at, 4);
    if (n > kMaxField) return -1;
    if (in.size() < at + 4 + n) return 0;
    field.assign(in.data() + at + 4, n);
    return 1;
  };
  while (!in.empty()) {
    const char op = in[0];
    if (op != kSet && op != kGet) return false;
    std::string key, value;
    int ok = field_at(1, key);
    if (ok <= 0) return ok == 0;
    size_t used = 1 + 4 + key.size();
    if (op == kSet) {
      ok = field_at(used, value);
      if (ok <= 0) return ok == 0;
      used += 4 + value.size();
      values[key].assign(value.begin(), value.end());
      const char done = kDone;
      if (!send_all(peer.fd, &done, 1)) return false;
      auto w = waiting.find(key);
      if (w != waiting.end()) {
        std::string reply;
        append_field(reply, value.data(), value.size());
        for (int fd : w->second) send_all(fd, reply.data(), reply.size());
        waiting.erase(w);
      }
    } else {
      auto v = values.find(key);
      if (v == values.end()) {
        waiting[key].push_back(peer.fd);
      } else {
        std::string reply;
        append_field(reply, v->second.data(), v->second.size());
        if (!send_all(peer.fd, reply.data(), reply.size())) return false;
      }
    }
    in.erase(0, used);
  }
  return true;
}

}  // namespace

int listen_for_rendezvous(int port, int* bound) {
  // Every interface, as torch's TCPStore: MASTER_ADDR names this machine as the others reach it.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("rendezvous: cannot open a socket (", std::strerror(errno), ")");
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(uint16_t(port));
  socklen_t length = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 512) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    const int error = errno;
    ::close(fd);
    if (error == EADDRINUSE && port != 0)
      fail("MASTER_PORT ", port, " is in use on this machine (another job?): choose a free one with MASTER_PORT");
    fail("rendezvous: cannot listen on port ", port, " (", std::strerror(error), ")");
  }
  *bound = ntohs(addr.sin_port);
  return fd;
}

TcpStore::TcpStore(const std::string& host, int port, bool serve, std::chrono::milliseconds timeout,
                   const std::function<void(double)>& waiting, std::chrono::milliseconds report_every, int listening)
    : host_(host), port_(port), timeout_(timeout) {
  if (serve) {
    if (listening >= 0) {
      // A copy of our own: the owner's socket outlives this store (a later join may serve on it).
      listen_fd_ = ::fcntl(listening, F_DUPFD_CLOEXEC, 0);
      if (listen_fd_ < 0)
        fail("rendezvous: cannot use the socket handed over for port ", port, " (descriptor ", listening, ": ",
             std::strerror(errno), ")");
    } else {
      int bound = 0;
      listen_fd_ = listen_for_rendezvous(port, &bound);
    }
    if (::pipe2(wake_fd_, O_CLOEXEC) != 0) {
      close_all();
      fail("rendezvous: cannot create a pipe (", std::strerror(errno), ")");
    }
    server_ = std::thread([this] { serve_loop(); });
  }

  // Connect, retrying until the deadline: rank 0 may not be listening yet.
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + timeout_;
  auto next_report = start + report_every;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  std::string last_error = "no address";
  for (;;) {
    addrinfo* found = nullptr;
    const int resolved = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
    if (resolved != 0) {
      last_error = std::string("cannot resolve the host (") + ::gai_strerror(resolved) + ")";
    } else {
      for (addrinfo* a = found; a && client_fd_ < 0; a = a->ai_next) {
        const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
          client_fd_ = fd;
        } else {
          last_error = std::strerror(errno);
          ::close(fd);
        }
      }
      ::freeaddrinfo(found);
    }
    if (client_fd_ >= 0) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      close_all();  // stops the server thread this constructor may have started
      fail("rendezvous: cannot reach rank 0 at ", where(host, port), " within ", timeout_.count() / 1000,
           " s (", last_error, "): is rank 0 running, and are MASTER_ADDR and MASTER_PORT the same for every rank?");
    }
    if (waiting && std::chrono::steady_clock::now() >= next_report) {
      waiting(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      next_report += report_every;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const int one = 1;
  ::setsockopt(client_fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{};
  tv.tv_sec = long(timeout_.count() / 1000);
  tv.tv_usec = long(timeout_.count() % 1000) * 1000;
  ::setsockopt(client_fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

TcpStore::~TcpStore() { close_all(); }

void TcpStore::close_all() {
  if (client_fd_ >= 0) ::close(client_fd_);
  client_fd_ = -1;
  if (server_.joinable()) {
    const char stop = 0;
    (void)!::write(wake_fd_[1], &stop, 1);
    server_.join();
  }
  for (int& fd : {std::ref(listen_fd_), std::ref(wake_fd_[0]), std::ref(wake_fd_[1])}) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
}

void TcpStore::set(const std::string& key, const std::vector<char>& value) {
  std::string message(1, kSet);
  append_field(message, key.data(), key.size());
  append_field(message, value.data(), value.size());
  char done = 0;
  if (!send_all(client_fd_, message.data(), message.size()) || !recv_all(client_fd_, &done, 1) || done != kDone)
    fail("rendezvous at ", where(host_, port_), ": setting '", key, "' failed (", std::strerror(errno),
         "): rank 0 has gone away");
}

std::vector<char> TcpStore::get(const std::string& key, const std::function<void(double)>& waiting,
                                std::chrono::milliseconds report_every) {
  std::string message(1, kGet);
  append_field(message, key.data(), key.size());
  if (!send_all(client_fd_, message.data(), message.size()))
    fail("rendezvous at ", where(host_, port_), ": asking for '", key, "' failed (", std::strerror(errno),
         "): rank 0 has gone away");
  // The answer comes when some rank sets the key: wait for it in slices, saying so between them.
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    const auto waited = std::chrono::steady_clock::now() - start;
    const auto left = timeout_ - std::chrono::duration_cast<std::chrono::milliseconds>(waited);
    if (left.count() <= 0)
      fail("rendezvous at ", where(host_, port_), ": no rank set '", key, "' within ", timeout_.count() / 1000,
           " s: a rank has not started or has failed (is WORLD_SIZE the number of processes started?)");
    pollfd fd{client_fd_, POLLIN, 0};
    const int ready = ::poll(&fd, 1, int(std::min(left, report_every).count()));
    if (ready != 0) break;  // an answer, a closed connection or an error: recv_all tells which
    if (waiting) waiting(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  uint32_t n = 0;
  if (!recv_all(client_fd_, &n, 4)) {
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      fail("rendezvous at ", where(host_, port_), ": no rank set '", key, "' within ", timeout_.count() / 1000,
           " s: a rank has not started or has failed (is WORLD_SIZE the number of processes started?)");
    fail("rendezvous at ", where(host_, port_), ": reading '", key, "' failed (", std::strerror(errno),
         "): rank 0 has gone away");
  }
  std::vector<char> value(n);
  if (n > kMaxField || !recv_all(client_fd_, value.data(), n))
    fail("rendezvous at ", where(host_, port_), ": reading '", key, "' failed (", std::strerror(errno), ")");
  return value;
}

void TcpStore::serve_loop() {
  std::map<std::string, std::vector<char>> values;
  std::map<std::string, std::vector<int>> waiting;
  std::vector<Peer> peers;
  for (;;) {
    std::vector<pollfd> fds = {{wake_fd_[0], POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    for (const Peer& p : peers) fds.push_back({p.fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents) break;  // the destructor asks us to stop
    if (fds[1].revents & POLLIN) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) {
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        peers.push_back({fd, {}});
      }
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      Peer& peer = peers[i - 2];
      char buffer[4096];
      const ssize_t got = ::recv(peer.fd, buffer, sizeof buffer, 0);
      bool keep = got > 0;
      if (keep) {
        peer.pending.append(buffer, size_t(got));
        keep = serve_message(peer, values, waiting);
      } else if (got < 0 && errno == EINTR) {
        keep = true;
      }
      if (!keep) {
        for (auto& [key, fds_waiting] : waiting) std::erase(fds_waiting, peer.fd);
        ::close(peer.fd);
        peer.fd = -1;
      }
    }
    std::erase_if(peers, [](const Peer& p) { return p.fd < 0; });
  }
  for (const Peer& p : peers) ::close(p.fd);
}

}  // namespace ww::dist
