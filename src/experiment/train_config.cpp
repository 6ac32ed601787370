#include "wattwise/experiment/train_config.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include <toml++/toml.h>

#include "wattwise/core/error.h"
#include "wattwise/experiment/execution.h"
#include "wattwise/experiment/hf_training_args.h"
#include "wattwise/experiment/run_dir.h"
#include "wattwise/io/hub.h"
#include "wattwise/train/target.h"

namespace ww::experiment {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
}  // namespace

const std::vector<ConfigKey>& train_config_schema() {
  static const std::vector<ConfigKey> schema = {
      {"run.name", "string", "run", "Run name, the suffix of runs/<UTC timestamp>_<name>/", {}},
      {"run.output_dir", "path", "runs", "Folder that receives the run folder", {}},
      {"run.seed", "int", "42", "One seed for data order, dropout and initialisation", {}, limits::kSeed, {}},
      {"run.device", "string", "auto", "cpu, cuda, cuda:N or auto (the first GPU when one is visible, else the CPU)", {}},
      {"run.cuda_graphs", "bool or auto", "true",
       "On a GPU, record each step shape once as a CUDA graph and replay it (false: launch every kernel each step; "
       "auto: training measures steps with and without graphs at start-up and keeps graphs only when they are not "
       "slower, docs/GUIDELINES.md#overhead-guards)",
       {}},
      {"run.export_plan", "bool", "false",
       "Also write plan/ into the run folder: the initial model (head included), the train/eval/test examples as JSONL "
       "and every micro-batch's example indices, so another framework can replay the same run "
       "(bench/minilm_pytorch.py); language modelling: the initial model, the train/eval token streams "
       "(int32), plan.json and every micro-batch's window indices",
       {}},
      {"run.progress", "string", "auto", "Progress display: auto (bar on a terminal), bar, lines or none",
       {"auto", "bar", "lines", "none"}},
      {"run.dist_timeout_s", "float", "1800",
       "Distributed training: seconds a rank waits for the others (the rendezvous, each collective) before it stops "
       "with an error; rank 0's evaluations must fit in it",
       {}, {}, {1, 86400}},

      {"model.path", "path", "", "Hugging Face model folder to fine-tune (empty: init a new one)", {}},
      {"model.arch", "string", "bert",
       "Architecture of a new model: bert or distilbert (sequence classifiers), or gpt2 (causal language model on the "
       "text of data.path; a model.path holding a GPT-2 model trains it as a language model too)",
       {"bert", "distilbert", "gpt2"}},
      {"model.preset", "string", "tiny",
       "Size of a new model: tiny, mini, small, minilm (all-MiniLM-L6-v2's 6 x 384) or base (gpt2: tiny, mini or "
       "small = GPT-2 124M)",
       {"tiny", "mini", "small", "minilm", "base"}},
      {"model.tokenizer", "path", "", "Tokenizer folder (default: the model folder)", {}},
      {"model.allow_nonfinite", "bool", "false",
       "Load a model.path checkpoint holding NaN or Inf weights anyway (with a warning per tensor); refused by default",
       {}},
      {"model.max_positions", "int", "512",
       "max_position_embeddings of a new model (gpt2: n_positions, the preset's unless given)", {}, limits::kPositions, {}},
      {"model.pooling", "string", "auto",
       "Classifier pooling: auto (the model's: config.json's wattwise_pooling, else cls-pooler), cls-pooler ([CLS] "
       "through BERT's tanh pooler / DistilBERT's pre_classifier), cls ([CLS] straight into the classifier) or mean "
       "(mean over real tokens)",
       {"auto", "cls-pooler", "cls", "mean"}},
      {"model.attention", "string", "auto",
       "Attention kernel: auto (fused on a GPU, reference on the CPU), fused, reference, or fastest (training on a GPU "
       "measures steps with each at start-up and keeps the fused kernel only when it is not slower; elsewhere auto)",
       {"auto", "fused", "reference", "fastest"}},

      {"data.path", "path", "",
       "aclImdb folder or .tar.gz, GLUE task folder, or a CSV/TSV/JSONL file; for gpt2: a text file, a folder of text "
       "files (one document each) or a WikiText folder (wiki.{train,valid,test}.raw)",
       {}},
      {"data.format", "string", "auto",
       "Language-modelling data: text (files; the last data.valid_fraction of the tokens is validation), wikitext "
       "(its train/valid/test files, articles split at ' = Title = ') or auto (wikitext when wiki.train.raw exists)",
       {"auto", "text", "wikitext"}},
      {"data.block_size", "int", "0", "Language modelling: tokens per sequence T (0: the model's n_positions)", {}, limits::kOptionalLength, {}},
      {"data.valid_fraction", "float", "0.1", "Language modelling, text format: share of the tokens (at the end) held out for validation", {}, {}, {0, 1, false, true}},
      {"data.cache_dir", "path", "",
       "Language modelling: folder of the tokenised-corpus cache (empty: $WATTWISE_CACHE, else ~/.cache/wattwise/tokens)", {}},
      {"data.max_length", "int", "128", "Truncate examples to this many tokens", {}, limits::kSequenceLength, {}},
      {"data.padding", "string", "dynamic", "Pad to the batch's longest (dynamic) or to max_length (max)",
       {"dynamic", "max"}},
      {"data.length_bucketing", "bool", "false", "Batch examples of similar length together", {}},
      {"data.balance", "string", "none",
       "Class-balanced training batches: classes (every class as often as the largest, its examples repeated and "
       "reshuffled, the classes interleaved in each batch; an epoch is classes x largest count) or none",
       {"none", "classes"}},
      {"data.clean_html", "bool", "false", "Strip HTML tags such as <br />", {}},
      {"data.collapse_whitespace", "bool", "false", "Collapse runs of whitespace", {}},
      {"data.split_ratios", "string", "0.8,0.1,0.1", "train,validation,test ratios when the data has no split", {}},
      {"data.resplit_from_train", "bool", "false",
       "Carve validation and test out of the train split by split_ratios even when the data ships them", {}},
      {"data.train_split", "string", "train", "Split to train on", {}},
      {"data.eval_split", "string", "dev", "Split to evaluate on during training", {}},
      {"data.test_split", "string", "", "Split to evaluate the best model on at the end (empty: none)", {}},
      {"data.text_column", "string", "text", "Text column of a generic CSV/TSV/JSONL file", {}},
      {"data.text_pair_column", "string", "", "Second-text column of a generic file (empty: none)", {}},
      {"data.label_column", "string", "label", "Label column of a generic file", {}},
      {"data.max_train_examples", "int", "0", "Use at most this many training examples (0: all; language modelling: sequences of block_size)", {}, limits::kExampleCount, {}},
      {"data.max_eval_examples", "int", "0", "Use at most this many examples of the evaluation split, and of the test split (0: all; language modelling: sequences)", {}, limits::kExampleCount, {}},

      {"train.epochs", "float", "3", "Epochs (fractions allowed; 0 with max_steps)", {}, {}, {0, 1e6}},
      {"train.max_steps", "int", "0", "Stop after this many optimizer steps (0: by epochs)", {}, limits::kStepCount, {}},
      {"train.batch_size", "int", "32", "Examples per micro-batch", {}, limits::kBatchSize, {}},
      {"train.grad_accum", "int or auto", "1",
       "Micro-batches per optimizer step; auto: as many as the gradient noise scale asks for, between "
       "train.grad_accum_min and train.grad_accum_max, re-estimated every step (needs train.max_steps)",
       {}, limits::kGradAccum, {}},
      {"train.grad_accum_min", "int", "2",
       "train.grad_accum auto: the fewest micro-batches per step (at least 2: a step's first micro-batch and the whole "
       "step are the two batch sizes the noise scale is estimated from); train.lr is the rate at this size",
       {}, limits::kAdaptiveGradAccum, {}},
      {"train.grad_accum_max", "int", "64", "train.grad_accum auto: the most micro-batches per step", {},
       limits::kAdaptiveGradAccum, {}},
      {"train.grad_accum_lr_scaling", "string", "sqrt",
       "train.grad_accum auto: the learning rate follows the effective batch as (k / grad_accum_min)^p, p = 1 "
       "(linear), 1/2 (sqrt) or 0 (none)",
       {"none", "linear", "sqrt"}},
      {"train.noise_scale_smoothing", "float", "0.9",
       "train.grad_accum auto: the exponential moving average factor of the noise-scale estimates (0: the last "
       "step's alone)",
       {}, {}, {0, 1, false, true}},
      {"train.zero", "int", "0",
       "Data-parallel runs: 0, every rank holds the whole optimizer state; 1, each of N ranks holds 1/N of it "
       "(ZeRO stage 1: it updates its part of the parameters, then the ranks all-gather them); 2, also the summed "
       "gradients are reduce-scattered, each rank receiving only its part (ZeRO stage 2). With 1 or 2 every rank writes its part of the optimizer state into checkpoints: the run folder must be on a file system every rank sees",
       {}, limits::kZeroStage, {}},
      {"train.bucket_mb", "float or auto", "25",
       "Data-parallel runs (ZeRO 0 and 1): the gradients are summed over the ranks in buckets of about this many "
       "MiB, each while backward goes on (PyTorch DDP's bucket_cap_mb); 0: one sum after backward; auto: the ranks "
       "measure steps with 25 MiB buckets and with one sum at start-up and keep the buckets only when they are not "
       "slower",
       {}, {}, {0, 1e6}},
      {"train.scaling_baseline", "path", "",
       "Data-parallel runs: the metrics.json of a one-process run of the same model, task and precision (e.g. this "
       "configuration on one GPU); metrics.json then reports distributed.scaling_efficiency = this run's throughput / "
       "(ranks x the baseline's), read before training starts (empty: none; one process ignores it)",
       {}},
      {"train.tokens_per_step", "int", "0",
       "Language modelling: tokens per optimizer step; sets grad_accum = tokens_per_step / (batch_size x block_size), "
       "which must come out whole (0: use grad_accum)",
       {}, limits::kTokenCount, {}},
      {"train.optimizer", "string", "adamw", "Optimizer", {"adamw", "adam", "sgd"}},
      {"train.lr", "float", "5e-5", "Peak learning rate", {}, {}, {0, kInf, true}},
      {"train.weight_decay", "float", "0.0", "Weight decay (never on biases and LayerNorm weights)", {}, {}, {0, kInf}},
      {"train.beta1", "float", "0.9", "Adam beta1", {}, {}, {0, 1, false, true}},
      {"train.beta2", "float", "0.999", "Adam beta2", {}, {}, {0, 1, false, true}},
      {"train.eps", "float", "1e-8", "Adam epsilon", {}, {}, {0, kInf, true}},
      {"train.momentum", "float", "0.9", "SGD momentum", {}, {}, {0, 1, false, true}},
      {"train.nesterov", "bool", "false", "SGD Nesterov momentum", {}},
      {"train.max_grad_norm", "float", "1.0", "Clip gradients to this global norm (0: off)", {}, {}, {0, kInf}},
      {"train.schedule", "string", "linear", "LR schedule", {"constant", "linear", "cosine"}},
      {"train.warmup_ratio", "float", "0.0", "Warmup as a fraction of the total steps", {}, {}, {0, 1, false, true}},
      {"train.warmup_steps", "int", "0", "Warmup in steps (instead of warmup_ratio)", {}, limits::kStepCount, {}},
      {"train.label_smoothing", "float", "0.0", "Cross-entropy label smoothing", {}, {}, {0, 1, false, true}},
      {"train.class_weights", "string", "none",
       "Class weights of the classification loss, as torch's CrossEntropyLoss(weight=...): none, balanced "
       "(n_examples / (n_classes x the class's count) over the training examples, scikit-learn's rule) or one "
       "number > 0 per label in label order, comma-separated (1,3.5); the loss is each batch's weighted mean "
       "sum(w[y] x loss) / sum(w[y]), label smoothing weighted as torch weights it",
       {}},
      {"train.hidden_dropout", "float", "-1", "Override the model's hidden dropout (-1: keep)", {}, {}, {0, 1, false, true, -1, "to keep the model's"}},
      {"train.attention_dropout", "float", "-1", "Override the attention dropout (-1: keep)", {}, {}, {0, 1, false, true, -1, "to keep the model's"}},
      {"train.classifier_dropout", "float", "-1", "Override the classifier dropout (-1: keep)", {}, {}, {0, 1, false, true, -1, "to keep the model's"}},
      {"train.eval_every", "int", "0", "Evaluate every N optimizer steps (0: at each epoch end only)", {}, limits::kStepCount, {}},
      {"train.log_every", "int", "10", "Write a train_log.csv row every N optimizer steps", {}, {1, limits::kStepCount.max}, {}},
      {"train.metric", "string", "accuracy",
       "Metric that picks the best checkpoint and drives early stopping (language modelling: loss unless perplexity is given)",
       {"accuracy", "f1", "f1_macro", "matthews_correlation", "loss", "precision", "recall", "pearson", "spearman",
        "perplexity"}},
      {"train.early_stopping_patience", "int", "0", "Stop after N evaluations without improvement (0: off)", {}, limits::kPatience, {}},
      {"train.target", "string", "",
       "A quality target, <metric><op><number> (accuracy>=0.88, perplexity<=30): the first evaluation that meets it "
       "gives the time, energy, samples and steps to target in metrics.json (empty: none)",
       {}},
      {"train.peak_tflops", "float", "0",
       "The dense matmul rate of one device at the run's precision, for MFU in metrics.json (0: NVIDIA's datasheet "
       "figure of a known GPU; none for other devices)",
       {}, {}, {0, 1e6}},
      {"train.stop_at_target", "bool", "true",
       "Stop training at the first evaluation that meets train.target (false: train on, the figures to target "
       "are still reported)",
       {}},
      {"train.precision", "string", "fp32",
       "Compute precision: fp32, tf32 (f32 with TF32 matmuls), bf16 or fp16 (16-bit activations, f32 master weights; GPU only)",
       {"fp32", "tf32", "bf16", "fp16"}},
      {"train.loss_scale", "string", "dynamic",
       "fp16 loss scaling: dynamic (start at 65536, halve on overflow, double after train.loss_scale_growth_interval good steps) or a fixed number",
       {}},
      {"train.loss_scale_growth_interval", "int", "2000", "Applied steps in a row before the dynamic loss scale doubles", {}, {1, limits::kStepCount.max}, {}},
      {"train.checkpointing", "string", "none",
       "Activation checkpointing: none, every (each layer), every-K (segments of K layers), sqrt (segments of ceil(sqrt(L)) "
       "layers) or auto (none when the largest micro-batch's predicted activations and the model state fit "
       "train.memory_budget_mb, else sqrt, else every; the plan goes into metrics.json)",
       {}},
      {"train.memory_budget_mb", "float", "0",
       "train.checkpointing auto: the memory the run may use on its device, in MiB (0: 90% of the device's free memory "
       "at start-up)",
       {}, {}, {0, 1e9}},
      {"train.save_dtype", "string", "f32", "Dtype of saved weights", {"f32", "f16", "bf16"}},
      {"train.checkpoint_every", "int", "0",
       "Write a resumable training checkpoint (checkpoints/step_N/: weights, optimizer, RNG and data position) "
       "every N optimizer steps and at the end (0: only when interrupted by a signal); wattwise train --resume RUN_DIR "
       "continues from the newest",
       {}, limits::kStepCount, {}},
      {"train.checkpoint_keep", "int", "2", "Training checkpoints kept (the newest; older ones are removed)", {},
       {1, 1000000}, {}},

      {"energy.interval_ms", "int", "100", "Power sampling interval", {}, limits::kIntervalMs, {}},
      {"energy.country", "string", "", "ISO country/region code for carbon intensity (empty: world average)", {}},
      {"energy.pue", "float", "1.0", "Data-centre power usage effectiveness", {}, {}, {1, kInf}},
      {"energy.carbon_intensity", "float", "-1", "Override grid intensity in gCO2e/kWh (-1: from the table)", {}, {}, {0, kInf, false, false, -1, "for the table's"}},
      {"energy.idle_baseline_s", "float", "0", "Measure idle power this long first; metrics then add net energy", {}, {}, {0, 600}},
  };
  return schema;
}

