// `wattwise ablate`: the ablation folder, its plan, every (arm, seed) training run in turn (skipping
// the completed ones and continuing interrupted ones when resumed), and the files that sum them up.
#include "wattwise/experiment/ablate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <sstream>

#include "wattwise/core/error.h"
#include "wattwise/dist/world.h"
#include "wattwise/experiment/run_dir.h"
#include "wattwise/experiment/train_checkpoint.h"
#include "wattwise/experiment/train_run.h"
#include "wattwise/io/file.h"

namespace ww::experiment {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* kPlanFile = "ablation_plan.json";
const char* kPlanFormat = "wattwise-ablation-plan";

std::string run_name(const AblationArm& arm, int64_t seed) { return arm.name + "_s" + std::to_string(seed); }

TrainConfig run_config(const AblationArm& arm, int64_t seed, const fs::path& dir) {
  TrainConfig cfg = arm.config;
  cfg.set("run.seed", std::to_string(seed), "ablation");
  cfg.set("run.name", run_name(arm, seed), "ablation");
  cfg.set("run.output_dir", (dir / "runs").string(), "ablation");
  return cfg;
}

// ---- the plan: what --resume continues, independent of the spec's files and the working folder

json plan_json(const AblationSpec& spec, const fs::path& spec_file) {
  json arms = json::array();
  for (const AblationArm& a : spec.arms)
    arms.push_back({{"name", a.name}, {"where", a.where}, {"recipe", a.recipe}, {"sets", a.sets},
                    {"config", a.config.to_toml()}});
  return {{"format", kPlanFormat}, {"format_version", 1}, {"wattwise_version", wattwise_version()},
          {"created", utc_timestamp()}, {"spec", spec_file.string()}, {"name", spec.name}, {"metric", spec.metric},
          {"target", spec.target}, {"tolerance", spec.tolerance}, {"seeds", spec.seeds}, {"arms", arms}};
}

AblationSpec read_plan(const fs::path& dir) {
  const fs::path file = dir / kPlanFile;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail("--resume ", dir.string(), ": no such ablation folder");
  if (!fs::exists(file, ec)) fail("--resume ", dir.string(), ": not an ablation folder (no ", kPlanFile, ")");
  AblationSpec spec;
  try {
    const json p = json::parse(io::read_file(file));
    if (p.at("format") != kPlanFormat || p.at("format_version") != 1)
      fail(file.string(), ": not a version-1 ", kPlanFormat);
    spec.name = p.at("name");
    spec.metric = p.at("metric");
    spec.target = p.at("target");
    spec.tolerance = p.at("tolerance");
    spec.seeds = p.at("seeds").get<std::vector<int64_t>>();
    for (const json& a : p.at("arms")) {
      AblationArm arm;
      arm.name = a.at("name");
      arm.where = a.at("where");
      arm.recipe = a.at("recipe");
      arm.sets = a.at("sets").get<std::vector<std::pair<std::string, std::string>>>();
      arm.config.merge_toml_text(a.at("config").get<std::string>(), file.string() + ": arm " + arm.name);
      spec.arms.push_back(std::move(arm));
    }
  } catch (const json::exception& e) {
    fail(file.string(), ": ", e.what());
  }
  if (spec.arms.size() < 2 || spec.seeds.empty()) fail(file.string(), ": no arms or no seeds");
  return spec;
}

// ---- what an earlier session left of a run

enum class Action { Skip, Resume, Run };

struct RunState {
  Action action = Action::Run;
  fs::path dir;                 // the folder to skip or continue
  std::string why;              // for the log
  std::vector<std::pair<fs::path, std::string>> stale;  // unfinished attempts to remove first, and why
};

// Folders <UTC>_<name> or <UTC>_<name>_<N> (create_run_dir's names), oldest first.
std::vector<fs::path> folders_of(const fs::path& runs, const std::string& name) {
  std::vector<fs::path> found;
  std::error_code ec;
  if (!fs::is_directory(runs, ec)) return found;
  for (const auto& entry : fs::directory_iterator(runs, ec)) {
    const std::string f = entry.path().filename().string();
    if (!entry.is_directory() || f.size() <= 17 || f[8] != 'T' || f[15] != 'Z' || f[16] != '_') continue;
    const std::string rest = f.substr(17);
    const bool clash_suffix = rest.size() > name.size() + 1 && rest.compare(0, name.size() + 1, name + "_") == 0 &&
                              std::all_of(rest.begin() + long(name.size()) + 1, rest.end(),
                                          [](char c) { return c >= '0' && c <= '9'; });
    if (rest == name || clash_suffix) found.push_back(entry.path());
  }
  std::sort(found.begin(), found.end());
  return found;
}

// The configuration without what may differ between sessions of the same run.
std::string comparable(TrainConfig cfg) {
  cfg.set("run.output_dir", "runs", "ablation");
  cfg.set("run.progress", "none", "ablation");
  return cfg.to_toml();
}

// Whether a run folder's config.toml is the plan's run. A task writes some keys as it resolved them
// (language modelling: train.metric, a new model's model.max_positions); where the plan left such a
// key at its default, the run's resolved value stands in for it.
bool same_run(TrainConfig run, const TrainConfig& plan) {
  static const TrainConfig defaults;
  for (const char* key : {"train.metric", "model.max_positions"})
    if (plan.get_string(key) == defaults.get_string(key)) run.set(key, plan.get_string(key), "ablation");
  return comparable(run) == comparable(plan);
}

std::string status_of(const fs::path& dir) {
  for (const char* file : {"metrics.json", "status.json"}) {
    try {
      const json j = json::parse(io::read_file(dir / file));
      if (file[0] == 'm') return j.at("run").at("status");
      return j.at("status");
    } catch (const std::exception&) {
    }
  }
  return "unfinished";
}

bool has_checkpoint(const fs::path& dir) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir / "checkpoints", ec))
    if (fs::exists(entry.path() / "manifest.json", ec)) return true;
  return false;
}

