#pragma once
// Carbon accounting: grams CO2e = kWh x PUE x grid carbon intensity (gCO2e/kWh). The intensity
// comes from the shipped table (resources/grid_intensity.csv) for a country or region code, or
// from the user; PUE defaults to 1.0 (no data-centre overhead), as CodeCarbon does.
#include <optional>
#include <string>

namespace ww::energy {

struct CarbonFactors {
  double intensity_g_per_kwh = 0;
  double pue = 1.0;
  std::string region_code;  // "DEU", "World"; empty when the user gave the intensity
  std::string region_name;  // "Germany"
  int year = 0;             // year of the intensity figure (0 when user-given)
  std::string provenance;   // "table: Germany 2024 (Ember ...)" or "user override"
};

// country: code or name from the table ("" = "World", the global average). An explicit intensity
// overrides the table (country then only labels the figure). Throws ww::Error for an unknown
// country or a non-positive intensity / PUE below 1.
CarbonFactors resolve_carbon_factors(const std::string& country,
                                     std::optional<double> intensity_g_per_kwh,
                                     std::optional<double> pue);

// grams CO2e for `kwh` of energy drawn by the devices (PUE scales it to the facility's draw).
double grams_co2e(double kwh, const CarbonFactors& factors);

}  // namespace ww::energy
