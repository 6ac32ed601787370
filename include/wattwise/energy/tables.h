#pragma once
// The data tables wattwise ships (resources/*.csv, compiled into the library so the binary needs no
// files at run time): CPU model -> TDP, and grid carbon intensity by country or region. Each table
// names its source in the file; see docs/ENERGY.md.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ww::energy {

// Minimal CSV reading shared by the tables and the tests: '#' lines and blank lines are skipped,
// fields may be double-quoted ("a, b" and "" for a quote inside). `what` names the text in errors.
std::vector<std::vector<std::string>> parse_csv(std::string_view text, const std::string& what);
// One CSV field, quoted only when it has to be.
std::string csv_field(const std::string& value);

struct CpuTdpEntry {
  std::string model;   // as the vendor names it: "AMD EPYC 7543", "Intel Xeon Platinum 8480+"
  double tdp_w = 0;    // thermal design power of one package (socket)
  std::string source;  // where the figure comes from
};

// Lower-cased model name without vendor marks and decorations, for matching /proc/cpuinfo's
// "Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.0GHz" against the table's "Intel Xeon Platinum 8480+".
std::string normalize_cpu_model(std::string_view model);

// Looks `cpu_model` up: first in `user_table_path` (same columns as resources/cpu_tdp.csv) when
// given, then in the shipped table. An entry matches when its normalized name equals the model's or
// appears in it as whole words; the longest match wins. nullopt when nothing matches.
std::optional<CpuTdpEntry> lookup_cpu_tdp(const std::string& cpu_model,
                                          const std::string& user_table_path = "");

struct GridIntensityEntry {
  std::string code;  // ISO 3166-1 alpha-3 ("DEU") or a region name ("World", "EU")
  std::string name;  // "Germany"
  double g_per_kwh = 0;
  int year = 0;
  std::string source;
};

// Case-insensitive lookup by code or by name. nullopt when unknown.
std::optional<GridIntensityEntry> lookup_grid_intensity(const std::string& code_or_name);
const std::vector<GridIntensityEntry>& grid_intensity_table();
const std::vector<CpuTdpEntry>& cpu_tdp_table();

// The shipped files' text as compiled in (tests compare these with resources/ so they never drift).
std::string_view embedded_cpu_tdp_csv();
std::string_view embedded_grid_intensity_csv();

}  // namespace ww::energy
