#include "wattwise/experiment/run_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <ctime>

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

void check_run_name(const std::string& name, const std::string& what) {
  bool control = false;
  for (unsigned char c : name) control |= c < 0x20 || c == 0x7f;
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == ".." || control)
    fail(what, " '", name, "' must be a plain folder-name suffix (not empty, no '/', not '.' or '..')");
}

std::filesystem::path create_run_dir(const std::filesystem::path& base, const std::string& name) {
  check_run_name(name, "run name");
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

void check_output_is_not_input(const std::filesystem::path& input, const std::string& input_flag,
                               const std::filesystem::path& output, const std::string& output_flag) {
  if (input == "-" || output == "-") return;  // standard input or output: no file to destroy
  std::error_code input_error, output_error;
  const std::filesystem::path a = std::filesystem::weakly_canonical(input, input_error);
  const std::filesystem::path b = std::filesystem::weakly_canonical(output, output_error);
  bool same = !input_error && !output_error && a == b;
  struct stat in {}, out {};
  if (!same && ::stat(input.c_str(), &in) == 0 && ::stat(output.c_str(), &out) == 0)
    same = in.st_dev == out.st_dev && in.st_ino == out.st_ino;
  if (same)
    fail(output_flag, " ", output.string(), " is the ", input_flag, " file ", input.string(),
         ": writing it would destroy the input (choose another ", output_flag, ")");
}

namespace {

// The folders that an interrupting signal removes: fixed slots of absolute paths, because the
// handler may neither allocate nor take a lock. A slot's path is written before `used` is set
// (release), so a handler that sees `used` reads a whole path. Guards live on the main thread.
struct GuardSlot {
  std::atomic<bool> used{false};
  char path[PATH_MAX];
};
constexpr int kSlots = 8;
GuardSlot g_slots[kSlots];

std::string absolute_text(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::path absolute = std::filesystem::absolute(dir, ec);
  return ec ? dir.string() : absolute.string();
}

void claim_slot(const std::string& path) {
  if (path.size() >= PATH_MAX) return;
  for (auto& slot : g_slots)
    if (!slot.used.load(std::memory_order_acquire)) {
      std::memcpy(slot.path, path.c_str(), path.size() + 1);
      slot.used.store(true, std::memory_order_release);
      return;
    }
}

void release_slot(const std::string& path) {
  for (auto& slot : g_slots)
    if (slot.used.load(std::memory_order_acquire) && path == slot.path) {
      slot.used.store(false, std::memory_order_release);
      return;
    }
}

// Async-signal-safe: open, getdents64, unlinkat, close and rmdir only. Subfolders are left (none of
// the commands that install this writes one).
void remove_folder_from_handler(const char* path) {
  const int fd = ::open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    alignas(8) char buffer[4096];
    for (;;) {
      const long n = ::syscall(SYS_getdents64, fd, buffer, sizeof buffer);
      if (n <= 0) break;
      for (long offset = 0; offset < n;) {
        struct Entry {
          uint64_t ino;
          int64_t off;
          unsigned short reclen;
          unsigned char type;
          char name[1];
        };
        const auto* entry = reinterpret_cast<const Entry*>(buffer + offset);
        offset += entry->reclen;
        const char* name = entry->name;
        if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) continue;
        if (entry->type != DT_DIR) ::unlinkat(fd, name, 0);
      }
    }
    ::close(fd);
  }
  ::rmdir(path);
}

void cleanup_and_reraise(int signal_number) {
  for (auto& slot : g_slots)
    if (slot.used.load()) remove_folder_from_handler(slot.path);
  // SA_RESETHAND restored the default action; the signal is blocked while this handler runs and is
  // delivered (ending the process as it would have) when it returns.
  ::raise(signal_number);
}

}  // namespace

RunDirGuard::RunDirGuard(std::filesystem::path dir) : dir_(std::move(dir)), armed_(!dir_.empty()) {
  if (armed_) claim_slot(absolute_text(dir_));
}

RunDirGuard::~RunDirGuard() {
  if (!armed_) return;
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
  release_slot(absolute_text(dir_));
}

void RunDirGuard::keep() {
  if (armed_) release_slot(absolute_text(dir_));
  armed_ = false;
}

