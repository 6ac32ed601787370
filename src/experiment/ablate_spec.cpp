// The ablation spec: read, resolved into one training configuration per arm, and validated in full
// before anything is written or trained (docs/ABLATIONS.md has the format).
#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <sstream>

#include <toml++/toml.h>

#include "train_task.h"
#include "wattwise/core/error.h"
#include "wattwise/experiment/ablate.h"
#include "wattwise/experiment/evaluate.h"
#include "wattwise/experiment/limits.h"
#include "wattwise/experiment/run_dir.h"
#include "wattwise/train/target.h"

namespace ww::experiment {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kMaxSeeds = 1000;
constexpr size_t kMaxNameLength = 64;

// The keys the ablation sets for every run itself: an arm that set them would not be comparable.
const std::map<std::string, std::string>& reserved_keys() {
  static const std::map<std::string, std::string> keys = {
      {"run.seed", "the spec's seeds give every arm the same seeds"},
      {"run.name", "each run is named <arm>_s<seed>"},
      {"run.output_dir", "the runs go into the ablation folder"},
      {"train.target", "the spec's target key applies to every arm"},
      {"train.stop_at_target", "every run trains to its end, so the whole evaluation history is there"}};
  return keys;
}

// The metrics an evaluation reports that the ablation can compare.
const std::vector<std::string>& known_metrics() {
  static const std::vector<std::string> metrics = {"accuracy",  "f1",        "f1_macro",        "precision",
                                                   "recall",    "precision_macro", "recall_macro", "matthews_correlation",
                                                   "pearson",   "spearman",  "loss",            "perplexity", "mse"};
  return metrics;
}

std::string where_of(const fs::path& file, const toml::node& node) {
  return file.string() + ":" + std::to_string(node.source().begin.line);
}

std::string shortest(double v) {
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v);
  return std::string(buffer, end);
}

void unknown(const std::string& where, const std::string& what, const std::string& key,
             const std::vector<std::string>& expected) {
  const std::string hint = nearest_name(key, expected);
  std::string list;
  for (const auto& e : expected) list += (list.empty() ? "" : ", ") + e;
  fail(where, ": unknown key '", key, "' in ", what,
       hint.empty() ? " (expected " + list + ")" : " (did you mean '" + hint + "'?)");
}

toml::table parse_toml_file(const fs::path& path, const std::string& what) {
  std::ifstream in(path);
  if (!in) fail(path.string(), ": cannot open the ", what);
  std::stringstream text;
  text << in.rdbuf();
  try {
    return toml::parse(text.str(), path.string());
  } catch (const toml::parse_error& e) {
    fail(path.string(), ":", e.source().begin.line, ":", e.source().begin.column, ": ", e.description());
  }
}

std::string string_value(const toml::node& node, const std::string& where, const std::string& key) {
  if (auto s = node.as_string()) return s->get();
  fail(where, ": ", key, " must be a string (in quotes)");
}

// Sets every key of `table` (nested tables are dotted keys: [train] precision = ... is
// train.precision) as TrainConfig::set does, so unknown keys and bad values give its messages,
// prefixed with the file and line. Returns the keys set with their canonical values.
std::vector<std::pair<std::string, std::string>> apply_keys(TrainConfig& config, const toml::table& table,
                                                            const fs::path& file, const std::string& prefix = "") {
  std::vector<std::pair<std::string, std::string>> set;
  for (const auto& [k, node] : table) {
    const std::string key = prefix + std::string(k.str());
    const std::string where = where_of(file, node);
    if (const toml::table* inner = node.as_table()) {
      auto more = apply_keys(config, *inner, file, key + ".");
      set.insert(set.end(), more.begin(), more.end());
      continue;
    }
    if (auto r = reserved_keys().find(key); r != reserved_keys().end())
      fail(where, ": ", key, " cannot be set here: ", r->second);
    std::string text;
    if (auto s = node.as_string()) text = s->get();
    else if (auto i = node.as_integer()) text = std::to_string(i->get());
    else if (auto f = node.as_floating_point()) text = shortest(f->get());
    else if (auto b = node.as_boolean()) text = b->get() ? "true" : "false";
    else fail(where, ": ", key, " must be a string, number or boolean");
    for (const auto& schema_key : train_config_schema())
      if (schema_key.key == key && (schema_key.type == "string" || schema_key.type == "path") && !node.is_string())
        fail(where, ": ", key, " must be a string (in quotes)");
    config.set(key, text, where);  // unknown keys ("did you mean"), types and ranges
    set.emplace_back(key, config.get_string(key));
  }
  return set;
}

