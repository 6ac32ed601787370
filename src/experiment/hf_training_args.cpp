#include "wattwise/experiment/hf_training_args.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "wattwise/core/error.h"
#include "wattwise/dist/world.h"
#include "wattwise/io/file.h"

namespace ww::experiment {

namespace {

// Fields that map one to one onto a wattwise key (the value passes through that key's checks).
const std::map<std::string, std::string>& direct_aliases() {
  static const std::map<std::string, std::string> aliases = {
      {"learning_rate", "train.lr"},
      {"num_train_epochs", "train.epochs"},
      {"gradient_accumulation_steps", "train.grad_accum"},
      {"warmup_ratio", "train.warmup_ratio"},
      {"weight_decay", "train.weight_decay"},
      {"adam_beta1", "train.beta1"},
      {"adam_beta2", "train.beta2"},
      {"adam_epsilon", "train.eps"},
      {"max_grad_norm", "train.max_grad_norm"},
      {"label_smoothing_factor", "train.label_smoothing"},
      {"logging_steps", "train.log_every"},
      {"eval_steps", "train.eval_every"},
      {"save_steps", "train.checkpoint_every"},
      {"save_total_limit", "train.checkpoint_keep"},
      {"seed", "run.seed"},
      {"output_dir", "run.output_dir"},
      {"run_name", "run.name"},
      {"ddp_bucket_cap_mb", "train.bucket_mb"},
      {"ddp_timeout", "run.dist_timeout_s"},
      {"group_by_length", "data.length_bucketing"},
  };
  return aliases;
}

// Fields translated by a rule (below).
const std::set<std::string>& rule_aliases() {
  static const std::set<std::string> names = {
      "max_steps", "warmup_steps", "per_device_train_batch_size", "lr_scheduler_type", "optim", "fp16", "bf16", "tf32",
      "gradient_checkpointing", "activation_checkpointing", "metric_for_best_model", "eval_strategy",
      "evaluation_strategy", "save_strategy", "train_sampling_strategy"};
  return names;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

bool truthy(const std::string& value, const std::string& origin, const std::string& name) {
  const std::string v = lower(value);
  if (v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return false;
  fail(origin, ": invalid value '", value, "' for ", name, " (expected true or false)");
}

// "train.learning_rate" → "learning_rate"; a name without a section stays.
std::string field_of(const std::string& name) {
  const size_t dot = name.find('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

}  // namespace

std::optional<Settings> hf_training_argument(const std::string& name, const std::string& value, const TrainConfig& cfg,
                                             const std::string& origin) {
  const std::string field = field_of(name);
  if (auto it = direct_aliases().find(field); it != direct_aliases().end()) return Settings{{it->second, value}};
  if (!rule_aliases().count(field)) return std::nullopt;
  auto unsupported = [&](const std::string& what) -> Settings {
    fail(origin, ": ", field, " '", value, "' is not supported (", what, ")");
  };
  if (field == "max_steps") return Settings{{"train.max_steps", value == "-1" ? "0" : value}};  // -1: by epochs
  if (field == "warmup_steps") {
    // transformers 5: a count, or a float in [0, 1) for a share of the steps (4's warmup_ratio).
    char* end = nullptr;
    const double v = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0' || !(v >= 0))
      fail(origin, ": invalid value '", value, "' for warmup_steps (expected a count, or a share in [0, 1))");
    if (v == 0) return Settings{{"train.warmup_steps", "0"}, {"train.warmup_ratio", "0"}};  // no warmup
    if (v < 1) return Settings{{"train.warmup_steps", "0"}, {"train.warmup_ratio", value}};
    return Settings{{"train.warmup_steps", value}};
  }
  if (field == "per_device_train_batch_size") {
    // wattwise's train.batch_size is the job's micro-batch, split over the ranks (DDP's is per rank).
    int64_t n = 0;
    try {
      size_t used = 0;
      n = std::stoll(value, &used);
      if (used != value.size()) throw std::invalid_argument(value);
    } catch (const std::exception&) {
      fail(origin, ": invalid value '", value, "' for per_device_train_batch_size (expected an integer)");
    }
    return Settings{{"train.batch_size", std::to_string(n * dist::world_from_environment().size)}};
  }
  if (field == "lr_scheduler_type") {
    const std::string v = lower(value);
    if (v == "linear" || v == "cosine") return Settings{{"train.schedule", v}};
    // wattwise's constant schedule warms up when warmup is asked for, as constant_with_warmup does.
    if (v == "constant" || v == "constant_with_warmup") return Settings{{"train.schedule", "constant"}};
    return unsupported("wattwise has linear, cosine, constant and constant_with_warmup");
  }
  if (field == "optim") {
    const std::string v = lower(value);
    if (v.rfind("adamw", 0) == 0) return Settings{{"train.optimizer", "adamw"}};  // adamw_torch, _fused, _hf, ...
    if (v == "sgd") return Settings{{"train.optimizer", "sgd"}};
    return unsupported("wattwise has the adamw_* optimizers (AdamW) and sgd");
  }
  if (field == "fp16" || field == "bf16" || field == "tf32") {
    const std::string precision = field;
    if (truthy(value, origin, field)) {
      // tf32 only speeds fp32's matmuls: with fp16 or bf16 it changes nothing.
      if (precision == "tf32" && cfg.get_string("train.precision") != "fp32") return Settings{};
      return Settings{{"train.precision", precision}};
    }
    if (cfg.get_string("train.precision") == precision) return Settings{{"train.precision", "fp32"}};
    return Settings{};
  }
  if (field == "gradient_checkpointing" || field == "activation_checkpointing")
    return Settings{{"train.checkpointing", truthy(value, origin, field) ? "every" : "none"}};
  if (field == "metric_for_best_model") {
    // HF names the evaluation's metrics eval_<name>; both spellings are taken.
    const std::string metric = value.rfind("eval_", 0) == 0 ? value.substr(5) : value;
    return Settings{{"train.metric", metric}};
  }
  if (field == "eval_strategy" || field == "evaluation_strategy") {
    const std::string v = lower(value);
    if (v == "steps") return Settings{};  // every eval_steps
    // "no": wattwise still evaluates at each epoch's end (it picks best_model/ there); training is the same.
    if (v == "epoch" || v == "no") return Settings{{"train.eval_every", "0"}};
    return unsupported("wattwise evaluates every train.eval_every steps and at each epoch's end: steps, epoch or no");
  }
  if (field == "train_sampling_strategy") {
    const std::string v = lower(value);
    if (v == "random") return Settings{};
    if (v == "group_by_length") return Settings{{"data.length_bucketing", "true"}};
    return unsupported("wattwise shuffles by run.seed: random, or group_by_length for data.length_bucketing");
  }
  // save_strategy
  const std::string v = lower(value);
  if (v == "no") return Settings{{"train.checkpoint_every", "0"}};
  if (v == "steps") return Settings{};  // every save_steps
  return unsupported("wattwise checkpoints every train.checkpoint_every steps: steps or no");
}

std::vector<std::string> hf_training_argument_names() {
  std::vector<std::string> names;
  for (const auto& [alias, key] : direct_aliases()) names.push_back(alias);
  names.insert(names.end(), rule_aliases().begin(), rule_aliases().end());
  return names;
}

namespace {
// These change the run unless they hold their default (deepspeed, fsdp: sharding, which wattwise sets
// with train.zero; use_cpu: run.device; torch_compile: wattwise compiles nothing), with what to use.
const std::map<std::string, std::pair<std::string, std::string>>& default_only() {
  static const std::map<std::string, std::pair<std::string, std::string>> fields = {
      {"push_to_hub", {"false", "wattwise uploads nothing"}},
      {"lr_scheduler_kwargs", {"{}", "the schedules take train.warmup_* only"}},
      {"optim_target_modules", {"null", "every parameter is optimized"}},
      {"neftune_noise_alpha", {"null", "no embedding noise"}},
      {"deepspeed", {"null", "sharded optimizer state is train.zero 1 or 2"}},
      {"fsdp", {"[]", "sharded optimizer state is train.zero 1 or 2"}},
      {"use_cpu", {"false", "the device is run.device"}},
      {"no_cuda", {"false", "the device is run.device"}},
      {"torch_compile", {"false", "wattwise runs its own kernels"}},
      {"torchdynamo", {"null", "wattwise runs its own kernels"}},
      {"torch_compile_backend", {"null", "wattwise runs its own kernels"}},
      {"torch_compile_mode", {"null", "wattwise runs its own kernels"}},
      {"auto_find_batch_size", {"false", "set train.batch_size, or train.checkpointing auto for memory"}},
      {"dataloader_drop_last", {"false", "every example is trained on"}},
      {"adafactor", {"false", "the optimizers are AdamW and SGD"}},
      {"optim_args", {"null", "the optimizer's settings are train.beta1, beta2, eps, momentum"}},
      {"use_liger_kernel", {"false", "wattwise runs its own kernels"}},
      {"ddp_bucket_cap_mb", {"null", "a number sets train.bucket_mb"}},
      {"save_safetensors", {"true", "wattwise writes safetensors"}},
      {"group_by_length", {"false", "true sets data.length_bucketing"}},
      {"enable_jit_checkpoint", {"false", "checkpoints are every train.checkpoint_every steps"}},
      {"parallelism_config", {"null", "data parallelism is the launch (wattwise launch, torchrun), sharding train.zero"}}};
  return fields;
}
}  // namespace

bool hf_argument_without_effect(const std::string& name, const std::string& value) {
  // Fields whose every value changes nothing here, and those whose default does (true for a value
  // that is that default).
  static const std::set<std::string> any_value = {
      "do_train", "do_eval", "do_predict", "overwrite_output_dir", "logging_dir", "logging_strategy",
      "logging_first_step", "logging_nan_inf_filter", "report_to", "disable_tqdm", "dataloader_num_workers",
      "dataloader_pin_memory", "dataloader_persistent_workers", "dataloader_prefetch_factor", "remove_unused_columns",
      "local_rank", "log_level", "log_level_replica", "log_on_each_node", "save_on_each_node", "greater_is_better",
      "load_best_model_at_end", "per_device_eval_batch_size", "eval_accumulation_steps", "data_seed", "hub_model_id",
      "hub_strategy", "hub_token", "hub_private_repo", "push_to_hub_model_id", "push_to_hub_organization",
      "push_to_hub_token", "resume_from_checkpoint", "ignore_data_skip", "skip_memory_metrics", "include_tokens_per_second",
      "include_num_input_tokens_seen", "full_determinism", "ddp_backend", "ddp_find_unused_parameters", "ddp_timeout",
      "past_index", "prediction_loss_only", "label_names", "length_column_name", "fp16_backend",
      "half_precision_backend", "fp16_opt_level", "bf16_full_eval", "fp16_full_eval", "jit_mode_eval", "use_ipex",
      "ray_scope", "save_only_model", "restore_callback_states_from_checkpoint", "_n_gpu", "tpu_num_cores",
      "tpu_metrics_debug", "debug", "fsdp_config", "accelerator_config", "mp_parameters", "eval_delay",
      "torch_empty_cache_steps", "average_tokens_across_devices", "eval_do_concat_batches", "batch_eval_metrics",
      "eval_on_start", "split_batches", "dispatch_batches",
      // transformers 5
      "include_for_metrics", "use_cache", "project", "trackio_space_id", "trackio_bucket_id", "trackio_static_space_id",
      "hub_always_push", "hub_revision", "dataloader_multiprocessing_context", "dataloader_in_order",
      "ddp_broadcast_buffers", "ddp_static_graph", "eval_use_gather_object", "liger_kernel_config",
      "activation_checkpointing_kwargs", "gradient_checkpointing_kwargs"};
  const std::string field = field_of(name);
  if (any_value.count(field)) return true;
  auto it = default_only().find(field);
  return it != default_only().end() && lower(value) == it->second.first;
}

std::vector<std::string> merge_hf_args_file(TrainConfig& cfg, const std::filesystem::path& path) {
  const std::string origin = path.string();
  nlohmann::json args;
  try {
    args = nlohmann::json::parse(io::read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(origin, ": not a TrainingArguments JSON (", e.what(), ")");
  }
  if (!args.is_object()) fail(origin, ": expected a JSON object of TrainingArguments fields");
  std::vector<std::string> skipped;
  for (const auto& [field, node] : args.items()) {
    std::string value;
    if (node.is_string()) value = node.get<std::string>();
    else if (node.is_boolean()) value = node.get<bool>() ? "true" : "false";
    else if (node.is_number_integer()) value = std::to_string(node.get<int64_t>());
    else if (node.is_number()) value = nlohmann::json(node.get<double>()).dump();
    else value = node.dump();  // null, lists, objects: only fields without effect take them
    const std::string where = origin + ": " + field;
    // null is TrainingArguments' "not set": the wattwise default stays.
    if (node.is_null() && (direct_aliases().count(field) || rule_aliases().count(field) ||
                           hf_argument_without_effect(field, "null") || default_only().count(field))) {
      skipped.push_back(field);
      continue;
    }
    if (node.is_number_float() || node.is_number_integer() || node.is_string() || node.is_boolean()) {
      if (std::optional<Settings> settings = hf_training_argument(field, value, cfg, where)) {
        for (const auto& [key, v] : *settings) cfg.set(key, v, where);
        continue;
      }
    }
    if (hf_argument_without_effect(field, value)) {
      skipped.push_back(field);
      continue;
    }
    if (auto it = default_only().find(field); it != default_only().end())
      fail(where, ": ", value, " cannot be honoured (only ", it->second.first, " is taken: ", it->second.second, ")");
    const std::string hint = nearest_name(field, hf_training_argument_names());
    fail(where, ": a TrainingArguments field wattwise does not take",
         hint.empty() ? std::string() : " (did you mean '" + hint + "'?)",
         "; the fields it takes are in docs/CONFIG.md, Hugging Face names");
  }
  return skipped;
}

}  // namespace ww::experiment
