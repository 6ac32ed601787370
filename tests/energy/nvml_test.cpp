// The NVML paths, against tests/tools/fake_nvml.cpp (scripted through WW_FAKE_NVML_* variables):
// energy counter, no counter (power integration), a counter failing mid-run, a GPU that is lost,
// NVML missing or failing to start, GPU selection, and a counter wrapping at 2^64.
#include <gtest/gtest.h>

#include <cmath>
#include <ctime>
#include <map>
#include <mutex>

#include "energy/energy_test_util.h"
#include "wattwise/core/error.h"
#include "wattwise/energy/monitor.h"
#include "wattwise/energy/tables.h"

using namespace ww::energy;
using namespace ww::energy::testing;

namespace {

constexpr double kPower = 200.0;  // W, every fake GPU

// Sets the fake's script for one test and clears it afterwards.
struct FakeNvml {
  std::vector<std::string> names;
  TempDir dir;
  std::string proc = dir.path + "/proc";
  // Written by the sampler thread through on_warning, read by the test.
  mutable std::mutex warnings_mutex;
  std::vector<std::string> warnings;

  FakeNvml() {
    make_fake_proc(proc);
    set("WW_FAKE_NVML_POWER_W", std::to_string(kPower));
  }
  ~FakeNvml() {
    for (const auto& name : names) unsetenv(name.c_str());
  }
  void set(const std::string& name, const std::string& value) {
    setenv(name.c_str(), value.c_str(), 1);
    names.push_back(name);
  }
  EnergyOptions options(int interval_ms = 10) {
    EnergyOptions options;
    options.interval_ms = interval_ms;
    options.nvml_library = WW_FAKE_NVML;
    options.use_rapl = false;
    options.proc_root = proc;
    options.on_warning = [this](const std::string& text) {
      std::lock_guard<std::mutex> lock(warnings_mutex);
      warnings.push_back(text);
    };
    return options;
  }
  int count_warnings(const std::string& part) const {
    std::lock_guard<std::mutex> lock(warnings_mutex);
    int n = 0;
    for (const auto& warning : warnings) n += warning.find(part) != std::string::npos;
    return n;
  }
};

WindowResult measure_for(EnergyMonitor& monitor, int ms) {
  monitor.start();
  monitor.begin_window("w");
  sleep_ms(ms);
  WindowResult result = monitor.end_window("w");
  monitor.stop();
  return result;
}

const SourceEnergy& gpu0(const WindowResult& result) {
  for (const auto& source : result.sources)
    if (source.source == "gpu0") return source;
  throw std::runtime_error("no gpu0 in the result");
}

}  // namespace

TEST(EnergyNvml, EnergyCounterIsReadDirectly) {
  FakeNvml fake;
  EnergyOptions options = fake.options();
  options.trace_path = fake.dir.path + "/power_trace.csv";
  EnergyMonitor monitor(options);
  ASSERT_TRUE(monitor.gpu_present());
  EXPECT_EQ(monitor.host().gpu_model, "1 x Fake NVIDIA GPU");
  const WindowResult result = measure_for(monitor, 150);
  EXPECT_TRUE(result.gpu_present);
  EXPECT_EQ(gpu0(result).provenance, "measured: nvml total energy counter");
  EXPECT_TRUE(gpu0(result).measured);
  // Counter resolution is 1 mJ; the two clocks are the same CLOCK_MONOTONIC.
  EXPECT_NEAR(result.gpu_joules, kPower * result.duration_s, 0.01 * kPower * result.duration_s);
  EXPECT_EQ(fake.count_warnings(""), 0);

  // The trace carries the GPU's power, energy and state.
  std::ifstream in(options.trace_path);
  std::stringstream text;
  text << in.rdbuf();
  const auto rows = parse_csv(text.str(), "trace");
  ASSERT_GE(rows.size(), 3u);
  const std::vector<std::string> expected_head = {
      "time_s", "unix_time_s", "gpu0_power_w", "gpu0_energy_j", "gpu0_util_pct",
      "gpu0_mem_used_mib", "gpu0_sm_clock_mhz", "gpu0_temp_c"};
  EXPECT_TRUE(std::equal(expected_head.begin(), expected_head.end(), rows[0].begin()));
  const auto& last = rows.back();
  EXPECT_DOUBLE_EQ(std::stod(last[2]), kPower);
  EXPECT_DOUBLE_EQ(std::stod(last[4]), 97);
  EXPECT_DOUBLE_EQ(std::stod(last[5]), 10240);
  EXPECT_DOUBLE_EQ(std::stod(last[6]), 1980);
  EXPECT_DOUBLE_EQ(std::stod(last[7]), 55);
}

