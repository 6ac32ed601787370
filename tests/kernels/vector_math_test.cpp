// kernels/cpu/vector_math.h: the CPU kernels' vectorisable exp and erf, and the fixed-order sum.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/vector_math.h"

using namespace ww;

namespace {

// vector_math.h's vectorisable exp and erf against the library functions (in double) over their
// whole range: exp within 2.5e-7 relative (2 ulp) from −87.3 to 88.3, exactly 0 below, NaN kept;
// erf within 5e-7 absolute (A&S 7.1.26's 1.5e-7 plus float rounding: 4.3e-7 measured), odd, ±1 in
// the tails.
TEST(VectorMath, ExpAndErfAreWithinTheirBounds) {
  using kernels::cpu::erf_approx;
  using kernels::cpu::exp_approx;
  double worst_exp = 0.0, worst_erf = 0.0;
  for (float x = -87.3f; x <= 88.3f; x += 0.001953125f) {  // 2^-9 steps: ~90k points
    const double want = std::exp(double(x));
    worst_exp = std::max(worst_exp, std::fabs(double(exp_approx(x)) - want) / want);
  }
  for (float x = -9.0f; x <= 9.0f; x += 0.0001220703125f) {  // 2^-13 steps: ~150k points
    worst_erf = std::max(worst_erf, std::fabs(double(erf_approx(x)) - std::erf(double(x))));
    ASSERT_EQ(erf_approx(-x), -erf_approx(x)) << x;
  }
  EXPECT_LT(worst_exp, 2.5e-7);
  EXPECT_LT(worst_erf, 5e-7);
  EXPECT_EQ(exp_approx(0.0f), 1.0f);
  EXPECT_EQ(exp_approx(-100.0f), 0.0f);
  EXPECT_EQ(exp_approx(-INFINITY), 0.0f);
  EXPECT_TRUE(std::isnan(exp_approx(NAN)));
  EXPECT_TRUE(std::isnan(erf_approx(NAN)));
  EXPECT_EQ(erf_approx(INFINITY), 1.0f);
  EXPECT_EQ(erf_approx(-INFINITY), -1.0f);
  EXPECT_EQ(erf_approx(0.0f), 0.0f);
  // sum_fixed_order: lane k sums x[k], x[k+8], … in turn, then the documented tree; 19 terms.
  std::vector<float> x(19);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 1.0f / float(3 * i + 1);
  float lane[8] = {};
  for (size_t i = 0; i < x.size(); ++i) lane[i % 8] += x[i];
  const float want = ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
  EXPECT_EQ(kernels::cpu::sum_fixed_order(x.data(), int64_t(x.size())), want);
  EXPECT_EQ(kernels::cpu::sum_fixed_order(x.data(), 0), 0.0f);
}

}  // namespace
