#pragma once
// Hugging Face Trainer vocabulary: the TrainingArguments field names a transformers user already
// writes (learning_rate, num_train_epochs, per_device_train_batch_size, gradient_accumulation_steps,
// lr_scheduler_type, fp16, ...) accepted as aliases of wattwise's keys, in flags (--learning_rate
// 3e-5), in --set, in the TOML file (top level or in a section) and from a TrainingArguments JSON
// (`wattwise train --hf-args args.json`). Each alias is translated into the wattwise settings it
// stands for; docs/CONFIG.md's "Hugging Face names" table lists them.
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "wattwise/experiment/train_config.h"

namespace ww::experiment {

using Settings = std::vector<std::pair<std::string, std::string>>;  // wattwise key, value

// The wattwise settings a TrainingArguments field set to `value` stands for (none for a value that
// changes nothing, e.g. fp16 false while training in fp32), or nullopt when `name` (optionally with
// a section: "train.learning_rate") is not a field wattwise takes. `cfg`: the configuration so far
// (fp16 false undoes only its own precision). A value wattwise cannot honour is an error naming
// `origin`, the field and what is supported.
std::optional<Settings> hf_training_argument(const std::string& name, const std::string& value, const TrainConfig& cfg,
                                             const std::string& origin);

// The TrainingArguments names wattwise takes (for "did you mean" hints).
std::vector<std::string> hf_training_argument_names();

// TrainingArguments fields that change nothing in a wattwise run (do_train, report_to, logging_dir,
// ...): a TrainingArguments JSON may hold them; they are skipped and listed in one note.
bool hf_argument_without_effect(const std::string& name, const std::string& value);

// --hf-args FILE: a TrainingArguments JSON (`TrainingArguments.to_json_string()` or any object of
// its fields) into `cfg`. A field that is neither taken nor without effect is an error naming the
// file and the field (with the nearest name wattwise takes). Returns the fields skipped.
std::vector<std::string> merge_hf_args_file(TrainConfig& cfg, const std::filesystem::path& path);

}  // namespace ww::experiment
