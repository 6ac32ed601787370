// Tensor and Device: shapes, views, copies, device parsing, and the error without a CUDA backend.
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <set>
#include <vector>

#include "wattwise/core/arena.h"
#include "wattwise/core/checked.h"
#include "wattwise/core/dtype.h"
#include "wattwise/core/rng.h"
#include "wattwise/core/tensor.h"
#include "test_util.h"

using namespace ww;

TEST(Tensor, ShapeReshapeSlice) {
  Tensor t = Tensor::from_vector(std::vector<float>{0, 1, 2, 3, 4, 5}, {3, 2});
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.size(-1), 2);
  Tensor r = t.reshape({2, -1});
  EXPECT_EQ(r.shape(), (Shape{2, 3}));
  EXPECT_EQ(r.raw(), t.raw());
  Tensor s = t.slice(1, 3);
  EXPECT_EQ(s.shape(), (Shape{2, 2}));
  EXPECT_EQ(s.data<float>()[0], 2.0f);
  EXPECT_THROW(t.reshape({4, 2}), Error);
  EXPECT_THROW(t.data<int32_t>(), Error);
}

TEST(Tensor, CopyAndZero) {
  Tensor a = Tensor::from_vector(std::vector<float>{1, 2, 3}, {3});
  Tensor b = a.to(Device::cpu());
  EXPECT_NE(a.raw(), b.raw());
  EXPECT_EQ(b.to_float_vector(), (std::vector<float>{1, 2, 3}));
  b.fill_zero();
  EXPECT_EQ(b.to_float_vector(), (std::vector<float>{0, 0, 0}));
  EXPECT_EQ(a.to_float_vector(), (std::vector<float>{1, 2, 3}));
}

TEST(Tensor, CudaWithoutBackendIsAClearError) {
#ifndef WW_HAVE_CUDA
  EXPECT_THROW(Tensor::empty({4}, DType::F32, Device::cuda(0)), Error);
#else
  GTEST_SKIP() << "built with CUDA; the GPU path is covered by the cuda-labelled tests";
#endif
}

TEST(Device, Parse) {
  EXPECT_TRUE(parse_device("cpu").is_cpu());
  if (cuda_device_count() == 0) {
    EXPECT_TRUE(parse_device("auto").is_cpu());
    try {
      parse_device("cuda:3");
      ADD_FAILURE() << "expected an error without a GPU";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("no usable GPU"), std::string::npos) << e.what();
    }
  } else {
    EXPECT_TRUE(parse_device("auto").is_cuda());
    EXPECT_EQ(parse_device("cuda:0").index, 0);
    EXPECT_THROW(parse_device("cuda:" + std::to_string(cuda_device_count())), Error);
  }
  EXPECT_THROW(parse_device("gpu"), Error);
  EXPECT_THROW(parse_device("cuda:x"), Error);
}

TEST(Tensor, SizesThatOverflowAreErrorsNotWraps) {
  ww::testing::expect_error([] { shape_numel({int64_t(1) << 40, int64_t(1) << 40}); },
                            {"[1099511627776, 1099511627776]", "more elements than fit in 64 bits"});
  ww::testing::expect_error([] { shape_numel({4, -1}); }, {"[4, -1]", "negative dimension"});
  // Elements fit, bytes do not: 2^62 elements of 4 bytes.
  ww::testing::expect_error([] { Tensor::empty({int64_t(1) << 31, int64_t(1) << 31}, DType::F32); },
                            {"bytes of a tensor of shape [2147483648, 2147483648]", "does not fit in 64 bits"});
  EXPECT_EQ(shape_bytes({3, 5}, DType::BF16), 30u);
  EXPECT_EQ(checked_mul(int64_t(1) << 31, int64_t(1) << 31, "x"), int64_t(1) << 62);
  ww::testing::expect_error([] { checked_add(INT64_MAX, 1, "the sum"); }, {"the sum", "does not fit in 64 bits"});
}
