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

}  // namespace ww::experiment
