#include "wattwise/models/config.h"

#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>

#include "wattwise/core/checked.h"
#include "wattwise/core/error.h"
#include "wattwise/io/file.h"

namespace ww::models {

using nlohmann::json;

const char* architecture_name(Architecture arch) {
  return arch == Architecture::Bert ? "bert" : "distilbert";
}

std::string ModelConfig::label_name(int64_t id) const {
  if (id >= 0 && id < int64_t(id2label.size()) && !id2label[size_t(id)].empty()) return id2label[size_t(id)];
  return "LABEL_" + std::to_string(id);
}

const char* ModelConfig::key_of(const int64_t& field) const {
  const bool distil = arch == Architecture::DistilBert;
  if (&field == &vocab_size) return "vocab_size";
  if (&field == &hidden_size) return distil ? "dim" : "hidden_size";
  if (&field == &num_layers) return distil ? "n_layers" : "num_hidden_layers";
  if (&field == &num_heads) return distil ? "n_heads" : "num_attention_heads";
  if (&field == &intermediate_size) return distil ? "hidden_dim" : "intermediate_size";
  if (&field == &max_position_embeddings) return "max_position_embeddings";
  if (&field == &type_vocab_size) return "type_vocab_size";
  if (&field == &num_labels) return "num_labels";
  return "?";
}

void ModelConfig::validate(const std::string& origin) const {
  // Every size indexes int32 token/position ids or is passed to kernels as int.
  constexpr int64_t kMaxSize = INT32_MAX;
  auto in_range = [&](const int64_t& field, int64_t least) {
    if (field < least || field > kMaxSize)
      fail(origin, ": ", key_of(field), " ", field, " is out of range (", least, "..", kMaxSize, ")");
  };
  in_range(vocab_size, 1);
  in_range(hidden_size, 1);
  in_range(num_layers, 1);
  in_range(num_heads, 1);
  in_range(intermediate_size, 1);
  in_range(max_position_embeddings, 1);
  in_range(num_labels, 1);
  in_range(type_vocab_size, 0);
  if (hidden_size % num_heads != 0)
    fail(origin, ": hidden size ", hidden_size, " is not a multiple of the number of heads ", num_heads);
  if (pad_token_id < 0 || pad_token_id >= vocab_size)
    fail(origin, ": pad_token_id ", pad_token_id, " is outside the vocabulary of ", vocab_size);
  for (float p : {hidden_dropout, attention_dropout, classifier_dropout})
    if (!(p >= 0.0f && p < 1.0f)) fail(origin, ": dropout probabilities must be in [0, 1), got ", p);
  if (!(layer_norm_eps > 0.0f)) fail(origin, ": layer_norm_eps must be positive");
  try {
    parameter_count();
  } catch (const Error& e) {
    fail(origin, ": ", e.what());
  }
}

int64_t ModelConfig::parameter_count() const {
  const int64_t C = hidden_size, I = intermediate_size;
  const std::string embeddings = std::string(key_of(vocab_size)) + " and " + key_of(max_position_embeddings) +
                                 " x " + key_of(hidden_size);
  int64_t total = checked_mul(checked_add(checked_add(vocab_size, max_position_embeddings, embeddings),
                                          checked_add(type_vocab_size, 2, embeddings), embeddings),
                              C, embeddings);
  // Per layer: Q, K, V and the attention output (4 C x C + 4 C), two LayerNorms (4 C), the FFN
  // (2 C x I + I + C).
  const std::string layer = std::string(key_of(hidden_size)) + " and " + key_of(intermediate_size) + " (one layer)";
  const int64_t per_layer =
      checked_add(checked_add(checked_mul(checked_mul(4, C, layer), C, layer),
                              checked_mul(checked_mul(2, C, layer), I, layer), layer),
                  checked_add(checked_mul(9, C, layer), I, layer), layer);
  total = checked_add(total, checked_mul(num_layers, per_layer, std::string(key_of(num_layers)) + " x one layer's parameters"),
                      "the model's parameters");
  if (pooling == Pooling::ClsPooler) total = checked_add(total, checked_mul(C, C + 1, "the pooler"), "the model's parameters");
  return checked_add(total, checked_mul(num_labels, C + 1, std::string(key_of(num_labels)) + " x " + key_of(hidden_size)),
                     "the model's parameters");
}

std::string ModelConfig::sizes() const {
  std::string text;
  for (const int64_t* field : {&num_layers, &hidden_size, &num_heads, &intermediate_size, &vocab_size,
                               &max_position_embeddings, &type_vocab_size, &num_labels})
    text += (text.empty() ? "" : ", ") + std::string(key_of(*field)) + " " + std::to_string(*field);
  return text;
}

void check_config_matches_checkpoint(int64_t config_parameters, const std::string& config_sizes,
                                     int64_t checkpoint_elements, const std::string& config_path,
                                     const std::string& checkpoint_path) {
  if (config_parameters - checkpoint_elements <= checkpoint_elements) return;  // at most twice
  fail(config_path, ": describes a model of ", config_parameters, " parameters (", config_sizes, "), but ",
       checkpoint_path, " holds only ", checkpoint_elements,
       " values: this config.json does not describe that checkpoint; check those keys");
}

void ModelConfig::check_fits(Device device, int64_t bytes_per_parameter, const std::string& origin) const {
  const int64_t parameters = parameter_count();
  const size_t available = available_memory(device);
  const double needed = double(parameters) * double(bytes_per_parameter);
  if (available == SIZE_MAX || needed <= double(available)) return;
  // Name the largest term: the embedding tables or the layers.
  const double C = double(hidden_size), I = double(intermediate_size);
  const double layers = double(num_layers) * (4 * C * C + 2 * C * I);
  const double vocab = double(vocab_size) * C, positions = double(max_position_embeddings) * C;
  std::string culprit;
  if (layers >= vocab && layers >= positions)
    culprit = std::string(key_of(num_layers)) + " " + std::to_string(num_layers) + " x " + key_of(hidden_size) + " " +
              std::to_string(hidden_size) + " / " + key_of(intermediate_size) + " " + std::to_string(intermediate_size);
  else if (vocab >= positions)
    culprit = "vocab_size " + std::to_string(vocab_size) + " x " + key_of(hidden_size) + " " + std::to_string(hidden_size);
  else
    culprit = "max_position_embeddings " + std::to_string(max_position_embeddings) + " x " + key_of(hidden_size) +
              " " + std::to_string(hidden_size);
  fail(origin, ": the model has ", parameters, " parameters (mostly ", culprit, "), at least ",
       format_bytes(needed), " on ", device.str(), ", but only ", format_bytes(double(available)),
       " is available; check those keys");
}

namespace {

// Reads an optional key with a type check that names the file and key.
template <typename T>
T get_or(const json& j, const char* key, T fallback, const std::string& origin) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  try {
    if constexpr (std::is_same_v<T, float>) {
      if (!it->is_number()) throw std::runtime_error("not a number");
      return it->get<float>();
    } else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      if (!it->is_number_integer()) throw std::runtime_error("not an integer");
      if (it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(std::numeric_limits<T>::max()))
        fail(origin, ": key '", key, "' = ", it->dump(), " is out of range (", std::numeric_limits<T>::min(), "..",
             std::numeric_limits<T>::max(), ")");
      const int64_t value = it->get<int64_t>();
      if (value < int64_t(std::numeric_limits<T>::min()) || value > int64_t(std::numeric_limits<T>::max()))
        fail(origin, ": key '", key, "' = ", value, " is out of range (", std::numeric_limits<T>::min(), "..",
             std::numeric_limits<T>::max(), ")");
      return T(value);
    } else {
      return it->get<T>();
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception&) {
    fail(origin, ": key '", key, "' has an invalid value ", it->dump());
  }
}

const std::set<std::string> kBertKeys = {
    "model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
    "intermediate_size", "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob",
    "max_position_embeddings", "type_vocab_size", "initializer_range", "layer_norm_eps",
    "pad_token_id", "position_embedding_type", "classifier_dropout", "is_decoder",
    "add_cross_attention", "num_labels", "id2label", "label2id", "problem_type"};
const std::set<std::string> kDistilBertKeys = {
    "model_type", "vocab_size", "dim", "n_layers", "n_heads", "hidden_dim", "activation",
    "dropout", "attention_dropout", "seq_classif_dropout", "max_position_embeddings",
    "sinusoidal_pos_embds", "initializer_range", "pad_token_id", "num_labels", "id2label",
    "label2id", "problem_type"};

Activation parse_activation(const std::string& name, const std::string& origin, const char* key) {
  if (name == "gelu") return Activation::Gelu;
  if (name == "relu") return Activation::Relu;
  fail(origin, ": ", key, " '", name, "' is not supported (wattwise implements 'gelu' (erf) and 'relu')");
}

void parse_labels(const json& j, ModelConfig& c, const std::string& origin) {
  int64_t labels_from_map = 0;
  if (auto it = j.find("id2label"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) fail(origin, ": id2label must be an object of \"id\": \"name\"");
    for (auto& [key, value] : it->items()) {
      int64_t id;
      try {
        size_t used = 0;
        id = std::stoll(key, &used);
        if (used != key.size() || id < 0 || id > 1000000) throw std::runtime_error("bad");
      } catch (const std::exception&) {
        fail(origin, ": id2label key '", key, "' is not a label index");
      }
      if (!value.is_string()) fail(origin, ": id2label[", key, "] must be a string");
      if (id >= int64_t(c.id2label.size())) c.id2label.resize(size_t(id + 1));
      c.id2label[size_t(id)] = value.get<std::string>();
    }
    labels_from_map = int64_t(c.id2label.size());
  }
  c.num_labels = get_or<int64_t>(j, "num_labels", labels_from_map ? labels_from_map : 2, origin);
  if (labels_from_map && labels_from_map != c.num_labels)
    fail(origin, ": num_labels is ", c.num_labels, " but id2label names ", labels_from_map, " labels");
  std::string problem = get_or<std::string>(j, "problem_type", "", origin);
  if (!problem.empty() && problem != "regression" && problem != "single_label_classification")
    fail(origin, ": problem_type '", problem, "' is not supported (single_label_classification or regression)");
  c.regression = problem == "regression" || (problem.empty() && c.num_labels == 1);
}

}  // namespace

