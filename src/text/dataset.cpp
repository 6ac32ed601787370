// load_dataset: recognises what a path holds, reads it (dataset_imdb.cpp, dataset_formats.cpp),
// then resolves labels, cleans text, carves missing splits and samples down to max_examples.
#include "wattwise/text/dataset.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

#include "text/dataset_internal.h"
#include "wattwise/core/error.h"
#include "wattwise/core/rng.h"

namespace ww::text {

namespace fs = std::filesystem;
using detail::RawDataset;
using detail::RawExample;

// ---- Dataset ------------------------------------------------------------------------------------

std::vector<std::string> Dataset::split_names() const {
  std::vector<std::string> names;
  for (const auto& [split_name, examples] : splits) names.push_back(split_name);
  return names;
}

std::string Dataset::resolve_split(std::string_view wanted) const {
  std::string key(wanted);
  std::transform(key.begin(), key.end(), key.begin(), [](unsigned char c) { return std::tolower(c); });
  if (splits.count(key)) return key;
  if (key == "validation" || key == "val" || key == "valid") {
    if (splits.count("dev")) return "dev";
    key = "dev";
  }
  if (key == "dev" && splits.count("dev_matched")) return "dev_matched";
  std::string available;
  for (const auto& [split_name, examples] : splits)
    available += (available.empty() ? "" : ", ") + split_name;
  fail("data set '", name, "' has no split '", wanted, "' (available: ", available, ")");
}

const std::vector<Example>& Dataset::split(std::string_view wanted) const {
  return splits.at(resolve_split(wanted));
}

// ---- cleaning -----------------------------------------------------------------------------------

static bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
static bool is_ascii_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Length of an HTML tag starting at text[i] ('<'), or 0 when it is not one. A tag is '<', an
// optional '/' or '!', a letter, then anything but '<' up to '>': "a < b" and "<3" stay text.
static size_t html_tag_length(std::string_view text, size_t i) {
  size_t j = i + 1;
  if (j < text.size() && (text[j] == '/' || text[j] == '!')) ++j;
  if (j >= text.size() || !is_ascii_letter(text[j])) return 0;
  size_t limit = std::min(text.size(), i + 1024);  // a tag is short; a stray '<' must not eat text
  for (size_t k = j; k < limit; ++k) {
    if (text[k] == '>') return k - i + 1;
    if (text[k] == '<') return 0;
  }
  return 0;
}

std::string clean_text(std::string_view text, bool strip_html, bool collapse_whitespace) {
  std::string stripped;
  if (strip_html) {
    stripped.reserve(text.size());
    size_t copied = 0;  // text[copied, i) is waiting to be appended
    for (size_t i = text.find('<'); i != std::string_view::npos; i = text.find('<', i + 1)) {
      size_t tag = html_tag_length(text, i);
      if (!tag) continue;
      stripped.append(text, copied, i - copied);
      stripped += ' ';
      copied = i + tag;
      i = copied - 1;
    }
    stripped.append(text, copied);
    text = stripped;
  }
  if (!collapse_whitespace) return std::string(text);
  std::string out(text.size(), '\0');
  size_t length = 0;
  bool pending_space = false;
  for (char c : text) {
    if (is_ascii_space(c)) {
      pending_space = length > 0;
      continue;
    }
    if (pending_space) out[length++] = ' ';
    pending_space = false;
    out[length++] = c;
  }
  out.resize(length);
  return out;
}

// ---- splitting ----------------------------------------------------------------------------------

// Largest-remainder apportionment: integer counts summing to `total`, each within one of
// total * weight / sum(weights). Ties go to the earlier part; zero weights get nothing.
static std::vector<size_t> apportion(const std::vector<double>& weights, size_t total) {
  double sum = 0;
  for (double w : weights) sum += w;
  std::vector<size_t> counts(weights.size(), 0);
  if (total == 0 || sum <= 0) return counts;
  std::vector<double> remainders(weights.size(), 0.0);
  size_t assigned = 0;
  for (size_t k = 0; k < weights.size(); ++k) {
    double quota = double(total) * weights[k] / sum;
    counts[k] = size_t(std::floor(quota));
    remainders[k] = quota - double(counts[k]);
    assigned += counts[k];
  }
  std::vector<size_t> order(weights.size());
  for (size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return remainders[a] > remainders[b]; });
  for (size_t r = 0; assigned < total; r = (r + 1) % order.size()) {
    if (weights[order[r]] <= 0) continue;
    ++counts[order[r]];
    ++assigned;
  }
  return counts;
}

