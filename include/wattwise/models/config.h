#pragma once
// Model hyper-parameters read from (and written back to) a Hugging Face config.json. Both BERT's and
// DistilBERT's key names map onto one ModelConfig; keys we do not interpret are kept verbatim so a
// saved config round-trips. A value we cannot honour (relative positions, sinusoidal positions, a
// decoder) is an error, never silently ignored.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "wattwise/core/device.h"

namespace ww::models {

enum class Architecture { Bert, DistilBert };
const char* architecture_name(Architecture arch);  // "bert", "distilbert"

enum class Activation { Gelu, Relu };

// How the classifier sees the sequence (a wattwise option, stored in config.json as
// "wattwise_pooling" when not the default):
//  ClsPooler: the [CLS] hidden state through the dense head (BERT's tanh pooler, DistilBERT's
//             pre_classifier + ReLU), then the classifier — what Hugging Face's classes compute;
//  Cls:       the [CLS] hidden state straight into the classifier (no dense head parameters);
//  Mean:      the mean over real tokens (attention mask) into the classifier (no dense head).
enum class Pooling { ClsPooler, Cls, Mean };
const char* pooling_name(Pooling pooling);  // "cls-pooler", "cls", "mean"
Pooling parse_pooling(const std::string& text);  // the names above; an error names the value otherwise

struct ModelConfig {
  Architecture arch = Architecture::Bert;
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_layers = 12;
  int64_t num_heads = 12;
  int64_t intermediate_size = 3072;
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;  // 0 for DistilBERT (no token types)
  int64_t num_labels = 2;
  int32_t pad_token_id = 0;
  float layer_norm_eps = 1e-12f;
  float hidden_dropout = 0.1f;
  float attention_dropout = 0.1f;
  float classifier_dropout = 0.1f;
  float initializer_range = 0.02f;
  Activation activation = Activation::Gelu;
  Pooling pooling = Pooling::ClsPooler;
  bool regression = false;  // num_labels == 1 or problem_type "regression": MSE loss
  std::vector<std::string> id2label;  // empty when the config names no labels

  // Everything else from config.json, preserved for saving.
  nlohmann::json extra = nlohmann::json::object();

  int64_t head_dim() const { return hidden_size / num_heads; }
  std::string label_name(int64_t id) const;  // id2label entry, or "LABEL_<id>"
  // Throws naming origin, the config.json key and the bad value: sizes must be positive and fit
  // the int32 the kernels and token ids use, and the parameter count must fit in 64 bits.
  void validate(const std::string& origin) const;
  // The config.json key of a size in this architecture ("num_hidden_layers" or DistilBERT's
  // "n_layers"), for messages.
  const char* key_of(const int64_t& field) const;
  // Parameters the model holds (embeddings, layers, pooler, classifier), overflow-checked; the
  // exact count of the model built from this config.
  int64_t parameter_count() const;
  // Throws ww::Error before anything is allocated when `bytes_per_parameter` x the parameter count
  // cannot fit in the memory `device` has available, naming the config keys of the largest term.
  void check_fits(Device device, int64_t bytes_per_parameter, const std::string& origin) const;
  // "num_hidden_layers 12, hidden_size 768, ...": the sizes, for messages.
  std::string sizes() const;
};

// Before a model is built from `config_path` for a checkpoint of `checkpoint_elements` values:
// throws ww::Error when the config describes more than twice as many parameters as the checkpoint
// holds (a fresh classification head, missing from a base checkpoint, is far smaller than that):
// such a config.json does not describe the checkpoint, and building it first could exhaust memory.
void check_config_matches_checkpoint(int64_t config_parameters, const std::string& config_sizes,
                                     int64_t checkpoint_elements, const std::string& config_path,
                                     const std::string& checkpoint_path);

ModelConfig parse_model_config(const nlohmann::json& json, const std::string& origin);
ModelConfig load_model_config(const std::filesystem::path& path);  // a config.json or its folder
// The JSON of a config.json (or of the one in folder `path`), with the file it read; an unreadable
// or malformed file is an error naming it.
nlohmann::json read_config_json(const std::filesystem::path& path, std::filesystem::path& file);
nlohmann::json model_config_to_json(const ModelConfig& config);  // in HF key names
// A float field of config.json as Hugging Face writes it (a Python float): the shortest decimal that
// reads back as the same float32, e.g. 0.02 and 1e-12 rather than 0.019999999552965164.
double config_json_float(float value);
// config.json's "dtype" and "torch_dtype" (the older name transformers still reads) of a model saved
// with weights of `name` ("float32", "bfloat16", ...): the same in both.
void set_config_json_dtype(nlohmann::json& config, const std::string& name);
void save_model_config(const ModelConfig& config, const std::filesystem::path& path);

// Named sizes for `init-model --preset`: tiny (2×64), mini (4×256), small (4×512), base (12×768
// for BERT, 6×768 for DistilBERT).
ModelConfig preset_config(Architecture arch, const std::string& preset, int64_t vocab_size);

}  // namespace ww::models
