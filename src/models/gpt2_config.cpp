// Gpt2Config: Hugging Face GPT-2 config.json <-> struct, and the named presets.
#include <climits>
#include <cstdint>
#include <limits>
#include <set>
#include <type_traits>

#include "wattwise/core/checked.h"
#include "wattwise/core/error.h"
#include "wattwise/io/file.h"
#include "wattwise/models/config.h"
#include "wattwise/models/gpt2.h"

namespace ww::models {

namespace {
using nlohmann::json;

template <typename T>
T get_or(const json& j, const char* key, T fallback, const std::string& origin) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    // Range-checked into T: nlohmann's get<> would wrap 2^40 into an int32.
    if (!it->is_number_integer()) fail(origin, ": key '", key, "' has an invalid value ", it->dump());
    const bool too_big = it->is_number_unsigned() ? it->get<uint64_t>() > uint64_t(std::numeric_limits<T>::max())
                                                  : it->get<int64_t>() > int64_t(std::numeric_limits<T>::max());
    if (too_big || (!it->is_number_unsigned() && it->get<int64_t>() < int64_t(std::numeric_limits<T>::min())))
      fail(origin, ": key '", key, "' = ", it->dump(), " is out of range (", std::numeric_limits<T>::min(), "..",
           std::numeric_limits<T>::max(), ")");
    return T(it->get<int64_t>());
  } else {
    try {
      return it->get<T>();
    } catch (const std::exception&) {
      fail(origin, ": key '", key, "' has an invalid value ", it->dump());
    }
  }
}

// Keys from_json interprets (or checks); everything else is kept verbatim in `extra`.
const std::set<std::string> kKnownKeys = {
    "model_type", "vocab_size", "n_positions", "n_ctx", "n_embd", "n_layer", "n_head", "n_inner",
    "activation_function", "resid_pdrop", "embd_pdrop", "attn_pdrop", "layer_norm_epsilon",
    "initializer_range", "bos_token_id", "eos_token_id", "tie_word_embeddings", "scale_attn_weights",
    "scale_attn_by_inverse_layer_idx", "add_cross_attention", "is_decoder", "architectures"};
}  // namespace

void Gpt2Config::validate(const std::string& origin) const {
  // Every size indexes int32 token/position ids or is passed to kernels as int (n_embd also as the
  // MLP's 4 x n_embd).
  auto in_range = [&](int64_t v, const char* key, int64_t most) {
    if (v < 1 || v > most) fail(origin, ": ", key, " ", v, " is out of range (1..", most, ")");
  };
  in_range(vocab_size, "vocab_size", INT32_MAX);
  in_range(n_positions, "n_positions", INT32_MAX);
  in_range(n_embd, "n_embd", INT32_MAX / 4);
  in_range(n_layer, "n_layer", INT32_MAX);
  in_range(n_head, "n_head", INT32_MAX);
  if (n_embd % n_head != 0) fail(origin, ": n_embd ", n_embd, " is not a multiple of n_head ", n_head);
  try {
    parameter_count();
  } catch (const Error& e) {
    fail(origin, ": ", e.what());
  }
  for (auto [v, key] : {std::pair{resid_pdrop, "resid_pdrop"}, std::pair{embd_pdrop, "embd_pdrop"},
                        std::pair{attn_pdrop, "attn_pdrop"}})
    if (!(v >= 0.0f && v < 1.0f)) fail(origin, ": ", key, " must be in [0, 1), got ", v);
  if (!(layer_norm_epsilon > 0.0f)) fail(origin, ": layer_norm_epsilon must be positive, got ", layer_norm_epsilon);
  if (!(initializer_range >= 0.0f)) fail(origin, ": initializer_range must be >= 0, got ", initializer_range);
}

