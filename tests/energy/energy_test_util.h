#pragma once
// Fake /proc and /sys/class/powercap trees for the energy tests: every figure they lead to is
// known exactly (constant utilisation and memory; RAPL counters the test sets by hand).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace ww::energy::testing {

// A temporary folder removed at the end of the test.
struct TempDir {
  std::string path;
  TempDir() {
    char pattern[] = "/tmp/ww_energy_XXXXXX";
    path = mkdtemp(pattern);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

inline void write_file(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  // Write then rename, so a concurrent reader sees the old or the new value, never half of one.
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary);
    out << text;
  }
  std::filesystem::rename(temporary, path);
}

// /proc with 2 packages of "AMD EPYC 7543" (225 W each in the TDP table), a CPU that never
// advances its jiffies (so utilisation reads 0 and the estimate sits at its 10% floor: 45 W),
// and 8 GiB of 16 GiB in use (3 W at 0.375 W/GiB).
inline void make_fake_proc(const std::string& root) {
  write_file(root + "/cpuinfo",
             "processor\t: 0\nmodel name\t: AMD EPYC 7543 32-Core Processor\nphysical id\t: 0\n\n"
             "processor\t: 1\nmodel name\t: AMD EPYC 7543 32-Core Processor\nphysical id\t: 1\n");
  write_file(root + "/stat", "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 50 0 50 400 0 0 0 0 0 0\n");
  write_file(root + "/meminfo",
             "MemTotal:       16777216 kB\nMemFree:         1000000 kB\n"
             "MemAvailable:    8388608 kB\n");
}
constexpr double kFakeCpuWatts = 45.0;
constexpr double kFakeRamWatts = 3.0;

// One RAPL zone (directory name like "intel-rapl:0", zone name like "package-0" or "dram").
inline void make_rapl_zone(const std::string& powercap_root, const std::string& dir,
                           const std::string& name, uint64_t energy_uj, uint64_t max_range_uj) {
  write_file(powercap_root + "/" + dir + "/name", name + "\n");
  write_file(powercap_root + "/" + dir + "/max_energy_range_uj", std::to_string(max_range_uj));
  write_file(powercap_root + "/" + dir + "/energy_uj", std::to_string(energy_uj) + "\n");
}

inline void set_rapl_energy(const std::string& powercap_root, const std::string& dir,
                            uint64_t energy_uj) {
  write_file(powercap_root + "/" + dir + "/energy_uj", std::to_string(energy_uj) + "\n");
}

inline void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// Waits until `ready()` holds, polling; a loaded machine may starve the sampler thread for a long
// time, so the limit only stops a broken test from hanging. False when it timed out.
template <typename Ready>
bool wait_until(Ready ready, double limit_s = 60) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(limit_s);
  while (!ready()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    sleep_ms(1);
  }
  return true;
}

// Waits until the sampler has completed a whole tick that began after this call: the tick that
// completes first may have read the meters before the call, so two must complete.
template <typename Monitor>
bool wait_for_fresh_sample(const Monitor& monitor) {
  const int64_t target = monitor.samples_taken() + 2;
  return wait_until([&] { return monitor.samples_taken() >= target; });
}

}  // namespace ww::energy::testing
