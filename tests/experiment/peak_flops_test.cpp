// experiment/peak_flops.h: the datasheet peaks MFU divides by, found by the driver's device name.
#include <gtest/gtest.h>

#include "wattwise/experiment/peak_flops.h"

namespace ww::experiment {
namespace {

TEST(PeakFlops, KnownGpusByNameAndPrecision) {
  const auto sxm = known_peak_tflops("1 x NVIDIA H100 80GB HBM3", "bf16");
  ASSERT_TRUE(sxm.has_value());
  EXPECT_DOUBLE_EQ(sxm->tflops, 989.4);
  EXPECT_NE(sxm->source.find("H100 SXM"), std::string::npos);
  EXPECT_DOUBLE_EQ(known_peak_tflops("NVIDIA H100 80GB HBM3", "fp16")->tflops, 989.4);
  EXPECT_DOUBLE_EQ(known_peak_tflops("NVIDIA H100 80GB HBM3", "tf32")->tflops, 494.7);
  EXPECT_DOUBLE_EQ(known_peak_tflops("NVIDIA H100 80GB HBM3", "fp32")->tflops, 66.9);
  EXPECT_DOUBLE_EQ(known_peak_tflops("NVIDIA H100 PCIe", "bf16")->tflops, 756.0);
  EXPECT_DOUBLE_EQ(known_peak_tflops("NVIDIA H200", "bf16")->tflops, 989.4);
  EXPECT_DOUBLE_EQ(known_peak_tflops("NVIDIA A100-SXM4-80GB", "bf16")->tflops, 312.0);
}

TEST(PeakFlops, UnknownDevicesAndPrecisionsHaveNone) {
  EXPECT_FALSE(known_peak_tflops("AMD EPYC 7B13", "fp32").has_value());
  EXPECT_FALSE(known_peak_tflops("NVIDIA GeForce RTX 4090", "bf16").has_value());
  EXPECT_FALSE(known_peak_tflops("NVIDIA H100 80GB HBM3", "int8").has_value());
}

}  // namespace
}  // namespace ww::experiment