TEST(EnergyNvml, WithoutACounterSampledPowerIsIntegrated) {
  FakeNvml fake;
  fake.set("WW_FAKE_NVML_ENERGY", "unsupported");
  EnergyMonitor monitor(fake.options());
  const WindowResult result = measure_for(monitor, 120);
  EXPECT_EQ(gpu0(result).provenance,
            "measured: nvml power samples every 10 ms, trapezoid integration (no energy counter "
            "on this GPU)");
  // Constant power: the trapezoid plus extrapolation from the last sample is exact.
  EXPECT_NEAR(result.gpu_joules, kPower * result.duration_s, 1e-6);
}

TEST(EnergyNvml, CounterFailingMidRunFallsBackToPowerWithOneWarning) {
  FakeNvml fake;
  fake.set("WW_FAKE_NVML_ENERGY_FAIL_AFTER_S", "0.06");
  EnergyOptions options = fake.options();
  options.counter_period_ms = options.interval_ms;  // the sampler reads the counter every tick
  EnergyMonitor monitor(options);
  const WindowResult result = measure_for(monitor, 200);
  EXPECT_EQ(fake.count_warnings("NVML total energy counter failed"), 1);
  EXPECT_NE(gpu0(result).provenance.find("measured: nvml total energy counter; then measured: "
                                         "nvml power samples every 10 ms, trapezoid integration "
                                         "(after the energy counter failed at"),
            std::string::npos)
      << gpu0(result).provenance;
  EXPECT_NEAR(result.gpu_joules, kPower * result.duration_s, 0.02 * kPower * result.duration_s);
}

TEST(EnergyNvml, LostGpuStopsCountingWithAWarningAndNoCrash) {
  FakeNvml fake;
  const std::string lost_flag = fake.dir.path + "/gpu_lost";
  fake.set("WW_FAKE_NVML_LOST_WHEN", lost_flag);
  EnergyMonitor monitor(fake.options());
  monitor.start();
  const auto begun = std::chrono::steady_clock::now();
  monitor.begin_window("w");
  auto seconds_since_begun = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - begun).count();
  };
  // The sampler counts at least 50 ms while the GPU answers, then it stops answering.
  ASSERT_TRUE(wait_until([&] { return seconds_since_begun() >= 0.05; }));
  ASSERT_TRUE(wait_for_fresh_sample(monitor));
  const double lost_after_s = seconds_since_begun();
  write_file(lost_flag, "");
  ASSERT_TRUE(wait_until([&] { return fake.count_warnings("stopped answering NVML") > 0; }));
  ASSERT_TRUE(wait_for_fresh_sample(monitor));
  const WindowResult result = monitor.end_window("w");
  monitor.stop();
  EXPECT_EQ(fake.count_warnings("stopped answering NVML"), 1);
  EXPECT_NE(gpu0(result).provenance.find("GPU lost at"), std::string::npos);
  // The energy up to the last answer (at least 50 ms of it), nothing after the loss.
  EXPECT_GE(result.gpu_joules, kPower * 0.05 * 0.99);
  EXPECT_LE(result.gpu_joules, kPower * lost_after_s * 1.01);
  EXPECT_LT(lost_after_s, result.duration_s);
}

TEST(EnergyNvml, NvmlMissingOrFailingMeansNoGpuFigure) {
  FakeNvml fake;
  EnergyOptions options = fake.options();
  options.nvml_library = "/nonexistent/libnvidia-ml.so.1";
  EnergyMonitor missing(options);
  EXPECT_FALSE(missing.gpu_present());
  EXPECT_NE(missing.gpu_absent_reason().find("cannot load /nonexistent/libnvidia-ml.so.1"),
            std::string::npos);
  const WindowResult result = measure_for(missing, 10);
  EXPECT_FALSE(result.gpu_present);
  EXPECT_EQ(result.gpu_joules, 0.0);

  fake.set("WW_FAKE_NVML_INIT_FAIL", "1");
  EnergyMonitor failing(fake.options());
  EXPECT_FALSE(failing.gpu_present());
  EXPECT_NE(failing.gpu_absent_reason().find("nvmlInit failed: Driver Not Loaded (9)"),
            std::string::npos)
      << failing.gpu_absent_reason();
}

