#include "wattwise/experiment/run_energy.h"

#include <cstdio>
#include <sstream>

namespace ww::experiment {

RunEnergy::RunEnergy(const std::filesystem::path& run_dir, const EnergySettings& settings,
                     const std::string& run_name)
    : run_dir_(run_dir), run_name_(run_name) {
  energy::EnergyOptions o;
  o.interval_ms = settings.interval_ms;
  o.trace_path = (run_dir / settings.trace_file).string();
  o.country = settings.country;
  o.pue = settings.pue;
  if (settings.carbon_intensity >= 0) o.intensity_g_per_kwh = settings.carbon_intensity;
  o.idle_baseline_s = settings.idle_baseline_s;
  o.on_warning = [](const std::string& w) { std::fprintf(stderr, "wattwise: energy: %s\n", w.c_str()); };
  if (settings.device.is_cuda()) o.synchronize = [device = settings.device] { ww::synchronize(device); };
  o.gpu_pci_bus_ids = settings.gpu_pci_bus_ids;
  if (o.gpu_pci_bus_ids.empty() && settings.device.is_cuda()) {
    const std::string bus_id = cuda_pci_bus_id(settings.device.index);
    if (!bus_id.empty()) o.gpu_pci_bus_ids = {bus_id};
  }
  monitor_ = std::make_unique<energy::EnergyMonitor>(o);
  monitor_->start();
  monitor_->begin_window("run");
}

void RunEnergy::add_earlier(const nlohmann::json& energy) { earlier_ = energy; }

void RunEnergy::begin(const std::string& phase) {
  monitor_->begin_window(phase);
  open_.push_back(phase);
}

namespace {

// An earlier session's window named `phase` ("total" for the whole run), or null.
nlohmann::json earlier_window(const nlohmann::json& earlier, const std::string& phase) {
  if (!earlier.is_object()) return nullptr;
  if (phase == "total") return earlier.value("total", nlohmann::json());
  const nlohmann::json phases = earlier.value("phases", nlohmann::json::object());
  return phases.value(phase, nlohmann::json());
}

// The earlier sessions' phases that this one has not measured again (evaluation_1, ...), then `now`.
nlohmann::json merged_phases(const nlohmann::json& earlier, const nlohmann::json& now) {
  nlohmann::json phases = nlohmann::json::object();
  if (earlier.is_object()) {
    const nlohmann::json before = earlier.value("phases", nlohmann::json::object());
    for (const auto& [name, window] : before.items())
      if (!now.contains(name)) phases[name] = window;
  }
  for (const auto& [name, window] : now.items()) phases[name] = window;
  return phases;
}

}  // namespace

nlohmann::json RunEnergy::end(const std::string& phase, int64_t samples) {
  nlohmann::json j = add_energy_windows(earlier_window(earlier_, phase),
                                        energy::to_json(monitor_->end_window(phase), samples));
  std::erase(open_, phase);
  phases_[phase] = j;
  return j;
}

nlohmann::json RunEnergy::so_far(int64_t samples) {
  nlohmann::json phases = phases_;
  for (const std::string& phase : open_)
    phases[phase] = add_energy_windows(earlier_window(earlier_, phase),
                                       energy::to_json(monitor_->window_so_far(phase), samples));
  nlohmann::json j;
  j["phases"] = merged_phases(earlier_, phases);
  j["total"] = add_energy_windows(earlier_window(earlier_, "total"),
                                  energy::to_json(monitor_->window_so_far("run"), samples));
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
  j["phases"] = merged_phases(earlier_, phases_);
  j["total"] = add_energy_windows(earlier_window(earlier_, "total"), energy::to_json(total, samples));
  return j;
}

nlohmann::json add_energy_windows(const nlohmann::json& before, const nlohmann::json& after) {
  if (before.is_null()) return after;
  if (after.is_null()) return before;
  auto number = [](const nlohmann::json& w, const char* key) {
    const auto it = w.find(key);
    return it != w.end() && it->is_number() ? it->get<double>() : 0.0;
  };
  nlohmann::json sum = after;
  const double duration = number(before, "duration_s") + number(after, "duration_s");
  sum["duration_s"] = duration;
  for (const char* key : {"energy_j", "cpu_j", "ram_j", "kwh", "gco2e"}) sum[key] = number(before, key) + number(after, key);
  const bool gpu = before.value("gpu_j", nlohmann::json()).is_number() || after.value("gpu_j", nlohmann::json()).is_number();
  sum["gpu_j"] = gpu ? nlohmann::json(number(before, "gpu_j") + number(after, "gpu_j")) : nlohmann::json(nullptr);
  sum["gpu_present"] = before.value("gpu_present", false) || after.value("gpu_present", false);
  if (sum["gpu_present"].get<bool>()) sum.erase("gpu_absent_reason");
  const double joules = sum["energy_j"].get<double>();
  sum["avg_w"] = duration > 0 ? joules / duration : 0.0;
  const int64_t samples = before.value("samples", int64_t(0)) + after.value("samples", int64_t(0));
  sum.erase("samples");
  sum.erase("j_per_sample");
  if (samples > 0) {
    sum["samples"] = samples;
    sum["j_per_sample"] = joules / double(samples);
  }
  nlohmann::json sources = nlohmann::json::array();
  auto add_source = [&](const nlohmann::json& source) {
    for (auto& s : sources)
      if (s.value("source", "") == source.value("source", "")) {
        s["energy_j"] = number(s, "energy_j") + number(source, "energy_j");
        s["measured"] = s.value("measured", false) && source.value("measured", false);
        const std::string a = s.value("provenance", ""), b = source.value("provenance", "");
        if (a != b) s["provenance"] = a + "; then " + b;
        return;
      }
    sources.push_back(source);
  };
  for (const auto& source : before.value("sources", nlohmann::json::array())) add_source(source);
  for (const auto& source : after.value("sources", nlohmann::json::array())) add_source(source);
  for (auto& s : sources) s["avg_w"] = duration > 0 ? number(s, "energy_j") / duration : 0.0;
  sum["sources"] = sources;
  nlohmann::json notes = before.value("notes", nlohmann::json::array());
  for (const auto& note : after.value("notes", nlohmann::json::array())) notes.push_back(note);
  sum["notes"] = notes;
  if (before.value("baseline", nlohmann::json()).is_object() && after.value("baseline", nlohmann::json()).is_object())
    sum["baseline"]["net_energy_j"] = number(before["baseline"], "net_energy_j") + number(after["baseline"], "net_energy_j");
  return sum;
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