int64_t Gpt2Config::parameter_count() const {
  const int64_t C = n_embd;
  const int64_t embeddings = checked_mul(checked_add(vocab_size, n_positions, "vocab_size + n_positions"), C,
                                         "(vocab_size + n_positions) x n_embd");
  // Per layer: two LayerNorms (4 C), attention (4 C x C + 4 C), MLP (8 C x C + 5 C).
  const int64_t per_layer = checked_add(checked_mul(checked_mul(12, C, "n_embd (one layer)"), C, "n_embd (one layer)"),
                                        checked_mul(13, C, "n_embd (one layer)"), "n_embd (one layer)");
  return checked_add(checked_add(embeddings, checked_mul(n_layer, per_layer, "n_layer x one layer's parameters"),
                                 "the model's parameters"),
                     checked_mul(2, C, "n_embd"), "the model's parameters");
}

std::string Gpt2Config::sizes() const {
  return "n_layer " + std::to_string(n_layer) + ", n_embd " + std::to_string(n_embd) + ", n_head " +
         std::to_string(n_head) + ", vocab_size " + std::to_string(vocab_size) + ", n_positions " +
         std::to_string(n_positions);
}

void Gpt2Config::check_fits(Device device, int64_t bytes_per_parameter, const std::string& origin) const {
  const int64_t parameters = parameter_count();
  const size_t available = available_memory(device);
  const double needed = double(parameters) * double(bytes_per_parameter);
  if (available == SIZE_MAX || needed <= double(available)) return;
  const double C = double(n_embd);
  const double layers = double(n_layer) * 12 * C * C, vocab = double(vocab_size) * C, positions = double(n_positions) * C;
  std::string culprit;
  if (layers >= vocab && layers >= positions)
    culprit = "n_layer " + std::to_string(n_layer) + " x n_embd " + std::to_string(n_embd);
  else if (vocab >= positions)
    culprit = "vocab_size " + std::to_string(vocab_size) + " x n_embd " + std::to_string(n_embd);
  else
    culprit = "n_positions " + std::to_string(n_positions) + " x n_embd " + std::to_string(n_embd);
  fail(origin, ": the model has ", parameters, " parameters (mostly ", culprit, "), at least ", format_bytes(needed),
       " on ", device.str(), ", but only ", format_bytes(double(available)), " is available; check those keys");
}

Gpt2Config Gpt2Config::from_json(const json& j, const std::string& origin) {
  if (!j.is_object()) fail(origin, ": expected a JSON object");
  const std::string model_type = get_or<std::string>(j, "model_type", "gpt2", origin);
  if (model_type != "gpt2") fail(origin, ": model_type '", model_type, "' is not a GPT-2 config (expected \"gpt2\")");
  Gpt2Config c;
  c.vocab_size = get_or<int64_t>(j, "vocab_size", c.vocab_size, origin);
  c.n_positions = get_or<int64_t>(j, "n_positions", c.n_positions, origin);
  c.n_embd = get_or<int64_t>(j, "n_embd", c.n_embd, origin);
  c.n_layer = get_or<int64_t>(j, "n_layer", c.n_layer, origin);
  c.n_head = get_or<int64_t>(j, "n_head", c.n_head, origin);
  c.resid_pdrop = get_or<float>(j, "resid_pdrop", c.resid_pdrop, origin);
  c.embd_pdrop = get_or<float>(j, "embd_pdrop", c.embd_pdrop, origin);
  c.attn_pdrop = get_or<float>(j, "attn_pdrop", c.attn_pdrop, origin);
  c.layer_norm_epsilon = get_or<float>(j, "layer_norm_epsilon", c.layer_norm_epsilon, origin);
  c.initializer_range = get_or<float>(j, "initializer_range", c.initializer_range, origin);
  c.bos_token_id = get_or<int32_t>(j, "bos_token_id", c.bos_token_id, origin);
  c.eos_token_id = get_or<int32_t>(j, "eos_token_id", c.eos_token_id, origin);

  c.validate(origin);  // before the checks below compute with the sizes

  // What wattwise's GPT-2 computes; anything else would silently be another function.
  const int64_t inner = get_or<int64_t>(j, "n_inner", 4 * c.n_embd, origin);
  if (inner != 4 * c.n_embd) fail(origin, ": n_inner ", inner, " is not supported (wattwise's GPT-2 uses 4·n_embd = ", 4 * c.n_embd, ")");
  const std::string act = get_or<std::string>(j, "activation_function", "gelu_new", origin);
  if (act != "gelu_new" && act != "gelu_pytorch_tanh")
    fail(origin, ": activation_function '", act, "' is not supported (expected gelu_new, the tanh form)");
  if (!get_or<bool>(j, "tie_word_embeddings", true, origin))
    fail(origin, ": tie_word_embeddings false is not supported (the LM head is the token embedding)");
  if (!get_or<bool>(j, "scale_attn_weights", true, origin))
    fail(origin, ": scale_attn_weights false is not supported");
  if (get_or<bool>(j, "scale_attn_by_inverse_layer_idx", false, origin))
    fail(origin, ": scale_attn_by_inverse_layer_idx true is not supported");
  if (get_or<bool>(j, "add_cross_attention", false, origin))
    fail(origin, ": add_cross_attention true is not supported (no encoder-decoder GPT-2)");
  for (auto& [key, value] : j.items())
    if (!kKnownKeys.count(key)) c.extra[key] = value;
  return c;
}

