#include "wattwise/experiment/bench.h"
#include "wattwise/experiment/run_dir.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <ostream>
#include <random>
#include <sstream>

#include "wattwise/core/device.h"
#include "wattwise/core/error.h"
#include "wattwise/dist/process_group.h"
#include "wattwise/dist/world.h"
#include "wattwise/energy/monitor.h"
#include "wattwise/experiment/execution.h"
#include "wattwise/experiment/job.h"
#include "wattwise/experiment/job_energy.h"
#include "wattwise/experiment/train_checkpoint.h"
#include "wattwise/io/file.h"
#include "wattwise/models/gpt2.h"
#include "wattwise/models/sequence_classifier.h"
#include "wattwise/train/trainer.h"

namespace ww::experiment {

namespace {

BenchCase make_case(std::string name, std::string arch, std::string preset, std::string mode, int64_t batch,
                    int64_t seq_len, std::string precision, int64_t steps, int64_t warmup) {
  BenchCase c;
  c.name = std::move(name);
  c.arch = std::move(arch);
  c.preset = std::move(preset);
  c.mode = std::move(mode);
  c.batch = batch;
  c.seq_len = seq_len;
  c.precision = std::move(precision);
  c.steps = steps;
  c.warmup = warmup;
  return c;
}

std::string case_names() {
  std::string names;
  for (const auto& c : bench_cases()) names += (names.empty() ? "" : ", ") + c.name;
  return names;
}

void check_case(const BenchCase& c) {
  if (c.arch != "bert" && c.arch != "distilbert" && c.arch != "gpt2")
    fail("bench case ", c.name, ": --arch '", c.arch, "' is not supported (expected bert, distilbert or gpt2)");
  if (c.mode != "train" && c.mode != "infer")
    fail("bench case ", c.name, ": --mode '", c.mode, "' is not supported (expected train or infer)");
  if (c.arch == "gpt2" && c.mode != "train")
    fail("bench case ", c.name, ": --mode ", c.mode, " is not supported for --arch gpt2 (only train is)");
  if (c.batch <= 0) fail("bench case ", c.name, ": --batch must be positive, got ", c.batch);
  if (c.seq_len < 2) fail("bench case ", c.name, ": --seq-len must be at least 2, got ", c.seq_len);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Random-init model inputs: token ids uniform in [1000, vocab) (clear of BERT's special tokens),
// every position a real token, random labels.
models::Batch random_batch(const models::ModelConfig& config, int64_t batch, int64_t seq_len, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int32_t low = config.vocab_size > 2000 ? 1000 : 1;
  std::uniform_int_distribution<int32_t> token(low, int32_t(config.vocab_size - 1));
  std::uniform_int_distribution<int32_t> label(0, int32_t(config.num_labels - 1));
  const size_t n = size_t(batch * seq_len);
  std::vector<int32_t> ids(n), mask(n, 1), types(n, 0), labels(static_cast<size_t>(batch));
  for (auto& id : ids) id = token(rng);
  for (auto& l : labels) l = label(rng);
  models::Batch b;
  b.input_ids = Tensor::from_vector(ids, {batch, seq_len});
  b.attention_mask = Tensor::from_vector(mask, {batch, seq_len});
  if (config.type_vocab_size > 0) b.token_type_ids = Tensor::from_vector(types, {batch, seq_len});
  b.labels = Tensor::from_vector(labels, {batch});
  return b;
}

// A causal-LM batch as the model takes it: token ids uniform in [0, vocab), every position real
// (no attention mask: the causal mask alone, as HF without one), labels = input_ids (the model
// scores position t against labels[t+1]: T-1 predictions per sequence, as HF's labels=input_ids).
models::Batch random_lm_batch(const models::Gpt2Config& config, int64_t batch, int64_t seq_len, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> token(0, int32_t(config.vocab_size - 1));
  std::vector<int32_t> ids(size_t(batch * seq_len));
  for (auto& id : ids) id = token(rng);
  models::Batch b;
  b.input_ids = Tensor::from_vector(ids, {batch, seq_len});
  b.labels = Tensor::from_vector(ids, {batch, seq_len});
  return b;
}

// Which meter's joules count as the case's energy: the GPU's counter when the window has one, else
// the CPU packages (RAPL, or CodeCarbon's TDP estimate), with how each figure was obtained.
void add_energy(nlohmann::json& j, const energy::WindowResult& w, int64_t samples) {
  const energy::DeviceKind kind = w.gpu_present ? energy::DeviceKind::gpu : energy::DeviceKind::cpu;
  double joules = 0;
  bool measured = true;
  std::string provenance, device_name;
  for (const auto& s : w.sources) {
    if (s.kind != kind) continue;
    joules += s.joules;
    measured = measured && s.measured;
    provenance += (provenance.empty() ? "" : "; ") + s.source + ": " + s.provenance;
    if (device_name.empty()) device_name = s.device_name;
  }
  j["energy_source"] = energy::device_kind_name(kind);
  j["energy_measured"] = measured;
  j["energy_provenance"] = provenance;
  j["energy_j"] = joules;
  j["j_per_sample"] = samples > 0 ? joules / double(samples) : 0.0;
  j["avg_watts"] = w.duration_s > 0 ? joules / w.duration_s : 0.0;
  j["energy_window_s"] = w.duration_s;
  if (!w.gpu_present) j["gpu_absent_reason"] = w.gpu_absent_reason;
  if (!device_name.empty()) j["energy_device_name"] = device_name;
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return q + "'";
}

// bench/peer_pytorch.py beside the binary: <repo>/build/wattwise → <repo>/bench/peer_pytorch.py.
std::filesystem::path find_peer_script(const std::string& given) {
  if (!given.empty()) {
    if (!std::filesystem::exists(given)) fail("--peer-script ", given, ": file not found");
    return given;
  }
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  std::vector<std::filesystem::path> tried;
  if (!ec) {
    for (auto dir = exe.parent_path(); !dir.empty() && tried.size() < 4; dir = dir.parent_path()) {
      tried.push_back(dir / "bench" / "peer_pytorch.py");
      if (std::filesystem::exists(tried.back())) return tried.back();
      if (dir == dir.parent_path()) break;
    }
  }
  std::string list;
  for (const auto& p : tried) list.append(" ").append(p.string());
  fail("bench/peer_pytorch.py not found (looked at:", list, "); pass --peer-script PATH");
}

// Runs the PyTorch peer on the same case and returns its JSON object, or nullopt (with a note on
// stderr) when python3 with torch is not importable.
std::optional<nlohmann::json> run_peer(const BenchCase& c, const nlohmann::json& ours, const BenchOptions& o,
                                       int64_t steps, int64_t warmup) {
  if (o.peer != "pytorch" && o.peer != "pytorch-compile")
    fail("--peer '", o.peer, "' is not supported (expected pytorch or pytorch-compile)");
  const std::string python = shell_quote(o.python);
  if (std::system((python + " -c 'import torch, transformers' >/dev/null 2>&1").c_str()) != 0) {
    std::fprintf(stderr, "wattwise: bench: %s cannot import torch and transformers: peer skipped\n",
                 o.python.c_str());
    return std::nullopt;
  }
  const std::filesystem::path script = find_peer_script(o.peer_script);
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("wattwise-bench-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  RunDirGuard remove_on_return(dir);  // the scratch folder goes whether the peer succeeds or fails
  const std::filesystem::path config = dir / "config.json", result = dir / "peer.json";
  io::write_file_atomic(config, ours.at("model_config").dump(2) + "\n");
  std::filesystem::remove(result);
  std::ostringstream cmd;
  cmd << python << ' ' << shell_quote(script.string()) << " --mode "
      << (o.peer == "pytorch-compile" ? "compile" : "eager") << " --case " << shell_quote(c.name)
      << " --task " << c.mode << " --arch " << c.arch << " --preset " << shell_quote(c.preset)
      << " --batch " << c.batch << " --seq-len " << c.seq_len << " --precision " << c.precision
      << " --device " << shell_quote(ours.at("device").get<std::string>()) << " --steps " << steps
      << " --warmup " << warmup << " --min-seconds " << o.min_seconds << " --seed " << o.seed
      << " --config " << shell_quote(config.string()) << " --json " << shell_quote(result.string());
  if (o.peak_tflops) cmd << " --peak-tflops " << *o.peak_tflops;
  cmd << " 1>&2";
  const int rc = std::system(cmd.str().c_str());
  if (rc != 0 || !std::filesystem::exists(result))
    fail("PyTorch peer failed (exit status ", rc, "): ", cmd.str());
  std::ifstream in(result);
  nlohmann::json peer = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (peer.is_discarded() || !peer.is_object()) fail(result.string(), ": the peer wrote no JSON object");
  return peer;
}

double number_or_nan(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : std::nan("");
}

std::string format(double v, const char* fmt) {
  if (!std::isfinite(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

}  // namespace

const std::vector<BenchCase>& bench_cases() {
  // Steps: a few seconds of timed work per case on an H100 at the peers' speed (the harness also
  // asks for a minimum duration so the energy counter integrates over enough time).
  static const std::vector<BenchCase> cases = {
      make_case("distilbert-train-bf16", "distilbert", "base", "train", 32, 256, "bf16", 40, 10),
      make_case("distilbert-train-fp16", "distilbert", "base", "train", 32, 256, "fp16", 40, 10),
      make_case("distilbert-train-fp32", "distilbert", "base", "train", 32, 256, "fp32", 20, 5),
      make_case("bert-train-bf16", "bert", "base", "train", 32, 128, "bf16", 40, 10),
      make_case("bert-infer-fp16-b1", "bert", "base", "infer", 1, 128, "fp16", 300, 30),
      make_case("bert-infer-fp16-b32", "bert", "base", "infer", 32, 128, "fp16", 200, 20),
      make_case("bert-infer-fp16-b256", "bert", "base", "infer", 256, 128, "fp16", 50, 10),
      make_case("distilbert-infer-fp16-b32", "distilbert", "base", "infer", 32, 128, "fp16", 300, 30),
      // The MiniLM fine-tuning step on IMDB: all-MiniLM-L6-v2's shape (6 × 384, 12 heads), 32 × 256.
      make_case("minilm-train-bf16", "bert", "minilm", "train", 32, 256, "bf16", 80, 10),
      // GPT-2 124M from scratch, 16 × 1024 tokens per step (a step is ~14 TFLOP).
      make_case("gpt2-train-bf16", "gpt2", "small", "train", 16, 1024, "bf16", 20, 5),
  };
  return cases;
}

const BenchCase& find_bench_case(const std::string& name) {
  for (const auto& c : bench_cases())
    if (c.name == name) return c;
  fail("unknown bench case '", name, "' (expected one of: ", case_names(), "; or all, list)");
}

BenchCase apply_overrides(BenchCase c, const BenchOverrides& o) {
  if (o.arch) c.arch = *o.arch;
  if (o.preset) c.preset = *o.preset;
  if (o.mode) c.mode = *o.mode;
  if (o.precision) c.precision = *o.precision;
  if (o.attention) c.attention = *o.attention;
  if (o.checkpointing) c.checkpointing = *o.checkpointing;
  if (o.batch) c.batch = *o.batch;
  if (o.seq_len) c.seq_len = *o.seq_len;
  return c;
}

models::ModelConfig bench_model_config(const BenchCase& c, int64_t vocab_size) {
  check_case(c);
  if (c.arch == "gpt2") fail("bench case ", c.name, ": a gpt2 case has a GPT-2 config (bench_gpt2_config)");
  models::Architecture arch = c.arch == "bert" ? models::Architecture::Bert : models::Architecture::DistilBert;
  models::ModelConfig config = models::preset_config(arch, c.preset, vocab_size);
  config.num_labels = 2;
  if (c.seq_len > config.max_position_embeddings)
    fail("bench case ", c.name, ": --seq-len ", c.seq_len, " exceeds the model's max_position_embeddings ",
         config.max_position_embeddings);
  return config;
}

models::Gpt2Config bench_gpt2_config(const BenchCase& c) {
  check_case(c);
  if (c.arch != "gpt2") fail("bench case ", c.name, ": --arch ", c.arch, " is not gpt2");
  models::Gpt2Config config;
  try {
    config = models::Gpt2Config::preset(c.preset);
  } catch (const Error& e) {
    fail("bench case ", c.name, ": --preset: ", e.what());
  }
  if (c.seq_len > config.n_positions)
    fail("bench case ", c.name, ": --seq-len ", c.seq_len, " exceeds the model's n_positions ", config.n_positions);
  return config;
}

nlohmann::json bench_model_config_json(const BenchCase& c, int64_t vocab_size) {
  if (c.arch == "gpt2") return bench_gpt2_config(c).to_json();
  return models::model_config_to_json(bench_model_config(c, vocab_size));
}

double gpt2_matmul_params(const models::Gpt2Config& config) {
  const double V = double(config.vocab_size), C = double(config.n_embd), L = double(config.n_layer);
  return V * C + L * (12 * C * C + 13 * C) + 2 * C;
}

double gpt2_train_flops_per_step(const models::Gpt2Config& config, int64_t batch, int64_t seq_len) {
  const double tokens = double(batch) * double(seq_len);
  const double L = double(config.n_layer), C = double(config.n_embd), T = double(seq_len);
  return 6 * gpt2_matmul_params(config) * tokens + 12 * L * C * T * tokens;
}

double model_flops_per_step(const models::ModelConfig& config, int64_t batch, int64_t seq_len, bool training) {
  const double C = double(config.hidden_size), I = double(config.intermediate_size);
  const double L = double(config.num_layers), B = double(batch), T = double(seq_len);
  const double layer_weights = 4 * C * C + 2 * C * I;
  const double head_weights = C * C + C * double(config.num_labels);
  const double forward = 2 * layer_weights * L * B * T + 2 * head_weights * B + 4 * B * T * T * C * L;
  return training ? 3 * forward : forward;
}

namespace {

// What the timed loop measured.
struct Timed {
  int64_t steps = 0;
  double elapsed_s = 0;
  double communication_s = 0;  // data parallel: rank 0's time in collectives during the timed steps
  energy::WindowResult window;
  std::string device_name;
};

// `warmup` untimed steps, then at least `steps` timed ones (and at least min_seconds) inside one
// energy window; `wait_for_device` marks the end of queued work on both sides of the timed region.
Timed time_steps(const Device& device, int64_t warmup, int64_t steps, double min_seconds, dist::ProcessGroup* group,
                 const std::vector<std::string>& job_gpu_bus_ids, const std::function<void()>& step,
                 const std::function<void()>& wait_for_device) {
  for (int64_t i = 0; i < warmup; ++i) step();
  wait_for_device();

  energy::EnergyOptions eo;
  // The GPU the case runs on (a data-parallel job's rank 0: every GPU of the job on its machine),
  // found by its PCI bus id (CUDA's index is not NVML's under CUDA_VISIBLE_DEVICES); none on the CPU.
  const std::string bus_id = device.is_cuda() ? cuda_pci_bus_id(device.index) : "";
  if (!job_gpu_bus_ids.empty()) eo.gpu_pci_bus_ids = job_gpu_bus_ids;
  else if (!bus_id.empty()) eo.gpu_pci_bus_ids = {bus_id};
  else eo.gpus = device.is_cuda() ? std::vector<int>{device.index} : std::vector<int>{};
  if (device.is_cuda()) {
    // The window's edges read the GPU's counter directly; a quiet sampler keeps its CPU time (a
    // counter read costs ~4 ms on an H100) out of the timed loop, as the peers run none.
    eo.interval_ms = 1000;
    eo.counter_period_ms = 3600 * 1000;
  }
  eo.on_warning = [](const std::string& w) { std::fprintf(stderr, "wattwise: energy: %s\n", w.c_str()); };
  energy::EnergyMonitor monitor(eo);
  monitor.start();
  monitor.begin_window("bench");
  const auto start = std::chrono::steady_clock::now();
  const double communication_before = group ? group->communication_seconds() : 0.0;
  Timed t;
  // Data parallel: rank 0's clock decides, so every rank takes the same number of steps.
  auto more = [&] {
    const bool here = t.steps < steps || seconds_since(start) < min_seconds;
    if (!group) return here;
    std::vector<double> flag = {group->rank() == 0 && here ? 1.0 : 0.0};
    group->all_reduce_sum(flag);
    return flag[0] > 0;
  };
  while (more()) {
    step();
    ++t.steps;
  }
  wait_for_device();
  t.elapsed_s = seconds_since(start);
  if (group) t.communication_s = group->communication_seconds() - communication_before;
  t.window = monitor.end_window("bench");
  monitor.stop();
  t.device_name = device.is_cuda() ? monitor.host().gpu_model : monitor.host().cpu_model;
  return t;
}

// AdamW with a constant learning rate; bert/distilbert with torch.optim.AdamW's defaults (lr 5e-5
// as the peer sets it, weight decay 0.01, no clipping), gpt2 with the GPT-2 pretraining recipe (lr 6e-4,
// weight decay 0.1, betas 0.9/0.95, clipping at global norm 1.0, what `wattwise train` defaults to).
// fp16 with dynamic loss scaling as torch.amp.GradScaler's defaults.
train::TrainerOptions bench_trainer_options(const BenchCase& c, int64_t total_steps, uint64_t seed,
                                            dist::ProcessGroup* group, int zero) {
  train::TrainerOptions t;
  t.group = group;
  t.zero = zero;
  t.optimizer.kind = train::OptimizerKind::AdamW;
  t.schedule.kind = train::ScheduleKind::Constant;
  t.schedule.total_steps = total_steps;
  if (c.arch == "gpt2") {
    t.optimizer.weight_decay = 0.1;
    t.optimizer.beta1 = 0.9;
    t.optimizer.beta2 = 0.95;
    t.optimizer.eps = 1e-8;
    t.optimizer.max_grad_norm = 1.0;
    t.schedule.learning_rate = 6e-4;
  } else {
    t.optimizer.weight_decay = 0.01;
    t.schedule.learning_rate = 5e-5;
  }
  t.seed = seed;
  if (c.precision == "fp16") {
    t.dynamic_loss_scaling = true;
    t.initial_loss_scale = 65536.0f;
    t.growth_interval = 2000;
  }
  return t;
}

// One micro-batch: data parallel, this rank's batch is 1/N of the job's (its gradient weighs 1/N,
// the ranks' gradients are summed: the mean over the job's batch, as DDP averages).
std::optional<train::StepResult> train_step(train::Trainer& trainer, const models::Batch& batch,
                                            dist::ProcessGroup* group) {
  if (!group) return trainer.train_micro_batch(batch);
  const int64_t rows = batch.input_ids.size(0);
  // Every rank's batch has the case's shape and fully scored labels: the same share everywhere.
  return trainer.train_micro_batch_shard(batch, 1.0 / group->size(), rows * group->size(),
                                         /*same_on_every_rank=*/true);
}

// The fields every case reports; the caller has set the model's own (params, model_config,
// attention, final_loss, skipped_steps).
void add_common_fields(nlohmann::json& j, const BenchCase& c, const BenchOptions& o, const Device& device,
                       int64_t warmup, const Timed& t, double flops) {
  // A data-parallel job: every rank ran `batch` rows per step; rates and energy per sample are the job's.
  const int64_t ranks = o.group ? o.group->size() : 1;
  const int64_t samples = t.steps * c.batch * ranks, tokens = samples * c.seq_len;
  const double achieved = flops * double(t.steps) * double(ranks) / t.elapsed_s / 1e12;
  j["schema"] = "wattwise-bench/1";
  j["tool"] = "wattwise";
  j["case"] = c.name;
  j["arch"] = c.arch;
  j["preset"] = c.preset;
  j["mode"] = c.mode;
  j["batch"] = c.batch;
  j["seq_len"] = c.seq_len;
  j["precision"] = c.precision;
  j["checkpointing"] = c.checkpointing;
  j["optimizer"] = c.mode == "train" ? "adamw" : "none";
  j["device"] = device.str();
  j["device_name"] = t.device_name;
  j["seed"] = o.seed;
  j["warmup_steps"] = warmup;
  j["steps"] = t.steps;
  j["elapsed_s"] = t.elapsed_s;
  j["samples"] = samples;
  j["tokens"] = tokens;
  j["samples_per_s"] = double(samples) / t.elapsed_s;
  j["tokens_per_s"] = double(tokens) / t.elapsed_s;
  j["ms_per_step"] = 1e3 * t.elapsed_s / double(t.steps);
  j["ms_per_sample"] = 1e3 * t.elapsed_s / double(samples);
  add_energy(j, t.window, samples);
  j["peak_memory_bytes"] = memory_stats(device).peak;
  j["peak_memory_counts"] = "wattwise tensors, arenas and parameters (library workspaces not included)";
  if (o.group)
    j["distributed"] = {{"ranks", ranks},
                        {"backend", o.group->backend()},
                        {"communication_s", t.communication_s},
                        {"communication_share", t.communication_s / t.elapsed_s},
                        {"samples_per_s_per_rank", double(samples) / t.elapsed_s / double(ranks)},
                        {"tokens_per_s_per_rank", double(tokens) / t.elapsed_s / double(ranks)},
                        {"zero", o.zero},
                        {"energy_scope", o.job_gpu_bus_ids.empty()
                                             ? "rank 0's device"
                                             : "the job's GPUs on rank 0's machine, by PCI bus id, summed"}};
  j["model_flops_per_step"] = flops;
  j["model_flops_per_sample"] = flops / double(c.batch);
  j["achieved_tflops"] = achieved;
  j["peak_tflops"] = o.peak_tflops ? nlohmann::json(*o.peak_tflops) : nlohmann::json(nullptr);
  j["mfu"] = o.peak_tflops ? nlohmann::json(achieved / *o.peak_tflops) : nlohmann::json(nullptr);
}

nlohmann::json loss_json(double loss) { return std::isfinite(loss) ? nlohmann::json(loss) : nlohmann::json(nullptr); }

nlohmann::json run_classifier_case(const BenchCase& c, const BenchOptions& o, int64_t steps, int64_t warmup) {
  const models::ModelConfig config = bench_model_config(c, o.vocab_size);
  const Device device = parse_device(o.device);
  const bool training = c.mode == "train";

  // Peak memory counts everything the case holds: weights, gradients, optimizer state, activations.
  // An inference case builds an inference-only model: no gradients, and no f32 masters on the device
  // beside its 16-bit weights.
  reset_peak_memory(device);
  models::SequenceClassifier model(config, device,
                                   training ? models::ModelPurpose::Training : models::ModelPurpose::Inference);
  model.init_weights(o.seed);
  apply_execution(model, {c.precision, c.attention, c.checkpointing});
  const uint64_t rank = o.group ? uint64_t(o.group->rank()) : 0;  // each rank its own rows
  models::Batch batch = random_batch(config, c.batch, c.seq_len, o.seed + 1 + rank);
  if (!training) {
    // Inference times what the PyTorch peer times: logits from a batch already on the device, no
    // loss and no read-back per batch (the loss's read-back waited for every batch, which left the
    // GPU idle between batch-1 forwards).
    batch.labels = Tensor();
    batch.input_ids = batch.input_ids.to(device);
    batch.attention_mask = batch.attention_mask.to(device);
    if (batch.token_type_ids.defined()) batch.token_type_ids = batch.token_type_ids.to(device);
  }

  std::optional<train::Trainer> trainer;
  if (training) trainer.emplace(model, bench_trainer_options(c, warmup + steps, o.seed, o.group, o.zero));
  Tensor logits;
  double last_loss = std::nan("");
  auto step = [&] {
    if (training) {
      if (auto r = train_step(*trainer, batch, o.group)) last_loss = r->loss;
    } else {
      logits = model.forward(batch, /*training=*/false);
    }
  };
  // Reading a result back waits for every queued kernel: the end of the timed region.
  auto wait_for_device = [&] {
    if (training) model.parameters().flat_values().slice(0, 1).to_float_vector();
    else if (logits.defined()) logits.to_float_vector();  // undefined before the first step
  };
  const Timed t = time_steps(device, warmup, steps, o.min_seconds, o.group, o.job_gpu_bus_ids, step, wait_for_device);

  nlohmann::json j;
  add_common_fields(j, c, o, device, warmup, t, model_flops_per_step(config, c.batch, c.seq_len, training));
  j["attention"] = models::attention_kernel_name(model.attention_kernel());
  j["params"] = model.parameters().numel();
  j["model_config"] = models::model_config_to_json(config);
  j["final_loss"] = loss_json(last_loss);
  if (training) j["skipped_steps"] = trainer->skipped_steps();
  if (o.group && training) j["distributed"]["memory_per_rank"] = rank_memory(*o.group, *trainer, model, device);
  return j;
}

// GPT-2 training through the path `wattwise train` takes: Trainer::train_micro_batch on a host
// batch, which on a GPU runs the whole step (forward, loss and its gradient, backward, clipping,
// AdamW) as one CUDA-graph replay (Gpt2LMHeadModel::train_step_graphed).
nlohmann::json run_gpt2_case(const BenchCase& c, const BenchOptions& o, int64_t steps, int64_t warmup) {
  const models::Gpt2Config config = bench_gpt2_config(c);
  const Device device = parse_device(o.device);

  reset_peak_memory(device);
  models::Gpt2LMHeadModel model(config, device);
  model.init_weights(o.seed);
  apply_execution(model, {c.precision, c.attention, c.checkpointing});
  const uint64_t rank = o.group ? uint64_t(o.group->rank()) : 0;  // each rank its own rows
  const models::Batch batch = random_lm_batch(config, c.batch, c.seq_len, o.seed + 1 + rank);
  train::Trainer trainer(model, bench_trainer_options(c, warmup + steps, o.seed, o.group, o.zero));
  double last_loss = std::nan("");
  auto step = [&] {
    if (auto r = train_step(trainer, batch, o.group)) last_loss = r->loss;
  };
  auto wait_for_device = [&] { model.parameters().flat_values().slice(0, 1).to_float_vector(); };
  const Timed t = time_steps(device, warmup, steps, o.min_seconds, o.group, o.job_gpu_bus_ids, step, wait_for_device);

  nlohmann::json j;
  add_common_fields(j, c, o, device, warmup, t, gpt2_train_flops_per_step(config, c.batch, c.seq_len));
  j["attention"] = models::attention_kernel_name(model.attention_kernel());
  j["params"] = model.parameters().numel();
  j["model_config"] = config.to_json();
  j["final_loss"] = loss_json(last_loss);
  j["skipped_steps"] = trainer.skipped_steps();
  if (o.group) j["distributed"]["memory_per_rank"] = rank_memory(*o.group, trainer, model, device);
  return j;
}

}  // namespace

nlohmann::json run_bench_case(const BenchCase& c, const BenchOptions& o) {
  const int64_t steps = o.steps.value_or(c.steps), warmup = o.warmup.value_or(c.warmup);
  if (steps <= 0) fail("--steps must be positive, got ", steps);
  if (warmup < 0) fail("--warmup must not be negative, got ", warmup);
  if (o.min_seconds < 0) fail("--min-seconds must not be negative, got ", o.min_seconds);
  if (o.peak_tflops && !(*o.peak_tflops > 0)) fail("--peak-tflops must be positive, got ", *o.peak_tflops);
  check_case(c);
  return c.arch == "gpt2" ? run_gpt2_case(c, o, steps, warmup) : run_classifier_case(c, o, steps, warmup);
}

std::string bench_table(const std::vector<nlohmann::json>& results) {
  std::ostringstream os;
  char line[512];
  std::snprintf(line, sizeof line, "%-16s %-26s %5s %5s %5s %12s %12s %10s %10s %10s %10s %10s %9s %7s\n",
                "tool", "case", "batch", "len", "prec", "samples/s", "tokens/s", "ms/step", "ms/sample", "J/sample",
                "mJ/token", "peak MiB", "TFLOP/s", "MFU");
  os << line;
  const nlohmann::json* ours = nullptr;
  for (const auto& r : results) {
    const bool is_ours = r.value("tool", "") == "wattwise";
    const double peak = number_or_nan(r, "peak_memory_bytes") / (1024.0 * 1024.0);
    const double mj_per_token = 1e3 * number_or_nan(r, "energy_j") / number_or_nan(r, "tokens");
    std::snprintf(line, sizeof line, "%-16s %-26s %5lld %5lld %5s %12s %12s %10s %10s %10s %10s %10s %9s %7s\n",
                  r.value("tool", "?").c_str(), r.value("case", "?").c_str(), (long long)r.value("batch", 0),
                  (long long)r.value("seq_len", 0), r.value("precision", "?").c_str(),
                  format(number_or_nan(r, "samples_per_s"), "%.1f").c_str(),
                  format(number_or_nan(r, "tokens_per_s"), "%.0f").c_str(),
                  format(number_or_nan(r, "ms_per_step"), "%.3f").c_str(),
                  format(number_or_nan(r, "ms_per_sample"), "%.4f").c_str(),
                  format(number_or_nan(r, "j_per_sample"), "%.4f").c_str(), format(mj_per_token, "%.4f").c_str(),
                  format(peak, "%.0f").c_str(),
                  format(number_or_nan(r, "achieved_tflops"), "%.2f").c_str(),
                  format(100 * number_or_nan(r, "mfu"), "%.1f%%").c_str());
    os << line;
    if (is_ours) {
      ours = &r;
    } else if (ours && ours->value("case", "") == r.value("case", "")) {
      auto ratio = [&](const char* key) { return number_or_nan(*ours, key) / number_or_nan(r, key); };
      // Language models are quoted per token (the same ratios: both sides run the same shape).
      const bool lm = r.value("arch", "") == "gpt2";
      std::snprintf(line, sizeof line, "  ours/%-10s %s x%s, %s x%s, peak memory x%s\n", r.value("tool", "?").c_str(),
                    lm ? "tokens/s" : "samples/s", format(ratio(lm ? "tokens_per_s" : "samples_per_s"), "%.2f").c_str(),
                    lm ? "J/token" : "J/sample", format(ratio("j_per_sample"), "%.2f").c_str(),
                    format(ratio("peak_memory_bytes"), "%.2f").c_str());
      os << line;
    }
  }
  return os.str();
}

int run_bench(const BenchOptions& o, std::ostream& out) {
  const bool shape_flags = o.overrides.arch || o.overrides.preset || o.overrides.mode || o.overrides.batch ||
                           o.overrides.seq_len || o.overrides.precision || o.overrides.attention ||
                           o.overrides.checkpointing;
  std::vector<BenchCase> cases;
  if (o.case_name == "all" || o.case_name == "list") {
    for (const auto& c : bench_cases()) cases.push_back(apply_overrides(c, o.overrides));
  } else if (!o.case_name.empty()) {
    cases.push_back(apply_overrides(find_bench_case(o.case_name), o.overrides));
  } else if (shape_flags) {
    BenchCase c;
    c.precision = "fp32";  // the one precision every device runs
    c.steps = 20;
    c.warmup = 5;
    if (o.overrides.arch == "gpt2") c.preset = "small";  // GPT-2 has no "base" preset
    cases.push_back(apply_overrides(c, o.overrides));
  } else {
    fail("bench needs --case NAME (one of: ", case_names(), "; or all, list) or a shape (--arch, --preset, "
         "--mode, --batch, --seq-len, --precision)");
  }

  std::string json_lines;
  if (o.case_name == "list") {
    char line[256];
    std::snprintf(line, sizeof line, "%-26s %-10s %-6s %-5s %5s %5s %-5s %6s %6s\n", "case", "arch", "preset",
                  "mode", "batch", "len", "prec", "steps", "warmup");
    out << line;
    for (const auto& c : cases) {
      std::snprintf(line, sizeof line, "%-26s %-10s %-6s %-5s %5lld %5lld %-5s %6lld %6lld\n", c.name.c_str(),
                    c.arch.c_str(), c.preset.c_str(), c.mode.c_str(), (long long)c.batch, (long long)c.seq_len,
                    c.precision.c_str(), (long long)o.steps.value_or(c.steps),
                    (long long)o.warmup.value_or(c.warmup));
      nlohmann::json j = {{"case", c.name}, {"arch", c.arch}, {"preset", c.preset}, {"mode", c.mode},
                          {"batch", c.batch}, {"seq_len", c.seq_len}, {"precision", c.precision},
                          {"attention", c.attention}, {"checkpointing", c.checkpointing},
                          {"steps", o.steps.value_or(c.steps)}, {"warmup", o.warmup.value_or(c.warmup)}};
      // Flags that fit one architecture may not fit another (--preset base, a --seq-len beyond GPT-2
      // tiny's 64 positions): such a case is listed with its error, so the others stay usable.
      try {
        j["model_config"] = bench_model_config_json(c, o.vocab_size);
      } catch (const Error& e) {
        j["error"] = e.what();
        out << line << "  not runnable with these flags: " << e.what() << "\n";
        json_lines += j.dump() + "\n";
        continue;
      }
      out << line;
      json_lines += j.dump() + "\n";
    }
    if (!o.json_path.empty()) io::write_file_atomic(o.json_path, json_lines);
    return 0;
  }

  // Started by a launcher (`wattwise launch --nproc N -- bench ...`, torchrun): the training cases
  // run data-parallel, one rank per GPU (each takes its LOCAL_RANK's), and rank 0 reports.
  const dist::World world = dist::world_from_environment();
  std::unique_ptr<dist::ProcessGroup> group;
  BenchOptions options = o;
  if (world.joins()) {
    if (!o.peer.empty()) fail("bench --peer runs in one process: start the peer comparison without a launcher");
    for (const auto& c : cases)
      if (c.mode != "train") fail("bench case ", c.name, " is ", c.mode, ": only training cases run data-parallel");
    const Device device = rank_device(o.device, world, "--device");
    options.device = device.str();
    nlohmann::json what = nlohmann::json::array();
    for (const auto& c : cases) what.push_back({c.name, c.arch, c.preset, c.batch, c.seq_len, c.precision, c.attention, c.checkpointing});
    group = join_launched_job(world, device, std::chrono::minutes(10),
                              "wattwise " + wattwise_version() + ", bench " + what.dump() + " steps " +
                                  std::to_string(o.steps.value_or(-1)) + " warmup " +
                                  std::to_string(o.warmup.value_or(-1)) + " seed " + std::to_string(o.seed) +
                                  " zero " + std::to_string(o.zero));
    options.group = group.get();
    // Rank 0 meters every GPU of the job on its machine: the job's energy, as the peers sum theirs.
    const std::vector<JobMachine> machines = job_machines(*group, device);
    if (group->rank() == 0) options.job_gpu_bus_ids = machines.front().gpu_pci_bus_ids;
  } else if (o.zero != 0) {
    fail("bench --zero ", o.zero, " shards the training cases over the ranks of a data-parallel job: start it with "
         "`wattwise launch --nproc N -- bench ...` (or torchrun)");
  }
  const bool reports = !group || group->rank() == 0;
  std::vector<nlohmann::json> results;
  for (const auto& c : cases) {
    if (!reports) {
      run_bench_case(c, options);
      continue;
    }
    std::fprintf(stderr, "bench: %s (%s %s %s, batch %lld, len %lld, %s) ...\n", c.name.c_str(), c.arch.c_str(),
                 c.preset.c_str(), c.mode.c_str(), (long long)c.batch, (long long)c.seq_len, c.precision.c_str());
    nlohmann::json ours = run_bench_case(c, options);
    results.push_back(ours);
    json_lines += ours.dump() + "\n";
    if (!o.peer.empty()) {
      if (auto peer = run_peer(c, ours, o, o.steps.value_or(c.steps), o.warmup.value_or(c.warmup))) {
        results.push_back(*peer);
        json_lines += peer->dump() + "\n";
      }
    }
    // Written after every case, so an interrupted `--case all` keeps what it measured.
    if (!o.json_path.empty()) io::write_file_atomic(o.json_path, json_lines);
  }
  if (!reports) return 0;
  out << bench_table(results);
  for (const auto& r : results) {
    if (r.value("tool", "") != "wattwise") continue;
    out << r.value("case", "?") << ": energy from " << r.value("energy_source", "?") << " ("
        << r.value("energy_provenance", "?") << ")\n";
  }
  return 0;
}

}  // namespace ww::experiment
