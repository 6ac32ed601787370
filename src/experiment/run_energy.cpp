#include "wattwise/experiment/run_energy.h"

#include <cstdio>
#include <sstream>

#include "wattwise/energy/integrate.h"
#include "wattwise/experiment/job_energy.h"

namespace ww::experiment {

energy::EnergyOptions energy_options_of(const EnergySettings& settings, const std::string& trace_path) {
  energy::EnergyOptions o;
  o.interval_ms = settings.interval_ms;
  o.trace_path = trace_path;
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
  return o;
}

RunEnergy::RunEnergy(const std::filesystem::path& run_dir, const EnergySettings& settings,
                     const std::string& run_name)
    : run_dir_(run_dir), run_name_(run_name), trace_file_(settings.trace_file) {
  monitor_ = std::make_unique<energy::EnergyMonitor>(energy_options_of(settings, (run_dir / settings.trace_file).string()));
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

void RunEnergy::set_other_machines(std::vector<nlohmann::json> reports, const std::string& phase) {
  others_ = std::move(reports);
  others_phase_ = phase;
}

nlohmann::json RunEnergy::with_other_machines(nlohmann::json window, const std::string& phase) const {
  if (phase != "total" && phase != others_phase_) return window;
  for (const nlohmann::json& report : others_)
    window = add_machine_window(window, report.at("window"), report.at("host").get<std::string>());
  return window;
}

nlohmann::json RunEnergy::end(const std::string& phase, int64_t samples) {
  nlohmann::json j = add_energy_windows(
      earlier_window(earlier_, phase), with_other_machines(energy::to_json(monitor_->end_window(phase), samples), phase));
  std::erase(open_, phase);
  phases_[phase] = j;
  return j;
}

nlohmann::json RunEnergy::so_far(int64_t samples) {
  nlohmann::json phases = phases_;
  for (const std::string& phase : open_)
    phases[phase] = add_energy_windows(earlier_window(earlier_, phase),
                                       with_other_machines(energy::to_json(monitor_->window_so_far(phase), samples), phase));
  nlohmann::json j;
  j["phases"] = merged_phases(earlier_, phases);
  j["total"] = add_energy_windows(earlier_window(earlier_, "total"),
                                  with_other_machines(energy::to_json(monitor_->window_so_far("run"), samples), "total"));
  return j;
}

nlohmann::json RunEnergy::finish(int64_t samples) {
  finished_ = true;
  energy::WindowResult total = monitor_->end_window("run");
  monitor_->stop();
  own_session_total_ = energy::to_json(total, samples);
  const nlohmann::json job_total = with_other_machines(own_session_total_, "total");
  energy::RunInfo info;
  info.project_name = "wattwise:" + run_name_;
  // The job's row: every machine's joules, kWh and CO2 (the same carbon factors), their hardware.
  energy::WindowResult row = total;
  row.gpu_joules = job_total.value("gpu_j", nlohmann::json()).is_number() ? job_total["gpu_j"].get<double>() : 0.0;
  row.cpu_joules = job_total["cpu_j"].get<double>();
  row.ram_joules = job_total["ram_j"].get<double>();
  row.total_joules = job_total["energy_j"].get<double>();
  row.kwh = job_total["kwh"].get<double>();
  row.gco2e = job_total["gco2e"].get<double>();
  const energy::HostInfo hardware = combined_hardware(monitor_->host(), others_);
  if (!others_.empty()) info.host = &hardware;
  monitor_->append_emissions_csv((run_dir_ / "emissions.csv").string(), row, info);
  nlohmann::json j;
  j["phases"] = merged_phases(earlier_, phases_);
  j["total"] = add_energy_windows(earlier_window(earlier_, "total"), job_total);
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

nlohmann::json add_machine_window(const nlohmann::json& own, const nlohmann::json& other, const std::string& host) {
  auto number = [](const nlohmann::json& w, const char* key) {
    const auto it = w.find(key);
    return it != w.end() && it->is_number() ? it->get<double>() : 0.0;
  };
  nlohmann::json sum = own;
  for (const char* key : {"energy_j", "cpu_j", "ram_j"}) sum[key] = number(own, key) + number(other, key);
  const bool gpu = own.value("gpu_j", nlohmann::json()).is_number() || other.value("gpu_j", nlohmann::json()).is_number();
  sum["gpu_j"] = gpu ? nlohmann::json(number(own, "gpu_j") + number(other, "gpu_j")) : nlohmann::json(nullptr);
  sum["gpu_present"] = own.value("gpu_present", false) || other.value("gpu_present", false);
  if (sum["gpu_present"].get<bool>()) sum.erase("gpu_absent_reason");
  const double joules = sum["energy_j"].get<double>(), duration = number(own, "duration_s");
  const nlohmann::json carbon = own.value("carbon", nlohmann::json::object());
  sum["kwh"] = energy::joules_to_kwh(joules);
  sum["gco2e"] = energy::joules_to_kwh(joules) * number(carbon, "pue") * number(carbon, "intensity_g_per_kwh");
  sum["avg_w"] = duration > 0 ? joules / duration : 0.0;
  if (own.value("samples", int64_t(0)) > 0) sum["j_per_sample"] = joules / double(own["samples"].get<int64_t>());
  for (nlohmann::json source : other.value("sources", nlohmann::json::array())) {
    source["source"] = host + "/" + source.value("source", "");
    sum["sources"].push_back(source);
  }
  for (const auto& note : other.value("notes", nlohmann::json::array()))
    sum["notes"].push_back(host + ": " + note.get<std::string>());
  const nlohmann::json a = own.value("baseline", nlohmann::json()), b = other.value("baseline", nlohmann::json());
  if (a.is_object() && b.is_object())
    for (const char* key : {"gpu_w", "cpu_w", "ram_w", "net_energy_j"}) sum["baseline"][key] = number(a, key) + number(b, key);
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