// Example indices grouped by label (one group for regression), each group shuffled with its own
// counter-based stream so a group's order does not depend on the other labels.
static std::vector<std::vector<size_t>> shuffled_label_groups(const std::vector<Example>& examples,
                                                              bool regression, uint64_t seed,
                                                              uint64_t stream_base) {
  std::map<int32_t, std::vector<size_t>> by_label;
  for (size_t i = 0; i < examples.size(); ++i)
    by_label[regression ? 0 : examples[i].label].push_back(i);
  std::vector<std::vector<size_t>> groups;
  for (auto& [label, indices] : by_label) {
    Rng rng(seed, stream_base + uint64_t(uint32_t(label)));
    for (size_t i = indices.size(); i > 1; --i) std::swap(indices[i - 1], indices[rng.below(i)]);
    groups.push_back(std::move(indices));
  }
  return groups;
}

constexpr uint64_t kSplitStream = 0x53504C4954000000ull;   // "SPLIT"
constexpr uint64_t kSampleStream = 0x53414D504C000000ull;  // "SAMPL"

std::vector<std::vector<size_t>> stratified_partition(const std::vector<Example>& examples,
                                                      const std::vector<double>& shares,
                                                      bool regression, uint64_t seed) {
  std::vector<std::vector<size_t>> parts(shares.size());
  for (const std::vector<size_t>& group :
       shuffled_label_groups(examples, regression, seed, kSplitStream)) {
    std::vector<size_t> counts = apportion(shares, group.size());
    size_t start = 0;
    for (size_t k = 0; k < parts.size(); ++k) {
      parts[k].insert(parts[k].end(), group.begin() + start, group.begin() + start + counts[k]);
      start += counts[k];
    }
  }
  for (std::vector<size_t>& part : parts) std::sort(part.begin(), part.end());
  return parts;
}

// A stratified sample of exactly `keep` examples, in their original order.
static std::vector<Example> stratified_sample(std::vector<Example>& examples, size_t keep,
                                              bool regression, uint64_t seed) {
  std::vector<std::vector<size_t>> groups =
      shuffled_label_groups(examples, regression, seed, kSampleStream);
  std::vector<double> sizes;
  for (const auto& group : groups) sizes.push_back(double(group.size()));
  std::vector<size_t> counts = apportion(sizes, keep);
  std::vector<size_t> kept;
  for (size_t g = 0; g < groups.size(); ++g)
    kept.insert(kept.end(), groups[g].begin(), groups[g].begin() + counts[g]);
  std::sort(kept.begin(), kept.end());
  std::vector<Example> out;
  out.reserve(kept.size());
  for (size_t i : kept) out.push_back(std::move(examples[i]));
  return out;
}

// ---- labels -------------------------------------------------------------------------------------

static std::string_view trim(std::string_view s) {
  while (!s.empty() && is_ascii_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ascii_space(s.back())) s.remove_suffix(1);
  return s;
}

static std::optional<int64_t> parse_integer(std::string_view s) {
  s = trim(s);
  int64_t value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return value;
}

static std::optional<double> parse_number(std::string_view s) {
  s = trim(s);
  double value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty() || !std::isfinite(value))
    return std::nullopt;
  return value;
}

static std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
  return out;
}

