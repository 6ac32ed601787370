#include "wattwise/models/config.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>

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

void ModelConfig::validate(const std::string& origin) const {
  auto positive = [&](int64_t v, const char* key) {
    if (v <= 0) fail(origin, ": ", key, " must be positive, got ", v);
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(num_layers, "num_hidden_layers");
  positive(num_heads, "num_attention_heads");
  positive(intermediate_size, "intermediate_size");
  positive(max_position_embeddings, "max_position_embeddings");
  positive(num_labels, "num_labels");
  if (hidden_size % num_heads != 0)
    fail(origin, ": hidden size ", hidden_size, " is not a multiple of the number of heads ", num_heads);
  if (type_vocab_size < 0) fail(origin, ": type_vocab_size must not be negative");
  if (pad_token_id < 0 || pad_token_id >= vocab_size)
    fail(origin, ": pad_token_id ", pad_token_id, " is outside the vocabulary of ", vocab_size);
  for (float p : {hidden_dropout, attention_dropout, classifier_dropout})
    if (!(p >= 0.0f && p < 1.0f)) fail(origin, ": dropout probabilities must be in [0, 1), got ", p);
  if (!(layer_norm_eps > 0.0f)) fail(origin, ": layer_norm_eps must be positive");
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
      return T(it->get<int64_t>());
    } else {
      return it->get<T>();
    }
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

ModelConfig load_model_config(const std::filesystem::path& path) {
  std::filesystem::path file = std::filesystem::is_directory(path) ? path / "config.json" : path;
  std::ifstream in(file);
  if (!in) fail(file.string(), ": cannot open (", std::strerror(errno), ")");
  json j;
  try {
    in >> j;
  } catch (const json::parse_error& e) {
    fail(file.string(), ": malformed JSON: ", e.what());
  }
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
  j["initializer_range"] = c.initializer_range;
  j["pad_token_id"] = c.pad_token_id;
  const char* act = c.activation == Activation::Gelu ? "gelu" : "relu";
  if (c.arch == Architecture::Bert) {
    j["hidden_size"] = c.hidden_size;
    j["num_hidden_layers"] = c.num_layers;
    j["num_attention_heads"] = c.num_heads;
    j["intermediate_size"] = c.intermediate_size;
    j["hidden_act"] = act;
    j["hidden_dropout_prob"] = c.hidden_dropout;
    j["attention_probs_dropout_prob"] = c.attention_dropout;
    j["classifier_dropout"] = c.classifier_dropout;
    j["type_vocab_size"] = c.type_vocab_size;
    j["layer_norm_eps"] = c.layer_norm_eps;
    j["position_embedding_type"] = "absolute";
    if (!j.contains("architectures")) j["architectures"] = {"BertForSequenceClassification"};
  } else {
    j["dim"] = c.hidden_size;
    j["n_layers"] = c.num_layers;
    j["n_heads"] = c.num_heads;
    j["hidden_dim"] = c.intermediate_size;
    j["activation"] = act;
    j["dropout"] = c.hidden_dropout;
    j["attention_dropout"] = c.attention_dropout;
    j["seq_classif_dropout"] = c.classifier_dropout;
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
  } else if (preset == "minilm") {  // all-MiniLM-L6-v2's shape (issue 9's fine-tuning runs)
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

void save_model_config(const ModelConfig& config, const std::filesystem::path& path) {
  std::filesystem::path file = std::filesystem::is_directory(path) ? path / "config.json" : path;
  nlohmann::json j = model_config_to_json(config);
  j["torch_dtype"] = j.value("torch_dtype", "float32");
  io::write_file_atomic(file, j.dump(2) + "\n");
}

}  // namespace ww::models