json Gpt2Config::to_json() const {
  json j = extra;
  j["architectures"] = json::array({"GPT2LMHeadModel"});
  j["model_type"] = "gpt2";
  j["vocab_size"] = vocab_size;
  j["n_positions"] = n_positions;
  j["n_embd"] = n_embd;
  j["n_layer"] = n_layer;
  j["n_head"] = n_head;
  j["n_inner"] = nullptr;
  j["activation_function"] = "gelu_new";
  j["resid_pdrop"] = config_json_float(resid_pdrop);
  j["embd_pdrop"] = config_json_float(embd_pdrop);
  j["attn_pdrop"] = config_json_float(attn_pdrop);
  j["layer_norm_epsilon"] = config_json_float(layer_norm_epsilon);
  j["initializer_range"] = config_json_float(initializer_range);
  j["bos_token_id"] = bos_token_id;
  j["eos_token_id"] = eos_token_id;
  j["tie_word_embeddings"] = true;
  j["scale_attn_weights"] = true;
  return j;
}

Gpt2Config Gpt2Config::load(const std::filesystem::path& path) {
  std::filesystem::path file;
  const json j = read_config_json(path, file);
  return from_json(j, file.string());
}

void Gpt2Config::save(const std::filesystem::path& path) const {
  const std::filesystem::path file = std::filesystem::is_directory(path) ? path / "config.json" : path;
  io::write_file_atomic(file, to_json().dump(2) + "\n");
}

Gpt2Config Gpt2Config::preset(const std::string& name, int64_t vocab_size) {
  Gpt2Config c;
  if (name == "tiny") {
    c.n_layer = 2, c.n_embd = 64, c.n_head = 4, c.n_positions = 64;
  } else if (name == "mini") {
    c.n_layer = 4, c.n_embd = 256, c.n_head = 4, c.n_positions = 512;
  } else if (name == "small") {
    c.n_layer = 12, c.n_embd = 768, c.n_head = 12, c.n_positions = 1024;
  } else {
    fail("GPT-2 preset '", name, "': expected tiny, mini or small");
  }
  if (vocab_size > 0) c.vocab_size = vocab_size;
  // GPT-2's <|endoftext|> (50256) as beginning and end of text; a smaller vocabulary's last id.
  if (c.vocab_size <= c.eos_token_id) c.bos_token_id = c.eos_token_id = int32_t(c.vocab_size - 1);
  c.validate("GPT-2 preset " + name);
  return c;
}

}  // namespace ww::models
