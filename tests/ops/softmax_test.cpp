// ops::softmax_forward / softmax_backward: the CPU reference against a double-precision softmax,
// and every device × dtype against the CPU reference (tolerances: tests/ops/op_test_util.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "ops/op_test_util.h"
#include "wattwise/core/rng.h"
#include "wattwise/core/tensor.h"
#include "wattwise/ops/softmax.h"

using namespace ww;
using namespace ww::testing;

namespace {

std::vector<float> random_normal(size_t n, uint64_t seed, float stddev = 1.0f) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = stddev * rng.normal();
  return v;
}

// Every element within atol + rtol·|ref|; reports the worst one.
void expect_within(const std::vector<float>& got, const std::vector<double>& ref, double atol, double rtol,
                   const std::string& what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  double worst_excess = -1.0;
  size_t worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    double excess = std::fabs(double(got[i]) - ref[i]) - (atol + rtol * std::fabs(ref[i]));
    if (!(excess <= worst_excess) || std::isnan(got[i])) {
      worst_excess = std::isnan(got[i]) ? INFINITY : excess;
      worst = i;
    }
  }
  EXPECT_LE(worst_excess, 0.0) << what << ": element " << worst << " is " << got[worst] << ", expected "
                               << ref[worst];
}

std::vector<double> reference_softmax(const std::vector<float>& x, int64_t rows, int64_t cols) {
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double max_value = -INFINITY, sum = 0.0;
    for (int64_t j = 0; j < cols; ++j) max_value = std::max(max_value, double(x[size_t(r * cols + j)]));
    for (int64_t j = 0; j < cols; ++j) sum += std::exp(double(x[size_t(r * cols + j)]) - max_value);
    for (int64_t j = 0; j < cols; ++j)
      y[size_t(r * cols + j)] = std::exp(double(x[size_t(r * cols + j)]) - max_value) / sum;
  }
  return y;
}

// ---- the CPU reference ------------------------------------------------------------------------

TEST(SoftmaxCpu, ForwardAndBackwardMatchReference) {
  struct Case {
    int64_t rows, cols;
    float shift;  // large shifts check the max subtraction
  };
  uint64_t seed = 300;
  for (Case c : {Case{1, 1, 0.0f}, Case{3, 7, 0.0f}, Case{5, 128, 1000.0f}, Case{64, 33, -500.0f}}) {
    const std::string what = std::to_string(c.rows) + "x" + std::to_string(c.cols);
    std::vector<float> x = random_normal(size_t(c.rows * c.cols), seed++, 3.0f);
    for (float& v : x) v += c.shift;
    Tensor inp = Tensor::from_vector(x, {c.rows, c.cols});
    Tensor out = Tensor::empty(inp.shape(), DType::F32);
    ops::softmax_forward(out, inp);
    std::vector<double> ref = reference_softmax(x, c.rows, c.cols);
    std::vector<float> y = out.to_float_vector();
    expect_within(y, ref, 1e-6, 0.0, what + " forward");

    ops::softmax_forward(inp, inp);  // in place
    std::vector<float> y_in_place = inp.to_float_vector();
    EXPECT_EQ(0, std::memcmp(y.data(), y_in_place.data(), y.size() * sizeof(float))) << what;

    std::vector<float> dy = random_normal(y.size(), seed++);
    std::vector<double> dx_ref(y.size());
    for (int64_t r = 0; r < c.rows; ++r) {
      double dot = 0.0;
      for (int64_t j = 0; j < c.cols; ++j) dot += double(dy[size_t(r * c.cols + j)]) * y[size_t(r * c.cols + j)];
      for (int64_t j = 0; j < c.cols; ++j) {
        size_t k = size_t(r * c.cols + j);
        dx_ref[k] = double(y[k]) * (double(dy[k]) - dot);
      }
    }
    Tensor dout = Tensor::from_vector(dy, out.shape());
    Tensor dinp = Tensor::empty(out.shape(), DType::F32);
    ops::softmax_backward(dinp, out, dout);
    expect_within(dinp.to_float_vector(), dx_ref, 1e-6, 0.0, what + " backward");
    ops::softmax_backward(dout, out, dout);  // dinp aliasing dout
    expect_within(dout.to_float_vector(), dx_ref, 1e-6, 0.0, what + " backward in place");
  }
}

TEST(SoftmaxCpu, RejectsMismatchedSizes) {
  Tensor inp = Tensor::zeros({2, 3}, DType::F32);
  try {
    ops::softmax_forward(Tensor::empty({7}, DType::F32), inp);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("softmax_forward: argument 'out'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ops::softmax_backward(inp, inp, Tensor::zeros({3}, DType::F32)), Error);
  EXPECT_THROW(ops::softmax_forward(inp, Tensor::zeros({2, 3}, DType::I32)), Error);
}

// ---- every device and dtype against the CPU reference ---------------------------------------

class SoftmaxTest : public DeviceDtypeTest {};

// Forward from wide logits (f32: scale 10, peaked rows; 16-bit: scale 3), in place too; backward
// from a moderate softmax (unit-scale logits): with a very peaked one, dout − dot cancels and the
// one-ulp difference of two fp32 dot products summed in different orders would exceed the
// tolerance although both are right. Both sides read the same saved output.
TEST_P(SoftmaxTest, MatchesTheCpuReference) {
  const std::vector<Shape> shapes = is_16bit() ? std::vector<Shape>{{1, 1}, {5, 7}, {33, 300}, {2, 3, 1025}}
                                               : std::vector<Shape>{{1, 1}, {3, 5}, {7, 300}, {4, 1000}, {2, 4099}};
  for (const Shape& shape : shapes) {
    SCOPED_TRACE(what("softmax", shape));
    const uint64_t seed = uint64_t(shape_numel(shape));
    Tensor inp = reference_input(random_cpu(shape, seed, is_16bit() ? 3.0f : 10.0f));
    Tensor out = poisoned_cpu(shape);
    ops::softmax_forward(out, inp);
    Tensor got = nan_tensor(shape), in_place = put(inp);
    ops::softmax_forward(got, put(inp));
    expect_matches(got, out, "softmax forward", rtol());
    ops::softmax_forward(in_place, in_place);
    expect_matches(in_place, out, "softmax forward in place", rtol());

    Tensor y = poisoned_cpu(shape);
    ops::softmax_forward(y, random_cpu(shape, seed + 1, 1.0f));
    y = reference_input(y);
    Tensor dout = reference_input(random_cpu(shape, 3));
    Tensor dinp = poisoned_cpu(shape), got_dinp = nan_tensor(shape);
    ops::softmax_backward(dinp, y, dout);
    Tensor y_param = put(y), dout_param = put(dout);
    ops::softmax_backward(got_dinp, y_param, dout_param);
    expect_matches(got_dinp, dinp, "softmax backward", rtol());
    ops::softmax_backward(dout_param, y_param, dout_param);  // dinp aliases dout
    expect_matches(dout_param, dinp, "softmax backward in place", rtol());
  }
}

WW_INSTANTIATE_DEVICE_DTYPE_TEST(SoftmaxTest, all_devices_and_dtypes());

}  // namespace
