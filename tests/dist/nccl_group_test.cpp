// The NCCL process group on one GPU, as a job of one rank runs it (`wattwise launch --nproc 1`,
// the world-size-1 overhead measurement): every collective leaves the values as they were, the
// host numbers go through the device scratch in pieces, and the time is counted. Several ranks
// need several GPUs (NCCL refuses two ranks on one device); the CPU tests check the collectives'
// arithmetic through Gloo, the GPU ZeRO step is checked in tests/train/optimizer_test.cpp.
#include <gtest/gtest.h>

#include <chrono>
#include <numeric>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "dist_test_util.h"
#include "wattwise/dist/process_group.h"

namespace ww::dist {
namespace {

TEST(NcclGroup, OneRankCollectivesLeaveTheValues) {
  WW_REQUIRE_CUDA();
  JoinOptions options;
  options.timeout = std::chrono::seconds(60);
  options.fingerprint = "one";
  const ww::testing::Rendezvous rendezvous;
  auto group = join(rendezvous.world(0, 1), Device::cuda(0), options);
  EXPECT_EQ(group->backend(), "nccl");
  EXPECT_EQ(group->size(), 1);

  const int64_t n = 100003;
  std::vector<float> values(n);
  for (int64_t i = 0; i < n; ++i) values[size_t(i)] = float(i % 1000) * 0.5f - 7.0f;
  const Tensor on_gpu = Tensor::from_vector(values, {n}).to(Device::cuda(0));
  group->all_reduce_sum(on_gpu);
  EXPECT_EQ(on_gpu.to_float_vector(), values);
  group->reduce_scatter_sum(on_gpu, {n});
  EXPECT_EQ(on_gpu.to_float_vector(), values);
  group->all_gather(on_gpu, {n});
  EXPECT_EQ(on_gpu.to_float_vector(), values);
  group->broadcast(on_gpu, 0);
  EXPECT_EQ(on_gpu.to_float_vector(), values);

  std::vector<double> host(200);  // more than the 64-double scratch: sent in pieces
  std::iota(host.begin(), host.end(), 0.25);
  const std::vector<double> expected = host;
  group->all_reduce_sum(host);
  EXPECT_EQ(host, expected);

  std::vector<double> on_device_values = {1.5, -2.25};
  Tensor doubles = Tensor::view(on_device_values.data(), {2}, DType::I64).to(Device::cuda(0));
  group->all_reduce_sum_f64(static_cast<double*>(doubles.raw()), 2);
  const Tensor back = doubles.to(Device::cpu());
  EXPECT_EQ(static_cast<const double*>(back.raw())[0], 1.5);
  EXPECT_EQ(static_cast<const double*>(back.raw())[1], -2.25);

  std::string text = "rank 0's state";
  group->broadcast_text(text, 0);
  EXPECT_EQ(text, "rank 0's state");
  group->barrier();
  EXPECT_GT(group->communication_seconds(), 0.0);
}

}  // namespace
}  // namespace ww::dist
