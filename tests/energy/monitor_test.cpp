// EnergyMonitor on fake /proc and powercap trees: windows (nesting, overlap, errors), RAPL counters
// with wrap-around and failure, the estimates, the idle baseline, and the files it writes.
#include <gtest/gtest.h>

#include <algorithm>

#include <cmath>
#include <mutex>

#include "energy/energy_test_util.h"
#include "wattwise/core/error.h"
#include "wattwise/energy/emissions.h"
#include "wattwise/energy/monitor.h"
#include "wattwise/energy/tables.h"

using namespace ww::energy;
using namespace ww::energy::testing;

namespace {

struct Fixture {
  TempDir dir;
  std::string proc = dir.path + "/proc";
  std::string powercap = dir.path + "/powercap";
  // Written by the sampler thread through on_warning, read by the test.
  mutable std::mutex warnings_mutex;
  std::vector<std::string> warnings;

  Fixture() {
    make_fake_proc(proc);
    std::filesystem::create_directories(powercap);
  }
  EnergyOptions options(int interval_ms = 20) {
    EnergyOptions options;
    options.interval_ms = interval_ms;
    options.use_nvml = false;
    options.proc_root = proc;
    options.powercap_root = powercap;
    options.on_warning = [this](const std::string& text) {
      std::lock_guard<std::mutex> lock(warnings_mutex);
      warnings.push_back(text);
    };
    return options;
  }
  void add_rapl(uint64_t range = 262143328850ULL) {
    make_rapl_zone(powercap, "intel-rapl:0", "package-0", 0, range);
    make_rapl_zone(powercap, "intel-rapl:0:0", "dram", 0, range);
    make_rapl_zone(powercap, "intel-rapl:0:1", "core", 0, range);  // inside the package: ignored
  }
  int count_warnings(const std::string& part) const {
    std::lock_guard<std::mutex> lock(warnings_mutex);
    int n = 0;
    for (const auto& warning : warnings) n += warning.find(part) != std::string::npos;
    return n;
  }
  bool no_warnings() const {
    std::lock_guard<std::mutex> lock(warnings_mutex);
    return warnings.empty();
  }
};

const SourceEnergy* find_source(const WindowResult& result, const std::string& id) {
  for (const auto& source : result.sources)
    if (source.source == id) return &source;
  return nullptr;
}

}  // namespace

