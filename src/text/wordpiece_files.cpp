// WordPiece's files: tokenizer.json and vocab.txt (+ tokenizer_config.json) read into a
// WordPieceConfig, and a tokenizer.json written for a tokenizer that came from vocab.txt. The
// tokenizer itself (normalizer, pre-tokenizer, WordPiece, construction, save) is wordpiece.cpp.
#include "wattwise/text/wordpiece.h"
#include "text/wordpiece_files.h"

#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "wattwise/io/file.h"
#include "wattwise/core/error.h"
#include "wattwise/text/utf8.h"
#include "text/json_read.h"

namespace ww::text {

using detail::get_bool;
using detail::get_optional_bool;
using detail::get_string;
using detail::json_type_name;
using detail::parse_json_file;
using detail::read_whole_file;

// ---- saving ----------------------------------------------------------------------------------


namespace {

nlohmann::ordered_json added_token_json(const AddedToken& token) {
  return {{"id", token.id},          {"content", token.content}, {"single_word", token.single_word},
          {"lstrip", token.lstrip},  {"rstrip", token.rstrip},   {"normalized", token.normalized},
          {"special", token.special}};
}

}  // namespace

// A tokenizer.json equivalent to `config` (used when it was loaded from vocab.txt).
std::string generate_tokenizer_json(const WordPieceConfig& c, const WordPieceTokenizer& tokenizer) {
  nlohmann::ordered_json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = nlohmann::ordered_json::array();
  for (const AddedToken& token : c.added_tokens) j["added_tokens"].push_back(added_token_json(token));
  if (c.has_normalizer) {
    j["normalizer"] = {{"type", "BertNormalizer"},
                       {"clean_text", c.normalizer.clean_text},
                       {"handle_chinese_chars", c.normalizer.handle_chinese_chars},
                       {"strip_accents", c.normalizer.strip_accents
                                             ? nlohmann::ordered_json(*c.normalizer.strip_accents)
                                             : nlohmann::ordered_json(nullptr)},
                       {"lowercase", c.normalizer.lowercase}};
  } else {
    j["normalizer"] = nullptr;
  }
  j["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
  auto template_json = [&](const std::vector<TemplatePiece>& templ, nlohmann::ordered_json& specials) {
    nlohmann::ordered_json pieces = nlohmann::ordered_json::array();
    for (const TemplatePiece& piece : templ) {
      if (piece.kind == TemplatePiece::Kind::kSpecial) {
        std::string name;
        std::vector<std::string> tokens;
        for (int32_t id : piece.ids) {
          tokens.push_back(tokenizer.id_to_token(id));
          name += tokens.back();
        }
        pieces.push_back({{"SpecialToken", {{"id", name}, {"type_id", piece.type_id}}}});
        specials[name] = {{"id", name}, {"ids", piece.ids}, {"tokens", tokens}};
      } else {
        const char* which = piece.kind == TemplatePiece::Kind::kSequenceA ? "A" : "B";
        pieces.push_back({{"Sequence", {{"id", which}, {"type_id", piece.type_id}}}});
      }
    }
    return pieces;
  };
  if (c.single_template.empty() && c.pair_template.empty()) {
    j["post_processor"] = nullptr;
  } else {
    nlohmann::ordered_json specials = nlohmann::ordered_json::object();
    nlohmann::ordered_json single = template_json(c.single_template, specials);
    nlohmann::ordered_json pair = template_json(c.pair_template, specials);
    j["post_processor"] = {{"type", "TemplateProcessing"},
                           {"single", single},
                           {"pair", pair},
                           {"special_tokens", specials}};
  }
  j["decoder"] = {{"type", "WordPiece"}, {"prefix", c.continuing_subword_prefix}, {"cleanup", true}};
  j["model"] = {{"type", "WordPiece"},
                {"unk_token", c.unk_token},
                {"continuing_subword_prefix", c.continuing_subword_prefix},
                {"max_input_chars_per_word", c.max_input_chars_per_word},
                {"vocab", detail::vocab_object(c.vocab)}};
  return j.dump(2) + "\n";
}

// ---- loading ---------------------------------------------------------------------------------

namespace {






int64_t get_int(const nlohmann::json& value, const std::string& where) {
  if (!value.is_number_integer()) fail(where, " must be an integer, not ", json_type_name(value));
  return value.get<int64_t>();
}

int32_t get_id(const nlohmann::json& value, const std::string& where) {
  int64_t id = get_int(value, where);
  if (id < 0 || id > INT32_MAX) fail(where, " must be an id between 0 and ", INT32_MAX, ", not ", id);
  return int32_t(id);
}

AddedToken parse_added_token(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) fail(where, " must be an object, not ", json_type_name(j));
  AddedToken token;
  auto content = j.find("content");
  if (content == j.end() || !content->is_string()) fail(where, ".content must be a string");
  token.content = content->get<std::string>();
  if (token.content.empty()) fail(where, ".content must not be empty");
  token.special = get_bool(j, "special", false, where);
  token.single_word = get_bool(j, "single_word", false, where);
  token.lstrip = get_bool(j, "lstrip", false, where);
  token.rstrip = get_bool(j, "rstrip", false, where);
  token.normalized = get_bool(j, "normalized", !token.special, where);
  return token;
}

std::vector<TemplatePiece> parse_template(const nlohmann::json& pieces,
                                          const nlohmann::json& special_tokens,
                                          const std::string& where) {
  if (!pieces.is_array()) fail(where, " must be an array");
  std::vector<TemplatePiece> out;
  for (size_t i = 0; i < pieces.size(); ++i) {
    const nlohmann::json& p = pieces[i];
    const std::string at = where + "[" + std::to_string(i) + "]";
    TemplatePiece piece;
    if (p.contains("SpecialToken")) {
      const nlohmann::json& s = p["SpecialToken"];
      std::string name = get_string(s, "id", "", at + ".SpecialToken");
      piece.type_id = int32_t(get_int(s.value("type_id", nlohmann::json(0)), at + ".SpecialToken.type_id"));
      if (!special_tokens.is_object() || !special_tokens.contains(name)) {
        fail(at, ": special token \"", name, "\" is not in post_processor.special_tokens");
      }
      const nlohmann::json& ids = special_tokens[name]["ids"];
      if (!ids.is_array() || ids.empty()) fail(where, ": special_tokens.", name, ".ids must be a non-empty array");
      for (const auto& id : ids) piece.ids.push_back(get_id(id, "special_tokens." + name + ".ids[]"));
    } else if (p.contains("Sequence")) {
      const nlohmann::json& s = p["Sequence"];
      std::string which = get_string(s, "id", "", at + ".Sequence");
      if (which == "A") piece.kind = TemplatePiece::Kind::kSequenceA;
      else if (which == "B") piece.kind = TemplatePiece::Kind::kSequenceB;
      else fail(at, ".Sequence.id must be \"A\" or \"B\", not \"", which, "\"");
      piece.type_id = int32_t(get_int(s.value("type_id", nlohmann::json(0)), at + ".Sequence.type_id"));
    } else {
      fail(at, " must hold SpecialToken or Sequence");
    }
    out.push_back(std::move(piece));
  }
  return out;
}

std::string read_optional_config(const std::optional<std::filesystem::path>& path) {
  if (!path) return {};
  std::string text = read_whole_file(*path, "tokenizer config");
  nlohmann::json j = parse_json_file(*path, text);
  if (!j.is_object()) fail(path->string(), ": expected a JSON object, not ", json_type_name(j));
  return text;
}

std::unique_ptr<WordPieceTokenizer> load_tokenizer_json(
    const std::filesystem::path& path, const std::optional<std::filesystem::path>& config_path) {
  const std::string file = path.string();
  std::string text = read_whole_file(path, "tokenizer file");
  nlohmann::json j = parse_json_file(path, text);
  if (!j.is_object()) fail(file, ": expected a JSON object, not ", json_type_name(j));

  WordPieceConfig c;
  c.source_tokenizer_json = std::move(text);
  c.tokenizer_config_json = read_optional_config(config_path);

  const nlohmann::json& model = j.contains("model") ? j["model"] : nlohmann::json();
  if (!model.is_object()) fail(file, ": missing \"model\" object");
  // Older files omit model.type; HF then recognises WordPiece by its fields.
  std::string type = get_string(model, "type", "", file + ": model");
  bool untyped_wordpiece = type.empty() && !model.contains("merges") &&
                           (model.contains("continuing_subword_prefix") ||
                            model.contains("max_input_chars_per_word"));
  if (type != "WordPiece" && !untyped_wordpiece) {
    fail(file, ": model.type is \"", type.empty() ? "(missing)" : type,
         "\"; only WordPiece tokenizers are supported here");
  }
  auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object()) fail(file, ": model.vocab must be an object of token -> id");
  c.vocab.reserve(vocab->size());
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    c.vocab.emplace_back(it.key(), get_id(it.value(), file + ": model.vocab[\"" + it.key() + "\"]"));
  }
  c.unk_token = get_string(model, "unk_token", "[UNK]", file + ": model");
  c.continuing_subword_prefix = get_string(model, "continuing_subword_prefix", "##", file + ": model");
  if (model.contains("max_input_chars_per_word") && !model["max_input_chars_per_word"].is_null()) {
    c.max_input_chars_per_word =
        int(get_int(model["max_input_chars_per_word"], file + ": model.max_input_chars_per_word"));
  }