TEST(EnergyNvml, GpuSelection) {
  FakeNvml fake;
  fake.set("WW_FAKE_NVML_GPUS", "2");
  EnergyMonitor all(fake.options());
  EXPECT_EQ(all.host().gpu_count, 2);
  EXPECT_EQ(all.host().gpu_model, "2 x Fake NVIDIA GPU");
  // Each metered GPU's bus id, read back from NVML (nvmlDeviceGetPciInfo_v3).
  EXPECT_EQ(all.gpu_pci_bus_ids(),
            (std::map<std::string, std::string>{{"gpu0", "0000:10:00.0"}, {"gpu1", "0000:11:00.0"}}));

  EnergyOptions options = fake.options();
  options.gpus = std::vector<int>{1};
  EnergyMonitor second(options);
  const WindowResult result = measure_for(second, 30);
  ASSERT_EQ(result.sources.front().source, "gpu1");
  EXPECT_EQ(second.host().gpu_count, 1);

  options.gpus = std::vector<int>{};
  EXPECT_FALSE(EnergyMonitor(options).gpu_present());
  options.gpus = std::vector<int>{5};
  EXPECT_THROW(EnergyMonitor{options}, ww::Error);
}

// The GPUs a run uses, named by CUDA's PCI bus ids (CUDA_VISIBLE_DEVICES renumbers CUDA's devices,
// NVML's indices do not move): only those are metered; one NVML cannot find is a warning and then
// every GPU is metered.
TEST(EnergyNvml, GpusChosenByPciBusId) {
  FakeNvml fake;
  fake.set("WW_FAKE_NVML_GPUS", "4");
  EnergyOptions options = fake.options();
  options.gpu_pci_bus_ids = {"0000:13:00.0", "00000000:11:00.0", "13:00.0"};  // GPU 3, GPU 1, GPU 3 again
  EnergyMonitor chosen(options);
  EXPECT_EQ(chosen.host().gpu_count, 2);
  const WindowResult result = measure_for(chosen, 30);
  std::vector<std::string> metered;
  for (const auto& source : result.sources)
    if (source.source.rfind("gpu", 0) == 0) metered.push_back(source.source);
  EXPECT_EQ(metered, (std::vector<std::string>{"gpu3", "gpu1"}));
  // Their bus ids as the caller spelled them (the first spelling of a GPU named twice).
  EXPECT_EQ(chosen.gpu_pci_bus_ids(),
            (std::map<std::string, std::string>{{"gpu1", "00000000:11:00.0"}, {"gpu3", "0000:13:00.0"}}));
  EXPECT_EQ(fake.count_warnings(""), 0) << (fake.warnings.empty() ? "" : fake.warnings.front());

  options.gpu_pci_bus_ids = {"0000:11:00.0", "0000:3b:00.0"};  // no GPU at bus 0x3b
  EnergyMonitor unknown(options);
  EXPECT_EQ(unknown.host().gpu_count, 4);
  EXPECT_EQ(fake.count_warnings("the GPU at PCI bus 0000:3b:00.0 is not found by NVML (Not Found"), 1);

  options.gpus = std::vector<int>{2};  // explicit indices win
  EnergyMonitor indices(options);
  EXPECT_EQ(indices.host().gpu_count, 1);
}

TEST(EnergyNvml, CounterWrapAt64BitsIsSeamless) {
  FakeNvml fake;
  // Place the counter 20 J (20000 mJ) below 2^64 right now: at 200 W it wraps within 0.1 s.
  timespec now {};
  clock_gettime(CLOCK_MONOTONIC, &now);
  const double seconds = static_cast<double>(now.tv_sec) + now.tv_nsec * 1e-9;
  const auto current = static_cast<unsigned long long>(kPower * seconds * 1000.0);
  const unsigned long long offset = 0ULL - current - 20000ULL;  // modulo 2^64
  fake.set("WW_FAKE_NVML_ENERGY_OFFSET_MJ", std::to_string(offset));
  EnergyMonitor monitor(fake.options());
  const WindowResult result = measure_for(monitor, 250);
  EXPECT_NEAR(result.gpu_joules, kPower * result.duration_s, 0.01 * kPower * result.duration_s);
}

// ---- short windows and the power limit ---------------------------------------------------------

TEST(EnergyNvml, CounterStepIsProbedAtStart) {
  FakeNvml fake;
  fake.set("WW_FAKE_NVML_COUNTER_STEP_MS", "40");
  EnergyMonitor monitor(fake.options());
  EXPECT_TRUE(monitor.counter_update_periods().empty());  // not probed before start()
  monitor.start();
  const auto periods = monitor.counter_update_periods();
  ASSERT_EQ(periods.count("gpu0"), 1u);
  // Polling every ~0.5 ms brackets each change within a few ms (a loaded machine may widen some
  // brackets, which the probe then leaves out): 40 ms, not the poll interval nor the probe's limit.
  EXPECT_GE(periods.at("gpu0"), 0.030);
  EXPECT_LE(periods.at("gpu0"), 0.060);
  monitor.stop();
}