namespace {

// Turns label text into class ids (or regression targets) for the whole data set at once, so a
// generic file's inferred label set is the same for every split.
class LabelResolver {
 public:
  LabelResolver(const RawDataset& raw, const DataOptions& options, std::vector<std::string>& notes) {
    bool generic = raw.format != "glue" && raw.format != "imdb";
    if (!generic) {
      regression_ = raw.regression;
      names_ = raw.label_names;
      set_origin_ = raw.name;
      if (!options.label_names.empty())
        notes.push_back("label_names ignored: " + raw.name + " has a fixed label set");
    } else if (options.label_kind == LabelKind::regression) {
      regression_ = true;
    } else if (!options.label_names.empty()) {
      names_ = options.label_names;
      std::set<std::string> unique(names_.begin(), names_.end());
      if (unique.size() != names_.size()) fail("label_names has duplicates: ", join(names_));
      set_origin_ = "label_names";
    } else {
      infer(raw, options, notes);
    }
    for (size_t i = 0; i < names_.size(); ++i) ids_[names_[i]] = int32_t(i);
  }

  bool regression() const { return regression_; }
  const std::vector<std::string>& names() const { return names_; }

  void resolve(const RawExample& raw, Example& example) const {
    if (regression_) {
      std::optional<double> value = parse_number(raw.label);
      if (!value)
        fail(raw.source, ": label '", raw.label, "' is not a number (this data set is a regression task)");
      example.target = float(*value);
      example.label = 0;
      return;
    }
    auto it = ids_.find(std::string(trim(raw.label)));
    if (it != ids_.end()) {
      example.label = it->second;
      return;
    }
    // Class indices are accepted too (GLUE writes SST-2's labels as 0/1).
    if (std::optional<int64_t> index = parse_integer(raw.label);
        index && *index >= 0 && *index < int64_t(names_.size())) {
      example.label = int32_t(*index);
      return;
    }
    fail(raw.source, ": label '", raw.label, "' is not in the label set of ", set_origin_, " (",
         describe_set(), ")");
  }

 private:
  std::string describe_set() const {
    std::string out;
    for (size_t i = 0; i < names_.size(); ++i)
      out += (i ? ", " : "") + names_[i] + "=" + std::to_string(i);
    return out;
  }

  void infer(const RawDataset& raw, const DataOptions& options, std::vector<std::string>& notes) {
    bool all_integers = true, all_numbers = true;
    const RawExample* first_negative = nullptr;
    int64_t max_id = -1;
    std::map<int64_t, const RawExample*> integer_seen;
    std::set<std::string> strings;
    for (const auto& [split_name, examples] : raw.splits) {
      for (const RawExample& example : examples) {
        std::string_view label = trim(example.label);
        strings.emplace(label);
        if (all_integers) {
          if (std::optional<int64_t> value = parse_integer(label)) {
            if (*value < 0 && !first_negative) first_negative = &example;
            max_id = std::max(max_id, *value);
            integer_seen.emplace(*value, &example);
          } else {
            all_integers = false;
          }
        }
        if (all_numbers && !parse_number(label)) all_numbers = false;
      }
    }
    set_origin_ = "the data";
    if (all_integers) {
      if (first_negative)
        fail(first_negative->source, ": label '", first_negative->label,
             "' is negative; integer labels are class ids 0..K-1 (set label_names for other values)");
      for (int64_t id = 0; id <= max_id; ++id) {
        if (!integer_seen.count(id))
          fail(integer_seen.at(max_id)->source, ": label ", max_id,
               " implies class ids 0..", max_id, " but id ", id,
               " never appears; integer labels must be class ids 0..K-1 (set label_names to fix "
               "the label set, or label_kind = regression)");
      }
      for (int64_t id = 0; id <= max_id; ++id) names_.push_back(std::to_string(id));
      notes.push_back("labels are integers: class ids 0.." + std::to_string(max_id));
      return;
    }
    if (all_numbers && options.label_kind == LabelKind::automatic) {
      regression_ = true;
      notes.push_back("labels are numbers that are not all integers: treated as regression "
                      "(set label_kind = classification to treat them as class names)");
      return;
    }
    names_.assign(strings.begin(), strings.end());
    std::string mapping;
    for (size_t i = 0; i < names_.size(); ++i)
      mapping += (i ? ", " : "") + names_[i] + "=" + std::to_string(i);
    notes.push_back("labels are strings: sorted unique values map to class ids: " + mapping);
  }