  const nlohmann::json normalizer = j.value("normalizer", nlohmann::json());
  if (normalizer.is_null()) {
    c.has_normalizer = false;
  } else {
    std::string where = file + ": normalizer";
    if (!normalizer.is_object()) fail(where, " must be an object or null");
    std::string ntype = get_string(normalizer, "type", "", where);
    if (ntype != "BertNormalizer") {
      fail(where, ".type is \"", ntype, "\"; only BertNormalizer (or null) is supported");
    }
    c.normalizer.clean_text = get_bool(normalizer, "clean_text", true, where);
    c.normalizer.handle_chinese_chars = get_bool(normalizer, "handle_chinese_chars", true, where);
    c.normalizer.strip_accents = get_optional_bool(normalizer, "strip_accents", where);
    c.normalizer.lowercase = get_bool(normalizer, "lowercase", true, where);
  }

  const nlohmann::json pre = j.value("pre_tokenizer", nlohmann::json());
  std::string pre_type = pre.is_object() ? pre.value("type", std::string()) : std::string("null");
  if (pre_type != "BertPreTokenizer") {
    fail(file, ": pre_tokenizer is ", pre_type, "; only BertPreTokenizer is supported");
  }

  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    const nlohmann::json& added = j["added_tokens"];
    if (!added.is_array()) fail(file, ": added_tokens must be an array");
    for (size_t i = 0; i < added.size(); ++i) {
      std::string where = file + ": added_tokens[" + std::to_string(i) + "]";
      AddedToken token = parse_added_token(added[i], where);
      if (!added[i].contains("id")) fail(where, ".id is missing");
      token.id = get_id(added[i]["id"], where + ".id");
      c.added_tokens.push_back(std::move(token));
    }
  }

  const nlohmann::json post = j.value("post_processor", nlohmann::json());
  if (post.is_null()) {
    using Kind = TemplatePiece::Kind;
    c.single_template = {{Kind::kSequenceA, {}, 0}};
    c.pair_template = {{Kind::kSequenceA, {}, 0}, {Kind::kSequenceB, {}, 0}};
  } else {
    std::string where = file + ": post_processor";
    if (!post.is_object()) fail(where, " must be an object or null");
    std::string ptype = get_string(post, "type", "", where);
    if (ptype == "TemplateProcessing") {
      const nlohmann::json specials = post.value("special_tokens", nlohmann::json::object());
      c.single_template = parse_template(post.value("single", nlohmann::json()), specials, where + ".single");
      c.pair_template = parse_template(post.value("pair", nlohmann::json()), specials, where + ".pair");
    } else if (ptype == "BertProcessing") {
      auto id_of = [&](const char* key) {
        const nlohmann::json entry = post.value(key, nlohmann::json());
        if (!entry.is_array() || entry.size() != 2) fail(where, ".", key, " must be [token, id]");
        return get_id(entry[1], where + "." + key + "[1]");
      };
      c.single_template = bert_single_template(id_of("cls"), id_of("sep"));
      c.pair_template = bert_pair_template(id_of("cls"), id_of("sep"));
    } else {
      fail(where, ".type is \"", ptype, "\"; only TemplateProcessing, BertProcessing or null is supported");
    }
  }

  const nlohmann::json padding = j.value("padding", nlohmann::json());
  c.pad_token = padding.is_object() ? padding.value("pad_token", std::string("[PAD]")) : "[PAD]";
  return std::make_unique<WordPieceTokenizer>(std::move(c), file);
}

