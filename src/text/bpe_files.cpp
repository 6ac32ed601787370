// Byte-level BPE's files: tokenizer.json, or vocab.json + merges.txt (+ tokenizer_config.json),
// read into a BpeConfig. The tokenizer itself (pre-tokenizer, merges, construction, save) is bpe.cpp.
#include "wattwise/text/bpe.h"

#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <nlohmann/json.hpp>
#include <queue>
#include <unordered_map>

#include "wattwise/core/error.h"
#include "wattwise/io/file.h"
#include "wattwise/text/utf8.h"
#include "wattwise/text/wordpiece.h"  // truncate_longest_first
#include "text/json_read.h"

namespace ww::text {

using detail::get_bool;
using detail::json_type_name;
using detail::parse_json_file;
using detail::read_whole_file;
// ---- loading ---------------------------------------------------------------------------------

namespace {

int32_t get_id(const nlohmann::json& value, const std::string& where) {
  if (!value.is_number_integer()) fail(where, " must be an integer id, not ", json_type_name(value));
  int64_t id = value.get<int64_t>();
  if (id < 0 || id > INT32_MAX) fail(where, " must be an id between 0 and ", INT32_MAX, ", not ", id);
  return int32_t(id);
}


std::vector<std::pair<std::string, int32_t>> parse_vocab(const nlohmann::json& vocab,
                                                         const std::string& where) {
  if (!vocab.is_object()) fail(where, " must be an object of token -> id");
  std::vector<std::pair<std::string, int32_t>> out;
  out.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    out.emplace_back(it.key(), get_id(it.value(), where + "[\"" + it.key() + "\"]"));
  }
  return out;
}

// "left right" as in merges.txt and older tokenizer.json files.
std::pair<std::string, std::string> split_merge(std::string_view line, const std::string& where) {
  size_t space = line.find(' ');
  if (space == std::string_view::npos || line.find(' ', space + 1) != std::string_view::npos ||
      space == 0 || space + 1 == line.size()) {
    fail(where, ": expected two tokens separated by one space, not \"", line, "\"");
  }
  return {std::string(line.substr(0, space)), std::string(line.substr(space + 1))};
}

// A token of tokenizer_config.json: a string or an AddedToken-like object.
std::optional<std::string> config_token(const nlohmann::json& config, const char* key,
                                        const std::string& where) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  fail(where, ".", key, " must be a string or an object with \"content\"");
}

// Added tokens here are matched exactly where they appear; the flags that change that are refused.
BpeAddedToken parse_added_token(const nlohmann::json& j, int32_t id, const std::string& where) {
  if (!j.is_object()) fail(where, " must be an object, not ", json_type_name(j));
  auto content = j.find("content");
  if (content == j.end() || !content->is_string()) fail(where, ".content must be a string");
  for (const char* flag : {"single_word", "lstrip", "rstrip"}) {
    if (get_bool(j, flag, false, where)) {
      fail(where, ".", flag, " is true; byte-level BPE added tokens with ", flag, " are not supported");
    }
  }
  return BpeAddedToken{content->get<std::string>(), id, get_bool(j, "special", false, where)};
}

// pad_token and added_tokens_decoder of a tokenizer_config.json, into `c`.
void apply_tokenizer_config(const std::filesystem::path& path, BpeConfig& c, bool take_added_tokens) {
  c.tokenizer_config_json = read_whole_file(path, "tokenizer config");
  nlohmann::json config = parse_json_file(path, c.tokenizer_config_json);
  const std::string where = path.string();
  if (!config.is_object()) fail(where, ": expected a JSON object, not ", json_type_name(config));
  c.pad_token = config_token(config, "pad_token", where);
  if (!take_added_tokens) return;
  auto decoder = config.find("added_tokens_decoder");
  if (decoder == config.end() || !decoder->is_object()) return;
  c.added_tokens.clear();
  for (auto it = decoder->begin(); it != decoder->end(); ++it) {
    const std::string at = where + ": added_tokens_decoder[\"" + it.key() + "\"]";
    int32_t id = 0;
    try {
      size_t used = 0;
      long value = std::stol(it.key(), &used);
      if (used != it.key().size() || value < 0 || value > INT32_MAX) throw std::invalid_argument("id");
      id = int32_t(value);
    } catch (const std::exception&) {
      fail(at, ": the key must be a token id");
    }
    c.added_tokens.push_back(parse_added_token(it.value(), id, at));
  }
}

}  // namespace