ModelConfig parse_model_config(const json& j, const std::string& origin) {
  if (!j.is_object()) fail(origin, ": expected a JSON object");
  std::string model_type = get_or<std::string>(j, "model_type", "", origin);
  ModelConfig c;
  const std::set<std::string>* known = nullptr;
  if (model_type == "bert") {
    c.arch = Architecture::Bert;
    known = &kBertKeys;
    c.vocab_size = get_or<int64_t>(j, "vocab_size", 30522, origin);
    c.hidden_size = get_or<int64_t>(j, "hidden_size", 768, origin);
    c.num_layers = get_or<int64_t>(j, "num_hidden_layers", 12, origin);
    c.num_heads = get_or<int64_t>(j, "num_attention_heads", 12, origin);
    c.intermediate_size = get_or<int64_t>(j, "intermediate_size", 3072, origin);
    c.activation = parse_activation(get_or<std::string>(j, "hidden_act", "gelu", origin), origin, "hidden_act");
    c.hidden_dropout = get_or<float>(j, "hidden_dropout_prob", 0.1f, origin);
    c.attention_dropout = get_or<float>(j, "attention_probs_dropout_prob", 0.1f, origin);
    c.classifier_dropout = get_or<float>(j, "classifier_dropout", c.hidden_dropout, origin);
    c.max_position_embeddings = get_or<int64_t>(j, "max_position_embeddings", 512, origin);
    c.type_vocab_size = get_or<int64_t>(j, "type_vocab_size", 2, origin);
    c.layer_norm_eps = get_or<float>(j, "layer_norm_eps", 1e-12f, origin);
    std::string positions = get_or<std::string>(j, "position_embedding_type", "absolute", origin);
    if (positions != "absolute")
      fail(origin, ": position_embedding_type '", positions, "' is not supported (only 'absolute')");
    if (get_or<bool>(j, "is_decoder", false, origin) || get_or<bool>(j, "add_cross_attention", false, origin))
      fail(origin, ": decoder / cross-attention BERT configs are not supported (encoder only)");
  } else if (model_type == "distilbert") {
    c.arch = Architecture::DistilBert;
    known = &kDistilBertKeys;
    c.vocab_size = get_or<int64_t>(j, "vocab_size", 30522, origin);
    c.hidden_size = get_or<int64_t>(j, "dim", 768, origin);
    c.num_layers = get_or<int64_t>(j, "n_layers", 6, origin);
    c.num_heads = get_or<int64_t>(j, "n_heads", 12, origin);
    c.intermediate_size = get_or<int64_t>(j, "hidden_dim", 3072, origin);
    c.activation = parse_activation(get_or<std::string>(j, "activation", "gelu", origin), origin, "activation");
    c.hidden_dropout = get_or<float>(j, "dropout", 0.1f, origin);
    c.attention_dropout = get_or<float>(j, "attention_dropout", 0.1f, origin);
    c.classifier_dropout = get_or<float>(j, "seq_classif_dropout", 0.2f, origin);
    c.max_position_embeddings = get_or<int64_t>(j, "max_position_embeddings", 512, origin);
    c.type_vocab_size = 0;
    c.layer_norm_eps = 1e-12f;  // fixed in DistilBERT's code
    if (get_or<bool>(j, "sinusoidal_pos_embds", false, origin))
      fail(origin, ": sinusoidal_pos_embds=true is not supported (learned positions only)");
  } else if (model_type.empty()) {
    fail(origin, ": missing 'model_type' (expected \"bert\" or \"distilbert\")");
  } else {
    fail(origin, ": model_type '", model_type, "' is not supported (expected \"bert\" or \"distilbert\")");
  }
  c.initializer_range = get_or<float>(j, "initializer_range", 0.02f, origin);
  c.pad_token_id = get_or<int32_t>(j, "pad_token_id", 0, origin);
  parse_labels(j, c, origin);
  if (j.contains("wattwise_pooling")) {
    const json& pooling = j["wattwise_pooling"];
    if (!pooling.is_string()) fail(origin, ": 'wattwise_pooling' must be a string (cls-pooler, cls or mean)");
    try {
      c.pooling = parse_pooling(pooling.get<std::string>());
    } catch (const Error& e) {
      fail(origin, ": ", e.what());
    }
  }
  for (auto& [key, value] : j.items())
    if (!known->count(key) && key != "wattwise_pooling") c.extra[key] = value;
  c.validate(origin);
  return c;
}

