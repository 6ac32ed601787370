#pragma once
// The training run's configuration: every key with its type, default and help in one schema, read
// from a TOML file (sections [run] [model] [data] [train] [energy]) and overridden by
// `--set section.key=value` or `--section.key value` flags. Unknown keys and invalid values are
// errors that name the key (and suggest the nearest valid one) before any work starts.
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace ww::experiment {

struct ConfigKey {
  std::string key;    // "train.lr"
  std::string type;   // "int", "float", "bool", "string", "path"
  std::string default_value;
  std::string help;
  std::vector<std::string> choices;  // for strings with a fixed set of values
};

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
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  std::filesystem::path get_path(const std::string& key) const;
  bool is_set(const std::string& key) const;  // explicitly given (not a default)
  // The value is not the schema's default. Unlike is_set(), this survives a round trip through
  // to_toml() (which writes every key), so checks of the form "this key does not apply" use it.
  bool differs_from_default(const std::string& key) const;

  // Cross-key checks (e.g. warmup ratio and steps both given; epochs and max_steps both 0).
  void validate() const;
  // The resolved configuration as TOML, sections in schema order (written into the run folder).
  std::string to_toml() const;

 private:
  std::map<std::string, std::string> values_;
  std::map<std::string, bool> explicit_;
};

// Nearest key by edit distance, for "did you mean" hints ("" when nothing is close).
std::string nearest_key(const std::string& key);

}  // namespace ww::experiment
