// The /predict body: TEI's three input shapes, the optional flags, and every refusal with its
// status and the field it names; the answer's shape and ranking.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "wattwise/serve/request.h"

namespace ww::serve {
namespace {

// The RequestError `body` gives: its status and field, and its message contains `piece`.
void expect_refused(const std::string& body, int status, const std::string& field, const std::string& piece,
                    size_t max_inputs = 8) {
  try {
    parse_predict_request(body, max_inputs);
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status(), status) << body;
    EXPECT_EQ(e.field(), field) << body;
    EXPECT_NE(std::string(e.what()).find(piece), std::string::npos) << e.what();
    return;
  }
  ADD_FAILURE() << "accepted " << body;
}

TEST(PredictRequest, OneTextOnePairAndABatch) {
  PredictRequest one = parse_predict_request(R"({"inputs": "a good film"})", 8);
  ASSERT_EQ(one.inputs.size(), 1u);
  EXPECT_FALSE(one.batch);
  EXPECT_EQ(one.inputs[0].text, "a good film");
  EXPECT_FALSE(one.inputs[0].text_pair);
  EXPECT_FALSE(one.truncate);
  EXPECT_FALSE(one.raw_scores);

  // TEI: a list of strings is one text or one pair, not a batch.
  PredictRequest pair = parse_predict_request(R"({"inputs": ["a", "b"], "truncate": true, "raw_scores": true})", 8);
  ASSERT_EQ(pair.inputs.size(), 1u);
  EXPECT_FALSE(pair.batch);
  EXPECT_EQ(*pair.inputs[0].text_pair, "b");
  EXPECT_TRUE(pair.truncate);
  EXPECT_TRUE(pair.raw_scores);
  EXPECT_FALSE(parse_predict_request(R"({"inputs": ["only"]})", 8).inputs[0].text_pair);

  PredictRequest batch = parse_predict_request(R"({"inputs": [["t1"], ["a", "b"], [""]]})", 8);
  EXPECT_TRUE(batch.batch);
  ASSERT_EQ(batch.inputs.size(), 3u);
  EXPECT_EQ(batch.inputs[1].text, "a");
  EXPECT_EQ(*batch.inputs[1].text_pair, "b");
  EXPECT_EQ(batch.inputs[2].text, "");
}

TEST(PredictRequest, RefusalsNameTheField) {
  expect_refused("{not json", 400, "", "not valid JSON");
  expect_refused("", 400, "", "not valid JSON");
  expect_refused(R"(["a"])", 400, "", "JSON object");
  expect_refused(R"({})", 400, "inputs", "missing");
  expect_refused(R"({"input": "x"})", 400, "input", "unknown field");
  expect_refused(R"({"inputs": 3})", 400, "inputs", "got number");
  expect_refused(R"({"inputs": []})", 400, "inputs", "empty list");
  expect_refused(R"({"inputs": ["a", "b", "c"]})", 400, "inputs", "list of 3");
  expect_refused(R"({"inputs": ["a", 2]})", 400, "inputs[1]", "expected a string");
  expect_refused(R"({"inputs": [["a"], "b"]})", 400, "inputs[1]", "got string");
  expect_refused(R"({"inputs": [["a"], []]})", 400, "inputs[1]", "list of 0");
  expect_refused(R"({"inputs": [["a"], ["b", null]]})", 400, "inputs[1][1]", "got null");
  expect_refused(R"({"inputs": "a", "truncate": "yes"})", 400, "truncate", "true or false");
  expect_refused(R"({"inputs": "a", "raw_scores": 1})", 400, "raw_scores", "true or false");
  expect_refused(R"({"inputs": [["a"], ["b"], ["c"]]})", 413, "inputs", "--max-batch", 2);
}

TEST(PredictRequest, ErrorBodyIsJson) {
  nlohmann::json j = nlohmann::json::parse(error_body("inputs: missing", "Validation", "inputs"));
  EXPECT_EQ(j["error"], "inputs: missing");
  EXPECT_EQ(j["error_type"], "Validation");
  EXPECT_EQ(j["field"], "inputs");
  EXPECT_FALSE(nlohmann::json::parse(error_body("busy", "Overloaded")).contains("field"));
  // Invalid UTF-8 from a client's body still gives a valid JSON error.
  EXPECT_NO_THROW(nlohmann::json::parse(error_body("bad \xff byte", "Validation")));
}

TEST(PredictResponse, ScoresRankedBestFirst) {
  const float logits[3] = {0.0f, 2.0f, 1.0f};
  std::vector<LabelScore> probs = ranked_scores(logits, {"neg", "pos", "mixed"}, false, false);
  ASSERT_EQ(probs.size(), 3u);
  EXPECT_EQ(probs[0].label, "pos");
  EXPECT_EQ(probs[1].label, "mixed");
  EXPECT_EQ(probs[2].label, "neg");
  // softmax(0, 2, 1): e^2 / (1 + e^2 + e).
  EXPECT_NEAR(probs[0].score, 7.389056 / (1 + 7.389056 + 2.718282), 1e-6);
  EXPECT_NEAR(probs[0].score + probs[1].score + probs[2].score, 1.0, 1e-6);
  std::vector<LabelScore> raw = ranked_scores(logits, {"neg", "pos", "mixed"}, true, false);
  EXPECT_EQ(raw[0].score, 2.0f);
  EXPECT_EQ(raw[2].score, 0.0f);
  const float value = 3.5f;
  std::vector<LabelScore> regression = ranked_scores(&value, {"LABEL_0"}, false, true);
  EXPECT_EQ(regression[0].score, 3.5f);
}

TEST(PredictResponse, SingleIsAListBatchIsAListOfLists) {
  std::vector<std::vector<LabelScore>> answers = {{{"pos", 0.75f}, {"neg", 0.25f}}};
  nlohmann::json single = nlohmann::json::parse(predict_response_body(answers, false));
  ASSERT_TRUE(single.is_array());
  EXPECT_EQ(single[0]["label"], "pos");
  EXPECT_EQ(single[0]["score"], 0.75);
  answers.push_back({{"neg", 0.5f}, {"pos", 0.5f}});
  nlohmann::json batch = nlohmann::json::parse(predict_response_body(answers, true));
  ASSERT_EQ(batch.size(), 2u);
  EXPECT_EQ(batch[1][0]["label"], "neg");
  EXPECT_TRUE(batch[0].is_array());
}

}  // namespace
}  // namespace ww::serve