namespace {

const ConfigKey* find_key(const std::string& key) {
  for (const auto& k : train_config_schema())
    if (k.key == key) return &k;
  return nullptr;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// Shortest text that reads back as the same double.
std::string shortest(double v) {
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v);
  return std::string(buffer, end);
}

std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A bound as people write it: 1000000 rather than 1e+06.
std::string bound_text(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(int64_t(v));
  return shortest(v);
}

// "[0, 1)", "> 0", ">= 1", "[0, 600]" (no "or -1").
std::string interval_text(const FloatRange& r) {
  if (std::isinf(r.max)) return (r.min_open ? "> " : ">= ") + bound_text(r.min);
  return (r.min_open ? "(" : "[") + bound_text(r.min) + ", " + bound_text(r.max) + (r.max_open ? ")" : "]");
}

// The rule a float key breaks, in the words validate() used before ranges moved into the schema.
std::string float_rule(const ConfigKey& k) {
  const FloatRange& r = k.float_range;
  std::string rule;
  if (std::isinf(r.max) && r.min == 0) rule = r.min_open ? "be positive" : "not be negative";
  else if (std::isinf(r.max)) rule = "be at least " + bound_text(r.min);
  else rule = "be in " + interval_text(r);
  if (r.unset) rule += " (or " + shortest(*r.unset) + " " + r.unset_meaning + ")";
  return rule;
}

// Checks `value` against the key's type and range and returns its canonical text.
std::string canonical(const ConfigKey& k, const std::string& value, const std::string& origin) {
  auto bad = [&](const std::string& why) -> std::string {
    fail(origin, ": invalid value '", value, "' for ", k.key, " (", why, ")");
  };
  if ((k.type == "int or auto" || k.type == "float or auto" || k.type == "bool or auto") && lower(value) == "auto")
    return "auto";
  if (k.type == "int" || k.type == "int or auto") {
    if (auto error = integer_text_error(value, k.int_range)) {
      if (error->find("is out of range") == std::string::npos) bad("expected an integer");
      fail(origin, ": ", k.key, " ", *error);
    }
    return std::to_string(std::stoll(value[0] == '+' ? value.substr(1) : value));
  }
  if (k.type == "float" || k.type == "float or auto") {
    double v = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (ec != std::errc() || end != value.data() + value.size() || !std::isfinite(v))
      bad(k.type == "float" ? "expected a finite number" : "expected a finite number or auto");
    const FloatRange& r = k.float_range;
    const bool inside = v >= r.min && v <= r.max && !(r.min_open && v == r.min) && !(r.max_open && v == r.max);
    if (!inside && !(r.unset && v == *r.unset)) fail(origin, ": ", k.key, " must ", float_rule(k), ", got ", shortest(v));
    return shortest(v);
  }
  if (k.type == "bool" || k.type == "bool or auto") {
    std::string v = lower(value);
    if (v == "true" || v == "1" || v == "yes" || v == "on") return "true";
    if (v == "false" || v == "0" || v == "no" || v == "off") return "false";
    return bad(k.type == "bool" ? "expected true or false" : "expected true, false or auto");
  }
  if (!k.choices.empty() && std::find(k.choices.begin(), k.choices.end(), value) == k.choices.end()) {
    std::string list;
    for (const auto& c : k.choices) list += (list.empty() ? "" : ", ") + c;
    return bad("expected one of " + list);
  }
  return value;
}

// A TOML value as the text set() takes, or nullopt for a table or an array.
std::optional<std::string> toml_scalar_text(const toml::node& value) {
  if (auto s = value.as_string()) return s->get();
  if (auto i = value.as_integer()) return std::to_string(i->get());
  if (auto f = value.as_floating_point()) return shortest(f->get());
  if (auto b = value.as_boolean()) return std::string(b->get() ? "true" : "false");
  return std::nullopt;
}

void unknown_key(const std::string& key, const std::string& origin) {
  std::string hint = nearest_key(key);
  if (hint.empty()) hint = nearest_name(key.substr(key.find('.') + 1), hf_training_argument_names());
  fail(origin, ": unknown key '", key, "'", hint.empty() ? "" : " (did you mean '" + hint + "'?)");
}

// The explicit list of train.class_weights: finite numbers > 0, comma-separated.
std::vector<float> parse_weight_list(const std::string& text, const std::string& where) {
  std::vector<float> weights;
  std::stringstream in(text);
  std::string item;
  size_t index = 0;
  while (std::getline(in, item, ',')) {
    ++index;
    const size_t first = item.find_first_not_of(' '), last = item.find_last_not_of(' ');
    const std::string number = first == std::string::npos ? "" : item.substr(first, last - first + 1);
    double v = 0;
    auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), v);
    if (number.empty() || ec != std::errc() || end != number.data() + number.size())
      fail(where, " '", text, "': item ", index, " '", item,
           "' is not a number (expected none, balanced or one weight per label, e.g. 1,3.5)");
    if (!(std::isfinite(v) && v > 0 && v <= std::numeric_limits<float>::max()))
      fail(where, " '", text, "': weight ", index, " is ", number, " (every weight must be a finite number > 0)");
    weights.push_back(float(v));
  }
  if (weights.empty() || text.back() == ',')
    fail(where, " '", text, "': expected none, balanced or one weight per label, e.g. 1,3.5");
  return weights;
}

}  // namespace

