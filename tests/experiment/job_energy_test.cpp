// experiment/job_energy.h and RunEnergy's sum of machines: how another machine's window joins the
// run's (joules add, kWh and CO2 follow from the sum with the run's carbon factors, its sources and
// notes named by its host), the per-machine entries of metrics.json, the trace file names, the
// job's hardware for emissions.csv, and a machine's meters reporting with their power trace.
// tests/cli/train_distributed_energy.sh runs it all end to end on posed machines.
#include <gtest/gtest.h>

#include <algorithm>

#include "wattwise/experiment/job_energy.h"
#include "wattwise/experiment/run_energy.h"

using namespace ww;
using namespace ww::experiment;
using nlohmann::json;

namespace {

json window(double duration, double gpu, double cpu, double ram, bool measured_cpu) {
  json sources = json::array();
  if (gpu > 0)
    sources.push_back({{"source", "gpu0"}, {"device", "gpu"}, {"name", "GPU"}, {"energy_j", gpu}, {"avg_w", gpu / duration},
                       {"measured", true}, {"provenance", "measured: nvml total energy counter"}});
  sources.push_back({{"source", "cpu"}, {"device", "cpu"}, {"name", "CPU"}, {"energy_j", cpu}, {"avg_w", cpu / duration},
                     {"measured", measured_cpu}, {"provenance", measured_cpu ? "measured: RAPL" : "estimated: TDP"}});
  sources.push_back({{"source", "ram"}, {"device", "ram"}, {"name", "RAM"}, {"energy_j", ram}, {"avg_w", ram / duration},
                     {"measured", false}, {"provenance", "estimated: RAM"}});
  const double total = gpu + cpu + ram;
  json w = {{"name", "run"}, {"duration_s", duration}, {"energy_j", total}, {"gpu_j", gpu > 0 ? json(gpu) : json(nullptr)},
            {"cpu_j", cpu}, {"ram_j", ram}, {"kwh", total / 3.6e6}, {"gco2e", total / 3.6e6 * 1.2 * 400},
            {"avg_w", total / duration}, {"gpu_present", gpu > 0}, {"sources", sources},
            {"carbon", {{"intensity_g_per_kwh", 400.0}, {"pue", 1.2}}}, {"notes", json::array({"own note"})},
            {"baseline", nullptr}};
  if (gpu == 0) w["gpu_absent_reason"] = "no NVML";
  return w;
}

}  // namespace

TEST(JobEnergy, AnotherMachinesWindowAddsItsJoulesUnderItsHostsName) {
  json own = window(10.0, 0.0, 80.0, 20.0, true);
  own["samples"] = 50;
  json other = window(9.0, 300.0, 60.0, 15.0, false);
  other["carbon"] = {{"intensity_g_per_kwh", 1.0}, {"pue", 1.0}};  // the run's factors apply, not these
  other["notes"] = {"counter failed"};
  const json sum = add_machine_window(own, other, "node1");
  EXPECT_DOUBLE_EQ(sum["duration_s"], 10.0);  // side by side: the run's duration
  EXPECT_DOUBLE_EQ(sum["energy_j"], 475.0);
  EXPECT_DOUBLE_EQ(sum["gpu_j"], 300.0);  // own had no GPU figure (null)
  EXPECT_DOUBLE_EQ(sum["cpu_j"], 140.0);
  EXPECT_DOUBLE_EQ(sum["ram_j"], 35.0);
  EXPECT_DOUBLE_EQ(sum["kwh"], 475.0 / 3.6e6);
  EXPECT_DOUBLE_EQ(sum["gco2e"], 475.0 / 3.6e6 * 1.2 * 400);
  EXPECT_DOUBLE_EQ(sum["avg_w"], 47.5);
  EXPECT_DOUBLE_EQ(sum["j_per_sample"], 9.5);
  EXPECT_TRUE(sum["gpu_present"]);
  EXPECT_FALSE(sum.contains("gpu_absent_reason"));
  std::vector<std::string> ids;
  for (const json& s : sum["sources"]) ids.push_back(s["source"]);
  EXPECT_EQ(ids, (std::vector<std::string>{"cpu", "ram", "node1/gpu0", "node1/cpu", "node1/ram"}));
  EXPECT_DOUBLE_EQ(sum["sources"][2]["energy_j"], 300.0);
  EXPECT_EQ(sum["notes"], json({"own note", "node1: counter failed"}));
  // Two sessions of such sums still add by source (a resumed multi-machine run).
  const json twice = add_energy_windows(sum, sum);
  EXPECT_DOUBLE_EQ(twice["energy_j"], 950.0);
  EXPECT_EQ(twice["sources"].size(), 5u);
  EXPECT_DOUBLE_EQ(twice["sources"][2]["energy_j"], 600.0);
}

