#include "wattwise/experiment/run_dir.h"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <sys/stat.h>

#include "wattwise/core/error.h"

namespace ww::experiment {

std::string utc_timestamp() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y%m%dT%H%M%SZ", &tm);
  return buffer;
}

std::filesystem::path create_run_dir(const std::filesystem::path& base, const std::string& name) {
  std::error_code ec;
  std::filesystem::create_directories(base, ec);
  if (ec) fail(base.string(), ": cannot create the runs folder (", ec.message(), ")");
  std::string stem = utc_timestamp() + "_" + name;
  for (int attempt = 1; attempt < 1000; ++attempt) {
    std::filesystem::path dir = base / (attempt == 1 ? stem : stem + "_" + std::to_string(attempt));
    // mkdir is atomic: it fails with EEXIST rather than reusing a folder another run made.
    if (::mkdir(dir.c_str(), 0755) == 0) return dir;
    if (errno != EEXIST) fail(dir.string(), ": cannot create the run folder (", std::strerror(errno), ")");
  }
  fail(base.string(), ": too many runs named ", stem);
}

}  // namespace ww::experiment