// "accuracy", "f1", ...: a name that may be part of a folder name and a CSV cell as it is.
void check_arm_name(const std::string& name, const std::string& where) {
  const bool plain = !name.empty() && name.size() <= kMaxNameLength && name != "." && name != ".." &&
                     std::all_of(name.begin(), name.end(), [](char c) {
                       return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
                     });
  if (!plain)
    fail(where, ": change name '", name, "' must be 1 to ", kMaxNameLength,
         " letters, digits, '_', '-' or '.' (it names the run folders)");
}

std::vector<int64_t> read_seeds(const toml::node& node, const std::string& where) {
  std::vector<int64_t> seeds;
  if (auto count = node.as_integer()) {
    const int64_t n = check_range(count->get(), {1, kMaxSeeds}, where + ": seeds");
    for (int64_t s = 1; s <= n; ++s) seeds.push_back(s);
    return seeds;
  }
  const toml::array* list = node.as_array();
  if (!list) fail(where, ": seeds must be a list of integers ([1, 2, 3]) or a count (3: seeds 1..3)");
  for (const auto& item : *list) {
    auto seed = item.as_integer();
    if (!seed) fail(where, ": seeds must hold integers");
    const int64_t s = check_range(seed->get(), limits::kSeed, where + ": seed");
    if (std::find(seeds.begin(), seeds.end(), s) != seeds.end()) fail(where, ": seed ", s, " is listed twice");
    seeds.push_back(s);
  }
  if (seeds.empty()) fail(where, ": seeds is an empty list");
  if (int64_t(seeds.size()) > kMaxSeeds) fail(where, ": more than ", kMaxSeeds, " seeds");
  return seeds;
}

// Relative paths of the configuration made absolute (against the working directory, as `train`
// reads them), so the plan runs the same from any folder; the files it reads must exist.
void resolve_paths(TrainConfig& config, const AblationArm& arm) {
  for (const auto& k : train_config_schema()) {
    if (k.type != "path" || k.key == "run.output_dir") continue;
    const fs::path value = config.get_path(k.key);
    if (value.empty()) continue;
    if (value.is_relative()) config.set(k.key, (fs::current_path() / value).lexically_normal().string(), "ablation");
    std::error_code ec;
    const bool read = k.key == "data.path" || k.key == "model.path" || k.key == "model.tokenizer";
    if (read && !fs::exists(config.get_path(k.key), ec))
      fail(arm.where, ": ", arm.name, ": ", k.key, " ", value.string(), ": no such file or folder");
  }
}

// Everything run_training() would refuse at its start, checked for every arm before the first run.
void validate_arm(const AblationArm& arm, const AblationSpec& spec) {
  TrainConfig probe = arm.config;
  probe.set("run.seed", std::to_string(spec.seeds.front()), "ablation");
  probe.set("run.name", arm.name + "_s" + std::to_string(spec.seeds.front()), "ablation");
  try {
    probe.validate();
    training_execution(probe, parse_device(probe.get_string("run.device")));  // a GPU precision on a CPU
  } catch (const Error& e) {
    fail(arm.where, ": ", arm.name, ": ", e.what());
  }
  if (probe.get_string("data.eval_split").empty())
    fail(arm.where, ": ", arm.name, ": data.eval_split is empty: the ablation compares ", spec.metric,
         " on the evaluation split");
  const bool language_model = probe.get_path("model.path").empty() ? probe.get_string("model.arch") == "gpt2"
                                                                    : is_gpt2_model_folder(probe.model_folder("model.path"));
  const bool lm_metric = spec.metric == "loss" || spec.metric == "perplexity";
  if (language_model && !lm_metric)
    fail(arm.where, ": ", arm.name, ": a GPT-2 run's evaluations report loss and perplexity, not ", spec.metric,
         " (set metric = \"perplexity\" in the spec)");
  if (!language_model && spec.metric == "perplexity")
    fail(arm.where, ": ", arm.name, ": a classification run's evaluations report no perplexity");
}

}  // namespace

