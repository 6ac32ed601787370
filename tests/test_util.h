#pragma once
// Helpers shared by the GoogleTest programs.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "wattwise/core/error.h"

namespace ww::testing {

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

}  // namespace ww::testing