TEST(JobEnergy, AMachinesEntryNamesItsGpusByBusIdAndSaysWhetherAllWasMeasured) {
  const json w = window(9.0, 300.0, 60.0, 15.0, true);
  const json entry = machine_energy_entry("node1", {2, 3}, w, {{"gpu0", "0000:3B:00.0"}}, "power_trace_node1.csv");
  EXPECT_EQ(entry["host"], "node1");
  EXPECT_EQ(entry["ranks"], json({2, 3}));
  EXPECT_DOUBLE_EQ(entry["energy_j"], 375.0);
  EXPECT_DOUBLE_EQ(entry["gpu_j"], 300.0);
  EXPECT_DOUBLE_EQ(entry["cpu_j"], 60.0);
  EXPECT_DOUBLE_EQ(entry["duration_s"], 9.0);
  EXPECT_FALSE(entry["measured"]);  // the RAM figure is an estimate
  ASSERT_EQ(entry["gpus"].size(), 1u);
  EXPECT_EQ(entry["gpus"][0]["pci_bus_id"], "0000:3B:00.0");
  EXPECT_DOUBLE_EQ(entry["gpus"][0]["energy_j"], 300.0);
  EXPECT_TRUE(entry["gpus"][0]["measured"]);
  EXPECT_EQ(entry["power_trace"], "power_trace_node1.csv");
  const json unknown = machine_energy_entry("node1", {2}, w, {}, "");
  EXPECT_TRUE(unknown["gpus"][0]["pci_bus_id"].is_null());
}

TEST(JobEnergy, AnotherMachinesTraceIsNamedAfterItsHostAndTheSession) {
  EXPECT_EQ(machine_trace_file("power_trace.csv", "node1"), "power_trace_node1.csv");
  EXPECT_EQ(machine_trace_file("power_trace_3.csv", "gpu-7.cluster"), "power_trace_gpu-7.cluster_3.csv");
  EXPECT_EQ(machine_trace_file("power_trace.csv", "a/b c"), "power_trace_a_b_c.csv");
}

TEST(JobEnergy, TheJobsHardwareAddsTheMachines) {
  energy::HostInfo own;
  own.os = "Linux";
  own.cpu_model = "CPU A";
  own.cpu_count = 8;
  own.cpu_packages = 1;
  own.gpu_count = 2;
  own.gpu_model = "2 x H100";
  own.ram_total_gib = 64;
  const std::vector<json> reports = {
      {{"hardware", {{"cpu_model", "CPU A"}, {"cpu_count", 8}, {"cpu_packages", 1}, {"gpu_count", 3},
                     {"gpu_model", "2 x H100, 1 x A100"}, {"ram_total_gib", 32.0}}}},
      {{"hardware", {{"cpu_model", "CPU B"}, {"cpu_count", 4}, {"cpu_packages", 2}, {"gpu_count", 0},
                     {"gpu_model", ""}, {"ram_total_gib", 16.0}}}}};
  const energy::HostInfo all = combined_hardware(own, reports);
  EXPECT_EQ(all.cpu_count, 20);
  EXPECT_EQ(all.cpu_packages, 4);
  EXPECT_EQ(all.gpu_count, 5);
  EXPECT_EQ(all.gpu_model, "4 x H100, 1 x A100");
  EXPECT_EQ(all.cpu_model, "CPU A, CPU B");
  EXPECT_DOUBLE_EQ(all.ram_total_gib, 112.0);
  EXPECT_EQ(all.os, "Linux");
}

TEST(JobEnergy, AMachinesMetersReportSoFarThenWithTheirPowerTrace) {
  EnergySettings settings = energy_settings_for(Device::cpu());
  settings.interval_ms = 10;
  MachineMeter meter(JobMachine{"node1", {2, 3}, {}}, settings);
  const json so_far = meter.so_far();
  EXPECT_EQ(so_far["host"], "node1");
  EXPECT_EQ(so_far["ranks"], json({2, 3}));
  EXPECT_GE(so_far["window"]["cpu_j"].get<double>(), 0.0);
  EXPECT_TRUE(so_far["hardware"]["cpu_count"].get<int>() > 0);
  EXPECT_FALSE(so_far.contains("power_trace"));
  const json last = meter.finish();
  EXPECT_GE(last["window"]["duration_s"].get<double>(), so_far["window"]["duration_s"].get<double>());
  EXPECT_GE(last["window"]["cpu_j"].get<double>(), so_far["window"]["cpu_j"].get<double>());
  const std::string trace = last["power_trace"];
  EXPECT_EQ(trace.rfind("time_s,unix_time_s,", 0), 0u) << trace.substr(0, 80);
  EXPECT_GE(std::count(trace.begin(), trace.end(), '\n'), 2);  // the header and at least one sample
}