RunState inspect(const fs::path& runs, const TrainConfig& cfg) {
  struct Found {
    fs::path dir;
    bool same = false;
    std::string status;
  };
  std::vector<Found> found;
  for (const fs::path& dir : folders_of(runs, cfg.get_string("run.name"))) {
    Found f{dir, false, status_of(dir)};
    try {
      TrainConfig config;
      config.merge_toml_file(dir / "config.toml");
      f.same = same_run(config, cfg);
    } catch (const Error&) {
    }
    if (!f.same && f.status == "completed")
      fail(dir.string(), ": a completed run whose config.toml is not the ablation plan's for it (move it out of ",
           runs.string(), " to run it again)");
    found.push_back(f);
  }
  RunState state;
  // The newest completed one is the result (unfinished attempts beside it are left alone); else the
  // newest with a checkpoint is continued; what is left is removed before the run starts again.
  for (auto it = found.rbegin(); it != found.rend(); ++it)
    if (it->same && it->status == "completed" && fs::exists(it->dir / "metrics.json")) {
      state.action = Action::Skip, state.dir = it->dir, state.why = "completed in " + it->dir.string();
      return state;
    }
  for (auto it = found.rbegin(); it != found.rend(); ++it) {
    if (state.action == Action::Run && it->same && has_checkpoint(it->dir))
      state.action = Action::Resume, state.dir = it->dir, state.why = it->status + ", with a checkpoint";
    else
      state.stale.emplace_back(it->dir, it->status + (!it->same                      ? ", another configuration"
                                                      : state.action == Action::Resume ? ", an older attempt"
                                                                                       : ", no checkpoint to continue from"));
  }
  return state;
}

