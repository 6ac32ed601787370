#include "wattwise/experiment/run_energy.h"

#include <cstdio>
#include <sstream>

namespace ww::experiment {

RunEnergy::RunEnergy(const std::filesystem::path& run_dir, const EnergySettings& settings,
                     const std::string& run_name)
    : run_dir_(run_dir), run_name_(run_name) {
  energy::EnergyOptions o;
  o.interval_ms = settings.interval_ms;
  o.trace_path = (run_dir / "power_trace.csv").string();
  o.country = settings.country;
  o.pue = settings.pue;
  if (settings.carbon_intensity >= 0) o.intensity_g_per_kwh = settings.carbon_intensity;
  o.idle_baseline_s = settings.idle_baseline_s;
  o.on_warning = [](const std::string& w) { std::fprintf(stderr, "wattwise: energy: %s\n", w.c_str()); };
  if (settings.device.is_cuda()) o.synchronize = [device = settings.device] { ww::synchronize(device); };
  monitor_ = std::make_unique<energy::EnergyMonitor>(o);
  monitor_->start();
  monitor_->begin_window("run");
}

void RunEnergy::begin(const std::string& phase) { monitor_->begin_window(phase); }

nlohmann::json RunEnergy::end(const std::string& phase, int64_t samples) {
  nlohmann::json j = energy::to_json(monitor_->end_window(phase), samples);
  phases_[phase] = j;
  return j;
}

nlohmann::json RunEnergy::finish(int64_t samples) {
  finished_ = true;
  energy::WindowResult total = monitor_->end_window("run");
  monitor_->stop();
  energy::RunInfo info;
  info.project_name = "wattwise:" + run_name_;
  monitor_->append_emissions_csv((run_dir_ / "emissions.csv").string(), total, info);
  nlohmann::json j;
  j["phases"] = phases_;
  j["total"] = energy::to_json(total, samples);
  return j;
}

std::string energy_summary_line(const nlohmann::json& w) {
  std::ostringstream os;
  os.precision(4);
  os << w.value("energy_j", 0.0) << " J (";
  bool first = true;
  for (const auto& s : w.value("sources", nlohmann::json::array())) {
    os << (first ? "" : ", ") << s.value("source", "?") << " " << s.value("energy_j", 0.0) << " J "
       << (s.value("measured", false) ? "measured" : "estimated");
    first = false;
  }
  if (!w.value("gpu_present", false)) os << (first ? "" : ", ") << "no GPU figure";
  os << "), " << w.value("kwh", 0.0) << " kWh, " << w.value("gco2e", 0.0) << " gCO2e";
  return os.str();
}

}  // namespace ww::experiment