TEST(EnergyNvml, ShortWindowIsEstimatedFromEdgePower) {
  // The counter moves every 250 ms: a window of a few ms would read 0 J or one whole step (50 J,
  // ~10 kW over 5 ms) off it. It is estimated from the power at both edges instead.
  FakeNvml fake;
  fake.set("WW_FAKE_NVML_COUNTER_STEP_MS", "250");
  EnergyMonitor monitor(fake.options());
  monitor.start();
  monitor.begin_window("short");
  sleep_ms(5);
  const WindowResult result = monitor.end_window("short");
  monitor.stop();
  ASSERT_LT(result.duration_s, kShortWindowSteps * 0.25);
  EXPECT_FALSE(gpu0(result).measured);
  EXPECT_NE(gpu0(result).provenance.find("estimated: short window ("), std::string::npos)
      << gpu0(result).provenance;
  EXPECT_NE(gpu0(result).provenance.find("power at both edges x duration"), std::string::npos);
  // Constant power: the estimate is exact.
  EXPECT_NEAR(result.gpu_joules, kPower * result.duration_s, 1e-9 * kPower);
  EXPECT_NEAR(gpu0(result).avg_watts, kPower, 1e-6);
  EXPECT_TRUE(result.notes.empty());
}

TEST(EnergyNvml, WindowOfManyStepsIsReadOffTheCounterWithinOneStep) {
  FakeNvml fake;
  fake.set("WW_FAKE_NVML_COUNTER_STEP_MS", "20");
  EnergyMonitor monitor(fake.options());
  monitor.start();
  monitor.begin_window("long");
  sleep_ms(300);
  const WindowResult result = monitor.end_window("long");
  monitor.stop();
  const double step = monitor.counter_update_periods().at("gpu0");
  ASSERT_GE(result.duration_s, kShortWindowSteps * step);
  EXPECT_TRUE(gpu0(result).measured);
  EXPECT_EQ(gpu0(result).provenance, "measured: nvml total energy counter");
  // Each edge's reading lags the truth by less than one 20 ms step.
  EXPECT_NEAR(result.gpu_joules, kPower * result.duration_s, kPower * 0.020 + 1e-3);
}

TEST(EnergyNvml, NoWindowAveragesAboveThePowerLimit) {
  // A GPU that (impossibly) reports 900 W against a 700 W limit: every figure is capped at the
  // limit, says so in its provenance and in the window's notes; short windows too.
  FakeNvml fake;
  fake.set("WW_FAKE_NVML_POWER_W", "900");
  fake.set("WW_FAKE_NVML_POWER_LIMIT_W", "700");
  EnergyMonitor monitor(fake.options());
  monitor.start();
  monitor.begin_window("long");
  monitor.begin_window("short");
  const WindowResult short_window = monitor.end_window("short");
  sleep_ms(100);
  const WindowResult long_window = monitor.end_window("long");
  monitor.stop();
  for (const WindowResult* result : {&short_window, &long_window}) {
    EXPECT_LE(gpu0(*result).avg_watts, 700.0 * (1 + 1e-12)) << result->name;
    EXPECT_NEAR(result->gpu_joules, 700.0 * result->duration_s, 1e-9) << result->name;
    EXPECT_FALSE(gpu0(*result).measured);
    EXPECT_NE(gpu0(*result).provenance.find("; capped at the 700 W power limit"), std::string::npos)
        << gpu0(*result).provenance;
    ASSERT_EQ(result->notes.size(), 1u) << result->name;
    EXPECT_NE(result->notes[0].find("exceeds the 700 W power limit (not physical): capped at the limit"),
              std::string::npos)
        << result->notes[0];
  }
}

TEST(EnergyNvml, WindowEdgesSynchroniseTheDevice) {
  FakeNvml fake;
  EnergyOptions options = fake.options();
  int synchronised = 0;
  options.synchronize = [&synchronised] { ++synchronised; };
  EnergyMonitor monitor(options);
  monitor.start();
  EXPECT_EQ(synchronised, 0);
  monitor.begin_window("outer");
  EXPECT_EQ(synchronised, 1);
  monitor.begin_window("inner");
  monitor.end_window("inner");
  monitor.end_window("outer");
  EXPECT_EQ(synchronised, 4);
  monitor.stop();
}
