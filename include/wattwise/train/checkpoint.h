#pragma once
// The tensors of a training checkpoint, one safetensors file each: the model's f32 master
// parameters exactly as they are, by their registration names (not a Hugging Face export: GPT-2's
// Conv1D weights stay in the model's own layout, and no tensor is left out or tied differently), and
// the optimizer's state. The folder around them (manifest, trainer state, logs) is the run driver's
// (experiment/train_checkpoint.h).
//
// The optimizer's state is one or more shards of the flat state buffers, one safetensors file each:
// its metadata names the element range [shard_begin, shard_end) it covers, the number of shards and
// the parameters' count (numel). A single process (or unsharded data parallel) writes one shard
// covering everything; under ZeRO each rank writes its own part. Any set of shards loads into any
// sharding: each optimizer reads its range from the shards that overlap it.
#include <filesystem>
#include <vector>

#include "wattwise/models/parameters.h"
#include "wattwise/train/optimizer.h"

namespace ww::train {

// Every parameter of `store` (on any device) in registration order, as f32.
void save_parameters(const std::filesystem::path& path, const models::ParameterStore& store);
// Reads save_parameters' file back into `store`: the same names, shapes and f32, checked for every
// tensor before any value changes; errors name the file and the tensor. Marks the store updated.
void load_parameters(const std::filesystem::path& path, models::ParameterStore& store);

// optimizer.state() (its state_range(): the whole buffers, or this rank's part) as one of `shards`.
void save_optimizer_state(const std::filesystem::path& path, const Optimizer& optimizer, int64_t shards = 1);
// Fills `optimizer`'s state_range() from the shard files of a checkpoint (any number, any order)
// after checking all of them: the optimizer kind, that the shards cover the `numel` parameters
// exactly once, every tensor's dtype and size, and the same step in each. Errors name the file and
// the tensor; nothing changes when a check fails.
void load_optimizer_state(const std::vector<std::filesystem::path>& shard_paths, Optimizer& optimizer, int64_t numel);

}  // namespace ww::train
