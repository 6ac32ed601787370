// The short-window rules on a real GPU (skips without one, or without NVML): windows from 2 ms to
// 1 s around steady cuBLAS work. The counter's step is probed; a 1 s window is read off the counter
// and needs no cap at the power limit; windows shorter than kShortWindowSteps steps are estimated
// from edge power, and under the same steady load their average agrees with the long window's
// within 50% (a counter delta over one step could be 0 or twice the truth).
#include <gtest/gtest.h>

#ifdef WW_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>
#endif

#include <chrono>
#include <cstdio>

#include "cuda_test_util.h"
#include "wattwise/core/device.h"
#include "wattwise/energy/monitor.h"

using namespace ww::energy;

#ifdef WW_HAVE_CUDA
namespace {

// Square fp32 GEMMs queued back to back until `seconds` of wall time have passed (the window's end
// then waits for them through EnergyOptions::synchronize).
struct GemmLoad {
  static constexpr int kN = 4096;
  cublasHandle_t handle = nullptr;
  float *a = nullptr, *b = nullptr, *c = nullptr;
  GemmLoad() {
    EXPECT_EQ(cublasCreate(&handle), CUBLAS_STATUS_SUCCESS);
    const size_t bytes = size_t(kN) * kN * sizeof(float);
    EXPECT_EQ(cudaMalloc(&a, bytes), cudaSuccess);
    EXPECT_EQ(cudaMalloc(&b, bytes), cudaSuccess);
    EXPECT_EQ(cudaMalloc(&c, bytes), cudaSuccess);
    cudaMemset(a, 0, bytes);
    cudaMemset(b, 0, bytes);
  }
  ~GemmLoad() {
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    cublasDestroy(handle);
  }
  // One GEMM at a time (a few ms each on a Hopper GPU): queued without waiting, hundreds would pile
  // up in a few milliseconds of wall time and the window's end would wait for all of them.
  void run_for(double seconds) {
    const float one = 1, zero = 0;
    const auto begin = std::chrono::steady_clock::now();
    do {
      cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, kN, kN, kN, &one, a, kN, b, kN, &zero, c, kN);
      cudaDeviceSynchronize();
    } while (std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count() < seconds);
  }
};

const SourceEnergy* gpu0(const WindowResult& result) {
  for (const auto& source : result.sources)
    if (source.source == "gpu0") return &source;
  return nullptr;
}

}  // namespace
#endif

TEST(EnergyOnGpu, ShortWindowsAreEstimatedFromEdgePowerAndPhysical) {
  WW_REQUIRE_CUDA();
#ifdef WW_HAVE_CUDA
  EnergyOptions options;
  options.gpus = std::vector<int>{0};
  options.use_rapl = false;
  options.synchronize = [] { cudaDeviceSynchronize(); };
  EnergyMonitor monitor(options);
  if (!monitor.gpu_present()) GTEST_SKIP() << "no NVML GPU figure: " << monitor.gpu_absent_reason();
  monitor.start();
  const auto periods = monitor.counter_update_periods();
  ASSERT_EQ(periods.count("gpu0"), 1u) << "the energy counter's step was not probed";
  const double step = periods.at("gpu0");
  std::printf("[ info ] gpu0 energy counter step: %.1f ms\n", step * 1e3);

  GemmLoad load;
  load.run_for(1.5);  // steady power before the first window
  monitor.begin_window("long");
  load.run_for(1.0);
  const WindowResult long_window = monitor.end_window("long");
  const SourceEnergy* long_gpu = gpu0(long_window);
  ASSERT_NE(long_gpu, nullptr);
  std::printf("[ info ] %8.1f ms: %7.1f W  %s\n", long_window.duration_s * 1e3, long_gpu->avg_watts,
              long_gpu->provenance.c_str());
  EXPECT_TRUE(long_gpu->measured) << long_gpu->provenance;
  EXPECT_TRUE(long_window.notes.empty()) << long_window.notes.front();  // no cap needed over 1 s

  int short_windows = 0;
  for (double seconds : {0.002, 0.010, 0.030, 0.100}) {
    monitor.begin_window("short");
    load.run_for(seconds);
    const WindowResult result = monitor.end_window("short");
    const SourceEnergy* gpu = gpu0(result);
    ASSERT_NE(gpu, nullptr);
    std::printf("[ info ] %8.1f ms: %7.1f W  %s\n", result.duration_s * 1e3, gpu->avg_watts,
                gpu->provenance.c_str());
    if (result.duration_s < kShortWindowSteps * step) {
      ++short_windows;
      EXPECT_NE(gpu->provenance.find("estimated: short window"), std::string::npos) << gpu->provenance;
      EXPECT_GT(gpu->avg_watts, 0.5 * long_gpu->avg_watts);
      EXPECT_LT(gpu->avg_watts, 1.5 * long_gpu->avg_watts);
    }
  }
  // Not blind: the 2 ms and 10 ms windows (a GEMM or a few) are under four counter steps.
  EXPECT_GE(short_windows, 2) << "the short windows came out long: the test checked nothing";
  monitor.stop();
  for (const std::string& warning : monitor.warnings()) std::printf("[ info ] warning: %s\n", warning.c_str());
#endif
}

// The GPU this process runs on is found in NVML by its PCI bus id (what train, eval, predict and
// bench meter): exactly one GPU, that one, without a warning.
TEST(EnergyOnGpu, TheCudaDeviceIsFoundByItsPciBusId) {
  WW_REQUIRE_CUDA();
  const std::string bus_id = ww::cuda_pci_bus_id(0);
  ASSERT_FALSE(bus_id.empty());
  EnergyOptions options;
  options.gpu_pci_bus_ids = {bus_id};
  options.use_rapl = false;
  EnergyMonitor monitor(options);
  EXPECT_EQ(monitor.host().gpu_count, 1) << bus_id;
  EXPECT_TRUE(monitor.warnings().empty()) << monitor.warnings().front();
  std::printf("[ info ] CUDA device 0 is at PCI bus %s: %s\n", bus_id.c_str(), monitor.host().gpu_model.c_str());
}
