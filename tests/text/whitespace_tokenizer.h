#pragma once
// A stand-in tokenizer for the text tests: whitespace tokens hashed into a small vocabulary,
// BERT-style specials ([PAD]=0, [CLS]=1, [SEP]=2) and HF's longest_first truncation, with an
// optional delay per text to keep a loader thread busy.
#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "wattwise/core/error.h"
#include "wattwise/text/tokenizer.h"

namespace ww::text::testing {

class WhitespaceTokenizer : public Tokenizer {
 public:
  explicit WhitespaceTokenizer(std::chrono::microseconds delay = {}) : delay_(delay) {}

  Encoding encode(std::string_view text, std::optional<std::string_view> text_pair,
                  int max_length) const override {
    if (delay_.count()) std::this_thread::sleep_for(delay_);
    std::vector<int32_t> a = ids(text), b;
    if (text_pair) b = ids(*text_pair);
    size_t specials = text_pair ? 3 : 2;
    if (max_length > 0) {
      while (a.size() + b.size() + specials > size_t(max_length) && (!a.empty() || !b.empty())) {
        if (a.size() > b.size()) a.pop_back();
        else b.pop_back();
      }
    }
    Encoding e;
    e.input_ids.push_back(1);
    e.input_ids.insert(e.input_ids.end(), a.begin(), a.end());
    e.input_ids.push_back(2);
    e.token_type_ids.assign(e.input_ids.size(), 0);
    if (text_pair) {
      e.input_ids.insert(e.input_ids.end(), b.begin(), b.end());
      e.input_ids.push_back(2);
      e.token_type_ids.resize(e.input_ids.size(), 1);
    }
    e.attention_mask.assign(e.input_ids.size(), 1);
    return e;
  }
  std::vector<std::string> tokenize(std::string_view text) const override {
    std::vector<std::string> tokens;
    std::string current;
    for (char c : text) {
      if (static_cast<unsigned char>(c) == 0xFF) fail("invalid UTF-8 (byte 0xFF)");
      if (c == ' ' || c == '\n' || c == '\t') {
        if (!current.empty()) tokens.push_back(current);
        current.clear();
      } else {
        current += c;
      }
    }
    if (!current.empty()) tokens.push_back(current);
    return tokens;
  }
  int32_t vocab_size() const override { return 1000; }
  int32_t pad_id() const override { return 0; }
  std::optional<int32_t> token_to_id(std::string_view token) const override { return id(token); }
  std::string id_to_token(int32_t id) const override { return std::to_string(id); }
  void save(const std::filesystem::path&, int64_t) const override {}

 private:
  static int32_t id(std::string_view token) {
    return 3 + int32_t(std::hash<std::string_view>()(token) % 997);
  }
  std::vector<int32_t> ids(std::string_view text) const {
    std::vector<int32_t> out;
    for (const std::string& token : tokenize(text)) out.push_back(id(token));
    return out;
  }
  std::chrono::microseconds delay_;
};

}  // namespace ww::text::testing
