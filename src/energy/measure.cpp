#include "wattwise/energy/measure.h"

#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "wattwise/core/error.h"
#include "wattwise/energy/emissions.h"
#include "wattwise/energy/monitor.h"

extern char** environ;

namespace ww::energy {
namespace {

constexpr int kForwardedSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

// The running child, for the signal handler (0 = none).
volatile sig_atomic_t g_child_pid = 0;

// Forwards a signal sent to wattwise to the command. A signal the kernel raised for the terminal
// (Ctrl-C, hang-up; si_code SI_KERNEL) already reached the command, which shares our foreground
// process group, so it is not sent twice.
void forward_signal(int signal_number, siginfo_t* info, void*) {
  const pid_t child = g_child_pid;
  if (child > 0 && (info == nullptr || info->si_code != SI_KERNEL)) ::kill(child, signal_number);
}

std::string quote_command(const std::vector<std::string>& command) {
  std::string text;
  for (const auto& word : command) {
    if (!text.empty()) text += ' ';
    const bool plain = !word.empty() && word.find_first_of(" \t\n'\"\\$`;&|<>*?()") == std::string::npos;
    if (plain) {
      text += word;
    } else {
      text += '\'';
      for (char c : word) text += c == '\'' ? std::string("'\\''") : std::string(1, c);
      text += '\'';
    }
  }
  return text;
}

std::string utc_compact_now() {
  const std::time_t now = std::time(nullptr);
  std::tm utc {};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof(text), "%Y%m%dT%H%M%SZ", &utc);
  return text;
}

// A fresh run folder: never one that exists already.
std::string make_run_dir(const MeasureOptions& options) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (!options.out_dir.empty()) {
    fs::create_directories(options.out_dir, error);
    if (error) fail("--out ", options.out_dir, ": cannot create the folder: ", error.message());
    for (const char* name : {"metrics.json", "power_trace.csv"})
      if (fs::exists(fs::path(options.out_dir) / name))
        fail("--out ", options.out_dir, " already holds a run (", name,
             "); refusing to overwrite it: choose another folder");
    return options.out_dir;
  }
  fs::create_directories(options.runs_root, error);
  if (error) fail("cannot create ", options.runs_root, ": ", error.message());
  const std::string stem = (fs::path(options.runs_root) / (utc_compact_now() + "_measure")).string();
  for (int attempt = 1; attempt < 1000; ++attempt) {
    const std::string dir = attempt == 1 ? stem : stem + "_" + std::to_string(attempt);
    if (::mkdir(dir.c_str(), 0755) == 0) return dir;
    if (errno != EEXIST) fail("cannot create the run folder ", dir, ": ", std::strerror(errno));
  }
  fail("cannot find a free run folder name under ", options.runs_root);
}

void write_text_atomically(const std::string& path, const std::string& text) {
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << text;
    if (!out) fail("cannot write ", temporary);
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0)
    fail("cannot rename ", temporary, " to ", path, ": ", std::strerror(errno));
}

double process_cpu_seconds() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6;
}

std::string format_joules(double joules) {
  char text[32];
  std::snprintf(text, sizeof(text), "%12.3f J", joules);
  return text;
}

void print_summary(const std::string& command_text, int exit_code, const WindowResult& result,
                   const std::string& run_dir) {
  std::ostringstream out;
  char line[256];
  std::snprintf(line, sizeof(line), "%.3f s", result.duration_s);
  out << "wattwise measure: `" << command_text << "` exited with code " << exit_code << " after "
      << line << "\n";
  if (!result.gpu_present) out << "  GPU   absent (" << result.gpu_absent_reason << ")\n";
  for (const auto& source : result.sources) {
    std::string label = device_kind_name(source.kind);
    for (char& c : label) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    out << "  " << label << "  " << format_joules(source.joules) << "  " << source.source;
    if (source.kind == DeviceKind::gpu) out << " " << source.device_name;
    out << ": " << source.provenance << "\n";
  }
  std::snprintf(line, sizeof(line), "%.6g kWh -> %.6g gCO2e", result.kwh, result.gco2e);
  out << "  total " << format_joules(result.total_joules) << " = " << line << " ("
      << result.carbon.intensity_g_per_kwh << " gCO2e/kWh, " << result.carbon.provenance
      << "; PUE " << result.carbon.pue << ")\n";
  if (result.has_baseline) {
    std::snprintf(line, sizeof(line),
                  "  net   %12.3f J above the idle baseline (GPU %.1f W, CPU %.1f W, RAM %.1f W)\n",
                  result.net_joules, result.baseline_gpu_w, result.baseline_cpu_w,
                  result.baseline_ram_w);
    out << line;
  }
  out << "  files " << run_dir << "/{power_trace.csv,emissions.csv,metrics.json}\n";
  std::fputs(out.str().c_str(), stderr);
}

}  // namespace

std::vector<int> parse_gpu_list(const std::string& text) {
  std::vector<int> indices;
  if (text == "none" || text.empty()) return indices;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    char* end = nullptr;
    errno = 0;
    const long value = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || errno != 0 || value < 0 || value > 1024)
      fail("--gpus ", text, ": '", item, "' is not a GPU index (expected e.g. 0,1 or none)");
    indices.push_back(static_cast<int>(value));
  }
  return indices;
}