std::string AblationArm::describe() const {
  std::string text = recipe.empty() ? "" : "recipe " + recipe;
  for (const auto& [key, value] : sets) text += (text.empty() ? "" : "; ") + key + "=" + value;
  return text;
}

AblationSpec load_ablation_spec(const AblateOptions& o) {
  const fs::path& file = o.spec;
  const toml::table table = parse_toml_file(file, "ablation spec");
  const fs::path folder = file.parent_path();
  AblationSpec spec;
  spec.name = !o.name.empty() ? o.name : file.stem().string();
  const toml::table* baseline_table = nullptr;
  const toml::array* changes = nullptr;
  for (const auto& [k, node] : table) {
    const std::string key(k.str());
    const std::string where = where_of(file, node);
    if (key == "name") {
      const std::string name = string_value(node, where, key);
      check_run_name(name, where + ": name");
      if (o.name.empty()) spec.name = name;
    } else if (key == "seeds") {
      spec.seeds = read_seeds(node, where);
    } else if (key == "target") {
      spec.target = string_value(node, where, key);
      train::parse_training_target(spec.target, where + ": target");
    } else if (key == "metric") {
      spec.metric = string_value(node, where, key);
      const auto& m = known_metrics();
      if (std::find(m.begin(), m.end(), spec.metric) == m.end()) {
        const std::string hint = nearest_name(spec.metric, m);
        std::string list;
        for (const auto& name : m) list += (list.empty() ? "" : ", ") + name;
        fail(where, ": metric '", spec.metric, "' is not one an evaluation reports (",
             hint.empty() ? "expected one of " + list : "did you mean '" + hint + "'?", ")");
      }
    } else if (key == "tolerance") {
      if (auto f = node.as_floating_point()) spec.tolerance = f->get();
      else if (auto i = node.as_integer()) spec.tolerance = double(i->get());
      else fail(where, ": tolerance must be a number (points of quality loss)");
      if (!(spec.tolerance >= 0 && spec.tolerance <= 100))
        fail(where, ": tolerance ", spec.tolerance, " is out of range [0, 100] (points of quality loss)");
    } else if (key == "baseline") {
      baseline_table = node.as_table();
      if (!baseline_table) fail(where, ": baseline must be a table ([baseline] with config = \"train.toml\")");
    } else if (key == "change") {
      changes = node.as_array();
      if (!changes || !changes->is_array_of_tables()) fail(where, ": change must be an array of tables ([[change]])");
    } else {
      unknown(where, "the ablation spec", key, {"name", "seeds", "target", "metric", "tolerance", "baseline", "change"});
    }
  }
  check_run_name(spec.name, o.name.empty() ? file.string() + ": the ablation name (the file's)" : "--name");
  if (o.seeds > 0) {
    spec.seeds.clear();
    for (int64_t s = 1; s <= check_range(o.seeds, {1, kMaxSeeds}, "--seeds"); ++s) spec.seeds.push_back(s);
  }
  if (spec.seeds.empty()) fail(file.string(), ": no seeds (seeds = [1, 2, 3], or a count; or --seeds N)");
  if (!baseline_table) fail(file.string(), ": no [baseline] table (with config = \"train.toml\" and/or [baseline.set])");
  if (!changes || changes->empty()) fail(file.string(), ": no [[change]]: an ablation compares changes with the baseline");

  // The baseline: its config file (as `train --config` reads it), [baseline.set], then --set.
  AblationArm baseline;
  baseline.name = "baseline";
  baseline.where = where_of(file, *baseline_table);
  const toml::table* baseline_sets = nullptr;
  for (const auto& [k, node] : *baseline_table) {
    const std::string key(k.str());
    const std::string where = where_of(file, node);
    if (key == "config") {
      const fs::path config = folder / string_value(node, where, "baseline.config");
      std::error_code ec;
      if (!fs::is_regular_file(config, ec)) fail(where, ": baseline.config ", config.string(), ": no such file");
      baseline.config.merge_toml_file(config);
    } else if (key == "set") {
      baseline_sets = node.as_table();
      if (!baseline_sets) fail(where, ": baseline.set must be a table of training config keys");
    } else {
      unknown(where, "[baseline]", key, {"config", "set"});
    }
  }
  // A train config may name its run and seed; the ablation names and seeds every run itself.
  const std::string config_target = baseline.config.get_string("train.target");
  if (spec.target.empty()) spec.target = config_target;
  if (baseline_sets) baseline.sets = apply_keys(baseline.config, *baseline_sets, file);
  for (const std::string& assignment : o.sets) {
    const std::string key = assignment.substr(0, assignment.find('='));
    if (auto r = reserved_keys().find(key); r != reserved_keys().end())
      fail("--set ", key, ": cannot be set here: ", r->second);
    baseline.config.set(assignment, "--set");
    baseline.sets.emplace_back(key, baseline.config.get_string(key));
  }
  baseline.config.set("train.target", spec.target, "ablation");
  baseline.config.set("train.stop_at_target", "false", "ablation");
  // Each run's own progress display stays quiet unless asked for: the ablation prints a line a run.
  if (!baseline.config.is_set("run.progress")) baseline.config.set("run.progress", "none", "ablation");
  spec.arms.push_back(baseline);

  // The changes: a recipe (a train-config fragment) and/or keys, over the baseline.
  std::map<std::string, std::string> defined = {{"baseline", baseline.where}};
  for (const toml::node& item : *changes) {
    const toml::table& change = *item.as_table();
    AblationArm arm;
    arm.where = where_of(file, change);
    arm.config = baseline.config;
    const toml::node* name = change.get("name");
    if (!name) fail(arm.where, ": [[change]] without a name");
    arm.name = string_value(*name, where_of(file, *name), "change.name");
    check_arm_name(arm.name, where_of(file, *name));
    if (auto [it, fresh] = defined.emplace(arm.name, where_of(file, *name)); !fresh)
      fail(where_of(file, *name), ": change name '", arm.name, "' is ",
           arm.name == "baseline" ? "the baseline's" : "already used (" + it->second + ")");
    const toml::node* recipe = change.get("recipe");
    const toml::node* sets = change.get("set");
    for (const auto& [k, node] : change)
      if (k.str() != "name" && k.str() != "recipe" && k.str() != "set")
        unknown(where_of(file, node), "[[change]]", std::string(k.str()), {"name", "set", "recipe"});
    if (!recipe && !sets) fail(arm.where, ": change '", arm.name, "' has neither set nor recipe");
    if (recipe) {
      arm.recipe = string_value(*recipe, where_of(file, *recipe), "change.recipe");
      const fs::path path = folder / arm.recipe;
      std::error_code ec;
      if (!fs::is_regular_file(path, ec))
        fail(where_of(file, *recipe), ": recipe ", path.string(), ": no such file");
      arm.sets = apply_keys(arm.config, parse_toml_file(path, "recipe"), path);
    }
    if (sets) {
      if (!sets->as_table()) fail(where_of(file, *sets), ": change.set must be a table ({ \"train.precision\" = \"bf16\" })");
      auto more = apply_keys(arm.config, *sets->as_table(), file);
      arm.sets.insert(arm.sets.end(), more.begin(), more.end());
    }
    spec.arms.push_back(std::move(arm));
  }
  if (!spec.target.empty()) train::parse_training_target(spec.target, file.string() + ": target");
  for (AblationArm& arm : spec.arms) {
    resolve_paths(arm.config, arm);
    validate_arm(arm, spec);
  }
  return spec;
}

}  // namespace ww::experiment