// ---- the files

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string csv_number(const std::map<std::string, double>& m, const std::string& key) {
  auto it = m.find(key);
  if (it == m.end() || !std::isfinite(it->second)) return "";
  char buffer[64];
  const double v = it->second;
  if (std::floor(v) == v && std::fabs(v) < 1e15) std::snprintf(buffer, sizeof buffer, "%.0f", v);
  else std::snprintf(buffer, sizeof buffer, "%.6g", v);
  return buffer;
}

json finite_json(const std::map<std::string, double>& m) {
  json j = json::object();
  for (const auto& [k, v] : m)
    if (std::isfinite(v)) j[k] = v;
  return j;
}

std::string provenance_of(const json& window) {
  std::string out;
  if (!window.is_object()) return out;
  for (const auto& s : window.value("sources", json::array()))
    out += (out.empty() ? "" : "; ") + s.value("source", std::string("?")) + ": " + s.value("provenance", std::string("?"));
  return out;
}

void write_outputs(const AblationSpec& spec, const std::vector<AblationRun>& runs, const AblationSummary& summary,
                   const fs::path& dir) {
  const std::vector<std::string> run_columns = ablation_run_metric_names(spec.metric);
  std::ostringstream r;
  r << "change,seed,status";
  for (const auto& c : run_columns) r << "," << c;
  r << ",dir,energy_provenance\n";
  json runs_json = json::array();
  double energy_j = 0, kwh = 0, gco2e = 0;
  for (const AblationRun& run : runs) {
    r << csv_field(run.arm) << "," << run.seed << "," << run.status;
    for (const auto& c : run_columns) r << "," << csv_number(run.metrics, c);
    r << "," << csv_field(run.dir.string()) << "," << csv_field(run.energy_provenance) << "\n";
    runs_json.push_back({{"change", run.arm}, {"seed", run.seed}, {"dir", run.dir.string()}, {"status", run.status},
                         {"metrics", finite_json(run.metrics)}, {"energy_provenance", run.energy_provenance}});
    auto add = [&](double& sum, const char* key) {
      if (run.metrics.count(key)) sum += run.metrics.at(key);
    };
    add(energy_j, "energy_j"), add(kwh, "kwh"), add(gco2e, "gco2e");
  }
  io::write_file_atomic(dir / "runs.csv", r.str());

  std::ostringstream a;
  a << "name,baseline,sets,seeds,on_frontier,tied_with,rank";
  for (const auto& c : summary.columns) a << "," << c;
  a << "\n";
  json changes = json::array(), frontier = json::array(), ranked = json::array();
  for (size_t i = 0; i < summary.arms.size(); ++i) {
    const ArmSummary& s = summary.arms[i];
    std::string tied;
    for (const auto& t : s.tied_with) tied += (tied.empty() ? "" : " ") + t;
    a << csv_field(s.name) << "," << (s.baseline ? "true" : "false") << "," << csv_field(s.sets) << "," << s.seeds
      << "," << (s.on_frontier ? "true" : "false") << "," << csv_field(tied) << ","
      << (s.rank > 0 ? std::to_string(s.rank) : "");
    for (const auto& c : summary.columns) a << "," << csv_number(s.columns, c);
    a << "\n";
    const AblationArm& arm = spec.arms[i];
    changes.push_back({{"name", s.name}, {"baseline", s.baseline}, {"sets", arm.sets}, {"recipe", arm.recipe},
                       {"seeds", s.seeds}, {"on_frontier", s.on_frontier}, {"frontier", s.frontier()},
                       {"tied_with", s.tied_with}, {"rank", s.rank > 0 ? json(s.rank) : json()},
                       {"metrics", finite_json(s.columns)}});
    if (s.on_frontier) frontier.push_back(s.name);
  }
  for (size_t i : summary.ranked) ranked.push_back(summary.arms[i].name);
  io::write_file_atomic(dir / "ablation.csv", a.str());

  const ScatterPlot plot = ablation_plot(spec, summary);
  if (!plot.points.empty()) write_plot(plot, dir / (spec.metric + "_energy"));
  io::write_file_atomic(dir / "report.html", render_ablation_report(spec, summary, runs, dir));
  const json metrics = {
      {"ablation", {{"name", spec.name}, {"dir", dir.string()}, {"metric", spec.metric}, {"target", spec.target},
                    {"tolerance_points", spec.tolerance}, {"seeds", spec.seeds}, {"runs", runs.size()}}},
      {"baseline", spec.arms.front().name},
      {"changes", changes},
      {"frontier", frontier},
      {"ranked", ranked},
      {"runs", runs_json},
      {"energy", {{"energy_j", energy_j}, {"kwh", kwh}, {"gco2e", gco2e}}}};
  io::write_file_atomic(dir / "metrics.json", metrics.dump(2) + "\n");
}

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::string fmt(double v, const char* format) {
  if (!std::isfinite(v)) return "-";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, v);
  return buffer;
}