std::vector<float> resolve_class_weights(const std::string& text, const std::vector<int32_t>& train_labels,
                                         int64_t num_labels, const std::vector<std::string>& label_names) {
  if (text == "none") return {};
  if (text == "balanced") {
    std::vector<int64_t> counts(size_t(std::max<int64_t>(num_labels, 0)), 0);
    for (int32_t y : train_labels)
      if (y >= 0 && y < num_labels) ++counts[size_t(y)];
    std::vector<float> weights;
    for (int64_t c = 0; c < num_labels; ++c) {
      if (counts[size_t(c)] == 0)
        fail("train.class_weights balanced: class ", c,
             size_t(c) < label_names.size() ? " ('" + label_names[size_t(c)] + "')" : std::string(),
             " has no example among the ", train_labels.size(),
             " training examples (give the weights explicitly, one per label)");
      weights.push_back(float(double(train_labels.size()) / (double(num_labels) * double(counts[size_t(c)]))));
    }
    return weights;
  }
  std::vector<float> weights = parse_weight_list(text, "train.class_weights");
  if (int64_t(weights.size()) != num_labels) {
    std::string names;
    for (const std::string& n : label_names) names += (names.empty() ? "" : ", ") + n;
    fail("train.class_weights '", text, "': ", weights.size(), weights.size() == 1 ? " weight" : " weights",
         " for a model with ", num_labels, " labels (one per label, in label order",
         names.empty() ? std::string() : ": " + names, ")");
  }
  return weights;
}

