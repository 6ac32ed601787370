#include "wattwise/energy/emissions.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <random>

#include "wattwise/core/error.h"
#include "wattwise/energy/tables.h"

namespace ww::energy {
namespace {

// Closes the file descriptor (and so releases its flock) on every path out.
struct FileDescriptor {
  int fd = -1;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
};

void write_all(int fd, const std::string& data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("emissions file ", path, ": write failed: ", std::strerror(errno));
    done += static_cast<size_t>(n);
  }
}

std::string read_first_line(int fd, const std::string& path) {
  std::string line;
  char buffer[512];
  off_t offset = 0;
  for (;;) {
    const ssize_t n = ::pread(fd, buffer, sizeof(buffer), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("emissions file ", path, ": read failed: ", std::strerror(errno));
    if (n == 0) return line;
    for (ssize_t i = 0; i < n; ++i) {
      if (buffer[i] == '\n') return line;
      line += buffer[i];
    }
    offset += n;
    if (line.size() > 65536) return line;
  }
}

}  // namespace

const std::vector<std::string>& emissions_csv_columns() {
  // The header CodeCarbon 3.3 writes (EmissionsData in codecarbon/output_methods/
  // emissions_data.py; its docs give the units), in its order: 2.x's 31 columns and experiment_id,
  // water_consumed, the utilisations, ram_used_gb and wue.
  static const std::vector<std::string> columns = {
      "timestamp",          "project_name",    "run_id",           "experiment_id",
      "duration",           "emissions",       "emissions_rate",   "cpu_power",
      "gpu_power",          "ram_power",       "cpu_energy",       "gpu_energy",
      "ram_energy",         "energy_consumed", "water_consumed",   "country_name",
      "country_iso_code",   "region",          "cloud_provider",   "cloud_region",
      "os",                 "python_version",  "codecarbon_version", "cpu_count",
      "cpu_model",          "gpu_count",       "gpu_model",        "longitude",
      "latitude",           "ram_total_size",  "tracking_mode",    "cpu_utilization_percent",
      "gpu_utilization_percent", "ram_utilization_percent", "ram_used_gb", "on_cloud",
      "pue",                "wue"};
  return columns;
}

namespace {

std::vector<std::string> split_header(const std::string& line) {
  std::vector<std::string> names;
  size_t begin = 0;
  for (;;) {
    const size_t end = line.find(',', begin);
    std::string name = line.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
    if (!name.empty() && name.back() == '\r') name.pop_back();
    names.push_back(name);
    if (end == std::string::npos) return names;
    begin = end + 1;
  }
}

// `row` as a line in the order of `columns` (a column the row has no value for stays empty).
std::string row_line(const std::vector<std::string>& columns, const EmissionsRow& row) {
  std::string line;
  for (size_t i = 0; i < columns.size(); ++i) {
    if (i > 0) line += ',';
    const auto it = row.find(columns[i]);
    if (it != row.end()) line += csv_field(it->second);
  }
  return line + '\n';
}

}  // namespace

void append_emissions_csv(const std::string& path, const EmissionsRow& row) {
  const auto& columns = emissions_csv_columns();
  for (const auto& [name, value] : row) {
    (void)value;
    if (std::find(columns.begin(), columns.end(), name) == columns.end())
      fail("emissions row: '", name, "' is not a CodeCarbon emissions.csv column");
  }
  std::string header;
  for (const std::string& column : columns) header += (header.empty() ? "" : ",") + column;
  header += '\n';

  FileDescriptor file;
  file.fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (file.fd < 0) fail("emissions file ", path, ": cannot open: ", std::strerror(errno));
  // One writer at a time, also across processes appending to the same file.
  while (::flock(file.fd, LOCK_EX) != 0)
    if (errno != EINTR) fail("emissions file ", path, ": cannot lock: ", std::strerror(errno));
  struct stat info {};
  if (::fstat(file.fd, &info) != 0)
    fail("emissions file ", path, ": cannot stat: ", std::strerror(errno));
  std::string data;
  if (info.st_size == 0) {
    data = header + row_line(columns, row);
  } else {
    // A file CodeCarbon (2.x's 31 columns, 3.x's 38, in any order, as its own appends accept) or
    // wattwise wrote: our row in its columns, as CodeCarbon appends; any other file is left alone.
    const std::vector<std::string> existing = split_header(read_first_line(file.fd, path));
    for (const std::string& name : existing)
      if (std::find(columns.begin(), columns.end(), name) == columns.end())
        fail("emissions file ", path, ": its header has '", name, "', not a CodeCarbon emissions.csv column; "
             "not appending to it (move it away or write to another folder)");
    char last = '\n';
    if (::pread(file.fd, &last, 1, info.st_size - 1) == 1 && last != '\n')
      data.push_back('\n');  // a previous writer died mid-row: start ours on a fresh line
    data.append(row_line(existing, row));
  }
  write_all(file.fd, data, path);  // O_APPEND: lands at the end even if the file grew meanwhile
  if (::fsync(file.fd) != 0)
    fail("emissions file ", path, ": fsync failed: ", std::strerror(errno));
}

std::string random_uuid() {
  std::random_device device;
  std::mt19937_64 generator((static_cast<uint64_t>(device()) << 32) ^ device() ^
                            static_cast<uint64_t>(std::chrono::steady_clock::now()
                                                      .time_since_epoch()
                                                      .count()));
  uint64_t high = generator(), low = generator();
  high = (high & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  low = (low & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;    // RFC 4122 variant
  char text[40];
  std::snprintf(text, sizeof(text), "%08x-%04x-%04x-%04x-%012llx",
                static_cast<unsigned>(high >> 32), static_cast<unsigned>((high >> 16) & 0xffff),
                static_cast<unsigned>(high & 0xffff), static_cast<unsigned>(low >> 48),
                static_cast<unsigned long long>(low & 0xffffffffffffULL));
  return text;
}

std::string utc_timestamp_now() {
  const std::time_t now = std::time(nullptr);
  std::tm utc {};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &utc);
  return text;
}

}  // namespace ww::energy
