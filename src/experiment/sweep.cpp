#include "wattwise/experiment/sweep.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include "wattwise/core/error.h"
#include "wattwise/energy/monitor.h"
#include "wattwise/experiment/evaluate.h"
#include "wattwise/experiment/execution.h"
#include "wattwise/experiment/limits.h"
#include "wattwise/experiment/pareto.h"
#include "wattwise/experiment/plot.h"
#include "wattwise/experiment/quantize.h"
#include "wattwise/experiment/report.h"
#include "wattwise/experiment/run_dir.h"
#include "wattwise/experiment/run_energy.h"
#include "wattwise/io/file.h"
#include "wattwise/io/hub.h"
#include "wattwise/models/sequence_classifier.h"
#include "wattwise/text/batching.h"
#include "wattwise/text/dataset.h"
#include "wattwise/text/tokenizer.h"
#include "wattwise/train/trainer.h"

namespace ww::experiment {

const std::vector<std::string>& sweep_axis_names() {
  // Layers outermost: the model is reloaded only when the layer count changes.
  static const std::vector<std::string> names = {"layers", "max_length", "precision", "attention", "batch_size",
                                                 "dynamic_padding"};
  return names;
}

namespace {

constexpr int kMaxPasses = 1000;  // bound of the passes min_seconds may add
constexpr double kMaxMinSeconds = 86400;
const char* kDefaultObjectives = "accuracy:max,joules_per_example:min,latency_p50_ms:min";

// Lists of integers are range-checked as they are read: `range` is ignored for strings.
template <typename T>
std::vector<T> toml_list(const toml::node& node, const std::string& where, const std::string& key,
                         IntRange range = {INT64_MIN, INT64_MAX}) {
  std::vector<T> out;
  auto read_one = [&](const toml::node& n) {
    if constexpr (std::is_same_v<T, std::string>) {
      if (auto s = n.as_string()) return out.push_back(s->get());
      if (auto b = n.as_boolean()) return out.push_back(b->get() ? "on" : "off");
      fail(where, ": ", key, " must hold strings");
    } else {
      if (auto i = n.as_integer()) return out.push_back(T(check_range(i->get(), range, where + ": " + key)));
      fail(where, ": ", key, " must hold integers");
    }
  };
  if (auto array = node.as_array()) {
    for (const auto& item : *array) read_one(item);
  } else {
    read_one(node);
  }
  if (out.empty()) fail(where, ": ", key, " is an empty list");
  return out;
}

std::string toml_string(const toml::node& node, const std::string& where, const std::string& key) {
  if (auto s = node.as_string()) return s->get();
  fail(where, ": ", key, " must be a string (in quotes)");
}

// An integer key, within `range` ("sweep.toml:3: warmup 99999999999 is out of range (0..1000)").
int64_t toml_integer(const toml::node& node, const std::string& where, const std::string& key, IntRange range) {
  if (auto i = node.as_integer()) return check_range(i->get(), range, where + ": " + key);
  fail(where, ": ", key, " must be an integer");
}

bool toml_bool(const toml::node& node, const std::string& where, const std::string& key) {
  if (auto b = node.as_boolean()) return b->get();
  fail(where, ": ", key, " must be true or false");
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Linear-interpolated percentile (numpy's default), q in [0, 100].
double percentile(std::vector<double> v, double q) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const double pos = q / 100.0 * double(v.size() - 1);
  const size_t lo = size_t(std::floor(pos)), hi = std::min(v.size() - 1, lo + 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - double(lo));
}

// "gpu0: measured: nvml total energy counter; cpu: estimated: TDP ..." from a window's JSON.
std::string provenance_of(const nlohmann::json& window) {
  std::string out;
  for (const auto& s : window.value("sources", nlohmann::json::array()))
    out += (out.empty() ? "" : "; ") + s.value("source", std::string("?")) + ": " + s.value("provenance", std::string("?"));
  if (!window.value("gpu_present", false)) out += (out.empty() ? "" : "; ") + std::string("no GPU figure");
  return out;
}

struct Config {
  int64_t layers = 0, max_length = 0, batch_size = 0;
  std::string precision, attention, dynamic_padding;
};

bool is_plain_precision(const std::string& p) { return p == "fp32" || p == "tf32" || p == "bf16" || p == "fp16"; }

// The one place a precision name becomes model state: the name passes through to the execution
// layer unchanged, so a precision it learns works here too. A quantized precision (int8-weight,
// int8, fp8) quantizes the model here, calibrated as `wattwise eval` does by default: max-abs over
// the first 128 examples of the split being swept, at the configuration's length and batch size.
// Returns what eval records under execution.quantization (empty for the other precisions).
nlohmann::json configure_precision(models::SequenceClassifier& model, const Config& c,
                                   const text::EncodedExamples& encodings, const text::Tokenizer& tokenizer) {
  apply_inference_execution(model, {c.precision, c.attention, "none"});
  return quantize_for_precision(model, c.precision, CalibrationOptions{}, tokenizer, encodings.items, int(c.max_length),
                                c.batch_size);
}

void check_axes(const SweepOptions& o, const models::ModelConfig& config) {
  for (int64_t k : o.layers)
    if (k < 1 || k > config.num_layers)
      fail("--layers ", k, ": the model has ", config.num_layers, " encoder layers (keep between 1 and ", config.num_layers, ")");
  for (int64_t n : o.max_lengths)
    if (n < 3 || n > config.max_position_embeddings)
      fail("--seq-lens ", n, ": expected 3 to the model's max_position_embeddings ", config.max_position_embeddings);
  for (int64_t k : o.layers) check_range(k, limits::kLayers, "--layers");
  for (int64_t b : o.batch_sizes) check_range(b, limits::kBatchSize, "--batch-sizes");
  for (const auto& a : o.attention)
    if (a != "auto" && a != "fused" && a != "reference") fail("--attention ", a, ": expected auto, fused or reference");
  for (const auto& d : o.dynamic_padding)
    if (d != "on" && d != "off") fail("--dynamic-padding ", d, ": expected on or off");
  for (const auto& p : o.precisions)
    if (p.empty()) fail("--precisions: an empty precision name");
  check_range(o.repeats, limits::kRepeats, "--repeats");
  check_range(o.warmup, limits::kWarmupPasses, "--warmup");
  if (!(o.min_seconds >= 0 && o.min_seconds <= kMaxMinSeconds))
    fail("--min-seconds ", o.min_seconds, " is out of range [0, ", kMaxMinSeconds, "]");
  check_range(o.max_examples, limits::kExampleCount, "--max-examples");
}

}  // namespace

void load_sweep_config(const std::filesystem::path& path, SweepOptions& o) {
  toml::table table;
  try {
    table = toml::parse(io::read_file(path), path.string());
  } catch (const toml::parse_error& e) {
    fail(path.string(), ":", e.source().begin.line, ":", e.source().begin.column, ": ", e.description());
  }
  auto take = [&](const std::string& key) { return !o.given.count(key); };
  for (const auto& [k, node] : table) {
    const std::string key(k.str());
    const std::string where = path.string() + ":" + std::to_string(node.source().begin.line);
    if (key == "axes") {
      const toml::table* axes = node.as_table();
      if (!axes) fail(where, ": axes must be a table ([axes])");
      for (const auto& [ak, an] : *axes) {
        const std::string axis(ak.str());
        const std::string w = path.string() + ":" + std::to_string(an.source().begin.line);
        if (!take(axis)) continue;
        if (axis == "layers") o.layers = toml_list<int64_t>(an, w, "axes.layers", limits::kLayers);
        else if (axis == "max_length") o.max_lengths = toml_list<int64_t>(an, w, "axes.max_length", limits::kSequenceLength);
        else if (axis == "precision") o.precisions = toml_list<std::string>(an, w, "axes.precision");
        else if (axis == "attention") o.attention = toml_list<std::string>(an, w, "axes.attention");
        else if (axis == "batch_size") o.batch_sizes = toml_list<int64_t>(an, w, "axes.batch_size", limits::kBatchSize);
        else if (axis == "dynamic_padding") o.dynamic_padding = toml_list<std::string>(an, w, "axes.dynamic_padding");
        else fail(w, ": unknown axis axes.", axis, " (expected layers, max_length, precision, attention, batch_size, dynamic_padding)");
      }
      continue;
    }
    if (!take(key)) continue;
    if (key == "model") o.model_dir = io::resolve_model_folder(toml_string(node, where, key));
    else if (key == "data") o.data = toml_string(node, where, key);
    else if (key == "split") o.split = toml_string(node, where, key);
    else if (key == "device") o.device = parse_device(toml_string(node, where, key));
    else if (key == "repeats") o.repeats = int(toml_integer(node, where, key, limits::kRepeats));
    else if (key == "warmup") o.warmup = int(toml_integer(node, where, key, limits::kWarmupPasses));
    else if (key == "min_seconds") {
      if (auto f = node.as_floating_point()) o.min_seconds = f->get();
      else o.min_seconds = double(toml_integer(node, where, key, {0, int64_t(kMaxMinSeconds)}));
      if (!(o.min_seconds >= 0 && o.min_seconds <= kMaxMinSeconds))
        fail(where, ": min_seconds ", o.min_seconds, " is out of range [0, ", kMaxMinSeconds, "]");
    }
    else if (key == "max_examples") o.max_examples = toml_integer(node, where, key, limits::kExampleCount);
    else if (key == "skip_failed") o.skip_failed = toml_bool(node, where, key);
    else if (key == "clean_html") o.clean_html = toml_bool(node, where, key);
    else if (key == "allow_nonfinite") o.allow_nonfinite = toml_bool(node, where, key);
    else if (key == "objectives") o.objectives = toml_string(node, where, key);
    else if (key == "runs_dir") o.runs_dir = toml_string(node, where, key);
    else if (key == "name") {
      o.name = toml_string(node, where, key);
      check_run_name(o.name, where + ": name");
    }
    else
      fail(where, ": unknown key '", key, "' (expected model, data, split, device, repeats, warmup, max_examples, "
           "skip_failed, clean_html, allow_nonfinite, objectives, runs_dir, name and an [axes] table)");
  }
}

std::filesystem::path run_sweep(SweepOptions o) {
  if (!o.config.empty()) load_sweep_config(o.config, o);
  if (o.model_dir.empty()) fail("sweep: --model is required (or model in the --config file)");
  if (o.data.empty()) fail("sweep: --data is required (or data in the --config file)");
  check_run_name(o.name, "--name");
  const models::ModelConfig model_config = models::load_model_config(o.model_dir);
  check_axes(o, model_config);
  const std::string objective_text = !o.objectives.empty() ? o.objectives
                                     : model_config.regression
                                         ? "pearson:max,joules_per_example:min,latency_p50_ms:min"
                                         : kDefaultObjectives;
  const std::vector<Objective> objectives = parse_objectives(objective_text);

  // Data: tokenized once per max length (below); the split checked against the model first.
  auto tokenizer = text::load_tokenizer(o.model_dir);
  text::DataOptions data_options;
  data_options.clean_html = o.clean_html;
  data_options.collapse_whitespace = o.clean_html;
  // A stratified sample (both labels kept in proportion), never just the first N of a sorted file.
  data_options.max_examples = size_t(o.max_examples);
  text::Dataset dataset = load_dataset_for_model(o.data, data_options, model_config);
  const std::string split = dataset.resolve_split(o.split);
  const std::vector<text::Example>& examples = dataset.split(split);
  if (examples.empty()) fail(o.data.string(), ": split ", split, " has no examples");

  // The axes: given ones are swept (and become pareto.csv columns); the rest keep a default.
  ResultTable table;
  const std::vector<int64_t> layers = o.layers.empty() ? std::vector<int64_t>{model_config.num_layers} : o.layers;
  const std::vector<int64_t> lengths =
      o.max_lengths.empty() ? std::vector<int64_t>{std::min<int64_t>(128, model_config.max_position_embeddings)} : o.max_lengths;
  const std::vector<std::string> precisions = o.precisions.empty() ? std::vector<std::string>{"fp32"} : o.precisions;
  const std::vector<std::string> attention = o.attention.empty() ? std::vector<std::string>{"auto"} : o.attention;
  const std::vector<int64_t> batches = o.batch_sizes.empty() ? std::vector<int64_t>{32} : o.batch_sizes;
  const std::vector<std::string> padding = o.dynamic_padding.empty() ? std::vector<std::string>{"on"} : o.dynamic_padding;
  const bool swept[] = {!o.layers.empty(), !o.max_lengths.empty(), !o.precisions.empty(),
                        !o.attention.empty(), !o.batch_sizes.empty(), !o.dynamic_padding.empty()};
  for (size_t a = 0; a < 6; ++a)
    if (swept[a]) table.axes.push_back(sweep_axis_names()[a]);
  std::vector<Config> configs;
  for (int64_t l : layers)
    for (int64_t n : lengths)
      for (const auto& p : precisions)
        for (const auto& at : attention)
          for (int64_t b : batches)
            for (const auto& d : padding) configs.push_back({l, n, b, p, at, d});

  const bool regression = model_config.regression;
  table.metrics = regression ? std::vector<std::string>{"pearson", "spearman", "mse"}
                             : std::vector<std::string>{"accuracy", "f1", "matthews_correlation"};
  // <metric>_min and _max: the spread over blocks of measured passes (below), which the frontier
  // compares within (ConfigRow::spread). Quality metrics have none: every pass makes the same
  // predictions.
  for (const char* m : {"examples", "passes", "latency_p50_ms", "latency_p50_ms_min", "latency_p50_ms_max",
                        "latency_p95_ms", "batch_latency_p50_ms", "throughput_per_s", "throughput_per_s_min",
                        "throughput_per_s_max", "pass_seconds_median", "pass_seconds_min", "pass_seconds_max",
                        "joules_per_example", "joules_per_example_min", "joules_per_example_max", "spread_blocks"})
    table.metrics.push_back(m);
  if (!regression) table.metrics.push_back("joules_per_correct");
  for (const char* m : {"peak_memory_bytes", "gco2e_per_1000", "avg_power_w"}) table.metrics.push_back(m);

  std::map<int64_t, std::shared_ptr<const text::EncodedExamples>> encodings;
  for (int64_t n : lengths)
    encodings[n] = std::make_shared<const text::EncodedExamples>(text::encode_examples(*tokenizer, examples, int(n)));

  const std::filesystem::path run_dir = create_run_dir(o.runs_dir, o.name);
  RunDirGuard run_dir_guard(run_dir);  // a failed sweep leaves no folder behind
  RunEnergy energy(run_dir, energy_settings_for(o.device), o.name);
  // The spreads are read over blocks of consecutive passes, each at least kShortWindowSteps sampler
  // ticks and steps of the slowest energy counter metered. A shorter energy window is an estimate
  // from one or two power readings (from the power at its two edges on a GPU: docs/ENERGY.md), whose
  // spread would be the estimate's, not the measurement's; and the extremes of hundreds of tiny
  // passes would grow with their number, not with the noise of a measurement of this length.
  double spread_block_s = energy::kShortWindowSteps * energy_settings_for(o.device).interval_ms / 1000.0;
  for (const auto& [source, step] : energy.monitor().counter_update_periods())
    spread_block_s = std::max(spread_block_s, energy::kShortWindowSteps * step);
  std::optional<models::SequenceClassifier> model;
  int64_t model_layers = -1;
  bool model_modified = false;
  std::string model_precision;  // the plain precision the loaded model last ran in
  nlohmann::json config_json = nlohmann::json::array();
  const auto sweep_start = std::chrono::steady_clock::now();
  const int64_t n_examples = int64_t(examples.size());
  if (!o.quiet)
    std::fprintf(stderr, "sweep: %zu configurations x (%d warm-up + at least %d measured passes) over %lld examples of %s, on %s\n",
                 configs.size(), o.warmup, o.repeats, (long long)n_examples, split.c_str(), o.device.str().c_str());

  for (size_t ci = 0; ci < configs.size(); ++ci) {
    const Config& c = configs[ci];
    ConfigRow row;
    row.run = run_dir.string();
    char id[32];
    std::snprintf(id, sizeof id, "c%03zu", ci);
    row.config = id;
    row.baseline = ci == 0;
    const std::string knob_values[] = {std::to_string(c.layers), std::to_string(c.max_length), c.precision,
                                       c.attention, std::to_string(c.batch_size), c.dynamic_padding};
    for (size_t a = 0; a < 6; ++a)
      if (swept[a]) row.knobs.emplace_back(sweep_axis_names()[a], knob_values[a]);
    const std::string window = row.config;
    std::string block_window;
    nlohmann::json phase, quantization;
    try {
      // A precision other than the plain ones may rewrite the weights (quantization): the next
      // configuration then starts from a fresh copy. The model is inference-only: after its first
      // forward it holds only the weights of that compute dtype (no f32 masters beside a 16-bit
      // copy, as PyTorch's model.half()), so a configuration in another dtype, or a quantized one
      // (quantizing starts from the masters), loads it again too.
      const bool needs_masters =
          model && model->prepared_for_inference() &&
          (model_precision.empty() || !is_plain_precision(c.precision) ||
           compute_dtype_of(model_precision) != compute_dtype_of(c.precision));
      if (model_layers != c.layers || model_modified || needs_masters) {
        model.reset();  // free the previous copy first
        models::LoadOptions load;
        load.purpose = models::ModelPurpose::Inference;
        load.allow_nonfinite = o.allow_nonfinite;
        model.emplace(models::SequenceClassifier::from_pretrained(o.model_dir, o.device, load));
        if (c.layers < model->config().num_layers) model->keep_first_layers(c.layers);
        model_layers = c.layers;
      }
      model_modified = !is_plain_precision(c.precision);
      model_precision = model_modified ? std::string() : c.precision;
      quantization = configure_precision(*model, c, *encodings[c.max_length], *tokenizer);
      text::BatchOptions batch_options;
      batch_options.batch_size = c.batch_size;
      batch_options.max_length = int(c.max_length);
      batch_options.pad_to_max_length = c.dynamic_padding == "off";
      batch_options.shuffle = false;
      batch_options.length_bucketing = false;
      std::vector<text::HostBatch> host_batches;
      {
        text::BatchLoader loader(encodings[c.max_length], batch_options, /*epoch=*/0);
        while (auto b = loader.next()) host_batches.push_back(std::move(*b));
      }
      std::vector<models::Batch> batches_in;
      for (const auto& b : host_batches)
        batches_in.push_back(to_model_batch(b, model_config.type_vocab_size > 0, regression));

      reset_peak_memory(o.device);
      for (int w = 0; w < o.warmup; ++w)
        for (const auto& b : batches_in) (void)model->forward(b, false).to_float_vector();

      train::EvalAccumulator acc(model_config.num_labels, regression);
      std::vector<double> per_example_ms, batch_ms, pass_seconds;
      // The spreads: blocks of consecutive passes lasting at least spread_block_s (one pass per
      // block when passes are that long), each with its own energy window.
      struct Block {
        double joules = 0, seconds = 0;
        int passes = 0;
        size_t first_batch = 0, end_batch = 0;  // its batches' range in per_example_ms
      };
      std::vector<Block> blocks;
      Block block;
      energy.begin(window);
      // At least `repeats` passes, and more until min_seconds of measurement: a window much shorter
      // than the sampler's interval would rest on one or two power samples.
      double measured_seconds = 0;
      int passes = 0;
      for (int r = 0; r < o.repeats || (measured_seconds < o.min_seconds && r < kMaxPasses); ++r, ++passes) {
        if (block.passes == 0) {
          block_window = window + "_block" + std::to_string(blocks.size() + 1);
          energy.monitor().begin_window(block_window);
          block.first_batch = per_example_ms.size();
        }
        const auto pass_start = std::chrono::steady_clock::now();
        for (size_t bi = 0; bi < batches_in.size(); ++bi) {
          const auto t0 = std::chrono::steady_clock::now();
          // The copy to the host waits for the device: the time covers the whole forward pass.
          std::vector<float> logits = model->forward(batches_in[bi], false).to_float_vector();
          const double ms = seconds_since(t0) * 1e3;
          if (r == 0) check_finite_logits(logits, model_config.num_labels, "sweep example", int64_t(bi) * c.batch_size);
          batch_ms.push_back(ms);
          per_example_ms.push_back(ms / double(host_batches[bi].batch));
          if (r == 0)
            acc.add(logits, host_batches[bi].labels, host_batches[bi].targets, model->loss(), host_batches[bi].batch);
        }
        pass_seconds.push_back(seconds_since(pass_start));
        measured_seconds += pass_seconds.back();
        ++block.passes;
        block.seconds += pass_seconds.back();
        block.end_batch = per_example_ms.size();
        if (block.seconds >= spread_block_s) {
          block.joules = energy.monitor().end_window(block_window).total_joules;
          blocks.push_back(block);
          block = Block{};
        }
      }
      if (block.passes > 0) {  // a last block shorter than the rest: counted with the one before
        block.joules = energy.monitor().end_window(block_window).total_joules;
        if (blocks.empty()) {
          blocks.push_back(block);
        } else {
          Block& last = blocks.back();
          last.joules += block.joules, last.seconds += block.seconds, last.passes += block.passes;
          last.end_batch = block.end_batch;
        }
      }
      phase = energy.end(window, n_examples * passes);
      const nlohmann::json m = acc.metrics();
      for (const char* k : {"accuracy", "f1", "matthews_correlation", "pearson", "spearman", "mse"})
        if (m.contains(k) && m[k].is_number()) row.metrics[k] = m[k].get<double>();
      const double total_examples = double(n_examples * passes);
      const double energy_j = phase.value("energy_j", 0.0);
      row.metrics["examples"] = double(n_examples);
      row.metrics["passes"] = double(passes);
      row.metrics["latency_p50_ms"] = percentile(per_example_ms, 50);
      row.metrics["latency_p95_ms"] = percentile(per_example_ms, 95);
      row.metrics["batch_latency_p50_ms"] = percentile(batch_ms, 50);
      const double median_pass = percentile(pass_seconds, 50);
      row.metrics["throughput_per_s"] = double(n_examples) / median_pass;
      row.metrics["pass_seconds_median"] = median_pass;
      row.metrics["pass_seconds_min"] = *std::min_element(pass_seconds.begin(), pass_seconds.end());
      row.metrics["pass_seconds_max"] = *std::max_element(pass_seconds.begin(), pass_seconds.end());
      row.metrics["joules_per_example"] = energy_j / total_examples;
      // <metric>_min and _max: the extremes of the blocks' figures.
      auto spread_of = [&](const std::string& metric, const std::function<double(const Block&)>& figure) {
        std::vector<double> values;
        for (const Block& b : blocks) values.push_back(figure(b));
        row.metrics[metric + "_min"] = *std::min_element(values.begin(), values.end());
        row.metrics[metric + "_max"] = *std::max_element(values.begin(), values.end());
      };
      spread_of("joules_per_example", [&](const Block& b) { return b.joules / double(int64_t(b.passes) * n_examples); });
      spread_of("latency_p50_ms", [&](const Block& b) {
        return percentile(std::vector<double>(per_example_ms.begin() + long(b.first_batch),
                                              per_example_ms.begin() + long(b.end_batch)), 50);
      });
      spread_of("throughput_per_s", [&](const Block& b) { return double(int64_t(b.passes) * n_examples) / b.seconds; });
      row.metrics["spread_blocks"] = double(blocks.size());
      if (!regression) {
        const double correct = row.metrics["accuracy"] * double(n_examples);
        // No correct prediction: infinitely many joules per correct one (JSON/CSV: empty).
        if (correct > 0) row.metrics["joules_per_correct"] = energy_j / passes / correct;
      }
      row.metrics["peak_memory_bytes"] = double(memory_stats(o.device).peak);
      row.metrics["gco2e_per_1000"] = phase.value("gco2e", 0.0) / total_examples * 1000.0;
      row.metrics["avg_power_w"] = phase.value("avg_w", 0.0);
      row.energy_provenance = provenance_of(phase);
    } catch (const Error& e) {
      // Close what the failure left open (not recorded as phases).
      if (energy.monitor().window_open(window)) energy.monitor().end_window(window);
      if (energy.monitor().window_open(block_window)) energy.monitor().end_window(block_window);
      if (!o.skip_failed)
        fail("sweep: configuration ", row.label(), " failed: ", e.what(), " (--skip-failed records it and goes on)");
      row.status = "skipped";
      row.reason = e.what();
      // A failure can leave a half-configured model: load it afresh for the next configuration.
      model.reset();
      model_layers = -1;
      model_precision.clear();
    }
    if (!o.quiet) {
      if (row.status == "ok")
        std::fprintf(stderr, "sweep: [%zu/%zu] %s: accuracy %.4g, %.3g ms/example (p50), %.3g J/example\n", ci + 1,
                     configs.size(), row.label().c_str(), row.metrics.count("accuracy") ? row.metrics["accuracy"] : std::nan(""),
                     row.metrics["latency_p50_ms"], row.metrics["joules_per_example"]);
      else
        std::fprintf(stderr, "sweep: [%zu/%zu] %s: skipped: %s\n", ci + 1, configs.size(), row.label().c_str(), row.reason.c_str());
    }
    nlohmann::json cj = {{"config", row.config}, {"status", row.status}, {"baseline", row.baseline}};
    nlohmann::json knobs = {{"layers", c.layers}, {"max_length", c.max_length}, {"precision", c.precision},
                            {"attention", c.attention}, {"batch_size", c.batch_size},
                            {"dynamic_padding", c.dynamic_padding == "on"}};
    cj["knobs"] = knobs;
    if (!quantization.empty()) cj["quantization"] = quantization;
    if (row.status == "ok") cj["energy"] = phase;
    else cj["reason"] = row.reason;
    config_json.push_back(cj);
    table.rows.push_back(std::move(row));
  }
  model.reset();
  const double sweep_seconds = seconds_since(sweep_start);

  size_t ok = 0;
  for (const ConfigRow& r : table.rows) ok += r.status == "ok";
  if (ok == 0) fail("sweep: every configuration was skipped (first reason: ", table.rows[0].reason, ")");
  mark_frontier(table, objectives);
  write_pareto_csv(table, run_dir / "pareto.csv");
  for (const auto& [stem, plot] : sweep_plots(table)) write_plot(plot, run_dir / stem);
  io::write_file_atomic(run_dir / "report.html", render_report(table, "wattwise sweep: " + run_dir.filename().string()));

  nlohmann::json report;
  report["run"] = {{"name", o.name}, {"dir", run_dir.string()}, {"device", o.device.str()}};
  report["model"] = {{"path", o.model_dir.string()}, {"arch", model_config.arch == models::Architecture::Bert ? "bert" : "distilbert"},
                     {"layers", model_config.num_layers}, {"hidden_size", model_config.hidden_size}};
  report["data"] = {{"path", o.data.string()}, {"split", split}, {"examples", n_examples}};
  nlohmann::json axes = nlohmann::json::object();
  axes["layers"] = layers;
  axes["max_length"] = lengths;
  axes["precision"] = precisions;
  axes["attention"] = attention;
  axes["batch_size"] = batches;
  std::vector<bool> padding_bools;
  for (const auto& d : padding) padding_bools.push_back(d == "on");
  axes["dynamic_padding"] = padding_bools;
  report["sweep"] = {{"axes", axes}, {"swept", table.axes}, {"configs", int64_t(configs.size())},
                     {"ok", int64_t(ok)}, {"skipped", int64_t(configs.size() - ok)}, {"repeats", o.repeats},
                     {"min_seconds", o.min_seconds}, {"warmup", o.warmup}, {"objectives", objective_text}, {"seconds", sweep_seconds}};
  std::vector<std::string> frontier_ids;
  size_t ties = 0;
  for (size_t i = 0; i < table.rows.size(); ++i) {
    const ConfigRow& r = table.rows[i];
    if (r.on_frontier) frontier_ids.push_back(r.config);
    ties += r.frontier() == "tie";
    config_json[i]["frontier"] = r.frontier();
    if (!r.tied_with.empty()) config_json[i]["tied_with"] = r.tied_with;
  }
  report["frontier"] = frontier_ids;
  report["baseline"] = table.rows[0].config;
  report["configs"] = config_json;
  report["energy"] = energy.finish(0);
  io::write_file_atomic(run_dir / "metrics.json", report.dump(2) + "\n");
  run_dir_guard.keep();

  // The terminal: the frontier and the energy of the whole sweep.
  std::vector<const ConfigRow*> frontier_rows;
  for (const ConfigRow& r : table.rows)
    if (r.on_frontier || r.baseline) frontier_rows.push_back(&r);
  std::vector<std::string> shown;
  for (const Objective& ob : objectives) shown.push_back(ob.metric);
  for (const char* m : {"throughput_per_s", "joules_per_correct", "gco2e_per_1000"})
    if (std::find(shown.begin(), shown.end(), m) == shown.end() &&
        std::find(table.metrics.begin(), table.metrics.end(), m) != table.metrics.end())
      shown.push_back(m);
  std::printf("\nPareto frontier over %s (%zu of %zu configurations on it%s; * = baseline, shown too):\n%s",
              objective_text.c_str(), frontier_ids.size(), ok, tie_note(ties).c_str(),
              format_table(table, frontier_rows, shown).c_str());
  if (ok < configs.size()) std::printf("skipped: %zu configurations (reasons in pareto.csv)\n", configs.size() - ok);
  std::printf("energy of the whole sweep: %s\n", energy_summary_line(report["energy"]["total"]).c_str());
  std::printf("run folder: %s (pareto.csv, metrics.json, report.html, plots)\n", run_dir.c_str());
  return run_dir;
}

}  // namespace ww::experiment
