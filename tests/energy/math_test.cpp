// The arithmetic and data behind every energy figure: integration, counter wrap-around, carbon,
// the shipped tables (and that the compiled-in copies match resources/), CSV handling.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>

#include "wattwise/core/error.h"
#include "wattwise/energy/carbon.h"
#include "wattwise/energy/integrate.h"
#include "wattwise/energy/measure.h"
#include "wattwise/energy/tables.h"

using namespace ww::energy;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

TEST(EnergyIntegrate, TrapezoidOfConstantAndRampIsExact) {
  EXPECT_DOUBLE_EQ(trapezoid_joules({{0, 100}, {0.5, 100}, {2.0, 100}}), 200.0);
  // A linear ramp 0 -> 300 W over 3 s holds 450 J; the trapezoid rule is exact for it.
  EXPECT_DOUBLE_EQ(trapezoid_joules({{0, 0}, {1, 100}, {2, 200}, {3, 300}}), 450.0);
  // Uneven spacing: 1 s at 10->30 W (20 J) plus 0.25 s at 30->50 W (10 J).
  EXPECT_DOUBLE_EQ(trapezoid_joules({{10, 10}, {11, 30}, {11.25, 50}}), 30.0);
  EXPECT_EQ(trapezoid_joules({}), 0.0);
  EXPECT_EQ(trapezoid_joules({{1, 500}}), 0.0);
}

TEST(EnergyIntegrate, CounterDeltaHandlesWrapAround) {
  EXPECT_EQ(counter_delta(1000, 5000, 0), 4000u);
  EXPECT_EQ(counter_delta(1000, 5000, 262143328850ULL), 4000u);
  // powercap counter wrapping at max_energy_range_uj: 9e6 -> top (1e6 more) -> 2e6.
  EXPECT_EQ(counter_delta(9'000'000, 2'000'000, 10'000'000), 3'000'000u);
  // A 64-bit counter (NVML, range 0) wraps modulo 2^64.
  const uint64_t top = std::numeric_limits<uint64_t>::max();
  EXPECT_EQ(counter_delta(top - 9, 5, 0), 15u);
  EXPECT_DOUBLE_EQ(joules_to_kwh(3.6e6), 1.0);
}

TEST(EnergyCarbon, TableLookupAndArithmetic) {
  const CarbonFactors germany = resolve_carbon_factors("DEU", std::nullopt, std::nullopt);
  EXPECT_EQ(germany.region_name, "Germany");
  EXPECT_DOUBLE_EQ(germany.intensity_g_per_kwh, 344.14);
  EXPECT_EQ(germany.year, 2024);
  EXPECT_DOUBLE_EQ(germany.pue, 1.0);
  EXPECT_NE(germany.provenance.find("Ember"), std::string::npos);
  // Lookup by name, case-insensitively; the empty code is the World average.
  EXPECT_EQ(resolve_carbon_factors("germany", std::nullopt, std::nullopt).region_code, "DEU");
  const CarbonFactors world = resolve_carbon_factors("", std::nullopt, 1.2);
  EXPECT_EQ(world.region_code, "World");
  // 2 kWh x PUE 1.2 x 473.05 g/kWh.
  EXPECT_NEAR(grams_co2e(2.0, world), 2.0 * 1.2 * world.intensity_g_per_kwh, 1e-9);
  const CarbonFactors user = resolve_carbon_factors("FRA", 100.0, 1.5);
  EXPECT_DOUBLE_EQ(user.intensity_g_per_kwh, 100.0);
  EXPECT_EQ(user.provenance, "user override");
  EXPECT_DOUBLE_EQ(grams_co2e(0.5, user), 75.0);
  EXPECT_THROW(resolve_carbon_factors("Atlantis", std::nullopt, std::nullopt), ww::Error);
  EXPECT_THROW(resolve_carbon_factors("DEU", std::nullopt, 0.9), ww::Error);
  EXPECT_THROW(resolve_carbon_factors("DEU", -1.0, std::nullopt), ww::Error);
}