json read_config_json(const std::filesystem::path& path, std::filesystem::path& file) {
  file = std::filesystem::is_directory(path) ? path / "config.json" : path;
  std::ifstream in(file);
  if (!in) fail(file.string(), ": cannot open (", std::strerror(errno), ")");
  json j;
  try {
    in >> j;
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number like 1e400
    fail(file.string(), ": malformed JSON: ", e.what());
  }
  return j;
}

ModelConfig load_model_config(const std::filesystem::path& path) {
  std::filesystem::path file;
  const json j = read_config_json(path, file);
  return parse_model_config(j, file.string());
}

const char* pooling_name(Pooling pooling) {
  switch (pooling) {
    case Pooling::ClsPooler: return "cls-pooler";
    case Pooling::Cls: return "cls";
    case Pooling::Mean: return "mean";
  }
  return "cls-pooler";
}

Pooling parse_pooling(const std::string& text) {
  if (text == "cls-pooler") return Pooling::ClsPooler;
  if (text == "cls") return Pooling::Cls;
  if (text == "mean") return Pooling::Mean;
  fail("pooling '", text, "': expected cls-pooler, cls or mean");
}

json model_config_to_json(const ModelConfig& c) {
  json j = c.extra;
  // Written only when it is not what Hugging Face's class computes, so a default config stays plain.
  if (c.pooling != Pooling::ClsPooler) j["wattwise_pooling"] = pooling_name(c.pooling);
  j["model_type"] = architecture_name(c.arch);
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["initializer_range"] = config_json_float(c.initializer_range);
  j["pad_token_id"] = c.pad_token_id;
  const char* act = c.activation == Activation::Gelu ? "gelu" : "relu";
  if (c.arch == Architecture::Bert) {
    j["hidden_size"] = c.hidden_size;
    j["num_hidden_layers"] = c.num_layers;
    j["num_attention_heads"] = c.num_heads;
    j["intermediate_size"] = c.intermediate_size;
    j["hidden_act"] = act;
    j["hidden_dropout_prob"] = config_json_float(c.hidden_dropout);
    j["attention_probs_dropout_prob"] = config_json_float(c.attention_dropout);
    j["classifier_dropout"] = config_json_float(c.classifier_dropout);
    j["type_vocab_size"] = c.type_vocab_size;
    j["layer_norm_eps"] = config_json_float(c.layer_norm_eps);
    j["position_embedding_type"] = "absolute";
    if (!j.contains("architectures")) j["architectures"] = {"BertForSequenceClassification"};
  } else {
    j["dim"] = c.hidden_size;
    j["n_layers"] = c.num_layers;
    j["n_heads"] = c.num_heads;
    j["hidden_dim"] = c.intermediate_size;
    j["activation"] = act;
    j["dropout"] = config_json_float(c.hidden_dropout);
    j["attention_dropout"] = config_json_float(c.attention_dropout);
    j["seq_classif_dropout"] = config_json_float(c.classifier_dropout);
    j["sinusoidal_pos_embds"] = false;
    if (!j.contains("architectures")) j["architectures"] = {"DistilBertForSequenceClassification"};
  }
  json id2label = json::object(), label2id = json::object();
  for (int64_t i = 0; i < c.num_labels; ++i) {
    id2label[std::to_string(i)] = c.label_name(i);
    label2id[c.label_name(i)] = i;
  }
  j["id2label"] = id2label;
  j["label2id"] = label2id;
  if (c.regression) j["problem_type"] = "regression";
  else j["problem_type"] = "single_label_classification";
  return j;
}

