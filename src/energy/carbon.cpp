#include "wattwise/energy/carbon.h"

#include <cmath>
#include <sstream>

#include "wattwise/core/error.h"
#include "wattwise/energy/tables.h"

namespace ww::energy {

CarbonFactors resolve_carbon_factors(const std::string& country,
                                     std::optional<double> intensity_g_per_kwh,
                                     std::optional<double> pue) {
  CarbonFactors factors;
  factors.pue = pue.value_or(1.0);
  if (!std::isfinite(factors.pue) || factors.pue < 1.0)
    fail("PUE must be a number >= 1.0 (facility power / IT power), got ", factors.pue);
  if (intensity_g_per_kwh) {
    if (!std::isfinite(*intensity_g_per_kwh) || *intensity_g_per_kwh < 0)
      fail("carbon intensity must be >= 0 gCO2e/kWh, got ", *intensity_g_per_kwh);
    factors.intensity_g_per_kwh = *intensity_g_per_kwh;
    factors.region_code = country;
    factors.region_name = country;
    factors.provenance = "user override";
    return factors;
  }
  const std::string key = country.empty() ? "World" : country;
  const auto entry = lookup_grid_intensity(key);
  if (!entry)
    fail("unknown country or region '", country,
         "' for the grid carbon intensity: use an ISO 3166-1 alpha-3 code (DEU, USA, FRA), a "
         "region name (World, EU, Europe) from resources/grid_intensity.csv, or give the "
         "intensity itself");
  factors.intensity_g_per_kwh = entry->g_per_kwh;
  factors.region_code = entry->code;
  factors.region_name = entry->name;
  factors.year = entry->year;
  std::ostringstream provenance;
  provenance << "table: " << entry->name << " " << entry->year << " (" << entry->source
             << ", resources/grid_intensity.csv)";
  factors.provenance = provenance.str();
  return factors;
}

double grams_co2e(double kwh, const CarbonFactors& factors) {
  return kwh * factors.pue * factors.intensity_g_per_kwh;
}

}  // namespace ww::energy