std::string range_text(const ConfigKey& key) {
  if (key.type == "int") return std::to_string(key.int_range.min) + ".." + std::to_string(key.int_range.max);
  if (key.type == "int or auto")
    return std::to_string(key.int_range.min) + ".." + std::to_string(key.int_range.max) + " or auto";
  if (key.type != "float" && key.type != "float or auto") return "";
  std::string text = interval_text(key.float_range);
  if (key.float_range.unset) text += " or " + shortest(*key.float_range.unset);
  if (key.type == "float or auto") text += " or auto";
  return text;
}

std::string nearest_key(const std::string& key) {
  std::string best;
  size_t best_distance = SIZE_MAX;
  for (const auto& k : train_config_schema()) {
    // Compare with the full key and with its part after the section, so "lr" finds "train.lr".
    std::string tail = k.key.substr(k.key.find('.') + 1);
    size_t d = std::min(edit_distance(key, k.key), edit_distance(key, tail));
    if (d < best_distance) best_distance = d, best = k.key;
  }
  return best_distance <= std::max<size_t>(2, key.size() / 3) ? best : "";
}

std::string nearest_name(const std::string& name, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = SIZE_MAX;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(name, c);
    if (d < best_distance) best_distance = d, best = c;
  }
  return best_distance <= std::max<size_t>(2, name.size() / 3) ? best : "";
}

