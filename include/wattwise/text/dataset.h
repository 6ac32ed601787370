#pragma once
// Labelled text data sets for fine-tuning: IMDB in its distributed layout (the aclImdb folder or its
// .tar.gz, read directly), GLUE task folders in their TSV format, and generic CSV/TSV/JSONL files with
// named columns. Everything is loaded into memory as plain strings; tokenization happens later
// (batching.h), so one Dataset serves any tokenizer.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ww::text {

struct Example {
  std::string text;
  std::optional<std::string> text_pair;  // second sentence for pair tasks (MNLI, MRPC, ...)
  int32_t label = 0;                     // class id; 0 for regression data sets
  float target = 0.0f;                   // regression value (STS-B score); 0 for classification
  std::string source;                    // "file:line" or "archive:member", for error messages
};

// How the labels of a generic file are read. GLUE and IMDB fix their own.
enum class LabelKind {
  automatic,       // integers 0..K-1 → classes; other numbers → regression; strings → classes
  classification,  // every distinct value is a class (integers 0..K-1 or sorted strings)
  regression,      // every value must be a number
};

// Shares of train/dev/test when splits are carved out of a data set's train split. They need not
// sum to 1: only their proportions matter. A zero share means that split is not created.
struct SplitRatios {
  double train = 0.8;
  double dev = 0.1;
  double test = 0.1;
};

struct DataOptions {
  bool clean_html = false;           // replace HTML tags such as <br /> with a space
  bool collapse_whitespace = false;  // runs of whitespace → one space, trimmed at both ends

  // Missing splits are carved out of train, stratified by label (see load_dataset).
  SplitRatios split_ratios;
  uint64_t split_seed = 42;
  // Carve dev and test out of train even when the data set ships them (the IMDB study's 80/10/10 of
  // the train set); the shipped dev/test splits are then dropped.
  bool resplit_from_train = false;

  // Generic CSV/TSV/JSONL files: the columns (keys) to read. An empty text_pair_column means single
  // sentences.
  std::string text_column = "text";
  std::string text_pair_column;
  std::string label_column = "label";
  LabelKind label_kind = LabelKind::automatic;
  // Generic files: fixes the label set and its order (values may be these names or their indices).
  // Empty: inferred from the data.
  std::vector<std::string> label_names;

  // Keep at most this many examples per split (a stratified, seeded sample in file order); 0 = all.
  size_t max_examples = 0;
};

struct Dataset {
  std::string name;    // "imdb", a GLUE task ("sst2", "mnli", ...), or the file's stem
  std::string format;  // "imdb", "glue", "csv", "tsv" or "jsonl"
  std::vector<std::string> label_names;  // class names in id order; empty for regression
  bool regression = false;
  // "train", "dev", "test"; MNLI: "dev_matched", "dev_mismatched" instead of "dev".
  std::map<std::string, std::vector<Example>> splits;
  std::vector<std::string> derived_splits;  // splits that load_dataset carved out of train
  std::vector<std::string> notes;  // what the loader decided: label mapping, derived splits, ...

  int num_labels() const { return regression ? 1 : int(label_names.size()); }
  std::vector<std::string> split_names() const;
  // The split's canonical name, resolving aliases: "validation" → "dev", and on MNLI "dev" →
  // "dev_matched". Throws ww::Error listing the available splits when there is no such split.
  std::string resolve_split(std::string_view name) const;
  const std::vector<Example>& split(std::string_view name) const;
};

// Loads a data set from:
//  - an aclImdb folder (or a folder holding aclImdb/), or aclImdb.tar.gz (or .tgz/.tar) read directly
//    without extracting: train and test splits from {train,test}/{neg,pos}/*.txt, labels neg=0,
//    pos=1, unsup ignored, examples in (label, review id) order;
//  - a GLUE task folder, recognised by its name or its train.tsv header: CoLA, SST-2, MRPC, QQP, QNLI,
//    RTE, WNLI, MNLI (dev_matched, dev_mismatched), STS-B (regression). Labels use the GLUE sets
//    (e.g. MNLI entailment=0, neutral=1, contradiction=2). GLUE's test.tsv has no labels and is not
//    loaded;
//  - a folder of generic split files train/dev(or validation)/test with extension .csv/.tsv/.jsonl;
//  - one generic .csv (RFC 4180 quoting), .tsv (tab separated, no quoting) or .jsonl file, with a
//    header row (CSV/TSV) naming the columns given in the options.
// Missing splits: when a data set has train but no dev, dev is carved out of train; when it has only
// train, both dev and test are. Carving is deterministic (split_seed) and stratified by label: each
// label's examples are shuffled with ww::Rng and cut by the ratios of the splits being made,
// normalised (IMDB: train:dev = 0.8:0.1). Dataset::derived_splits and notes say what was derived.
// Errors (ww::Error) name the file and line: missing column, label outside the label set, empty file,
// invalid UTF-8, malformed CSV/JSON, wrong number of fields.
Dataset load_dataset(const std::filesystem::path& spec, const DataOptions& options = {});

// The cleaning load_dataset applies to every text (exposed for tests and for serving raw input).
std::string clean_text(std::string_view text, bool strip_html, bool collapse_whitespace);

// Partitions `examples` into parts with the given shares, stratified by label (regression: one
// group): per label, a seeded shuffle then cuts whose sizes are within one example of
// share × label count. Each part lists example indices in ascending order.
std::vector<std::vector<size_t>> stratified_partition(const std::vector<Example>& examples,
                                                      const std::vector<double>& shares,
                                                      bool regression, uint64_t seed);

}  // namespace ww::text
