#include "wattwise/serve/request.h"

#include <algorithm>

#include "wattwise/experiment/classifier.h"

namespace ww::serve {

std::string error_body(const std::string& message, const std::string& error_type, const std::string& field) {
  nlohmann::json j;
  j["error"] = message;
  j["error_type"] = error_type;
  if (!field.empty()) j["field"] = field;
  // Invalid UTF-8 echoed from a body must not make the error itself fail to serialise.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

[[noreturn]] void bad(const std::string& field, const std::string& message) {
  throw RequestError(400, field, field.empty() ? message : field + ": " + message);
}

std::string type_of(const nlohmann::json& j) { return j.type_name(); }

// ["text"] or ["text", "pair"] at `field`.
TextInput sequence_of(const nlohmann::json& j, const std::string& field) {
  if (!j.is_array()) bad(field, "expected [text] or [text, text_pair], got " + type_of(j));
  if (j.empty() || j.size() > 2)
    bad(field, "expected [text] or [text, text_pair], got a list of " + std::to_string(j.size()));
  for (size_t i = 0; i < j.size(); ++i)
    if (!j[i].is_string()) bad(field + "[" + std::to_string(i) + "]", "expected a string, got " + type_of(j[i]));
  TextInput input{j[0].get<std::string>(), std::nullopt};
  if (j.size() == 2) input.text_pair = j[1].get<std::string>();
  return input;
}

bool boolean_field(const nlohmann::json& body, const char* name) {
  if (!body.contains(name)) return false;
  const nlohmann::json& v = body[name];
  if (!v.is_boolean()) bad(name, std::string("expected true or false, got ") + type_of(v));
  return v.get<bool>();
}

}  // namespace

PredictRequest parse_predict_request(std::string_view body, size_t max_inputs) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(body);
  } catch (const nlohmann::json::parse_error& e) {
    bad("", std::string("the body is not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) bad("", "the body must be a JSON object with \"inputs\", got " + type_of(j));
  for (const auto& [key, value] : j.items())
    if (key != "inputs" && key != "truncate" && key != "raw_scores")
      bad(key, "unknown field (known: inputs, truncate, raw_scores)");
  if (!j.contains("inputs")) bad("inputs", "missing (a string, [text, text_pair] or a list of those lists)");
  PredictRequest request;
  request.truncate = boolean_field(j, "truncate");
  request.raw_scores = boolean_field(j, "raw_scores");
  const nlohmann::json& inputs = j["inputs"];
  if (inputs.is_string()) {
    request.inputs.push_back({inputs.get<std::string>(), std::nullopt});
  } else if (inputs.is_array() && !inputs.empty() && inputs[0].is_string()) {
    // TEI's rule: a list of strings is one text or one pair, never a batch.
    request.inputs.push_back(sequence_of(inputs, "inputs"));
  } else if (inputs.is_array() && !inputs.empty()) {
    request.batch = true;
    if (inputs.size() > max_inputs)
      throw RequestError(413, "inputs",
                         "inputs: " + std::to_string(inputs.size()) + " inputs in one request, more than the " +
                             std::to_string(max_inputs) + " a batch holds (--max-batch)");
    for (size_t i = 0; i < inputs.size(); ++i)
      request.inputs.push_back(sequence_of(inputs[i], "inputs[" + std::to_string(i) + "]"));
  } else {
    bad("inputs", inputs.is_array() ? "an empty list"
                                    : "expected a string, [text, text_pair] or a list of those lists, got " +
                                          type_of(inputs));
  }
  return request;
}

std::vector<LabelScore> ranked_scores(const float* logits, const std::vector<std::string>& labels, bool raw_scores,
                                      bool regression) {
  const int64_t n = int64_t(labels.size());
  std::vector<float> scores = (raw_scores || regression) ? std::vector<float>(logits, logits + n)
                                                         : experiment::class_probabilities(logits, n);
  std::vector<LabelScore> out;
  for (int64_t k = 0; k < n; ++k) out.push_back({labels[size_t(k)], scores[size_t(k)]});
  // Stable, so equal scores keep the class order (TEI sorts the same way).
  std::stable_sort(out.begin(), out.end(), [](const LabelScore& a, const LabelScore& b) { return a.score > b.score; });
  return out;
}

std::string predict_response_body(const std::vector<std::vector<LabelScore>>& answers, bool batch) {
  auto one = [](const std::vector<LabelScore>& scores) {
    nlohmann::json list = nlohmann::json::array();
    for (const LabelScore& s : scores) list.push_back({{"label", s.label}, {"score", s.score}});
    return list;
  };
  nlohmann::json j;
  if (batch) {
    j = nlohmann::json::array();
    for (const auto& a : answers) j.push_back(one(a));
  } else {
    j = one(answers.at(0));
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace ww::serve