TEST(EnergyMonitor, RaplWindowsNestAndOverlapWithExactCounterReads) {
  Fixture f;
  f.add_rapl();
  EnergyMonitor monitor(f.options());
  monitor.start();
  auto set = [&](uint64_t package_uj, uint64_t dram_uj) {
    set_rapl_energy(f.powercap, "intel-rapl:0", package_uj);
    set_rapl_energy(f.powercap, "intel-rapl:0:0", dram_uj);
  };
  set(1'000'000, 100'000);
  monitor.begin_window("outer");
  set(3'000'000, 200'000);
  monitor.begin_window("inner");
  sleep_ms(50);  // let the sampler run in between: it must not disturb the counter deltas
  set(4'000'000, 300'000);
  monitor.begin_window("overlap");
  set(7'000'000, 400'000);
  const WindowResult inner = monitor.end_window("inner");
  set(8'000'000, 500'000);
  const WindowResult outer = monitor.end_window("outer");
  set(10'000'000, 900'000);
  sleep_ms(30);
  const WindowResult overlap = monitor.end_window("overlap");
  monitor.stop();

  EXPECT_NEAR(inner.cpu_joules, 4.0, 1e-9);
  EXPECT_NEAR(inner.ram_joules, 0.2, 1e-9);
  EXPECT_NEAR(outer.cpu_joules, 7.0, 1e-9);
  EXPECT_NEAR(outer.ram_joules, 0.4, 1e-9);
  EXPECT_NEAR(overlap.cpu_joules, 6.0, 1e-9);
  EXPECT_NEAR(overlap.ram_joules, 0.6, 1e-9);
  EXPECT_NEAR(outer.total_joules, 7.4, 1e-9);
  EXPECT_NEAR(outer.kwh, 7.4 / 3.6e6, 1e-15);
  EXPECT_GT(outer.duration_s, inner.duration_s);
  EXPECT_NEAR(outer.avg_watts, outer.total_joules / outer.duration_s, 1e-9);
  EXPECT_FALSE(outer.gpu_present);
  EXPECT_EQ(outer.gpu_absent_reason, "NVML disabled");
  const SourceEnergy* package = find_source(outer, "cpu:package-0");
  ASSERT_NE(package, nullptr);
  EXPECT_TRUE(package->measured);
  EXPECT_EQ(package->provenance, "measured: RAPL powercap energy counter (package-0)");
  ASSERT_NE(find_source(outer, "ram:dram-0"), nullptr);
  EXPECT_EQ(outer.sources.size(), 2u);  // the "core" zone is not counted twice
  EXPECT_TRUE(f.no_warnings());
}

TEST(EnergyMonitor, RaplCounterWrapsAroundItsRange) {
  // The counter may wrap at most once between two sampler ticks (real ranges take minutes to
  // wrap; ticks are 100 ms apart), so the test lets the sampler see each value before the next.
  Fixture f;
  f.add_rapl(10'000'000);  // wraps every 10 J
  EnergyMonitor monitor(f.options(10));
  monitor.start();
  set_rapl_energy(f.powercap, "intel-rapl:0", 9'000'000);
  ASSERT_TRUE(wait_for_fresh_sample(monitor));
  monitor.begin_window("one wrap, read directly");
  monitor.begin_window("two wraps");
  set_rapl_energy(f.powercap, "intel-rapl:0", 2'000'000);  // 1 J to the top, 2 J after
  const WindowResult one = monitor.end_window("one wrap, read directly");
  ASSERT_TRUE(wait_for_fresh_sample(monitor));             // the sampler sees 2e6
  set_rapl_energy(f.powercap, "intel-rapl:0", 8'000'000);  // +6 J
  ASSERT_TRUE(wait_for_fresh_sample(monitor));
  set_rapl_energy(f.powercap, "intel-rapl:0", 1'000'000);  // +2 J to the top, +1 J after
  ASSERT_TRUE(wait_for_fresh_sample(monitor));
  const WindowResult two = monitor.end_window("two wraps");
  monitor.stop();
  EXPECT_NEAR(one.cpu_joules, 3.0, 1e-9);
  EXPECT_NEAR(two.cpu_joules, 12.0, 1e-9);
}

TEST(EnergyMonitor, WindowMisuseIsAnError) {
  Fixture f;
  EnergyMonitor monitor(f.options());
  EXPECT_THROW(monitor.begin_window("early"), ww::Error);  // before start()
  monitor.start();
  monitor.begin_window("a");
  EXPECT_TRUE(monitor.window_open("a"));
  EXPECT_THROW(monitor.begin_window("a"), ww::Error);
  try {
    monitor.end_window("training");
    FAIL() << "ending an unknown window must throw";
  } catch (const ww::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'training' was never begun (open windows: a)"),
              std::string::npos)
        << e.what();
  }
  monitor.end_window("a");
  EXPECT_FALSE(monitor.window_open("a"));
  EXPECT_THROW(monitor.end_window("a"), ww::Error);  // ended already
  monitor.stop();
}

TEST(EnergyMonitor, BadOptionsAreErrors) {
  Fixture f;
  EnergyOptions options = f.options();
  options.interval_ms = 0;
  EXPECT_THROW(EnergyMonitor{options}, ww::Error);
  options = f.options();
  options.country = "Narnia";
  EXPECT_THROW(EnergyMonitor{options}, ww::Error);
  options = f.options();
  options.cpu_tdp_w = -5;
  EXPECT_THROW(EnergyMonitor{options}, ww::Error);
}

TEST(EnergyMonitor, EstimatesWithoutCountersFollowTdpAndMemoryInUse) {
  Fixture f;  // no RAPL zones at all
  EnergyMonitor monitor(f.options());
  EXPECT_EQ(monitor.host().cpu_packages, 2);
  EXPECT_EQ(monitor.host().cpu_count, 2);
  EXPECT_NEAR(monitor.host().ram_total_gib, 16.0, 1e-9);
  monitor.start();
  monitor.begin_window("w");
  sleep_ms(120);
  const WindowResult result = monitor.end_window("w");
  monitor.stop();
  // Constant modelled power, so the integral is exact: P x duration.
  EXPECT_NEAR(result.cpu_joules, kFakeCpuWatts * result.duration_s, 1e-6);
  EXPECT_NEAR(result.ram_joules, kFakeRamWatts * result.duration_s, 1e-6);
  const SourceEnergy* cpu = find_source(result, "cpu");
  ASSERT_NE(cpu, nullptr);
  EXPECT_FALSE(cpu->measured);
  EXPECT_EQ(cpu->provenance,
            "estimated: TDP 2 x 225 W (AMD EPYC 7543, cc-cpu_power) x utilisation (at least 10% "
            "of TDP)");
  const SourceEnergy* ram = find_source(result, "ram");
  ASSERT_NE(ram, nullptr);
  EXPECT_NE(ram->provenance.find("0.375 W/GiB"), std::string::npos);
}

TEST(EnergyMonitor, UserTdpOverridesTheTable) {
  Fixture f;
  EnergyOptions options = f.options();
  options.cpu_tdp_w = 100;
  EnergyMonitor monitor(options);
  monitor.start();
  monitor.begin_window("w");
  sleep_ms(50);
  const WindowResult result = monitor.end_window("w");
  EXPECT_NEAR(result.cpu_joules, 10.0 * result.duration_s, 1e-6);  // 10% floor of 100 W
  EXPECT_NE(find_source(result, "cpu")->provenance.find("TDP 100 W (user-given)"),
            std::string::npos);
}

TEST(EnergyMonitor, RaplFailingMidRunFallsBackWithOneWarning) {
  Fixture f;
  f.add_rapl();
  EnergyMonitor monitor(f.options(10));
  monitor.start();
  monitor.begin_window("w");
  set_rapl_energy(f.powercap, "intel-rapl:0", 5'000'000);
  ASSERT_TRUE(wait_for_fresh_sample(monitor));  // the sampler has counted the 5 J
  std::filesystem::remove(f.powercap + "/intel-rapl:0/energy_uj");  // the counter goes away
  ASSERT_TRUE(wait_until([&] { return f.count_warnings("RAPL energy counter failed") > 0; }));
  ASSERT_TRUE(wait_for_fresh_sample(monitor));  // and has estimated a tick after the failure
  const WindowResult result = monitor.end_window("w");
  monitor.stop();
  EXPECT_EQ(f.count_warnings("RAPL energy counter failed"), 1);
  const SourceEnergy* package = find_source(result, "cpu:package-0");
  ASSERT_NE(package, nullptr);
  EXPECT_FALSE(package->measured);
  EXPECT_NE(package->provenance.find("measured: RAPL powercap energy counter (package-0); then "
                                     "estimated: TDP"),
            std::string::npos)
      << package->provenance;
  // 5 J from the counter, then the 45 W estimate from the last good reading on: that spans two
  // sampler ticks, so more than one 10 ms interval, and never more than the whole window.
  EXPECT_GT(result.cpu_joules, 5.0 + kFakeCpuWatts * 0.01);
  EXPECT_LE(result.cpu_joules, 5.0 + kFakeCpuWatts * result.duration_s + 1e-9);
  ASSERT_EQ(result.notes.size(), 1u);
}

TEST(EnergyMonitor, UnreadableRaplIsEstimatedWithAWarning) {
  Fixture f;
  make_rapl_zone(f.powercap, "intel-rapl:0", "package-0", 0, 1000);
  std::filesystem::remove(f.powercap + "/intel-rapl:0/energy_uj");
  std::filesystem::create_directories(f.powercap + "/intel-rapl:0/energy_uj");  // read() fails
  EnergyMonitor monitor(f.options());
  EXPECT_EQ(f.count_warnings("RAPL energy counters are not readable"), 1);
  monitor.start();
  monitor.begin_window("w");
  const WindowResult result = monitor.end_window("w");
  EXPECT_NE(find_source(result, "cpu"), nullptr);
}

TEST(EnergyMonitor, IdleBaselineGivesNetEnergy) {
  Fixture f;
  EnergyOptions options = f.options();
  options.idle_baseline_s = 0.1;
  EnergyMonitor monitor(options);
  monitor.start();
  monitor.begin_window("w");
  sleep_ms(50);
  const WindowResult result = monitor.end_window("w");
  ASSERT_TRUE(result.has_baseline);
  EXPECT_NEAR(result.baseline_cpu_w, kFakeCpuWatts, 1e-6);
  EXPECT_NEAR(result.baseline_ram_w, kFakeRamWatts, 1e-6);
  EXPECT_NEAR(result.baseline_gpu_w, 0.0, 1e-12);
  EXPECT_NEAR(result.net_joules, 0.0, 1e-6);  // nothing ran above idle
  const nlohmann::json json = to_json(result);
  EXPECT_NEAR(json["baseline"]["cpu_w"].get<double>(), kFakeCpuWatts, 1e-6);
}

TEST(EnergyMonitor, PowerTraceIsAParsableTimeSeries) {
  Fixture f;
  f.add_rapl();
  EnergyOptions options = f.options(10);
  options.trace_path = f.dir.path + "/power_trace.csv";
  EnergyMonitor monitor(options);
  monitor.start();
  for (int i = 1; i <= 5; ++i) {
    set_rapl_energy(f.powercap, "intel-rapl:0", i * 1'000'000ULL);
    ASSERT_TRUE(wait_for_fresh_sample(monitor));
  }
  monitor.stop();
  std::ifstream in(options.trace_path);
  std::stringstream text;
  text << in.rdbuf();
  const auto rows = parse_csv(text.str(), "power_trace.csv");
  ASSERT_GE(rows.size(), 6u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"time_s", "unix_time_s", "cpu_power_w",
                                                "cpu_energy_j", "cpu_util_pct", "ram_power_w",
                                                "ram_energy_j", "ram_used_gib"}));
  EXPECT_EQ(static_cast<int64_t>(rows.size() - 1), monitor.samples_taken());
  double last_time = -1, last_energy = -1;
  for (size_t i = 1; i < rows.size(); ++i) {
    ASSERT_EQ(rows[i].size(), rows[0].size()) << "row " << i;
    const double time = std::stod(rows[i][0]), energy = std::stod(rows[i][3]);
    EXPECT_GT(time, last_time);
    EXPECT_GE(energy, last_energy);
    EXPECT_NEAR(std::stod(rows[i][7]), 8.0, 1e-3);  // GiB in use
    last_time = time;
    last_energy = energy;
  }
  EXPECT_NEAR(last_energy, 5.0, 1e-3);  // the counter's total: 5 J
}

// The rows of a CSV file written by the code under test.
static std::vector<std::vector<std::string>> read_csv_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return parse_csv(text.str(), path);
}

TEST(EnergyMonitor, EmissionsCsvHasCodeCarbonColumnsAndAppends) {
  Fixture f;
  f.add_rapl();
  EnergyOptions options = f.options();
  options.country = "FRA";
  options.pue = 1.5;
  EnergyMonitor monitor(options);
  monitor.start();
  monitor.begin_window("run");
  set_rapl_energy(f.powercap, "intel-rapl:0", 36'000'000);  // 36 J = 1e-5 kWh
  const WindowResult result = monitor.end_window("run");
  monitor.stop();
  const std::string path = f.dir.path + "/emissions.csv";
  monitor.append_emissions_csv(path, result, {"proj", "run-1"});
  monitor.append_emissions_csv(path, result, {"proj", "run-2"});

  const auto rows = read_csv_file(path);
  ASSERT_EQ(rows.size(), 3u);  // header once, one row per run
  EXPECT_EQ(rows[0], emissions_csv_columns());
  EXPECT_EQ(rows[0].size(), 38u);  // CodeCarbon 3.3's
  auto column = [&](const std::string& name) {
    const auto& header = rows[0];
    return static_cast<size_t>(std::find(header.begin(), header.end(), name) - header.begin());
  };
  const auto& row = rows[1];
  ASSERT_EQ(row.size(), rows[0].size());
  EXPECT_EQ(row[column("project_name")], "proj");
  EXPECT_EQ(row[column("run_id")], "run-1");
  EXPECT_EQ(rows[2][column("run_id")], "run-2");
  EXPECT_NEAR(std::stod(row[column("duration")]), result.duration_s, 1e-9);
  EXPECT_NEAR(std::stod(row[column("cpu_energy")]), 1e-5, 1e-12);  // kWh
  const double kwh = std::stod(row[column("energy_consumed")]);
  EXPECT_NEAR(kwh, result.kwh, 1e-15);
  // kg CO2e = kWh x PUE x g/kWh / 1000
  EXPECT_NEAR(std::stod(row[column("emissions")]), kwh * 1.5 * 44.18 / 1000.0, 1e-15);
  EXPECT_NEAR(std::stod(row[column("emissions_rate")]),
              std::stod(row[column("emissions")]) / result.duration_s, 1e-15);
  EXPECT_EQ(row[column("country_name")], "France");
  EXPECT_EQ(row[column("country_iso_code")], "FRA");
  EXPECT_EQ(row[column("cpu_model")], "AMD EPYC 7543 32-Core Processor");
  EXPECT_EQ(row[column("gpu_count")], "0");
  EXPECT_EQ(row[column("pue")], "1.5");
  EXPECT_EQ(row[column("tracking_mode")], "machine");
  EXPECT_NEAR(std::stod(row[column("ram_total_size")]), 16.0, 1e-9);
  EXPECT_EQ(row[column("water_consumed")], "0");  // CodeCarbon's default WUE: 0 L/kWh
  EXPECT_EQ(row[column("wue")], "0");
  EXPECT_EQ(row[column("on_cloud")], "N");
  if (std::isfinite(result.cpu_utilization_percent)) {
    EXPECT_NEAR(std::stod(row[column("cpu_utilization_percent")]), result.cpu_utilization_percent, 1e-6);
  }
}

TEST(EnergyEmissions, AppendNeverCorruptsAnExistingFile) {
  TempDir dir;
  const std::string path = dir.path + "/emissions.csv";
  std::string header;
  for (const auto& column : emissions_csv_columns()) header += (header.empty() ? "" : ",") + column;
  // A previous writer died mid-row: our row must start on a line of its own.
  write_file(path, header + "\n2024-01-01T00:00:00,old,partial");
  append_emissions_csv(path, {{"project_name", "new, with comma"}, {"duration", "1.5"}});
  const auto rows = read_csv_file(path);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[1][1], "old");
  EXPECT_EQ(rows[2][1], "new, with comma");
  EXPECT_EQ(rows[2][4], "1.5");  // duration
  EXPECT_EQ(rows[2].size(), emissions_csv_columns().size());

  // A file with another header is left untouched.
  const std::string other = dir.path + "/other.csv";
  write_file(other, "a,b,c\n1,2,3\n");
  EXPECT_THROW(append_emissions_csv(other, {{"duration", "1"}}), ww::Error);
  std::ifstream again(other);
  std::stringstream unchanged;
  unchanged << again.rdbuf();
  EXPECT_EQ(unchanged.str(), "a,b,c\n1,2,3\n");
  EXPECT_THROW(append_emissions_csv(path, {{"not_a_column", "1"}}), ww::Error);
  EXPECT_EQ(random_uuid().size(), 36u);
  EXPECT_NE(random_uuid(), random_uuid());
}

// CodeCarbon appends to a file whose header has its columns in any order, and backs up (renames) one
// whose columns differ. wattwise appends to CodeCarbon 2's and 3's files in their own columns.
TEST(EnergyEmissions, AppendsToCodeCarbon2And3FilesInTheirOwnColumns) {
  TempDir dir;
  const std::string cc2_header =
      "timestamp,project_name,run_id,duration,emissions,emissions_rate,cpu_power,gpu_power,ram_power,cpu_energy,"
      "gpu_energy,ram_energy,energy_consumed,country_name,country_iso_code,region,cloud_provider,cloud_region,os,"
      "python_version,codecarbon_version,cpu_count,cpu_model,gpu_count,gpu_model,longitude,latitude,ram_total_size,"
      "tracking_mode,on_cloud,pue";
  const std::string cc2 = dir.path + "/cc2.csv";
  write_file(cc2, cc2_header + "\n2025-01-01T00:00:00,codecarbon,abc,10,0.001\n");
  const EmissionsRow row = {{"project_name", "wattwise"}, {"duration", "2.5"}, {"water_consumed", "0"},
                            {"cpu_utilization_percent", "40"}, {"pue", "1.2"}};
  append_emissions_csv(cc2, row);
  const auto rows2 = read_csv_file(cc2);
  ASSERT_EQ(rows2.size(), 3u);
  ASSERT_EQ(rows2[2].size(), 31u);  // its columns: the 3.x-only ones dropped
  EXPECT_EQ(rows2[2][1], "wattwise");
  EXPECT_EQ(rows2[2][3], "2.5");
  EXPECT_EQ(rows2[2][30], "1.2");

  // CodeCarbon 3's columns in another order (its own appends accept any order).
  std::vector<std::string> shuffled = emissions_csv_columns();
  std::reverse(shuffled.begin(), shuffled.end());
  std::string cc3_header;
  for (const auto& c : shuffled) cc3_header += (cc3_header.empty() ? "" : ",") + c;
  const std::string cc3 = dir.path + "/cc3.csv";
  write_file(cc3, cc3_header + "\n");
  append_emissions_csv(cc3, row);
  const auto rows3 = read_csv_file(cc3);
  ASSERT_EQ(rows3.size(), 2u);
  ASSERT_EQ(rows3[1].size(), 38u);
  auto at = [&](const std::string& name) {
    return rows3[1][size_t(std::find(shuffled.begin(), shuffled.end(), name) - shuffled.begin())];
  };
  EXPECT_EQ(at("project_name"), "wattwise");
  EXPECT_EQ(at("duration"), "2.5");
  EXPECT_EQ(at("cpu_utilization_percent"), "40");
  EXPECT_EQ(at("pue"), "1.2");
}

TEST(EnergyMonitor, JsonCarriesEveryFigureAndJoulesPerSample) {
  Fixture f;
  EnergyMonitor monitor(f.options());
  monitor.start();
  monitor.begin_window("training");
  sleep_ms(30);
  const WindowResult result = monitor.end_window("training");
  const nlohmann::json json = to_json(result, 1000);
  EXPECT_EQ(json["name"], "training");
  EXPECT_NEAR(json["energy_j"].get<double>(), result.total_joules, 1e-12);
  EXPECT_NEAR(json["j_per_sample"].get<double>(), result.total_joules / 1000.0, 1e-12);
  EXPECT_TRUE(json["gpu_j"].is_null());
  EXPECT_EQ(json["gpu_present"], false);
  EXPECT_EQ(json["gpu_absent_reason"], "NVML disabled");
  for (const char* key : {"duration_s", "cpu_j", "ram_j", "kwh", "gco2e", "avg_w"})
    EXPECT_TRUE(json[key].is_number()) << key;
  ASSERT_EQ(json["sources"].size(), 2u);
  EXPECT_EQ(json["sources"][0]["measured"], false);
  EXPECT_TRUE(json["sources"][0]["provenance"].get<std::string>().starts_with("estimated: "));
  EXPECT_EQ(json["carbon"]["region"], "World");
  EXPECT_FALSE(to_json(result).contains("j_per_sample"));
}