double column(const ArmSummary& s, const std::string& key) {
  auto it = s.columns.find(key);
  return it == s.columns.end() ? std::nan("") : it->second;
}

// The terminal: one line per arm, then the ranking.
void print_summary(const AblationSpec& spec, const AblationSummary& summary, const fs::path& dir) {
  const std::string q = "delta_" + spec.metric + "_pts";
  std::vector<std::vector<std::string>> rows = {
      {"change", "seeds", spec.metric, "Δ" + spec.metric + " (points) [95% CI]", "Δenergy", "Δtime to target", "frontier"}};
  for (const ArmSummary& s : summary.arms) {
    std::string ci = fmt(column(s, q + "_mean"), "%+.2f");
    if (std::isfinite(column(s, q + "_ci_low")))
      ci += " [" + fmt(column(s, q + "_ci_low"), "%+.2f") + ", " + fmt(column(s, q + "_ci_high"), "%+.2f") + "]";
    rows.push_back({s.name + (s.baseline ? " *" : ""), std::to_string(s.seeds), fmt(column(s, spec.metric + "_mean"), "%.4f"),
                    s.baseline ? "" : ci, s.baseline ? "" : fmt(100 * column(s, "delta_energy_j_rel"), "%+.1f%%"),
                    s.baseline ? "" : fmt(100 * column(s, "delta_time_to_target_s_rel"), "%+.1f%%"),
                    s.frontier() == "tie" ? "tie with " + join_names(s.tied_with) : s.on_frontier ? "yes" : ""});
  }
  // Widths in characters, not bytes: the headings hold a Δ.
  auto length = [](const std::string& s) {
    return size_t(std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
  };
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], length(row[i]));
  std::printf("\nAblation against the baseline (*), paired by seed:\n");
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i)
      line += (i ? "  " : "") + row[i] + std::string(width[i] - length(row[i]), ' ');
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::printf("%s\n", line.c_str());
  }
  std::printf("energy saved at <= %g points %s loss:", spec.tolerance, spec.metric.c_str());
  if (summary.ranked.empty()) std::printf(" none");
  for (size_t place = 0; place < summary.ranked.size(); ++place) {
    const ArmSummary& s = summary.arms[summary.ranked[place]];
    std::printf("%s %zu. %s (%s)", place ? "," : "", place + 1, s.name.c_str(),
                fmt(column(s, "energy_saved_pct"), "%+.1f%%").c_str());
  }
  std::printf("\nablation folder: %s (ablation.csv, runs.csv, metrics.json, report.html, plots)\n", dir.c_str());
}

AblationRun read_run(const AblationArm& arm, int64_t seed, const fs::path& run_dir, const std::string& metric) {
  AblationRun run;
  run.arm = arm.name;
  run.seed = seed;
  run.dir = run_dir;
  json m;
  try {
    m = json::parse(io::read_file(run_dir / "metrics.json"));
  } catch (const json::exception& e) {
    fail((run_dir / "metrics.json").string(), ": not valid JSON (", e.what(), ")");
  }
  run.status = m.value("run", json::object()).value("status", std::string("?"));
  run.metrics = ablation_run_metrics(m, metric);
  if (m.contains("energy")) run.energy_provenance = provenance_of(m["energy"].value("total", json()));
  return run;
}

