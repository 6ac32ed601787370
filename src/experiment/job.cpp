#include "wattwise/experiment/job.h"

#include <cstdio>

#include "wattwise/core/error.h"

namespace ww::experiment {

Device rank_device(const std::string& text, const dist::World& world, const std::string& option) {
  const Device device = parse_device(text);
  if (!world.joins() || device.is_cpu()) return device;
  const bool each_its_own = text == "cuda" || text == "auto";
  if (!each_its_own && world.local_size > 1)
    fail(option, " ", text, " names one GPU for all ", world.local_size,
         " ranks on this machine: give cuda (each rank takes the GPU of its LOCAL_RANK)");
  if (!each_its_own) return device;
  const int gpus = cuda_device_count();
  if (world.local_rank >= gpus)
    fail("rank ", world.rank, " has LOCAL_RANK ", world.local_rank, " but this machine shows ", gpus,
         " GPU", gpus == 1 ? "" : "s", " (start at most one rank per GPU)");
  return Device::cuda(world.local_rank);
}

std::unique_ptr<dist::ProcessGroup> join_launched_job(const dist::World& world, Device device,
                                                      std::chrono::milliseconds timeout, const std::string& fingerprint) {
  if (!world.joins()) return nullptr;
  dist::JoinOptions options;
  options.timeout = timeout;
  options.fingerprint = fingerprint;
  options.waiting = [](const std::string& line) { std::fprintf(stderr, "wattwise: %s\n", line.c_str()); };
  return dist::join(world, device, options);
}

}  // namespace ww::experiment
