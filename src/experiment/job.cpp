#include "wattwise/experiment/job.h"

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <vector>

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

nlohmann::json rank_memory(dist::ProcessGroup& group, const train::Trainer& trainer, const models::ModelRuntime& model,
                           Device device) {
  const char* keys[] = {"parameter_bytes", "gradient_bytes", "optimizer_state_bytes", "activation_bytes",
                        "peak_memory_bytes"};
  constexpr size_t kKeys = std::size(keys);
  const double mine[kKeys] = {double(model.parameters().numel()) * sizeof(float), double(trainer.gradient_bytes()),
                              double(trainer.optimizer().state_bytes()), double(model.activation_bytes()),
                              double(memory_stats(device).peak)};
  std::vector<double> all(kKeys * size_t(group.size()), 0.0);
  std::copy(mine, mine + kKeys, all.begin() + std::ptrdiff_t(kKeys * size_t(group.rank())));
  group.all_reduce_sum(all);  // each rank adds its own row to zeros
  nlohmann::json rows = nlohmann::json::array();
  for (int rank = 0; rank < group.size(); ++rank) {
    nlohmann::json row = {{"rank", rank}};
    for (size_t k = 0; k < kKeys; ++k) row[keys[k]] = int64_t(all[kKeys * size_t(rank) + k]);
    row["model_state_bytes"] = row["parameter_bytes"].get<int64_t>() + row["gradient_bytes"].get<int64_t>() +
                               row["optimizer_state_bytes"].get<int64_t>();
    rows.push_back(row);
  }
  return rows;
}

}  // namespace ww::experiment