std::string tokenizer_json_model_type(const std::filesystem::path& path) {
  std::string text = read_whole_file(path, "tokenizer file");
  nlohmann::json j = parse_json_file(path, text);
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) return "";
  const nlohmann::json& model = j["model"];
  if (model.contains("type") && model["type"].is_string()) return model["type"].get<std::string>();
  return model.contains("merges") ? "BPE" : "";  // older files omit the type
}

std::unique_ptr<BpeTokenizer> load_bpe_files(
    const std::filesystem::path& vocab_json, const std::filesystem::path& merges_txt,
    const std::optional<std::filesystem::path>& tokenizer_config_json) {
  BpeConfig c;
  {
    std::string text = read_whole_file(vocab_json, "vocabulary");
    c.vocab = parse_vocab(parse_json_file(vocab_json, text), vocab_json.string());
  }
  std::string text = read_whole_file(merges_txt, "merges");
  size_t line_number = 0, begin = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    ++line_number;
    std::string_view line(text.data() + begin, end - begin);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    begin = end + 1;
    if (line.rfind("#version", 0) == 0) continue;
    const std::string where = merges_txt.string() + ":" + std::to_string(line_number);
    if (auto problem = find_invalid_utf8(line)) {
      fail(where, ": invalid UTF-8: ", problem->reason, " at byte ", problem->offset);
    }
    c.merges.push_back(split_merge(line, where));
  }
  // GPT2TokenizerFast makes <|endoftext|> its bos/eos/unk token, an added special token.
  for (const auto& [token, id] : c.vocab) {
    if (token == "<|endoftext|>") c.added_tokens.push_back({token, id, true});
  }
  std::string source = vocab_json.string() + " + " + merges_txt.string();
  if (tokenizer_config_json) {
    apply_tokenizer_config(*tokenizer_config_json, c, /*take_added_tokens=*/true);
    source += " + " + tokenizer_config_json->string();
  }
  return std::make_unique<BpeTokenizer>(std::move(c), source);
}