TrainConfig::TrainConfig() {
  for (const auto& k : train_config_schema()) values_[k.key] = canonical(k, k.default_value, "schema default");
}

void TrainConfig::set(const std::string& key, const std::string& value, const std::string& origin) {
  const ConfigKey* k = find_key(key);
  if (!k) {
    // A Hugging Face TrainingArguments name (hf_training_args.h): the settings it stands for.
    if (std::optional<Settings> settings = hf_training_argument(key, value, *this, origin)) {
      for (const auto& [wattwise_key, v] : *settings) set(wattwise_key, v, origin + " (" + wattwise_key + ")");
      return;
    }
    unknown_key(key, origin);
  }
  values_[key] = canonical(*k, value, origin);
  explicit_[key] = true;
}

void TrainConfig::set(const std::string& assignment, const std::string& origin) {
  size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    fail(origin, ": expected key=value, got '", assignment, "'");
  set(assignment.substr(0, eq), assignment.substr(eq + 1), origin);
}

void TrainConfig::merge_toml_text(const std::string& text, const std::string& origin) {
  toml::table table;
  try {
    table = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    fail(origin, ":", e.source().begin.line, ":", e.source().begin.column, ": ", e.description());
  }
  for (auto& [section, node] : table) {
    std::string section_name(section.str());
    const toml::table* inner = node.as_table();
    if (!inner) {
      // A value at the top level: only a Hugging Face TrainingArguments name (learning_rate = 3e-5),
      // which set() translates; anything else is an unknown key there.
      const std::string where = origin + ":" + std::to_string(node.source().begin.line);
      std::optional<std::string> text = toml_scalar_text(node);
      if (!text) unknown_key(section_name, where);
      set(section_name, *text, where);
      continue;
    }
    for (auto& [key, value] : *inner) {
      std::string full = section_name + "." + std::string(key.str());
      std::string where = origin + ":" + std::to_string(value.source().begin.line);
      const ConfigKey* k = find_key(full);
      std::optional<std::string> scalar = toml_scalar_text(value);
      if (!k && !scalar) unknown_key(full, where);
      if (!k) {  // [train] learning_rate = ...: set() translates a Hugging Face name, else names the unknown key
        set(full, *scalar, where);
        continue;
      }
      if (!scalar) fail(where, ": ", full, " must be a string, number or boolean");
      const std::string text_value = *scalar;
      if ((k->type == "string" || k->type == "path") && !value.is_string())
        fail(where, ": ", full, " must be a string (in quotes)");
      set(full, text_value, where);
    }
  }
}