  bool regression_ = false;
  std::vector<std::string> names_;
  std::map<std::string, int32_t, std::less<>> ids_;
  std::string set_origin_;
};

// ---- recognising the spec -----------------------------------------------------------------------

bool is_archive(const fs::path& file) {
  std::string name = file.filename().string();
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  auto ends_with = [&](const std::string& suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends_with(".tar.gz") || ends_with(".tgz") || ends_with(".tar");
}

// A folder of generic split files: train/dev/validation/test with a .csv/.tsv/.jsonl extension.
std::optional<RawDataset> read_split_folder(const fs::path& dir, const DataOptions& options) {
  std::map<std::string, fs::path> files;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file()) continue;
    std::string format = detail::table_format(entry.path());
    if (format.empty()) continue;
    std::string stem = entry.path().stem().string();
    std::string split = stem == "validation" || stem == "valid" || stem == "val" ? "dev" : stem;
    if (split != "train" && split != "dev" && split != "test") continue;
    if (files.count(split))
      fail(dir.string(), ": two files for the ", split, " split: ", files[split].filename().string(),
           " and ", entry.path().filename().string());
    files[split] = entry.path();
  }
  if (files.empty()) return std::nullopt;
  RawDataset raw;
  fs::path normal = fs::absolute(dir).lexically_normal();
  raw.name = normal.filename().empty() ? normal.parent_path().filename().string()
                                       : normal.filename().string();
  for (const auto& [split, file] : files) {
    std::string format = detail::table_format(file);
    if (!raw.format.empty() && raw.format != format) raw.format = "mixed";
    else raw.format = format;
    raw.splits[split] = detail::read_table_file(file, options);
  }
  return raw;
}

RawDataset read_spec(const fs::path& spec, const DataOptions& options) {
  std::error_code ec;
  if (!fs::exists(spec, ec)) fail(spec.string(), ": no such file or folder");
  if (fs::is_directory(spec, ec)) {
    fs::path root;
    if (detail::is_imdb_folder(spec, &root)) return detail::read_imdb_folder(root);
    if (std::optional<std::string> task = detail::detect_glue_task(spec))
      return detail::read_glue_folder(spec, *task);
    if (std::optional<RawDataset> raw = read_split_folder(spec, options)) return std::move(*raw);
    fail(spec.string(), ": not a data set folder: expected an aclImdb folder ({train,test}/{neg,pos}), "
         "a GLUE task folder (train.tsv, dev.tsv) or train/dev/test .csv/.tsv/.jsonl files");
  }
  if (is_archive(spec)) return detail::read_imdb_archive(spec);
  std::string format = detail::table_format(spec);
  if (format.empty())
    fail(spec.string(), ": unknown data file type (expected an aclImdb .tar.gz, or a .csv, .tsv or "
         ".jsonl file)");
  RawDataset raw;
  raw.name = spec.stem().string();
  raw.format = format;
  raw.splits["train"] = detail::read_table_file(spec, options);
  return raw;
}

void check_options(const DataOptions& options) {
  const SplitRatios& r = options.split_ratios;
  for (auto [name, value] : {std::pair{"train", r.train}, {"dev", r.dev}, {"test", r.test}})
    if (!(value >= 0) || !std::isfinite(value))
      fail("split ratio for ", name, " must be a finite number >= 0, got ", value);
  if (!(r.train > 0)) fail("split ratio for train must be > 0, got ", r.train);
  if (options.text_column.empty()) fail("text_column must not be empty");
  if (options.label_column.empty()) fail("label_column must not be empty");
}