// Seed by seed (every arm with the first seed, then with the next): the runs compared with each
// other, paired by seed, run close together, so a drift of the machine over the ablation (other
// load, clocks, temperature) falls on every arm alike rather than on the arms that run last. Within
// a seed the arms run in an order shuffled by the seed (the same every time), so that neither an
// arm's position nor the run before it is the same for every seed: in one process a run can pay for
// what the previous one left (memory to fault in again, caches), and that cost must not always fall
// on the same arm.
std::vector<std::pair<size_t, int64_t>> run_order(const AblationSpec& spec) {
  std::vector<std::pair<size_t, int64_t>> order;
  for (int64_t seed : spec.seeds) {
    std::vector<size_t> arms(spec.arms.size());
    for (size_t i = 0; i < arms.size(); ++i) arms[i] = i;
    // Fisher-Yates on mt19937_64's raw output, which the standard fixes (std::shuffle's is not).
    std::mt19937_64 engine{static_cast<uint64_t>(seed)};
    for (size_t i = arms.size() - 1; i > 0; --i) std::swap(arms[i], arms[size_t(engine() % (i + 1))]);
    for (size_t arm : arms) order.emplace_back(arm, seed);
  }
  return order;
}

void describe_plan(const AblationSpec& spec) {
  for (const AblationArm& a : spec.arms)
    std::fprintf(stderr, "ablate: %-*s %s\n", 12, a.name.c_str(), a.describe().empty() ? "(as configured)" : a.describe().c_str());
}

}  // namespace