namespace {

// The graceful handler's state: plain globals, as a signal handler may touch nothing else.
constexpr int kGracefulSignals[] = {SIGINT, SIGTERM, SIGHUP};
std::atomic<int> g_interrupt_signal{0};
std::atomic<bool> g_graceful_active{false};
struct sigaction g_previous[3];
bool g_installed[3] = {false, false, false};
// Messages built before the handler is installed (it may only write(2) them).
char g_first_message[3][192];
char g_second_message[3][128];

int graceful_index(int signal_number) {
  for (int i = 0; i < 3; ++i)
    if (kGracefulSignals[i] == signal_number) return i;
  return -1;
}

void write_stderr(const char* text) {
  size_t length = std::strlen(text);
  while (length > 0) {
    const ssize_t n = ::write(STDERR_FILENO, text, length);
    if (n <= 0) return;
    text += n, length -= size_t(n);
  }
}

void graceful_handler(int signal_number) {
  const int saved_errno = errno;
  const int index = graceful_index(signal_number);
  int expected = 0;
  if (g_interrupt_signal.compare_exchange_strong(expected, signal_number)) {
    if (index >= 0) write_stderr(g_first_message[index]);
    errno = saved_errno;
    return;
  }
  // A second signal: stop at once, as the signal would have without us.
  if (index >= 0) write_stderr(g_second_message[index]);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  ::sigaction(signal_number, &default_action, nullptr);
  // Blocked while this handler runs; delivered (with the default action) when it returns.
  ::raise(signal_number);
  errno = saved_errno;
}

}  // namespace

std::string signal_name(int signal_number) {
  switch (signal_number) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    default: return "signal " + std::to_string(signal_number);
  }
}

GracefulInterrupt::GracefulInterrupt(bool announce) {
  WW_CHECK(!g_graceful_active.exchange(true), "only one GracefulInterrupt at a time");
  g_interrupt_signal.store(0);
  for (int i = 0; i < 3; ++i) {
    const int signal_number = kGracefulSignals[i];
    const std::string name = signal_name(signal_number);
    std::snprintf(g_first_message[i], sizeof g_first_message[i],
                  "\nwattwise: %s received: finishing the current step, then saving a checkpoint, the logs and "
                  "metrics.json (a second signal stops at once)\n",
                  name.c_str());
    if (!announce) g_first_message[i][0] = '\0';
    std::snprintf(g_second_message[i], sizeof g_second_message[i],
                  "\nwattwise: second signal (%s): stopping at once\n", name.c_str());
    g_installed[i] = false;
    if (::sigaction(signal_number, nullptr, &g_previous[i]) != 0) continue;
    if (g_previous[i].sa_handler == SIG_IGN) continue;  // e.g. nohup: the user asked to ignore it
    struct sigaction action {};
    action.sa_handler = graceful_handler;
    action.sa_flags = SA_RESTART;  // file I/O and waits carry on: the loop polls the flag
    sigemptyset(&action.sa_mask);
    for (int other : kGracefulSignals) sigaddset(&action.sa_mask, other);  // one handler at a time
    g_installed[i] = ::sigaction(signal_number, &action, nullptr) == 0;
  }
}

GracefulInterrupt::~GracefulInterrupt() {
  for (int i = 0; i < 3; ++i)
    if (g_installed[i]) ::sigaction(kGracefulSignals[i], &g_previous[i], nullptr);
  g_graceful_active.store(false);
}

int GracefulInterrupt::signal() const { return g_interrupt_signal.load(); }

RunDirLock::RunDirLock(const std::filesystem::path& dir) {
  fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd_ < 0) fail(dir.string(), ": cannot open the run folder (", std::strerror(errno), ")");
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    ::close(fd_);
    fd_ = -1;
    if (error == EWOULDBLOCK)
      fail(dir.string(), ": another wattwise process is training in this run folder (wait for it to end, or stop it)");
    fail(dir.string(), ": cannot lock the run folder (", std::strerror(error), ")");
  }
}

RunDirLock::~RunDirLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the lock
}

RunDirLock& RunDirLock::operator=(RunDirLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

void install_interrupt_cleanup() {
  for (int signal_number : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction current {};
    if (::sigaction(signal_number, nullptr, &current) != 0) continue;
    if (current.sa_handler == SIG_IGN) continue;  // e.g. nohup: the user asked to ignore it
    struct sigaction action {};
    action.sa_handler = cleanup_and_reraise;
    action.sa_flags = SA_RESETHAND;
    sigemptyset(&action.sa_mask);
    ::sigaction(signal_number, &action, nullptr);
  }
}

}  // namespace ww::experiment
