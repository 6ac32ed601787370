#pragma once
// The tensors of a training checkpoint, one safetensors file each: the model's f32 master
// parameters exactly as they are, by their registration names (not a Hugging Face export: GPT-2's
// Conv1D weights stay in the model's own layout, and no tensor is left out or tied differently), and
// the optimizer's state. The folder around them (manifest, trainer state, logs) is the run driver's
// (experiment/train_checkpoint.h).
//
// The optimizer file is one shard of the flat state buffers: its metadata names the element range
// [shard_begin, shard_end) it covers and the number of shards, so an optimizer sharded over
// several processes can write one such file per rank. A single process writes (and reads) one shard
// covering everything.
#include <filesystem>

#include "wattwise/models/parameters.h"
#include "wattwise/train/optimizer.h"

namespace ww::train {

// Every parameter of `store` (on any device) in registration order, as f32.
void save_parameters(const std::filesystem::path& path, const models::ParameterStore& store);
// Reads save_parameters' file back into `store`: the same names, shapes and f32, checked for every
// tensor before any value changes; errors name the file and the tensor. Marks the store updated.
void load_parameters(const std::filesystem::path& path, models::ParameterStore& store);

// optimizer.state() as one shard covering the whole flat buffers.
void save_optimizer_state(const std::filesystem::path& path, const Optimizer& optimizer);
// Restores it (checked before anything changes; errors name the file, the tensor and the optimizer
// kind expected). A file holding another range than the whole buffers (a shard of a multi-process
// run) is refused: a single process resumes from single-process checkpoints only.
void load_optimizer_state(const std::filesystem::path& path, Optimizer& optimizer, int64_t numel);

}  // namespace ww::train
