#pragma once
// Reading and writing tokenizer files (vocab.json, tokenizer.json, tokenizer_config.json): the
// shared helpers of the WordPiece and BPE loaders and savers, each error naming the file and the
// key at fault.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "wattwise/core/error.h"
#include "wattwise/io/file.h"

namespace ww::text::detail {

inline std::string json_type_name(const nlohmann::json& value) { return value.type_name(); }

// The file's bytes; `what` says which file this is ("vocabulary", "tokenizer file").
inline std::string read_whole_file(const std::filesystem::path& path, const char* what) {
  try {
    return io::read_file(path);
  } catch (const Error& e) {
    fail(what, ": ", e.what());
  }
}

inline nlohmann::json parse_json_file(const std::filesystem::path& path, const std::string& text) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for a number like 1e400
    fail(path.string(), ": invalid JSON: ", e.what());
  }
}

// Optional members; `where` names the object for error messages.
inline bool get_bool(const nlohmann::json& object, const char* key, bool fallback, const std::string& where) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) fail(where, ".", key, " must be true or false, not ", json_type_name(*it));
  return it->get<bool>();
}

inline std::optional<bool> get_optional_bool(const nlohmann::json& object, const char* key,
                                             const std::string& where) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) fail(where, ".", key, " must be true, false or null, not ", json_type_name(*it));
  return it->get<bool>();
}

inline std::string get_string(const nlohmann::json& object, const char* key, const std::string& fallback,
                              const std::string& where) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_string()) fail(where, ".", key, " must be a string, not ", json_type_name(*it));
  return it->get<std::string>();
}

// A vocabulary as the JSON object token -> id in id order (vocab.json, tokenizer.json's
// model.vocab). The entries go straight into the object's vector: ordered_json's operator[]
// searches the keys before every insert, O(n^2) over GPT-2's 50,257 tokens (1.7 s a save on a
// 2-core EPYC, and training saves best_model at every improvement). The tokenizers refuse
// duplicate tokens when they load, so nothing is lost by not searching.
inline nlohmann::ordered_json vocab_object(std::vector<std::pair<std::string, int32_t>> vocab) {
  std::sort(vocab.begin(), vocab.end(), [](const auto& x, const auto& y) { return x.second < y.second; });
  nlohmann::ordered_json object = nlohmann::ordered_json::object();
  auto& entries = object.get_ref<nlohmann::ordered_json::object_t&>();
  entries.reserve(vocab.size());
  for (auto& [token, id] : vocab) entries.emplace_back(std::move(token), id);
  return object;
}

}  // namespace ww::text::detail
