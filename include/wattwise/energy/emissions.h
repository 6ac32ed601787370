#pragma once
// emissions.csv in CodeCarbon's format: CodeCarbon 3.3's 38 column names in its order and its units
// (duration s, energy kWh, power W, emissions kg CO2e, emissions_rate kg/s, ram_total_size and
// ram_used_gb GB, water_consumed L, utilisations %), one row appended per run, the header written
// once. Columns we cannot know (python_version, codecarbon_version, location, cloud) are left empty.
#include <map>
#include <string>
#include <vector>

namespace ww::energy {

const std::vector<std::string>& emissions_csv_columns();

// column name -> value, already formatted. Unknown names are an error; missing ones stay empty.
using EmissionsRow = std::map<std::string, std::string>;

// Appends `row` to `path` so that an existing file is never corrupted: the file is locked, the
// header is written only when it is empty; an existing file written by CodeCarbon 2 or 3 (or by
// wattwise) gets the row in its own header's columns, as CodeCarbon appends (a column we have that
// it lacks is dropped); a header with any other column is an error and nothing is written; a
// previous row left without its newline gets one first; the row goes out in one write, then fsync.
void append_emissions_csv(const std::string& path, const EmissionsRow& row);

// A random RFC 4122 version-4 UUID ("9adda612-4ce8-49d0-9a55-e3b071a7b885").
std::string random_uuid();
// "2024-07-19T15:57:43" in UTC (CodeCarbon's timestamp format).
std::string utc_timestamp_now();

}  // namespace ww::energy