TEST(EnergyTables, CompiledTablesMatchTheResourceFiles) {
  const std::string root = WW_SOURCE_DIR;
  EXPECT_EQ(std::string(embedded_cpu_tdp_csv()), read_file(root + "/resources/cpu_tdp.csv"))
      << "resources/cpu_tdp.csv changed: run python3 scripts/gen_energy_tables.py";
  EXPECT_EQ(std::string(embedded_grid_intensity_csv()),
            read_file(root + "/resources/grid_intensity.csv"))
      << "resources/grid_intensity.csv changed: run python3 scripts/gen_energy_tables.py";
  EXPECT_GT(grid_intensity_table().size(), 200u);
  EXPECT_GT(cpu_tdp_table().size(), 100u);
  for (const auto& entry : grid_intensity_table()) {
    EXPECT_GE(entry.g_per_kwh, 0) << entry.code;
    EXPECT_GE(entry.year, 2015) << entry.code;
  }
}

TEST(EnergyTables, CpuModelMatching) {
  EXPECT_EQ(normalize_cpu_model("Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz"),
            "intel xeon platinum 8480+");
  EXPECT_EQ(normalize_cpu_model("AMD EPYC 7543 32-Core Processor"), "amd epyc 7543");
  auto epyc = lookup_cpu_tdp("AMD EPYC 7543 32-Core Processor");
  ASSERT_TRUE(epyc);
  EXPECT_DOUBLE_EQ(epyc->tdp_w, 225);
  auto xeon = lookup_cpu_tdp("Intel(R) Xeon(R) Platinum 8480+");
  ASSERT_TRUE(xeon);
  EXPECT_DOUBLE_EQ(xeon->tdp_w, 350);
  EXPECT_EQ(xeon->source, "cc-intel-ark");
  // Whole words only: "AMD EPYC 9554" must not match a longer model number.
  auto genoa = lookup_cpu_tdp("AMD EPYC 9554P 64-Core Processor");
  ASSERT_TRUE(genoa);
  EXPECT_EQ(genoa->model, "AMD EPYC 9554P");
  EXPECT_FALSE(lookup_cpu_tdp("Intel(R) Xeon(R) Processor"));
  EXPECT_FALSE(lookup_cpu_tdp(""));

  // A user table is consulted first.
  char path[] = "/tmp/ww_tdp_XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string text = "model,tdp_w,source\nAMD EPYC 7543,200,my lab's wattmeter\n";
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  auto mine = lookup_cpu_tdp("AMD EPYC 7543 32-Core Processor", path);
  ASSERT_TRUE(mine);
  EXPECT_DOUBLE_EQ(mine->tdp_w, 200);
  EXPECT_EQ(mine->source, "my lab's wattmeter");
  std::remove(path);
  EXPECT_THROW(lookup_cpu_tdp("AMD EPYC 7543", "/nonexistent/tdp.csv"), ww::Error);
}

TEST(EnergyTables, CsvQuotingRoundTrips) {
  const auto rows = parse_csv(
      "# comment\n\na,\"b, c\",\"say \"\"hi\"\"\"\r\n1,,3\n", "test");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"a", "b, c", "say \"hi\""}));
  EXPECT_EQ(rows[1], (std::vector<std::string>{"1", "", "3"}));
  EXPECT_EQ(csv_field("plain"), "plain");
  EXPECT_EQ(csv_field("Intel(R) Xeon(R), 2 x"), "\"Intel(R) Xeon(R), 2 x\"");
  EXPECT_EQ(parse_csv(csv_field("a \"b\", c") + "\n", "t")[0][0], "a \"b\", c");
  EXPECT_THROW(parse_csv("\"open\n", "t"), ww::Error);
}

TEST(EnergyMeasure, GpuListParsing) {
  EXPECT_EQ(parse_gpu_list("0,2,3"), (std::vector<int>{0, 2, 3}));
  EXPECT_TRUE(parse_gpu_list("none").empty());
  EXPECT_THROW(parse_gpu_list("0,x"), ww::Error);
  EXPECT_THROW(parse_gpu_list("-1"), ww::Error);
}