std::unique_ptr<BpeTokenizer> load_bpe_tokenizer_json(
    const std::filesystem::path& path,
    const std::optional<std::filesystem::path>& tokenizer_config_json) {
  const std::string file = path.string();
  std::string text = read_whole_file(path, "tokenizer file");
  nlohmann::json j = parse_json_file(path, text);
  if (!j.is_object()) fail(file, ": expected a JSON object, not ", json_type_name(j));
  BpeConfig c;
  c.source_tokenizer_json = std::move(text);

  const nlohmann::json model = j.value("model", nlohmann::json());
  if (!model.is_object()) fail(file, ": missing \"model\" object");
  const std::string where = file + ": model";
  if (model.contains("type") && model["type"] != "BPE") {
    fail(where, ".type is ", model["type"].dump(), "; expected \"BPE\"");
  }
  if (model.contains("dropout") && !model["dropout"].is_null() &&
      !(model["dropout"].is_number() && model["dropout"].get<double>() == 0.0)) {
    fail(where, ".dropout is ", model["dropout"].dump(), "; BPE dropout is not supported (use null)");
  }
  if (model.contains("unk_token") && !model["unk_token"].is_null()) {
    fail(where, ".unk_token is ", model["unk_token"].dump(),
         "; only byte-level BPE without an unknown token (GPT-2 style, null) is supported");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && !model[key].is_null() && model[key] != "") {
      fail(where, ".", key, " is ", model[key].dump(), "; only \"\" or null is supported");
    }
  }
  if (get_bool(model, "byte_fallback", false, where)) fail(where, ".byte_fallback is not supported");
  c.ignore_merges = get_bool(model, "ignore_merges", false, where);
  c.vocab = parse_vocab(model.value("vocab", nlohmann::json()), where + ".vocab");
  const nlohmann::json merges = model.value("merges", nlohmann::json());
  if (!merges.is_array()) fail(where, ".merges must be an array");
  c.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string at = where + ".merges[" + std::to_string(i) + "]";
    const nlohmann::json& m = merges[i];
    if (m.is_string()) {
      c.merges.push_back(split_merge(m.get<std::string>(), at));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      c.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      fail(at, " must be \"left right\" or [\"left\", \"right\"]");
    }
  }

  const nlohmann::json normalizer = j.value("normalizer", nlohmann::json());
  if (!normalizer.is_null()) fail(file, ": normalizer must be null for a byte-level BPE tokenizer");
  const nlohmann::json pre = j.value("pre_tokenizer", nlohmann::json());
  if (!pre.is_object() || pre.value("type", std::string()) != "ByteLevel") {
    fail(file, ": pre_tokenizer must be ByteLevel (GPT-2 style), not ", pre.dump());
  }
  if (get_bool(pre, "add_prefix_space", false, file + ": pre_tokenizer")) {
    fail(file, ": pre_tokenizer.add_prefix_space true is not supported (GPT-2 uses false)");
  }
  if (!get_bool(pre, "use_regex", true, file + ": pre_tokenizer")) {
    fail(file, ": pre_tokenizer.use_regex false is not supported (GPT-2 uses true)");
  }

  const nlohmann::json post = j.value("post_processor", nlohmann::json());
  if (!post.is_null()) {
    const std::string ptype = post.is_object() ? post.value("type", std::string()) : std::string();
    if (ptype == "TemplateProcessing") {
      // Only templates without special tokens: "A" and "A B" (as GPT2TokenizerFast writes them).
      auto check = [&](const char* key, size_t pieces) {
        const nlohmann::json t = post.value(key, nlohmann::json());
        bool ok = t.is_array() && t.size() == pieces;
        for (size_t i = 0; ok && i < t.size(); ++i) {
          ok = t[i].contains("Sequence") && t[i]["Sequence"].value("id", "") == (i == 0 ? "A" : "B");
        }
        if (!ok) {
          fail(file, ": post_processor.", key, " must be the plain sequence",
               pieces == 1 ? " A" : "s A B", " (special tokens are not supported for byte-level BPE)");
        }
        return t;
      };
      check("single", 1);
      const nlohmann::json pair = check("pair", 2);
      c.pair_type_id = int32_t(pair[1]["Sequence"].value("type_id", 0));
    } else if (ptype != "ByteLevel") {
      fail(file, ": post_processor.type is \"", ptype, "\"; only ByteLevel, a TemplateProcessing without "
           "special tokens, or null is supported");
    }
  }
  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    const nlohmann::json& added = j["added_tokens"];
    if (!added.is_array()) fail(file, ": added_tokens must be an array");
    for (size_t i = 0; i < added.size(); ++i) {
      const std::string at = file + ": added_tokens[" + std::to_string(i) + "]";
      if (!added[i].is_object() || !added[i].contains("id")) fail(at, ".id is missing");
      c.added_tokens.push_back(parse_added_token(added[i], get_id(added[i]["id"], at + ".id"), at));
    }
  }
  std::string source = file;
  if (tokenizer_config_json) {
    apply_tokenizer_config(*tokenizer_config_json, c, /*take_added_tokens=*/false);
    source += " + " + tokenizer_config_json->string();
  }
  return std::make_unique<BpeTokenizer>(std::move(c), source);
}

}  // namespace ww::text