std::string with_commas(size_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// Carves `names` (train first) out of the train split by their shares.
void carve_from_train(Dataset& dataset, const std::vector<std::string>& names,
                      const std::vector<double>& shares, uint64_t seed) {
  std::vector<Example> train = std::move(dataset.splits.at("train"));
  size_t total = train.size();
  std::vector<std::vector<size_t>> parts = stratified_partition(train, shares, dataset.regression, seed);
  std::string shares_text;
  for (size_t k = 0; k < names.size(); ++k)
    shares_text += (k ? " : " : "") + names[k] + " " + ww::detail::concat(shares[k]);
  for (size_t k = 0; k < names.size(); ++k) {
    std::vector<Example> part;
    part.reserve(parts[k].size());
    for (size_t i : parts[k]) part.push_back(std::move(train[i]));
    dataset.splits[names[k]] = std::move(part);
    if (k == 0) continue;
    dataset.derived_splits.push_back(names[k]);
    dataset.notes.push_back(names[k] + ": " + with_commas(parts[k].size()) + " of train's " +
                            with_commas(total) + " examples (shares " + shares_text + ", " +
                            (dataset.regression ? "shuffled" : "stratified by label") +
                            ", seed " + std::to_string(seed) + ")");
  }
}

void derive_missing_splits(Dataset& dataset, const DataOptions& options) {
  const SplitRatios& r = options.split_ratios;
  if (!dataset.splits.count("train")) return;
  std::vector<std::string> names = {"train"};
  std::vector<double> shares = {r.train};
  bool has_dev = false;
  for (const auto& [split_name, examples] : dataset.splits)
    if (split_name.rfind("dev", 0) == 0) has_dev = true;
  if (options.resplit_from_train) {
    std::vector<std::string> dropped;
    for (auto it = dataset.splits.begin(); it != dataset.splits.end();) {
      if (it->first == "train") {
        ++it;
        continue;
      }
      dropped.push_back(it->first);
      it = dataset.splits.erase(it);
    }
    if (!dropped.empty())
      dataset.notes.push_back("resplit_from_train: the shipped " + join(dropped) +
                              " split(s) were dropped");
    if (r.dev > 0) names.push_back("dev"), shares.push_back(r.dev);
    if (r.test > 0) names.push_back("test"), shares.push_back(r.test);
  } else {
    bool only_train = dataset.splits.size() == 1;
    if (!has_dev && r.dev > 0) names.push_back("dev"), shares.push_back(r.dev);
    if (only_train && r.test > 0) names.push_back("test"), shares.push_back(r.test);
  }
  if (names.size() > 1) carve_from_train(dataset, names, shares, options.split_seed);
}

}  // namespace

Dataset load_dataset(const fs::path& spec, const DataOptions& options) {
  check_options(options);
  RawDataset raw = read_spec(spec, options);

  Dataset dataset;
  dataset.name = raw.name;
  dataset.format = raw.format;
  dataset.notes = std::move(raw.notes);
  LabelResolver labels(raw, options, dataset.notes);
  dataset.regression = labels.regression();
  dataset.label_names = labels.names();

  bool cleaning = options.clean_html || options.collapse_whitespace;
  for (auto& [split_name, raw_examples] : raw.splits) {
    std::vector<Example>& examples = dataset.splits[split_name];
    examples.reserve(raw_examples.size());
    for (RawExample& raw_example : raw_examples) {
      Example example;
      labels.resolve(raw_example, example);
      example.text = cleaning ? clean_text(raw_example.text, options.clean_html, options.collapse_whitespace)
                              : std::move(raw_example.text);
      if (raw_example.text_pair)
        example.text_pair = cleaning ? clean_text(*raw_example.text_pair, options.clean_html,
                                                  options.collapse_whitespace)
                                     : std::move(*raw_example.text_pair);
      example.source = std::move(raw_example.source);
      examples.push_back(std::move(example));
    }
    raw_examples = {};
  }

  derive_missing_splits(dataset, options);

  if (options.max_examples > 0) {
    for (auto& [split_name, examples] : dataset.splits) {
      if (examples.size() <= options.max_examples) continue;
      size_t before = examples.size();
      examples = stratified_sample(examples, options.max_examples, dataset.regression, options.split_seed);
      dataset.notes.push_back(split_name + ": kept a stratified sample of " +
                              with_commas(examples.size()) + " of " + with_commas(before) +
                              " examples (max_examples)");
    }
  }
  return dataset;
}

}  // namespace ww::text
