#include "wattwise/train/checkpoint.h"

#include <map>
#include <set>
#include <string>

#include "wattwise/core/error.h"
#include "wattwise/io/safetensors.h"

namespace ww::train {

namespace fs = std::filesystem;

void save_parameters(const fs::path& path, const models::ParameterStore& store) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const models::Parameter& p : store.all()) tensors.emplace_back(p.name, p.value);
  // Whatever the run holds is saved as it is (a checkpoint is state, not a model to run).
  io::save_safetensors(path, tensors, {{"format", "pt"}, {"wattwise", "training-checkpoint parameters"}}, DType::F32,
                       io::NonFinite::allow);
}

void load_parameters(const fs::path& path, models::ParameterStore& store) {
  io::SafetensorsFile file = io::SafetensorsFile::open(path);
  // Bit-exact restore: whatever the run held is what it resumes with (the file's checksum, checked
  // by the caller, stands for its integrity).
  file.set_nonfinite(io::NonFinite::allow);
  std::set<std::string> expected;
  for (const models::Parameter& p : store.all()) {
    expected.insert(p.name);
    const io::TensorInfo* info = file.find(p.name);
    if (!info) fail(path.string(), ": parameter '", p.name, "' is missing (the checkpoint is of another model)");
    if (info->dtype != DType::F32 || info->shape != p.shape)
      fail(path.string(), ": parameter '", p.name, "' is ", safetensors_dtype_name(info->dtype), " ",
           shape_str(info->shape), ", the model's is F32 ", shape_str(p.shape));
  }
  for (const io::TensorInfo& info : file.tensors())
    if (!expected.count(info.name))
      fail(path.string(), ": tensor '", info.name, "' is not a parameter of this model (the checkpoint is of another model)");
  for (const models::Parameter& p : store.all()) file.read_into(p.name, p.value);
  store.mark_updated();
}

void save_optimizer_state(const fs::path& path, const Optimizer& optimizer) {
  const int64_t numel = [&] {
    for (const auto& [name, tensor] : optimizer.state())
      if (name != "step") return tensor.numel();
    return int64_t(0);
  }();
  io::save_safetensors(path, optimizer.state(),
                       {{"format", "pt"},
                        {"wattwise", "training-checkpoint optimizer"},
                        {"optimizer", std::string(optimizer_kind_name(optimizer.options().kind))},
                        {"shard_begin", "0"},
                        {"shard_end", std::to_string(numel)},
                        {"shards", "1"}},
                       std::nullopt, io::NonFinite::allow);
}

void load_optimizer_state(const fs::path& path, Optimizer& optimizer, int64_t numel) {
  io::SafetensorsFile file = io::SafetensorsFile::open(path);
  file.set_nonfinite(io::NonFinite::allow);
  auto meta = [&](const char* key) {
    auto it = file.metadata().find(key);
    return it == file.metadata().end() ? std::string() : it->second;
  };
  const std::string kind(optimizer_kind_name(optimizer.options().kind));
  if (meta("optimizer") != kind)
    fail(path.string(), ": holds the state of a '", meta("optimizer"), "' optimizer, this run's is ", kind);
  if (meta("shards") != "1" || meta("shard_begin") != "0" || meta("shard_end") != std::to_string(numel))
    fail(path.string(), ": a shard (elements ", meta("shard_begin"), "..", meta("shard_end"), " of ", meta("shards"),
         " shards) of a multi-process run's optimizer state; this run resumes single-process checkpoints only");
  std::map<std::string, Tensor> tensors;
  for (const io::TensorInfo& info : file.tensors()) tensors.emplace(info.name, file.read(info.name));
  try {
    optimizer.load_state(tensors);
  } catch (const Error& e) {
    fail(path.string(), ": ", e.what());
  }
}

}  // namespace ww::train
