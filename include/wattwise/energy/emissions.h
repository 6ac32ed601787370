#pragma once
// emissions.csv in CodeCarbon's format: the same column names in the same order and the same units
// (duration s, energy kWh, power W, emissions kg CO2e, emissions_rate kg/s, ram_total_size GB),
// one row appended per run, the header written once. Columns we cannot know (python_version,
// codecarbon_version, location, cloud) are left empty.
#include <map>
#include <string>
#include <vector>

namespace ww::energy {

const std::vector<std::string>& emissions_csv_columns();

// column name -> value, already formatted. Unknown names are an error; missing ones stay empty.
using EmissionsRow = std::map<std::string, std::string>;

// Appends `row` to `path` so that an existing file is never corrupted: the file is locked, the
// header is written only when it is empty, an existing header must match ours (else ww::Error and
// nothing is written), a previous row left without its newline gets one first, and the row goes
// out in one write followed by fsync.
void append_emissions_csv(const std::string& path, const EmissionsRow& row);

// A random RFC 4122 version-4 UUID ("9adda612-4ce8-49d0-9a55-e3b071a7b885").
std::string random_uuid();
// "2024-07-19T15:57:43" in UTC (CodeCarbon's timestamp format).
std::string utc_timestamp_now();

}  // namespace ww::energy