void TrainConfig::merge_toml_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) fail(path.string(), ": cannot open the config file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  merge_toml_text(buffer.str(), path.string());
}

std::string TrainConfig::get_string(const std::string& key) const {
  auto it = values_.find(key);
  WW_CHECK(it != values_.end(), "config key ", key, " is not in the schema");
  return it->second;
}
int64_t TrainConfig::get_int(const std::string& key) const {
  const std::string& v = get_string(key);
  WW_CHECK(v != "auto", "config key ", key, " is auto: ask is_auto() first");
  return std::stoll(v);
}
bool TrainConfig::is_auto(const std::string& key) const { return get_string(key) == "auto"; }
double TrainConfig::get_float(const std::string& key) const {
  const std::string& v = get_string(key);
  WW_CHECK(v != "auto", "config key ", key, " is auto: ask is_auto() first");
  return std::stod(v);
}
bool TrainConfig::get_bool(const std::string& key) const {
  const std::string& v = get_string(key);
  WW_CHECK(v != "auto", "config key ", key, " is auto: ask is_auto() first");
  return v == "true";
}
std::filesystem::path TrainConfig::get_path(const std::string& key) const { return get_string(key); }
std::filesystem::path TrainConfig::model_folder(const std::string& key) const {
  const std::string text = get_string(key);
  return text.empty() ? std::filesystem::path() : io::resolve_model_folder(text);
}
bool TrainConfig::is_set(const std::string& key) const { return explicit_.count(key) != 0; }
bool TrainConfig::differs_from_default(const std::string& key) const {
  static const TrainConfig defaults;
  return get_string(key) != defaults.get_string(key);
}