ModelConfig preset_config(Architecture arch, const std::string& preset, int64_t vocab_size) {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = vocab_size;
  if (preset == "tiny") {
    c.hidden_size = 64, c.num_layers = 2, c.num_heads = 2, c.intermediate_size = 256;
  } else if (preset == "mini") {
    c.hidden_size = 256, c.num_layers = 4, c.num_heads = 4, c.intermediate_size = 1024;
  } else if (preset == "small") {
    c.hidden_size = 512, c.num_layers = 4, c.num_heads = 8, c.intermediate_size = 2048;
  } else if (preset == "minilm") {  // all-MiniLM-L6-v2's shape (the pretrained model we fine-tune)
    c.hidden_size = 384, c.num_layers = 6, c.num_heads = 12, c.intermediate_size = 1536;
  } else if (preset == "base") {
    c.hidden_size = 768, c.num_layers = arch == Architecture::Bert ? 12 : 6, c.num_heads = 12,
    c.intermediate_size = 3072;
  } else {
    fail("unknown preset '", preset, "' (expected tiny, mini, small, minilm or base)");
  }
  if (arch == Architecture::DistilBert) {
    c.type_vocab_size = 0;
    c.classifier_dropout = 0.2f;
  }
  c.validate("preset " + preset);
  return c;
}

}  // namespace ww::models

namespace ww::models {

double config_json_float(float value) {
  char text[32];
  const auto [end, ec] = std::to_chars(text, text + sizeof text, value);  // shortest round trip of the float
  WW_CHECK(ec == std::errc(), "config_json_float: cannot format ", value);
  return std::strtod(std::string(text, end).c_str(), nullptr);
}

void set_config_json_dtype(nlohmann::json& config, const std::string& name) {
  config["dtype"] = name;
  config["torch_dtype"] = name;
}

void save_model_config(const ModelConfig& config, const std::filesystem::path& path) {
  std::filesystem::path file = std::filesystem::is_directory(path) ? path / "config.json" : path;
  nlohmann::json j = model_config_to_json(config);
  // A model saved without a stated dtype (its weights are f32) still says so, in both names.
  set_config_json_dtype(j, j.value("dtype", j.value("torch_dtype", "float32")));
  io::write_file_atomic(file, j.dump(2) + "\n");
}

}  // namespace ww::models
