#pragma once
// Helpers shared by the GoogleTest programs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "wattwise/core/error.h"
#include "wattwise/core/rng.h"

namespace ww::testing {

// A committed JSON fixture, tests/fixtures/<relative> (callers keep it in a function-local static).
inline nlohmann::json read_json_fixture(const std::string& relative) {
  const std::string path = std::string(WW_SOURCE_DIR) + "/tests/fixtures/" + relative;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  return nlohmann::json::parse(in);
}

// Runs fn and expects a ww::Error whose message contains every piece.
inline void expect_error(const std::function<void()>& fn, const std::vector<std::string>& pieces) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string message = e.what();
    for (const std::string& piece : pieces)
      EXPECT_NE(message.find(piece), std::string::npos) << "message '" << message << "' lacks '" << piece << "'";
    return;
  }
  ADD_FAILURE() << "expected ww::Error containing '" << (pieces.empty() ? "" : pieces.front()) << "'";
}

// The attention-dropout rule as core/rng.h states it, written from the statement with the plain
// word stream (philox_u32's word i is word i % 4 of block i / 4): element (row, key) keeps iff byte
// key % 16 of block row·⌈T/16⌉ + key/16 is ≥ round(256·p). Tests hold every attention path to it.
inline bool attention_keeps(uint64_t seed, uint64_t offset, uint64_t row, int64_t seq_len, int64_t key, float p) {
  const uint64_t block = row * uint64_t((seq_len + 15) / 16) + uint64_t(key / 16);
  const uint32_t word = philox_u32(seed, offset, 4 * block + uint64_t((key % 16) / 4));
  const double threshold = std::min(255.0, std::floor(256.0 * double(p) + 0.5));
  return double((word >> (8 * (key % 4))) & 0xFFu) >= threshold;
}
// What a kept probability is multiplied by: 256 / (256 − threshold).
inline double attention_keep_scale(float p) {
  return 256.0 / (256.0 - std::min(255.0, std::floor(256.0 * double(p) + 0.5)));
}

}  // namespace ww::testing