void TrainConfig::validate() const {
  // Each key's own range was checked when it was set (the schema's int_range / float_range); what
  // is left are rules over several keys.
  if (get_int("data.block_size") == 1)
    fail("config: data.block_size must be at least 2 (or 0 for the model's n_positions)");
  if (get_int("train.tokens_per_step") > 0 && differs_from_default("train.grad_accum"))
    fail("config: give train.tokens_per_step or train.grad_accum, not both");
  if (is_auto("train.grad_accum")) {
    if (get_int("train.max_steps") == 0)
      fail("config: train.grad_accum auto needs train.max_steps (steps of varying size make no fixed count per epoch "
           "to end a run of train.epochs on)");
    if (get_int("train.grad_accum_max") < get_int("train.grad_accum_min"))
      fail("config: train.grad_accum_max ", get_int("train.grad_accum_max"), " is below train.grad_accum_min ",
           get_int("train.grad_accum_min"));
    if (get_bool("run.export_plan"))
      fail("config: run.export_plan replays steps of a fixed train.grad_accum; it cannot be combined with "
           "train.grad_accum auto");
  } else {
    for (const char* key : {"train.grad_accum_min", "train.grad_accum_max", "train.grad_accum_lr_scaling",
                            "train.noise_scale_smoothing"})
      if (differs_from_default(key)) fail("config: ", key, " applies only with train.grad_accum auto");
  }
  try {
    if (get_string("train.checkpointing") != "auto") models::parse_checkpointing(get_string("train.checkpointing"));
  } catch (const Error& e) {
    fail("config: train.checkpointing: ", e.what());
  }
  if (differs_from_default("train.memory_budget_mb") && get_string("train.checkpointing") != "auto")
    fail("config: train.memory_budget_mb applies only with train.checkpointing auto");
  parse_loss_scale(get_string("train.loss_scale"));
  if (get_float("train.epochs") == 0 && get_int("train.max_steps") == 0)
    fail("config: set train.epochs or train.max_steps");
  double ratio = get_float("train.warmup_ratio");
  if (is_set("train.warmup_ratio") && is_set("train.warmup_steps") && ratio > 0 && get_int("train.warmup_steps") > 0)
    fail("config: give train.warmup_ratio or train.warmup_steps, not both");
  if (get_path("data.path").empty()) fail("config: data.path is required (a data set to train on)");
  if (get_path("model.path").empty() && get_path("model.tokenizer").empty())
    fail("config: a new model (no model.path) needs model.tokenizer");
  check_run_name(get_string("run.name"), "config: run.name");
  train::parse_training_target(get_string("train.target"), "config: train.target");
  const std::string class_weights = get_string("train.class_weights");
  if (class_weights != "none" && class_weights != "balanced") parse_weight_list(class_weights, "config: train.class_weights");
  if (get_string("data.balance") == "classes" && get_bool("data.length_bucketing"))
    fail("config: data.balance classes and data.length_bucketing cannot be combined (bucketing regroups the "
         "batches by length)");
}

std::string TrainConfig::to_toml(const std::map<std::string, std::string>& comments) const {
  std::ostringstream os;
  os << "# Resolved configuration of this run (every key; defaults included).\n";
  std::string section;
  for (const auto& k : train_config_schema()) {
    std::string sec = k.key.substr(0, k.key.find('.'));
    if (sec != section) {
      os << (section.empty() ? "" : "\n") << "[" << sec << "]\n";
      section = sec;
    }
    const std::string& v = values_.at(k.key);
    os << k.key.substr(sec.size() + 1) << " = ";
    if (k.type == "string" || k.type == "path" || v == "auto") os << toml::value<std::string>(v);
    else os << v;
    if (auto c = comments.find(k.key); c != comments.end()) os << "  # " << c->second;
    os << "\n";
  }
  return os.str();
}

}  // namespace ww::experiment
