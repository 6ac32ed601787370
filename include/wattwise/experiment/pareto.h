#pragma once
// Pareto frontiers over any number of objectives, exact or within the spread measured over repeats,
// and the table of sweep results they are computed on (pareto.csv: one row per configuration, its
// knobs, its metrics, whether it is on the frontier and which configurations it ties with).
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

// A measured value and its spread over repeats: low <= value <= high (low == high == value: no
// spread, the value is compared exactly).
struct Spread {
  double value = 0, low = 0, high = 0;
  static Spread exact(double v) { return {v, v, v}; }
};

// A point of a frontier within the spread: on it when nothing dominates it beyond the spread;
// tied_with lists the points that dominate it on the exact values but not beyond the spread (empty
// for a point no exact value beats, and for a dominated one).
struct FrontierPoint {
  bool on = false;
  std::vector<size_t> tied_with;
  bool tie() const { return on && !tied_with.empty(); }
};

// values[i][k]: point i's value of objective k with its spread. Point j dominates point i beyond the
// spread when it is at least as good on every objective's exact value, strictly better on one, and,
// on every objective where it is better, better by more than the spread: the intervals do not
// overlap (j.high < i.low for a minimised objective, j.low > i.high for a maximised one; touching
// intervals overlap). Without spreads (low == high == value) this is pareto_frontier. A point that
// an exact comparison would drop but that nothing dominates beyond the spread stays on, as a tie with
// the points that beat it on exact values. NaN values are an error as in pareto_frontier; a spread
// that does not contain its value is one too.
std::vector<FrontierPoint> pareto_frontier_within_spread(const std::vector<std::vector<Spread>>& values,
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
  bool on_frontier = false;               // on the frontier within the spread (ties included)
  // A tie: the rows that beat this one on the exact values, but not beyond the measured spread
  // (their ids, "c003", or "<run folder>/c003" in a table of several runs); empty otherwise.
  std::vector<std::string> tied_with;

  // Its value of `metric`, or an error naming the config and the metric when it has none.
  double metric(const std::string& metric) const;
  // Its value of `metric` with the spread over repeats: [<metric>_min, <metric>_max] when the row
  // has both (widened to contain the value), else the value alone. Errors as metric().
  Spread spread(const std::string& metric) const;
  // "yes" (on the frontier), "tie" (on it within the spread only) or "no".
  std::string frontier() const;
  std::string knob(const std::string& axis) const;  // "" when absent
  std::string label() const;                        // "c003 (layers=2 max_length=32)"
};

struct ResultTable {
  std::vector<std::string> axes;     // knob columns, in order
  std::vector<std::string> metrics;  // metric columns, in order
  std::vector<ConfigRow> rows;
};

// Sets on_frontier and tied_with on every row: the frontier within the spread
// (pareto_frontier_within_spread, each objective's spread from ConfigRow::spread). Skipped rows are
// never on it; an ok row lacking an objective's metric (or holding NaN) is an error naming it.
void mark_frontier(ResultTable& table, const std::vector<Objective>& objectives);

// pareto.csv: run,config,<axes...>,baseline,status,on_frontier,tied_with,<metrics...>,
// energy_provenance,reason. tied_with: the ids of tied_with, space-separated. Numbers with 6
// significant digits (full precision for integers); missing metrics empty.
void write_pareto_csv(const ResultTable& table, const std::filesystem::path& path);
// Reads a pareto.csv back (one written before tied_with existed too: no ties); errors name the file
// and line.
ResultTable read_pareto_csv(const std::filesystem::path& path);

// Fixed-width text table of rows (the frontier, for the terminal): config, knobs, the given metrics,
// and a last column "frontier" saying "tie with c003" for a tie when any row shown is one.
std::string format_table(const ResultTable& table, const std::vector<const ConfigRow*>& rows,
                         const std::vector<std::string>& metrics);
// The terminal's count of ties: ", 2 of them ties within the measured spread" ("" for none).
std::string tie_note(size_t ties);

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
