#pragma once
// Run folders: runs/<UTC timestamp>_<name>/, created exclusively so an existing run is never
// overwritten (a clash within the same second gets a numeric suffix).
#include <filesystem>
#include <string>

namespace ww::experiment {

std::string utc_timestamp();  // "20261123T120435Z"
std::filesystem::path create_run_dir(const std::filesystem::path& base, const std::string& name);

}  // namespace ww::experiment