AblateResult run_ablation(const AblateOptions& o) {
  if (o.spec.empty() == o.resume.empty()) fail("ablate: give a spec file or --resume ABLATION_DIR (one of them)");
  if (dist::world_from_environment().distributed())
    fail("ablate: runs its training runs in one process; a data-parallel ablation (under a launcher) is not supported");
  const bool resuming = !o.resume.empty();
  AblationSpec spec = resuming ? read_plan(o.resume) : load_ablation_spec(o);
  const size_t total = spec.arms.size() * spec.seeds.size();
  if (o.dry_run) {
    std::fprintf(stderr, "ablate: %s: %zu arms x %zu seed%s = %zu training runs (dry run: nothing is written)\n",
                 spec.name.c_str(), spec.arms.size(), spec.seeds.size(), spec.seeds.size() > 1 ? "s" : "", total);
    describe_plan(spec);
    if (resuming) {
      for (const auto& [arm_at, seed] : run_order(spec)) {
        const RunState s = inspect(o.resume / "runs", run_config(spec.arms[arm_at], seed, o.resume));
        std::fprintf(stderr, "ablate: %s seed %lld: %s\n", spec.arms[arm_at].name.c_str(), (long long)seed,
                     s.action == Action::Skip     ? "would skip (completed)"
                     : s.action == Action::Resume ? "would resume from its checkpoint"
                                                  : "would run");
      }
    }
    return {resuming ? o.resume : fs::path(), 0};
  }

  fs::path dir = o.resume;
  if (!resuming) {
    dir = create_run_dir(o.runs_dir, spec.name);
    RunDirGuard guard(dir);  // until the plan is written: a folder without one could not be resumed
    io::write_file_atomic(dir / "spec.toml", io::read_file(o.spec));
    io::write_file_atomic(dir / kPlanFile, plan_json(spec, o.spec).dump(2) + "\n");
    guard.keep();
  }
  RunDirLock lock;
  try {
    lock = RunDirLock(dir);
  } catch (const Error& e) {
    if (std::string(e.what()).find("another wattwise process") == std::string::npos) throw;
    fail(dir.string(), ": another wattwise ablate is running in this ablation folder (wait for it to end, or stop it)");
  }
  std::fprintf(stderr, "ablate: %s: %zu training runs (the baseline and %zu change%s x %zu seed%s) in %s\n",
               resuming ? "resuming" : spec.name.c_str(), total, spec.arms.size() - 1, spec.arms.size() > 2 ? "s" : "",
               spec.seeds.size(), spec.seeds.size() > 1 ? "s" : "", dir.c_str());
  if (!resuming) describe_plan(spec);

  std::vector<AblationRun> runs;
  size_t index = 0;
  for (const auto& [arm_at, seed] : run_order(spec)) {
    const AblationArm& arm = spec.arms[arm_at];
    ++index;
    const TrainConfig cfg = run_config(arm, seed, dir);
    char head[160];
    std::snprintf(head, sizeof head, "ablate: [%zu/%zu] %s seed %lld", index, total, arm.name.c_str(), (long long)seed);
    const RunState state = inspect(dir / "runs", cfg);
    for (const auto& [stale, why] : state.stale) {
      RunDirLock check(stale);  // never remove a folder a live process is training in
      std::fprintf(stderr, "%s: removing %s (%s)\n", head, stale.c_str(), why.c_str());
      std::error_code ec;
      fs::remove_all(stale, ec);
      if (ec) fail(stale.string(), ": cannot remove this unfinished run (", ec.message(), ")");
    }
    fs::path run_dir = state.dir;
    if (state.action == Action::Skip) {
      std::fprintf(stderr, "%s: skipped (%s)\n", head, state.why.c_str());
    } else {
      TrainRunResult result;
      try {
        if (state.action == Action::Resume) {
          std::fprintf(stderr, "%s: resuming %s (%s)\n", head, state.dir.c_str(), state.why.c_str());
          result = resume_training(state.dir);
        } else {
          std::fprintf(stderr, "%s: training\n", head);
          result = run_training(cfg);
        }
      } catch (const Error& e) {
        fail(arm.name, " seed ", seed, ": ", e.what(), " (the ablation stopped; finished runs are kept: wattwise ablate "
             "--resume ", dir.string(), " continues)");
      }
      if (result.signal != 0) {
        std::fprintf(stderr, "ablate: interrupted by %s during %s seed %lld; to continue: wattwise ablate --resume %s\n",
                     signal_name(result.signal).c_str(), arm.name.c_str(), (long long)seed, dir.c_str());
        return {dir, result.signal};
      }
      run_dir = result.run_dir;
    }
    AblationRun run = read_run(arm, seed, run_dir, spec.metric);
    if (run.status != "completed") fail(run_dir.string(), ": the run ended ", run.status, ", not completed");
    if (state.action != Action::Skip) {
      const auto& m = run.metrics;
      auto value = [&](const std::string& k) { return m.count(k) ? m.at(k) : std::nan(""); };
      std::fprintf(stderr, "%s: %s %s, %s s, %s J\n", head, spec.metric.c_str(), fmt(value(spec.metric), "%.4f").c_str(),
                   fmt(value("seconds"), "%.3g").c_str(), fmt(value("energy_j"), "%.4g").c_str());
    }
    runs.push_back(std::move(run));
  }
  // The files list the runs arm by arm, in seed order.
  auto arm_index = [&](const std::string& name) {
    return std::find_if(spec.arms.begin(), spec.arms.end(), [&](const AblationArm& a) { return a.name == name; }) -
           spec.arms.begin();
  };
  std::stable_sort(runs.begin(), runs.end(),
                   [&](const AblationRun& a, const AblationRun& b) { return arm_index(a.arm) < arm_index(b.arm); });
  const AblationSummary summary = summarize_ablation(spec, runs);
  write_outputs(spec, runs, summary, dir);
  print_summary(spec, summary, dir);
  return {dir, 0};
}

}  // namespace ww::experiment
