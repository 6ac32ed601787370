#pragma once
// Pareto frontiers over any number of objectives, and the table of sweep results they are computed
// on (pareto.csv: one row per configuration, its knobs, its metrics and whether it is on the
// frontier).
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace ww::experiment {

enum class Goal { Minimize, Maximize };

struct Objective {
  std::string metric;  // a metric column of the table, e.g. "accuracy", "joules_per_example"
  Goal goal = Goal::Minimize;
  std::string str() const;  // "accuracy:max"
};

// "accuracy:max,joules_per_example:min" (two or more, distinct); an error names the bad item.
std::vector<Objective> parse_objectives(const std::string& text);

// values[i][k]: point i's value of objective k. A point is on the frontier when no other point is
// at least as good on every objective and strictly better on one (exact duplicates therefore both
// stay on). A NaN is an error naming the point (names[i]) and the objective's metric.
std::vector<bool> pareto_frontier(const std::vector<std::vector<double>>& values,
                                  const std::vector<Objective>& objectives,
                                  const std::vector<std::string>& names);

// One configuration of a sweep (or one training run, for `wattwise pareto`).
struct ConfigRow {
  std::string run;     // the run folder it came from
  std::string config;  // "c000", "c001", ... (a training run: "train")
  std::vector<std::pair<std::string, std::string>> knobs;  // axis → value, in the table's axis order
  bool baseline = false;     // the first value of every axis
  std::string status = "ok"; // ok, or skipped (reason says why)
  std::string reason;
  std::map<std::string, double> metrics;  // missing = not available
  std::string energy_provenance;          // "measured: ...", "estimated: ..."
  bool on_frontier = false;

  // Its value of `metric`, or an error naming the config and the metric when it has none.
  double metric(const std::string& metric) const;
  std::string knob(const std::string& axis) const;  // "" when absent
  std::string label() const;                        // "c003 (layers=2 max_length=32)"
};

struct ResultTable {
  std::vector<std::string> axes;     // knob columns, in order
  std::vector<std::string> metrics;  // metric columns, in order
  std::vector<ConfigRow> rows;
};

// Sets on_frontier on every row: skipped rows are never on it; an ok row lacking an objective's
// metric (or holding NaN) is an error naming it.
void mark_frontier(ResultTable& table, const std::vector<Objective>& objectives);

// pareto.csv: run,config,<axes...>,baseline,status,on_frontier,<metrics...>,energy_provenance,reason.
// Numbers with 6 significant digits (full precision for integers); missing metrics empty.
void write_pareto_csv(const ResultTable& table, const std::filesystem::path& path);
// Reads a pareto.csv back; errors name the file and line.
ResultTable read_pareto_csv(const std::filesystem::path& path);

// Fixed-width text table of rows (the frontier, for the terminal): config, knobs, the given metrics.
std::string format_table(const ResultTable& table, const std::vector<const ConfigRow*>& rows,
                         const std::vector<std::string>& metrics);

// `wattwise pareto RUN_DIR...`: rows of every sweep run (pareto.csv) and training run (metrics.json:
// accuracy against training_kwh), the frontier over `objectives` ("" = accuracy:max with
// joules_per_example:min and latency_p50_ms:min for sweeps, accuracy:max,training_kwh:min when a
// training run is among them); prints the frontier table and writes pareto.csv into a new run
// folder under runs_dir. Returns that folder.
struct ParetoOptions {
  std::vector<std::filesystem::path> run_dirs;
  std::string objectives;
  std::filesystem::path runs_dir = "runs";
};
std::filesystem::path run_pareto(const ParetoOptions& options);

// Rows from one run folder (pareto.csv of a sweep, or metrics.json of a training run).
ResultTable load_run_results(const std::filesystem::path& run_dir);
// The rows of several run folders in one table (axes and metrics: the union, in order seen).
ResultTable load_runs(const std::vector<std::filesystem::path>& run_dirs);

}  // namespace ww::experiment
