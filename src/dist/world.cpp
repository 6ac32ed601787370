#include "wattwise/dist/world.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <string_view>

#include "wattwise/core/error.h"

namespace ww::dist {
namespace {

// A whole number in [min, max] from variable `name`, or the error naming it.
int parse_int(const char* name, const char* text, long min, long max) {
  std::string_view s(text);
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text, &end, 10);
  if (s.empty() || end != text + s.size() || errno == ERANGE)
    fail("environment variable ", name, "='", s, "' is not a whole number");
  if (value < min || value > max) fail("environment variable ", name, "=", value, " is out of range [", min, ", ", max, "]");
  return int(value);
}

// Whether descriptor `fd` is a socket listening on `port`.
bool listens_on(int fd, int port) {
  sockaddr_in addr{};
  socklen_t length = sizeof addr;
  int listening = 0;
  socklen_t size = sizeof listening;
  return ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) == 0 && addr.sin_family == AF_INET &&
         ntohs(addr.sin_port) == port && ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) == 0 &&
         listening != 0;
}

struct Names {
  const char* launcher;
  const char *size, *rank, *local_rank, *local_size;
};
// In the order they are looked for: an explicit torchrun-style world wins over the launcher's.
constexpr Names kLaunchers[] = {
    {"torchrun", "WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"},
    {"mpirun", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"},
    // srun's step variables, not SLURM_NTASKS: a batch script outside srun has that too, and is one
    // process.
    {"srun", "SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_STEP_TASKS_PER_NODE"},
};
constexpr long kMaxWorld = 65536;

}  // namespace

std::string World::describe() const {
  return "rank " + std::to_string(rank) + " of " + std::to_string(size) + " (local " + std::to_string(local_rank) +
         " of " + std::to_string(local_size) + "), rendezvous " + master_addr + ":" + std::to_string(master_port);
}

World world_from(const std::function<const char*(const char*)>& lookup) {
  World world;
  for (const Names& n : kLaunchers) {
    const char* size = lookup(n.size);
    if (!size) continue;
    world.launcher = n.launcher;
    world.size = parse_int(n.size, size, 1, kMaxWorld);
    const char* rank = lookup(n.rank);
    if (!rank) fail("environment variable ", n.size, " is set but ", n.rank, " is not (every process needs its rank)");
    world.rank = parse_int(n.rank, rank, 0, kMaxWorld);
    if (world.rank >= world.size)
      fail("environment variable ", n.rank, "=", world.rank, " is not below ", n.size, "=", world.size);
    const char* local_rank = lookup(n.local_rank);
    world.local_rank = local_rank ? parse_int(n.local_rank, local_rank, 0, kMaxWorld) : world.rank;
    // Slurm writes its tasks per node as "4", "4(x2)" or "2,1": the count before any parenthesis.
    const char* local_size = lookup(n.local_size);
    if (local_size) {
      std::string text(local_size);
      if (std::string_view(n.launcher) == "srun") text = text.substr(0, text.find_first_of("(,"));
      world.local_size = parse_int(n.local_size, text.c_str(), 1, kMaxWorld);
    } else {
      world.local_size = local_rank ? world.local_rank + 1 : world.size;
    }
    if (world.local_rank >= world.local_size)
      fail("environment variable ", n.local_rank, "=", world.local_rank, " is not below the processes on this machine (",
           world.local_size, ")");
    break;
  }
  if (const char* addr = lookup("MASTER_ADDR")) {
    if (!*addr) fail("environment variable MASTER_ADDR is empty (the host of rank 0, e.g. 127.0.0.1)");
    world.master_addr = addr;
  }
  if (const char* port = lookup("MASTER_PORT")) world.master_port = parse_int("MASTER_PORT", port, 1, 65535);
  if (const char* fd = lookup("WW_RENDEZVOUS_FD")) {
    world.rendezvous_fd = parse_int("WW_RENDEZVOUS_FD", fd, 0, INT_MAX);
    if (!listens_on(world.rendezvous_fd, world.master_port))
      fail("environment variable WW_RENDEZVOUS_FD=", world.rendezvous_fd, " is not a socket listening on MASTER_PORT ",
           world.master_port, " (`wattwise launch` sets it for rank 0 only)");
  }
  return world;
}

World world_from_environment() {
  return world_from([](const char* name) { return std::getenv(name); });
}

}  // namespace ww::dist
