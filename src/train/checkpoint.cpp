#include "wattwise/train/checkpoint.h"

#include <algorithm>
#include <charconv>
#include <cstring>
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

void save_optimizer_state(const fs::path& path, const Optimizer& optimizer, int64_t shards) {
  const auto [begin, end] = optimizer.state_range();
  io::save_safetensors(path, optimizer.state(),
                       {{"format", "pt"},
                        {"wattwise", "training-checkpoint optimizer"},
                        {"optimizer", std::string(optimizer_kind_name(optimizer.options().kind))},
                        {"numel", std::to_string(optimizer.parameter_count())},
                        {"shard_begin", std::to_string(begin)},
                        {"shard_end", std::to_string(end)},
                        {"shards", std::to_string(shards)}},
                       std::nullopt, io::NonFinite::allow);
}

namespace {

// One shard file of a checkpoint's optimizer state, its header checked.
struct OptimizerShardFile {
  io::SafetensorsFile file;
  int64_t begin = 0, end = 0, step = 0;
};

int64_t metadata_int(const io::SafetensorsFile& file, const char* key) {
  auto it = file.metadata().find(key);
  if (it == file.metadata().end()) fail(file.path().string(), ": metadata '", key, "' is missing");
  int64_t value = 0;
  const std::string& text = it->second;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value < 0)
    fail(file.path().string(), ": metadata '", key, "' is '", text, "', expected a count >= 0");
  return value;
}

}  // namespace

void load_optimizer_state(const std::vector<fs::path>& shard_paths, Optimizer& optimizer, int64_t numel) {
  WW_CHECK(!shard_paths.empty(), "no optimizer state files");
  const std::string kind(optimizer_kind_name(optimizer.options().kind));
  std::vector<std::string> names;  // the state tensors this optimizer has, "step" aside
  for (const auto& [name, tensor] : optimizer.state())
    if (name != "step") names.push_back(name);
  // Every file checked before anything is read: kind, range, tensors, step.
  std::vector<OptimizerShardFile> shards;
  for (const fs::path& path : shard_paths) {
    OptimizerShardFile s{io::SafetensorsFile::open(path)};
    const io::SafetensorsFile& file = s.file;
    auto meta = [&](const char* key) {
      auto it = file.metadata().find(key);
      return it == file.metadata().end() ? std::string() : it->second;
    };
    if (meta("optimizer") != kind)
      fail(path.string(), ": holds the state of a '", meta("optimizer"), "' optimizer, this run's is ", kind);
    s.begin = metadata_int(file, "shard_begin");
    s.end = metadata_int(file, "shard_end");
    // Written before the whole count was recorded: one shard, covering everything.
    const int64_t whole = meta("numel").empty() ? s.end : metadata_int(file, "numel");
    if (whole != numel)
      fail(path.string(), ": optimizer state of ", whole, " parameters, this model has ", numel);
    if (metadata_int(file, "shards") != int64_t(shard_paths.size()))
      fail(path.string(), ": one of ", meta("shards"), " shards, but the checkpoint lists ", shard_paths.size());
    if (s.begin > s.end || s.end > numel)
      fail(path.string(), ": shard range ", s.begin, "..", s.end, " is outside the ", numel, " parameters");
    for (const std::string& name : names) {
      const io::TensorInfo* info = file.find(name);
      if (!info) fail(path.string(), ": tensor '", name, "' is missing");
      if (info->dtype != DType::F32 || info->shape != Shape{s.end - s.begin})
        fail(path.string(), ": tensor '", name, "' is ", safetensors_dtype_name(info->dtype), " ", shape_str(info->shape),
             ", expected F32 [", s.end - s.begin, "] (elements ", s.begin, "..", s.end, ")");
    }
    for (const io::TensorInfo& info : file.tensors())
      if (info.name != "step" && std::find(names.begin(), names.end(), info.name) == names.end())
        fail(path.string(), ": unexpected tensor '", info.name, "' for a ", kind, " optimizer");
    const io::TensorInfo* step = file.find("step");
    if (!step) fail(path.string(), ": tensor 'step' is missing");
    if (step->dtype != DType::I64 || step->nbytes() != sizeof(int64_t))
      fail(path.string(), ": tensor 'step' is ", safetensors_dtype_name(step->dtype), " ", shape_str(step->shape),
           ", expected I64 [1]");
    std::memcpy(&s.step, file.raw_bytes(*step).data(), sizeof s.step);
    shards.push_back(std::move(s));
  }
  std::sort(shards.begin(), shards.end(), [](const auto& a, const auto& b) { return a.begin < b.begin; });
  int64_t covered = 0;
  for (const OptimizerShardFile& s : shards) {
    if (s.begin != covered)
      fail(s.file.path().string(), ": starts at element ", s.begin, " but the shards before it end at ", covered,
           " (the shards must cover the parameters once, in order)");
    if (s.step != shards.front().step)
      fail(s.file.path().string(), ": at step ", s.step, ", but ", shards.front().file.path().string(), " at step ",
           shards.front().step);
    covered = s.end;
  }
  if (covered != numel)
    fail(shards.back().file.path().string(), ": the shards end at element ", covered, " of ", numel);

  // This optimizer's part, copied from the shards that overlap it.
  const auto [begin, end] = optimizer.state_range();
  std::map<std::string, Tensor> tensors;
  Tensor step = Tensor::empty({1}, DType::I64);
  step.data<int64_t>()[0] = shards.front().step;
  tensors.emplace("step", step);
  for (const std::string& name : names) {
    Tensor part = Tensor::empty({end - begin}, DType::F32);
    for (const OptimizerShardFile& s : shards) {
      const int64_t from = std::max(begin, s.begin), to = std::min(end, s.end);
      if (from >= to) continue;
      const std::string_view bytes = s.file.raw_bytes(*s.file.find(name));
      std::memcpy(part.data<float>() + (from - begin), bytes.data() + (from - s.begin) * sizeof(float),
                  size_t(to - from) * sizeof(float));
    }
    tensors.emplace(name, part);
  }
  try {
    optimizer.load_state(tensors);
  } catch (const Error& e) {
    fail(shard_paths.front().string(), ": ", e.what());
  }
}

}  // namespace ww::train
