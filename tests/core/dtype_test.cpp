// DType: half and bfloat16 conversion and rounding.
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <set>
#include <vector>

#include "wattwise/core/arena.h"
#include "wattwise/core/dtype.h"
#include "wattwise/core/rng.h"
#include "wattwise/core/tensor.h"
#include "test_util.h"

using namespace ww;

TEST(DType, HalfRoundTripAndRounding) {
  // Every finite half value converts to float and back exactly.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    uint16_t bits = uint16_t(h);
    if ((bits & 0x7c00) == 0x7c00 && (bits & 0x3ff)) continue;  // NaN payloads
    EXPECT_EQ(float_to_half(half_to_float(bits)), bits) << std::hex << h;
  }
  EXPECT_EQ(half_to_float(float_to_half(1.0f)), 1.0f);
  EXPECT_EQ(float_to_half(65520.0f), 0x7c00);           // rounds up to infinity
  EXPECT_EQ(half_to_float(float_to_half(65504.0f)), 65504.0f);
  EXPECT_EQ(float_to_half(1.0f + 1.0f / 2048), 0x3c00);  // tie goes to even
  EXPECT_EQ(float_to_half(5.9604645e-8f), 0x0001);        // smallest subnormal
  EXPECT_TRUE(std::isnan(half_to_float(float_to_half(NAN))));
}

TEST(DType, Bf16Rounding) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_float(float_to_bf16(3.140625f)), 3.140625f);
  EXPECT_EQ(float_to_bf16(bits_to_float(0x3f808000u)), 0x3f80);  // tie to even (down)
  EXPECT_EQ(float_to_bf16(bits_to_float(0x3f818000u)), 0x3f82);  // tie to even (up)
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(NAN))));
  EXPECT_EQ(parse_dtype("BF16"), DType::BF16);
  EXPECT_THROW(parse_dtype("F128"), Error);
}
