#pragma once
// Reading tokenizer files (vocab.json, tokenizer.json, tokenizer_config.json): the shared helpers
// of the WordPiece and BPE loaders, each error naming the file and the key at fault.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

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

}  // namespace ww::text::detail
