#pragma once
// Run folders: runs/<UTC timestamp>_<name>/, created exclusively so an existing run is never
// overwritten (a clash within the same second gets a numeric suffix). A command that fills one holds
// a RunDirGuard: an error before the run is complete removes the folder, so no half-written run
// (a power trace without metrics, an empty emissions.csv) is left behind for later tools to read.
#include <filesystem>
#include <string>

namespace ww::experiment {

std::string utc_timestamp();  // "20261123T120435Z"

// Throws ww::Error unless `name` is a plain folder-name suffix: not empty, no '/', not "." or "..",
// no control characters. `what` names the setting in the message ("--name", "run.name").
void check_run_name(const std::string& name, const std::string& what);

// A fresh folder base/<UTC timestamp>_<name> (check_run_name first; base is created if missing).
std::filesystem::path create_run_dir(const std::filesystem::path& base, const std::string& name);

// Removes a folder and everything in it when destroyed, unless keep() was called first: hold one
// from the moment a command creates its run (or output) folder until the last file is written.
// A folder that is empty() does nothing. Interruption by SIGINT, SIGTERM or SIGHUP removes it too
// once install_interrupt_cleanup() ran (the CLI does this for the commands that make folders).
class RunDirGuard {
 public:
  RunDirGuard() = default;
  explicit RunDirGuard(std::filesystem::path dir);
  ~RunDirGuard();
  RunDirGuard(const RunDirGuard&) = delete;
  RunDirGuard& operator=(const RunDirGuard&) = delete;

  // The run is complete: the folder stays.
  void keep();
  const std::filesystem::path& path() const { return dir_; }

 private:
  std::filesystem::path dir_;
  bool armed_ = false;
};

// Throws ww::Error when writing `output` would replace `input`: the same path, or the same file by
// another name (a symlink or hard link to it). A missing output is never the input.
void check_output_is_not_input(const std::filesystem::path& input, const std::string& input_flag,
                               const std::filesystem::path& output, const std::string& output_flag);

// From now on SIGINT, SIGTERM and SIGHUP first remove the folders of the RunDirGuards still armed
// (their files; subfolders are left) and then end the process as the signal would have.
void install_interrupt_cleanup();

// Graceful interruption of a long loop (`train`): while one lives, the first SIGINT, SIGTERM or
// SIGHUP only records the signal (and says on stderr that the work stops at the next safe point,
// and that a second signal stops at once); the loop polls requested() and winds down. A second
// signal restores the default action and re-raises, ending the process at once. A signal the
// process ignores (nohup) stays ignored. The previous actions come back when it is destroyed. One
// at a time per process.
class GracefulInterrupt {
 public:
  // `announce`: say on stderr that the signal came and what happens now (rank 0 of a distributed
  // job, or a single process); the other ranks stop as quietly as they ran.
  explicit GracefulInterrupt(bool announce = true);
  ~GracefulInterrupt();
  GracefulInterrupt(const GracefulInterrupt&) = delete;
  GracefulInterrupt& operator=(const GracefulInterrupt&) = delete;

  bool requested() const { return signal() != 0; }
  int signal() const;  // the first signal received (0: none yet)

};

// "SIGINT", "SIGTERM", "SIGHUP", else "signal N".
std::string signal_name(int signal_number);

// An exclusive lock on a run folder for as long as the object lives (flock on the folder itself,
// released by the kernel if the process dies), so two processes never train in one folder.
class RunDirLock {
 public:
  RunDirLock() = default;
  // Throws ww::Error naming the folder when another process holds it (or it cannot be opened).
  explicit RunDirLock(const std::filesystem::path& dir);
  ~RunDirLock();
  RunDirLock(RunDirLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  RunDirLock& operator=(RunDirLock&& other) noexcept;
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace ww::experiment
