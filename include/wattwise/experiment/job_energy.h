#pragma once
// The energy of a data-parallel job on several machines. Each machine is metered by its lowest rank:
// the job's GPUs there (by PCI bus id; CPU ranks: every GPU NVML sees, as one process does) and its
// CPU and RAM meters, which see every rank running there. Rank 0 meters its own machine through
// RunEnergy; the lowest rank of every other machine runs a MachineMeter, which writes nothing where
// the run folder is (that may be another machine's file system) and sends its figures to rank 0
// through the process group, at checkpoints (so far) and when the training loop ends (with its power
// trace). Rank 0 adds them into the run's energy (RunEnergy::set_other_machines).
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "wattwise/core/device.h"
#include "wattwise/dist/process_group.h"
#include "wattwise/energy/monitor.h"
#include "wattwise/experiment/run_energy.h"

namespace ww::experiment {

// One machine of a job (ranks grouped by dist::machine_name()).
struct JobMachine {
  std::string host;
  std::vector<int> ranks;                     // ascending: ranks[0] meters the machine
  std::vector<std::string> gpu_pci_bus_ids;  // the job's GPUs there (none for CPU ranks)
};

// The job's machines in order of their lowest rank, so rank 0's comes first. A collective: every rank
// calls it at the same point (each rank says its machine and its GPU's bus id in turn).
std::vector<JobMachine> job_machines(dist::ProcessGroup& group, Device device);

// Whether this rank meters a machine other than rank 0's (it is the lowest rank there).
const JobMachine* machine_metered_here(const std::vector<JobMachine>& machines, int rank);

// The meters of a machine other than rank 0's, from construction (the training session's start) to
// finish(). The power trace goes to a temporary file on this machine until then.
class MachineMeter {
 public:
  MachineMeter(const JobMachine& machine, const EnergySettings& settings);
  ~MachineMeter();  // stops the meters and removes the temporary trace
  MachineMeter(const MachineMeter&) = delete;
  MachineMeter& operator=(const MachineMeter&) = delete;
  // What rank 0 needs: {"host", "ranks", "window" (the session so far, to_json's form),
  // "gpu_pci_bus_ids" (source id -> bus id), "hardware" (the machine's HostInfo)}.
  nlohmann::json so_far();
  // The same at the session's end, plus "power_trace" (the CSV text); stops the meters.
  nlohmann::json finish();

 private:
  nlohmann::json report(const energy::WindowResult& window) const;
  JobMachine machine_;
  std::string trace_path_;
  std::unique_ptr<energy::EnergyMonitor> monitor_;
  bool finished_ = false;
};

// Every rank calls it at the same point. The lowest rank of each machine other than rank 0's sends
// its meter's report (`final`: finish(), else so_far()); rank 0 gets them in machine order, every
// other rank an empty list. One-machine jobs exchange nothing.
std::vector<nlohmann::json> gather_machine_reports(dist::ProcessGroup& group, const std::vector<JobMachine>& machines,
                                                   MachineMeter* meter, bool final);

// One entry of metrics.json's distributed.energy_by_machine: `window` is the machine's session
// (to_json's form, its own sources), `bus_ids` its GPUs' PCI bus ids by source id, `power_trace` the
// run folder's file of its samples.
nlohmann::json machine_energy_entry(const std::string& host, const std::vector<int>& ranks,
                                    const nlohmann::json& window, const std::map<std::string, std::string>& bus_ids,
                                    const std::string& power_trace);

// The file name, in the run folder, of another machine's power trace for a session whose own trace
// is `trace_file` ("power_trace.csv" -> "power_trace_<host>.csv", "power_trace_2.csv" ->
// "power_trace_<host>_2.csv"); characters other than letters, digits, '.', '-' and '_' become '_'.
std::string machine_trace_file(const std::string& trace_file, const std::string& host);

// The hardware of several machines together (emissions.csv's row of a job): CPUs, GPUs and memory
// added, models listed once each.
energy::HostInfo combined_hardware(const energy::HostInfo& own, const std::vector<nlohmann::json>& reports);

}  // namespace ww::experiment
