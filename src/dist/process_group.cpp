#include "wattwise/dist/process_group.h"

#include <unistd.h>

#include <cstdlib>

#include "dist_internal.h"
#include "wattwise/core/error.h"

namespace ww::dist {

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "127.0.0.1";
  return name;
}

std::string machine_name() {
  const char* name = std::getenv("WW_HOST_NAME");
  return name != nullptr && *name != '\0' ? name : host_name();
}

std::string first_line(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  return line.size() > 300 ? line.substr(0, 300) + "..." : line;
}

std::vector<size_t> checked_parts(const Tensor& full, const std::vector<int64_t>& counts, int ranks) {
  WW_CHECK(int(counts.size()) == ranks, "collective of ", counts.size(), " parts among ", ranks, " ranks");
  std::vector<size_t> elements;
  int64_t total = 0;
  for (int64_t c : counts) {
    WW_CHECK(c >= 0, "collective part of ", c, " elements");
    elements.push_back(size_t(c));
    total += c;
  }
  WW_CHECK(total == full.numel(), "collective parts of ", total, " elements over ", full.describe());
  return elements;
}

void ProcessGroup::all_reduce_sum_recorded(const Tensor& values) {
  fail(backend(), " cannot record an all-reduce in a CUDA graph (", values.describe(), ")");
}

void ProcessGroup::broadcast_text(std::string& text, int root) {
  std::vector<double> size = {rank_ == root ? double(text.size()) : 0.0};
  all_reduce_sum(size);  // only the root adds its size
  text.resize(size_t(size[0]));
  if (!text.empty()) broadcast_bytes(text.data(), text.size(), root);
}

std::unique_ptr<ProcessGroup> join(const World& world, Device device, const JoinOptions& options) {
  if (options.timeout.count() <= 0) fail("distributed timeout must be positive");
  const std::string rendezvous = world.master_addr + ":" + std::to_string(world.master_port);
  const std::string gives_up = "it gives up after " + std::to_string(options.timeout.count() / 1000) + " s";
  auto waiting_for_rank_0 = [&](double seconds) {
    if (options.waiting)
      options.waiting("rank " + std::to_string(world.rank) + ": waiting for rank 0 at " + rendezvous + " (" +
                      std::to_string(int64_t(seconds)) + " s so far; " + gives_up + ")");
  };
  auto store = std::make_unique<TcpStore>(world.master_addr, world.master_port, world.rank == 0, options.timeout,
                                          waiting_for_rank_0, options.report_every, world.rendezvous_fd);

  // Every rank publishes its fingerprint and reads everyone's: all refuse together, naming who differs.
  const std::vector<char> mine(options.fingerprint.begin(), options.fingerprint.end());
  store->set("fingerprint/" + std::to_string(world.rank), mine);
  std::vector<int> differing;
  std::string theirs;
  for (int r = 0; r < world.size; ++r) {
    auto waiting = [&](double seconds) {
      if (world.rank == 0 && options.waiting)
        options.waiting("rank 0: waiting for rank " + std::to_string(r) + " of " + std::to_string(world.size) +
                        " to join at " + rendezvous + " (" + std::to_string(int64_t(seconds)) + " s so far; " +
                        gives_up + ")");
    };
    const std::vector<char> value = store->get("fingerprint/" + std::to_string(r), waiting, options.report_every);
    if (value != mine) {
      differing.push_back(r);
      if (theirs.empty()) theirs.assign(value.begin(), value.end());
    }
  }
  // Rank 0 serves the rendezvous: it waits until every rank has read the fingerprints, so that a
  // refusal reaches all of them (not "rank 0 has gone away").
  store->set("fingerprint_read/" + std::to_string(world.rank), {});
  if (world.rank == 0)
    for (int r = 1; r < world.size; ++r) store->get("fingerprint_read/" + std::to_string(r));
  if (!differing.empty()) {
    std::string ranks;
    for (int r : differing) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
    fail("rank ", world.rank, ": rank", differing.size() > 1 ? "s " : " ", ranks,
         " started with a different configuration or wattwise version (", first_line(theirs), " against this rank's ",
         first_line(options.fingerprint), "): start every rank with the same command and binary");
  }

  if (device.is_cpu()) return make_gloo_group(world, std::move(store), options.timeout);
#ifdef WW_HAVE_CUDA
  return make_nccl_group(world, device, std::move(store), options.timeout);
#else
  fail("distributed training on ", device.str(), " needs a build with CUDA (NCCL)");
#endif
}

}  // namespace ww::dist
