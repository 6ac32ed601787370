#pragma once
// The request bodies of `wattwise serve`, shaped like Hugging Face's Text Embeddings Inference so its
// clients work unchanged. POST /predict:
//   {"inputs": "text"}                      one text          -> [{"label", "score"}, ...]
//   {"inputs": ["text", "pair"]}            one pair          -> [{"label", "score"}, ...]
//   {"inputs": [["t1"], ["a", "b"], ...]}   a batch           -> [[{"label", "score"}, ...], ...]
//   optional "truncate" (default false) and "raw_scores" (default false): booleans.
// Scores are sorted best first, as TEI sorts them. A bad body is a RequestError naming the field.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "wattwise/core/error.h"

namespace ww::serve {

// A request the server refuses: the HTTP status (400, 413, ...), the field at fault ("inputs[2][1]",
// "" for the body as a whole) and TEI's error_type ("Validation", "Overloaded", ...).
class RequestError : public Error {
 public:
  RequestError(int status, std::string field, const std::string& message, std::string error_type = "Validation")
      : Error(message), status_(status), field_(std::move(field)), error_type_(std::move(error_type)) {}
  int status() const { return status_; }
  const std::string& field() const { return field_; }
  const std::string& error_type() const { return error_type_; }

 private:
  int status_;
  std::string field_;
  std::string error_type_;
};

// The JSON body of an error response: {"error": message, "error_type": ..., "field": ...} (field
// only when there is one).
std::string error_body(const std::string& message, const std::string& error_type, const std::string& field = "");

struct TextInput {
  std::string text;
  std::optional<std::string> text_pair;
};

struct PredictRequest {
  std::vector<TextInput> inputs;
  bool batch = false;  // inputs was a list of lists: the answer is a list per input
  bool truncate = false;
  bool raw_scores = false;
};

// Parses a /predict body. At most `max_inputs` inputs (413 beyond: a request runs as one batch).
PredictRequest parse_predict_request(std::string_view body, size_t max_inputs);

// One input's answer: every label with its score (softmax probability, or the raw logit with
// raw_scores), best first. A regression model's single output is its score.
struct LabelScore {
  std::string label;
  float score = 0;
};
std::vector<LabelScore> ranked_scores(const float* logits, const std::vector<std::string>& labels, bool raw_scores,
                                      bool regression);

// The response body: one list per input, or the list itself for a single input.
std::string predict_response_body(const std::vector<std::vector<LabelScore>>& answers, bool batch);

}  // namespace ww::serve
