#pragma once
// The training run's configuration: every key with its type, default and help in one schema, read
// from a TOML file (sections [run] [model] [data] [train] [energy]) and overridden by
// `--set section.key=value` or `--section.key value` flags. Unknown keys and invalid values are
// errors that name the key (and suggest the nearest valid one) before any work starts; every number
// is checked against its key's range as it is set.
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "wattwise/experiment/limits.h"

namespace ww::experiment {

// The values a "float" key accepts: min..max, either end open, plus one value outside them that
// means "not set" (-1: keep the model's dropout).
struct FloatRange {
  FloatRange(double min = -std::numeric_limits<double>::infinity(),
             double max = std::numeric_limits<double>::infinity(), bool min_open = false, bool max_open = false,
             std::optional<double> unset = std::nullopt, std::string unset_meaning = "")
      : min(min), max(max), min_open(min_open), max_open(max_open), unset(unset), unset_meaning(std::move(unset_meaning)) {}
  double min, max;
  bool min_open, max_open;
  std::optional<double> unset;
  std::string unset_meaning;  // "to keep the model's"
};

struct ConfigKey {
  ConfigKey(std::string key, std::string type, std::string default_value, std::string help,
            std::vector<std::string> choices = {}, IntRange int_range = {INT64_MIN, INT64_MAX},
            FloatRange float_range = {})
      : key(std::move(key)), type(std::move(type)), default_value(std::move(default_value)), help(std::move(help)),
        choices(std::move(choices)), int_range(int_range), float_range(std::move(float_range)) {}
  std::string key;    // "train.lr"
  std::string type;   // "int", "int or auto", "float", "bool", "string", "path"
  std::string default_value;
  std::string help;
  std::vector<std::string> choices;  // for strings with a fixed set of values
  IntRange int_range;                // "int" keys (limits.h): checked whenever a value is set
  FloatRange float_range;            // "float" keys: checked whenever a value is set
};

// The key's accepted values as docs/CONFIG.md shows them: "1..1048576", "[0, 1)", "> 0",
// "[0, 1) or -1"; "" for other types.
std::string range_text(const ConfigKey& key);

// The schema, in documentation order.
const std::vector<ConfigKey>& train_config_schema();

// Resolved configuration: every key of the schema, as text in canonical form.
class TrainConfig {
 public:
  TrainConfig();  // all defaults
  // Reads a TOML file; `origin` errors name the file (and line where toml++ reports one).
  void merge_toml_file(const std::filesystem::path& path);
  void merge_toml_text(const std::string& text, const std::string& origin);
  // "train.lr=3e-5"
  void set(const std::string& assignment, const std::string& origin = "--set");
  void set(const std::string& key, const std::string& value, const std::string& origin);

  std::string get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;  // an "int or auto" key holding auto: a programming error
  bool is_auto(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  std::filesystem::path get_path(const std::string& key) const;
  // model.path or model.tokenizer as the folder it names: a path, or a Hugging Face hub id
  // ("org/name[@revision]") resolved in the hub's local cache (io/hub.h); empty stays empty.
  std::filesystem::path model_folder(const std::string& key) const;
  bool is_set(const std::string& key) const;  // explicitly given (not a default)
  // The value is not the schema's default. Unlike is_set(), this survives a round trip through
  // to_toml() (which writes every key), so checks of the form "this key does not apply" use it.
  bool differs_from_default(const std::string& key) const;

  // Cross-key checks (e.g. warmup ratio and steps both given; epochs and max_steps both 0).
  void validate() const;
  // The resolved configuration as TOML, sections in schema order (written into the run folder);
  // `comments` (key → text) adds "  # text" after a key's value.
  std::string to_toml(const std::map<std::string, std::string>& comments = {}) const;

 private:
  std::map<std::string, std::string> values_;
  std::map<std::string, bool> explicit_;
};

// Nearest key by edit distance, for "did you mean" hints ("" when nothing is close).
std::string nearest_key(const std::string& key);
// The same for any list of names (the keys of another file format).
std::string nearest_name(const std::string& name, const std::vector<std::string>& candidates);

// train.class_weights for a classifier of `num_labels` labels trained on examples with
// `train_labels`: "none" → {} (no weights); "balanced" → n / (num_labels x count of the class) over
// train_labels (scikit-learn's compute_class_weight("balanced")); else one weight per label, in label
// order, comma-separated. Errors (one line naming train.class_weights): not a list of finite numbers
// > 0, a count other than num_labels, balanced with a class that has no training example (named by
// `label_names` when given).
std::vector<float> resolve_class_weights(const std::string& text, const std::vector<int32_t>& train_labels,
                                         int64_t num_labels, const std::vector<std::string>& label_names = {});

}  // namespace ww::experiment
