#include "wattwise/experiment/job_energy.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "wattwise/core/error.h"
#include "wattwise/dist/world.h"
#include "wattwise/io/file.h"

namespace ww::experiment {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<JobMachine> job_machines(dist::ProcessGroup& group, Device device) {
  const std::string mine = dist::machine_name() + "\n" + (device.is_cuda() ? cuda_pci_bus_id(device.index) : "");
  std::vector<JobMachine> machines;
  for (int r = 0; r < group.size(); ++r) {
    std::string text = mine;
    group.broadcast_text(text, r);
    const size_t newline = text.find('\n');
    const std::string host = text.substr(0, newline), bus_id = text.substr(newline + 1);
    auto it = std::find_if(machines.begin(), machines.end(), [&](const JobMachine& m) { return m.host == host; });
    if (it == machines.end()) it = machines.insert(machines.end(), JobMachine{host, {}, {}});
    it->ranks.push_back(r);
    if (!bus_id.empty()) it->gpu_pci_bus_ids.push_back(bus_id);
  }
  return machines;
}

const JobMachine* machine_metered_here(const std::vector<JobMachine>& machines, int rank) {
  for (size_t i = 1; i < machines.size(); ++i)
    if (machines[i].ranks.front() == rank) return &machines[i];
  return nullptr;
}

namespace {

json hardware_json(const energy::HostInfo& h) {
  return {{"os", h.os},
          {"cpu_model", h.cpu_model},
          {"cpu_count", h.cpu_count},
          {"cpu_packages", h.cpu_packages},
          {"gpu_count", h.gpu_count},
          {"gpu_model", h.gpu_model},
          {"ram_total_gib", h.ram_total_gib}};
}

}  // namespace

MachineMeter::MachineMeter(const JobMachine& machine, const EnergySettings& settings) : machine_(machine) {
  // The trace stays on this machine until finish() sends it: the run folder may not be reachable here.
  std::string pattern = (fs::temp_directory_path() / "wattwise_power_trace_XXXXXX").string();
  const int fd = ::mkstemp(pattern.data());
  if (fd < 0) fail("cannot create a temporary power trace in ", fs::temp_directory_path().string());
  ::close(fd);
  trace_path_ = pattern;
  EnergySettings s = settings;
  s.gpu_pci_bus_ids = machine.gpu_pci_bus_ids;
  try {
    monitor_ = std::make_unique<energy::EnergyMonitor>(energy_options_of(s, trace_path_));
    monitor_->start();
    monitor_->begin_window("session");
  } catch (...) {
    std::error_code ignored;
    fs::remove(trace_path_, ignored);
    throw;
  }
}

MachineMeter::~MachineMeter() {
  if (monitor_) monitor_->stop();
  std::error_code ignored;
  fs::remove(trace_path_, ignored);
}

json MachineMeter::report(const energy::WindowResult& window) const {
  json bus_ids = json::object();
  for (const auto& [source, bus_id] : monitor_->gpu_pci_bus_ids()) bus_ids[source] = bus_id;
  return {{"host", machine_.host},
          {"ranks", machine_.ranks},
          {"window", energy::to_json(window)},
          {"gpu_pci_bus_ids", bus_ids},
          {"hardware", hardware_json(monitor_->host())}};
}

json MachineMeter::so_far() { return report(monitor_->window_so_far("session")); }

json MachineMeter::finish() {
  WW_CHECK(!finished_, "the machine's meters were finished twice");
  finished_ = true;
  const energy::WindowResult window = monitor_->end_window("session");
  monitor_->stop();
  json r = report(window);
  r["power_trace"] = io::read_file(trace_path_);
  std::error_code ignored;
  fs::remove(trace_path_, ignored);
  return r;
}

std::vector<json> gather_machine_reports(dist::ProcessGroup& group, const std::vector<JobMachine>& machines,
                                         MachineMeter* meter, bool final) {
  std::vector<json> reports;
  for (size_t i = 1; i < machines.size(); ++i) {
    const int root = machines[i].ranks.front();
    std::string text;
    if (group.rank() == root) {
      WW_CHECK(meter != nullptr, "rank ", root, " meters ", machines[i].host, " but has no meter");
      text = (final ? meter->finish() : meter->so_far()).dump();
    }
    group.broadcast_text(text, root);
    if (group.rank() == 0) reports.push_back(json::parse(text));
  }
  return reports;
}

json machine_energy_entry(const std::string& host, const std::vector<int>& ranks, const json& window,
                          const std::map<std::string, std::string>& bus_ids, const std::string& power_trace) {
  json gpus = json::array();
  bool measured = true;
  for (const json& source : window.value("sources", json::array())) {
    measured = measured && source.value("measured", false);
    if (source.value("device", "") != "gpu") continue;
    const std::string id = source.value("source", "");
    const auto bus_id = bus_ids.find(id);
    gpus.push_back({{"pci_bus_id", bus_id == bus_ids.end() ? json(nullptr) : json(bus_id->second)},
                    {"source", id},
                    {"name", source.value("name", "")},
                    {"energy_j", source.value("energy_j", 0.0)},
                    {"measured", source.value("measured", false)},
                    {"provenance", source.value("provenance", "")}});
  }
  return {{"host", host},
          {"ranks", ranks},
          {"duration_s", window.value("duration_s", 0.0)},
          {"energy_j", window.value("energy_j", 0.0)},
          {"gpu_j", window.value("gpu_j", json())},
          {"cpu_j", window.value("cpu_j", 0.0)},
          {"ram_j", window.value("ram_j", 0.0)},
          {"measured", measured},
          {"gpus", gpus},
          {"power_trace", power_trace}};
}

std::string machine_trace_file(const std::string& trace_file, const std::string& host) {
  std::string safe = host;
  for (char& c : safe)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '_';
  const std::string stem = "power_trace";
  WW_CHECK(trace_file.rfind(stem, 0) == 0, "unexpected power trace name ", trace_file);
  return stem + "_" + safe + trace_file.substr(stem.size());
}

energy::HostInfo combined_hardware(const energy::HostInfo& own, const std::vector<json>& reports) {
  energy::HostInfo all = own;
  std::vector<std::pair<std::string, int>> gpu_models;  // model -> count, in order of appearance
  std::vector<std::string> cpu_models = {own.cpu_model};
  auto add_gpu_models = [&](const std::string& text) {  // "2 x NVIDIA H100 80GB HBM3, 1 x ..."
    std::istringstream in(text);
    std::string part;
    while (std::getline(in, part, ',')) {
      while (!part.empty() && part.front() == ' ') part.erase(0, 1);
      const size_t x = part.find(" x ");
      if (x == std::string::npos) continue;
      const int n = std::atoi(part.substr(0, x).c_str());
      const std::string model = part.substr(x + 3);
      auto it = std::find_if(gpu_models.begin(), gpu_models.end(), [&](const auto& m) { return m.first == model; });
      if (it == gpu_models.end()) gpu_models.emplace_back(model, n);
      else it->second += n;
    }
  };
  add_gpu_models(own.gpu_model);
  for (const json& r : reports) {
    const json& h = r.at("hardware");
    all.cpu_count += h.value("cpu_count", 0);
    all.cpu_packages += h.value("cpu_packages", 0);
    all.gpu_count += h.value("gpu_count", 0);
    all.ram_total_gib += h.value("ram_total_gib", 0.0);
    add_gpu_models(h.value("gpu_model", ""));
    const std::string cpu = h.value("cpu_model", "");
    if (std::find(cpu_models.begin(), cpu_models.end(), cpu) == cpu_models.end()) cpu_models.push_back(cpu);
  }
  all.gpu_model.clear();
  for (const auto& [model, n] : gpu_models)
    all.gpu_model += (all.gpu_model.empty() ? "" : ", ") + std::to_string(n) + " x " + model;
  all.cpu_model.clear();
  for (const std::string& model : cpu_models) all.cpu_model += (all.cpu_model.empty() ? "" : ", ") + model;
  return all;
}

}  // namespace ww::experiment
