#include "wattwise/energy/measure.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <termios.h>
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

// The running command's process group (its pid; 0 = none), for the signal handler.
volatile sig_atomic_t g_child_group = 0;

// Forwards a signal sent to wattwise to the command's whole process group, so a shell's children
// (`sh -c 'sleep 37; true'`) go too instead of running on orphaned. The command has a group of its
// own, so a signal the terminal sent to wattwise's group (Ctrl-C when wattwise kept the terminal)
// reaches it only through here, once.
void forward_signal(int signal_number) {
  const pid_t group = g_child_group;
  if (group > 0) ::kill(-group, signal_number);
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

// The run folder and what this run put into it. Until keep(), the destructor takes it all away
// again: a folder made here is removed, files made here in a given --out folder are deleted, so a
// run that did not complete leaves no power trace without metrics behind.
class RunFolder {
 public:
  RunFolder() = default;
  RunFolder(const RunFolder&) = delete;
  RunFolder& operator=(const RunFolder&) = delete;
  ~RunFolder() {
    if (kept_ || dir_.empty()) return;
    std::error_code ignored;
    if (created_dir_) {
      std::filesystem::remove_all(dir_, ignored);
      return;
    }
    for (const char* name : {"power_trace.csv", "metrics.json", "metrics.json.tmp"})
      std::filesystem::remove(std::filesystem::path(dir_) / name, ignored);
    if (!had_emissions_) std::filesystem::remove(std::filesystem::path(dir_) / "emissions.csv", ignored);
  }

  // --out DIR (made if missing) or a fresh runs/<UTC time>_measure. A run claims DIR by creating
  // DIR/power_trace.csv exclusively (O_EXCL), so of two runs started together on the same --out
  // exactly one gets it and the other is refused; an existing run (power_trace.csv or
  // metrics.json) is never overwritten.
  void claim(const MeasureOptions& options) {
    namespace fs = std::filesystem;
    std::error_code error;
    if (!options.out_dir.empty()) {
      const fs::path out(options.out_dir);
      if (out.has_parent_path()) {
        fs::create_directories(out.parent_path(), error);
        if (error) fail("--out ", options.out_dir, ": cannot create the folder: ", error.message());
      }
      if (::mkdir(options.out_dir.c_str(), 0755) == 0) created_dir_ = true;
      else if (errno != EEXIST || !fs::is_directory(out))
        fail("--out ", options.out_dir, ": cannot create the folder: ", std::strerror(errno == EEXIST ? ENOTDIR : errno));
      dir_ = options.out_dir;
      if (!created_dir_ && fs::exists(out / "metrics.json")) refuse("metrics.json");
      const int fd = ::open((out / "power_trace.csv").c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0) {
        const int claim_error = errno;
        const bool created = created_dir_;
        dir_.clear();  // nothing of ours to remove, unless the folder itself is
        if (created) std::filesystem::remove(out, error);
        if (claim_error == EEXIST) refuse("power_trace.csv");
        fail("--out ", options.out_dir, ": cannot create power_trace.csv: ", std::strerror(claim_error));
      }
      ::close(fd);
      had_emissions_ = fs::exists(out / "emissions.csv");
      return;
    }
    fs::create_directories(options.runs_root, error);
    if (error) fail("cannot create ", options.runs_root, ": ", error.message());
    const std::string stem = (fs::path(options.runs_root) / (utc_compact_now() + "_measure")).string();
    for (int attempt = 1; attempt < 1000; ++attempt) {
      const std::string dir = attempt == 1 ? stem : stem + "_" + std::to_string(attempt);
      if (::mkdir(dir.c_str(), 0755) == 0) {
        dir_ = dir;
        created_dir_ = true;
        return;
      }
      if (errno != EEXIST) fail("cannot create the run folder ", dir, ": ", std::strerror(errno));
    }
    fail("cannot find a free run folder name under ", options.runs_root);
  }

  const std::string& dir() const { return dir_; }
  void keep() { kept_ = true; }

 private:
  [[noreturn]] void refuse(const char* file) {
    const std::string dir = dir_;
    dir_.clear();
    fail("--out ", dir, " already holds a run (", file, "); refusing to overwrite it: choose another folder");
  }

  std::string dir_;
  bool created_dir_ = false;
  bool had_emissions_ = false;
  bool kept_ = false;
};

// A signal ignored for the lifetime of the object, then restored.
class IgnoredSignal {
 public:
  explicit IgnoredSignal(int signal_number) : signal_number_(signal_number) {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    ::sigaction(signal_number, &ignore, &previous_);
  }
  ~IgnoredSignal() { ::sigaction(signal_number_, &previous_, nullptr); }
  IgnoredSignal(const IgnoredSignal&) = delete;
  IgnoredSignal& operator=(const IgnoredSignal&) = delete;
  bool was_default() const { return previous_.sa_handler == SIG_DFL; }

 private:
  int signal_number_;
  struct sigaction previous_ {};
};

// The terminal wattwise was started in the foreground of, with stdin on it (-1: none): the
// command's process group then gets the terminal while it runs, as a shell gives it to a job, so it
// can read from it and Ctrl-C / Ctrl-Z reach it; wattwise takes it back afterwards.
int foreground_terminal() {
  if (!::isatty(STDIN_FILENO)) return -1;
  return ::tcgetpgrp(STDIN_FILENO) == ::getpgrp() ? STDIN_FILENO : -1;
}

// tcsetpgrp from a background process group raises SIGTTOU unless it is blocked.
void give_terminal(int terminal, pid_t group) {
  sigset_t ttou, previous;
  sigemptyset(&ttou);
  sigaddset(&ttou, SIGTTOU);
  pthread_sigmask(SIG_BLOCK, &ttou, &previous);
  ::tcsetpgrp(terminal, group);
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

void write_text_atomically(const std::string& path, const std::string& text) {
  const std::string temporary = path + ".tmp";
  bool ok;
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << text;
    out.close();
    ok = !out.fail();
  }
  if (!ok) {
    const int error = errno;
    std::remove(temporary.c_str());
    fail("cannot write ", path, ": ", std::strerror(error ? error : EIO));
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    std::remove(temporary.c_str());
    fail("cannot rename ", temporary, " to ", path, ": ", std::strerror(error));
  }
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

void print_summary(const std::string& command_text, int exit_code, const WindowResult& result) {
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

namespace {

// What the wait for the command saw.
struct ChildOutcome {
  int exit_code = 127;
  int killed_by = 0;
};

// Waits for the command. With the terminal handed over, a job-control stop of the command (Ctrl-Z)
// stops wattwise too, so the shell sees its job stopped; when continued in the foreground the
// command gets the terminal back and is continued as well.
ChildOutcome wait_for_command(pid_t child, int terminal) {
  ChildOutcome outcome;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(child, &status, terminal >= 0 ? WUNTRACED : 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "wattwise measure: waitpid failed: %s\n", std::strerror(errno));
      return outcome;
    }
    if (WIFSTOPPED(status)) {
      const int stop = WSTOPSIG(status);
      const bool has_terminal = ::tcgetpgrp(terminal) == child;
      // It read the terminal before it was handed over: it has it now.
      if ((stop == SIGTTIN || stop == SIGTTOU) && has_terminal) {
        ::kill(-child, SIGCONT);
        continue;
      }
      if (has_terminal) give_terminal(terminal, ::getpgrp());
      ::kill(::getpid(), SIGSTOP);
      // Continued: in the foreground (the shell gave us the terminal) the command gets it again.
      if (::tcgetpgrp(terminal) == ::getpgrp()) give_terminal(terminal, child);
      ::kill(-child, SIGCONT);
      continue;
    }
    if (WIFEXITED(status)) {
      outcome.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      outcome.killed_by = WTERMSIG(status);
      outcome.exit_code = 128 + outcome.killed_by;
    }
    return outcome;
  }
}

}  // namespace

int run_measure(const MeasureOptions& options) {
  if (options.command.empty())
    fail("measure: no command given (usage: wattwise measure [options] -- COMMAND [ARGS...])");
  const std::string command_text = quote_command(options.command);
  RunFolder folder;
  folder.claim(options);
  const std::string& run_dir = folder.dir();

  EnergyOptions energy;
  energy.interval_ms = options.interval_ms;
  energy.gpus = options.gpus;
  energy.trace_path = run_dir + "/power_trace.csv";
  energy.country = options.country;
  energy.pue = options.pue;
  energy.intensity_g_per_kwh = options.intensity_g_per_kwh;
  energy.idle_baseline_s = options.idle_baseline_s;
  energy.cpu_tdp_w = options.cpu_tdp_w;
  // Our own dispositions while we run; the command starts with the forwarded signals at their
  // default, the two below as wattwise was started with, and an empty signal mask. SIGXFSZ
  // ignored: a file-size limit (ulimit -f) makes our writes (the trace, from the sampler thread on)
  // fail with EFBIG, reported, instead of killing us before the command's exit code comes back.
  // SIGTTOU ignored: with the terminal handed to the command we are a background job, and a warning
  // on stderr must not stop us under `stty tostop`.
  IgnoredSignal xfsz(SIGXFSZ), ttou(SIGTTOU);
  sigset_t to_default;
  sigemptyset(&to_default);
  for (int signal_number : kForwardedSignals) sigaddset(&to_default, signal_number);
  if (xfsz.was_default()) sigaddset(&to_default, SIGXFSZ);
  if (ttou.was_default()) sigaddset(&to_default, SIGTTOU);
  const int terminal = foreground_terminal();

  EnergyMonitor monitor(energy);  // bad options throw here, before the command runs
  monitor.start();
  const std::string started_at = utc_timestamp_now();

  // Block the forwarded signals until the command's group is known, so none is lost in between.
  sigset_t forwarded, previous;
  sigemptyset(&forwarded);
  for (int signal_number : kForwardedSignals) sigaddset(&forwarded, signal_number);
  pthread_sigmask(SIG_BLOCK, &forwarded, &previous);
  struct sigaction action {}, old_actions[4];
  action.sa_handler = forward_signal;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  for (int i = 0; i < 4; ++i) sigaction(kForwardedSignals[i], &action, &old_actions[i]);

  // The command runs in a process group of its own (pgid = its pid), so a signal reaches every
  // process it starts.
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attributes, &empty);
  posix_spawnattr_setsigdefault(&attributes, &to_default);
  posix_spawnattr_setpgroup(&attributes, 0);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  std::vector<char*> argv;
  for (const auto& word : options.command) argv.push_back(const_cast<char*>(word.c_str()));
  argv.push_back(nullptr);

  monitor.begin_window("run");
  pid_t child = 0;
  const int spawn_error = posix_spawnp(&child, argv[0], nullptr, &attributes, argv.data(), environ);
  posix_spawnattr_destroy(&attributes);
  if (spawn_error == 0) {
    g_child_group = child;
    if (terminal >= 0) give_terminal(terminal, child);
  }
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);  // pending signals are forwarded now

  ChildOutcome outcome;
  if (spawn_error != 0) {
    // As a shell: 127 when there is no such command, 126 when it exists but cannot be run (not
    // executable, a folder, no permission).
    outcome.exit_code = spawn_error == ENOENT || spawn_error == ENOTDIR ? 127 : 126;
    std::fprintf(stderr, "wattwise measure: cannot run '%s': %s\n", options.command[0].c_str(),
                 std::strerror(spawn_error));
  } else {
    outcome = wait_for_command(child, terminal);
    // Take the terminal back unless the shell already has it (we were put in the background).
    if (terminal >= 0 && ::tcgetpgrp(terminal) == child) give_terminal(terminal, ::getpgrp());
  }
  g_child_group = 0;
  for (int i = 0; i < 4; ++i) sigaction(kForwardedSignals[i], &old_actions[i], nullptr);
  const int exit_code = outcome.exit_code;
  const int killed_by = outcome.killed_by;
  if (spawn_error != 0) {
    try {
      monitor.end_window("run");
      monitor.stop();
    } catch (const std::exception&) {
      // Nothing was measured; the folder goes (RunFolder) and the exit code says why.
    }
    return exit_code;
  }

  // Results are written after the command ran: a failure here (a full disk) is reported on stderr,
  // the incomplete folder is removed, and the command's own exit code still comes back (1 when the
  // command succeeded: nothing was measured).
  try {
    WindowResult result = monitor.end_window("run");
    print_summary(command_text, exit_code, result);
    monitor.stop();  // flushes power_trace.csv: a full disk shows here
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
    folder.keep();
    std::fprintf(stderr, "  files %s/{power_trace.csv,emissions.csv,metrics.json}\n", run_dir.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wattwise measure: error: cannot write the results to %s (removed as incomplete): %s\n",
                 run_dir.c_str(), e.what());
    // The command's own failure says more; a command that succeeded must not look measured.
    return exit_code != 0 ? exit_code : 1;
  }
  return exit_code;
}

}  // namespace ww::energy