// A special-token entry of tokenizer_config.json: a string or an AddedToken-like object.
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

}  // namespace

std::unique_ptr<WordPieceTokenizer> load_wordpiece_tokenizer_json(
    const std::filesystem::path& path,
    const std::optional<std::filesystem::path>& tokenizer_config_json) {
  return load_tokenizer_json(path, tokenizer_config_json);
}

std::unique_ptr<WordPieceTokenizer> load_wordpiece_vocab(
    const std::filesystem::path& vocab_txt,
    const std::optional<std::filesystem::path>& tokenizer_config_json) {
  const std::string file = vocab_txt.string();
  std::string text = read_whole_file(vocab_txt, "vocabulary");
  WordPieceConfig c;
  std::unordered_map<std::string_view, size_t> line_of;
  size_t line = 0, begin = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    ++line;
    std::string_view token(text.data() + begin, end - begin);
    if (!token.empty() && token.back() == '\r') token.remove_suffix(1);
    if (auto problem = find_invalid_utf8(token)) {
      fail(file, ":", line, ": invalid UTF-8: ", problem->reason, " at byte ", problem->offset);
    }
    if (auto [it, inserted] = line_of.emplace(token, line); !inserted) {
      fail(file, ":", line, ": token \"", token, "\" already appears on line ", it->second);
    }
    c.vocab.emplace_back(std::string(token), int32_t(line - 1));
    begin = end + 1;
  }
  if (c.vocab.empty()) fail(file, ": the vocabulary is empty");

  nlohmann::json config = nlohmann::json::object();
  std::string where = tokenizer_config_json ? tokenizer_config_json->string() : file;
  if (tokenizer_config_json) {
    c.tokenizer_config_json = read_optional_config(tokenizer_config_json);
    config = nlohmann::json::parse(c.tokenizer_config_json);
  }
  c.normalizer.lowercase = get_bool(config, "do_lower_case", true, where);
  c.normalizer.strip_accents = get_optional_bool(config, "strip_accents", where);
  c.normalizer.handle_chinese_chars = get_bool(config, "tokenize_chinese_chars", true, where);
  c.unk_token = config_token(config, "unk_token", where).value_or("[UNK]");
  c.pad_token = config_token(config, "pad_token", where).value_or("[PAD]");
  std::string cls = config_token(config, "cls_token", where).value_or("[CLS]");
  std::string sep = config_token(config, "sep_token", where).value_or("[SEP]");
  std::string mask = config_token(config, "mask_token", where).value_or("[MASK]");

  auto id_in_vocab = [&](const std::string& token) -> std::optional<int32_t> {
    auto it = line_of.find(token);
    if (it == line_of.end()) return std::nullopt;
    return int32_t(it->second - 1);
  };
  auto required = [&](const std::string& token, const char* role) {
    auto id = id_in_vocab(token);
    if (!id) fail(file, ": the ", role, " \"", token, "\" is not in the vocabulary");
    return *id;
  };
  const int32_t cls_id = required(cls, "cls_token");
  const int32_t sep_id = required(sep, "sep_token");
  required(c.unk_token, "unk_token");
  c.single_template = bert_single_template(cls_id, sep_id);
  c.pair_template = bert_pair_template(cls_id, sep_id);

  if (config.contains("added_tokens_decoder") && config["added_tokens_decoder"].is_object()) {
    // Saved by recent transformers: exactly the added tokens and their matching flags.
    for (auto it = config["added_tokens_decoder"].begin(); it != config["added_tokens_decoder"].end(); ++it) {
      std::string at = where + ": added_tokens_decoder[\"" + it.key() + "\"]";
      AddedToken token = parse_added_token(it.value(), at);
      try {
        size_t used = 0;
        long id = std::stol(it.key(), &used);
        if (used != it.key().size() || id < 0 || id > INT32_MAX) throw std::invalid_argument("id");
        token.id = int32_t(id);
      } catch (const std::exception&) {
        fail(at, ": the key must be a token id");
      }
      c.added_tokens.push_back(std::move(token));
    }
  } else {
    for (const std::string& token : {c.pad_token, c.unk_token, cls, sep, mask}) {
      auto id = id_in_vocab(token);
      bool duplicate = std::any_of(c.added_tokens.begin(), c.added_tokens.end(),
                                   [&](const AddedToken& t) { return t.content == token; });
      if (id && !duplicate) c.added_tokens.push_back(AddedToken{token, *id, true, false, false, false, false});
    }
  }
  std::string source = file;
  if (tokenizer_config_json) source += " + " + tokenizer_config_json->string();
  return std::make_unique<WordPieceTokenizer>(std::move(c), source);
}

}  // namespace ww::text