int run_measure(const MeasureOptions& options) {
  if (options.command.empty())
    fail("measure: no command given (usage: wattwise measure [options] -- COMMAND [ARGS...])");
  const std::string command_text = quote_command(options.command);
  const std::string run_dir = make_run_dir(options);

  EnergyOptions energy;
  energy.interval_ms = options.interval_ms;
  energy.gpus = options.gpus;
  energy.trace_path = run_dir + "/power_trace.csv";
  energy.country = options.country;
  energy.pue = options.pue;
  energy.intensity_g_per_kwh = options.intensity_g_per_kwh;
  energy.idle_baseline_s = options.idle_baseline_s;
  energy.cpu_tdp_w = options.cpu_tdp_w;
  EnergyMonitor monitor(energy);  // bad options throw here, before the command runs
  monitor.start();
  const std::string started_at = utc_timestamp_now();

  // Block the forwarded signals until the child's pid is known, so none is lost in between.
  sigset_t forwarded, previous;
  sigemptyset(&forwarded);
  for (int signal_number : kForwardedSignals) sigaddset(&forwarded, signal_number);
  pthread_sigmask(SIG_BLOCK, &forwarded, &previous);
  struct sigaction action {}, old_actions[4];
  action.sa_sigaction = forward_signal;
  action.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&action.sa_mask);
  for (int i = 0; i < 4; ++i) sigaction(kForwardedSignals[i], &action, &old_actions[i]);

  // The child starts with default dispositions and an empty mask (not our blocked set).
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attributes, &empty);
  posix_spawnattr_setsigdefault(&attributes, &forwarded);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> argv;
  for (const auto& word : options.command) argv.push_back(const_cast<char*>(word.c_str()));
  argv.push_back(nullptr);

  monitor.begin_window("run");
  pid_t child = 0;
  const int spawn_error = posix_spawnp(&child, argv[0], nullptr, &attributes, argv.data(), environ);
  posix_spawnattr_destroy(&attributes);
  if (spawn_error == 0) g_child_pid = child;
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);  // pending signals are forwarded now

  int exit_code = 127;
  int killed_by = 0;
  if (spawn_error != 0) {
    std::fprintf(stderr, "wattwise measure: cannot run '%s': %s\n", options.command[0].c_str(),
                 std::strerror(spawn_error));
  } else {
    int status = 0;
    while (::waitpid(child, &status, 0) < 0) {
      if (errno != EINTR) {
        std::fprintf(stderr, "wattwise measure: waitpid failed: %s\n", std::strerror(errno));
        break;
      }
    }
    if (WIFEXITED(status)) {
      exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      killed_by = WTERMSIG(status);
      exit_code = 128 + killed_by;
    }
  }
  WindowResult result = monitor.end_window("run");
  g_child_pid = 0;
  for (int i = 0; i < 4; ++i) sigaction(kForwardedSignals[i], &old_actions[i], nullptr);
  monitor.stop();
  if (spawn_error != 0) {
    std::error_code ignored;
    std::filesystem::remove(energy.trace_path, ignored);
    if (options.out_dir.empty()) std::filesystem::remove(run_dir, ignored);
    return exit_code;
  }

  // Results are written after the command ran: a failure here is reported, and the command's own
  // exit code still comes back.
  try {
    const double cpu_seconds = process_cpu_seconds();
    monitor.append_emissions_csv(run_dir + "/emissions.csv", result, {options.project_name, ""});
    const HostInfo& host = monitor.host();
    nlohmann::json metrics = {
        {"command", options.command},
        {"exit_code", exit_code},
        {"killed_by_signal", killed_by != 0 ? nlohmann::json(killed_by) : nlohmann::json(nullptr)},
        {"started_at", started_at},
        {"duration_s", result.duration_s},
        {"interval_ms", options.interval_ms},
        {"sampler_ticks", monitor.samples_taken()},
        {"sampler_cpu_s", monitor.sampler_cpu_seconds()},
        {"monitor_cpu_s", cpu_seconds},
        {"monitor_cpu_fraction", result.duration_s > 0 ? cpu_seconds / result.duration_s : 0.0},
        {"energy", {{"run", to_json(result)}}},
        {"host",
         {{"os", host.os},
          {"cpu_model", host.cpu_model},
          {"cpu_count", host.cpu_count},
          {"cpu_packages", host.cpu_packages},
          {"gpu_count", host.gpu_count},
          {"gpu_model", host.gpu_model},
          {"ram_total_gib", host.ram_total_gib}}},
        {"warnings", monitor.warnings()},
        {"files", {{"power_trace", "power_trace.csv"}, {"emissions", "emissions.csv"}}},
    };
    write_text_atomically(run_dir + "/metrics.json", metrics.dump(2) + "\n");
    print_summary(command_text, exit_code, result, run_dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wattwise measure: error writing results to %s: %s\n", run_dir.c_str(),
                 e.what());
  }
  return exit_code;
}

}  // namespace ww::energy
