#pragma once
// `wattwise bench`: throughput, energy, peak memory and model-FLOPs utilisation of one training or
// inference shape, from random-init weights, random token ids and full-length sequences, so the
// figures compare one-to-one with bench/peer_pytorch.py (PyTorch + transformers) on the same GPU.
// The named cases are the side-by-side table of docs/PERFORMANCE.md (BERT, DistilBERT and MiniLM
// training and inference, GPT-2 training); bench/run_harness.py runs them against the peers.
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "wattwise/models/config.h"
#include "wattwise/models/gpt2.h"

namespace ww::dist {
class ProcessGroup;
}

namespace ww::experiment {

// One benchmark shape: the model, what is timed (train: forward + backward + AdamW step; infer:
// forward only) and how it runs.
struct BenchCase {
  std::string name = "custom";  // "custom" for a shape given by flags alone
  std::string arch = "bert";    // bert | distilbert (sequence classification) | gpt2 (causal LM)
  std::string preset = "base";  // bert/distilbert: tiny | mini | small | base (models::preset_config);
                                // gpt2: tiny | mini | small (models::Gpt2Config::preset)
  std::string mode = "train";   // train | infer (gpt2: train only)
  int64_t batch = 32;
  int64_t seq_len = 128;
  std::string precision = "bf16";    // fp32 | tf32 | bf16 | fp16
  std::string attention = "auto";    // auto | fused | reference
  std::string checkpointing = "none";
  int64_t steps = 20;   // timed steps (default for the case)
  int64_t warmup = 5;   // untimed steps first (allocation, CUDA graph capture, loss-scale settling)
};

// The classifier cases, then minilm-train-bf16 and gpt2-train-bf16, in the order of the harness's table.
const std::vector<BenchCase>& bench_cases();
// The case called `name`; an error lists every case name otherwise.
const BenchCase& find_bench_case(const std::string& name);

// Flags that replace a case's fields (or, with no case, describe the whole shape).
struct BenchOverrides {
  std::optional<std::string> arch, preset, mode, precision, attention, checkpointing;
  std::optional<int64_t> batch, seq_len;
};
// The case with the given fields replaced; a changed case keeps its name (the JSON says the shape).
BenchCase apply_overrides(BenchCase bench_case, const BenchOverrides& overrides);

// The model a bert/distilbert case runs: models::preset_config(arch, preset, vocab_size), 2 labels;
// seq_len must fit max_position_embeddings (an error names the case otherwise).
models::ModelConfig bench_model_config(const BenchCase& bench_case, int64_t vocab_size);
// The model a gpt2 case runs: models::Gpt2Config::preset(preset) with GPT-2's vocabulary (50,257);
// seq_len must fit n_positions, the mode must be train (errors name the case otherwise).
models::Gpt2Config bench_gpt2_config(const BenchCase& bench_case);
// The Hugging Face config.json of a case's model, either architecture (what the peer builds).
nlohmann::json bench_model_config_json(const BenchCase& bench_case, int64_t vocab_size);

// Model FLOPs of one step (the standard count, independent of how the engine computes it):
//   forward = 2 · (per-layer matmul weights 4·C² + 2·C·I) · L · B·T        (Q, K, V, out, FFN)
//           + 2 · (C² + C·num_labels) · B                                   (pooler / pre-classifier
//                                                                             and classifier, on the
//                                                                             first token only)
//           + 4 · B·T²·C · L                                               (Q·Kᵀ and P·V)
//   training = 3 × forward (backward = 2 × forward); embeddings, norms and softmax not counted.
double model_flops_per_step(const models::ModelConfig& config, int64_t batch, int64_t seq_len,
                            bool training);

// Matmul parameters of GPT-2 (nanoGPT's count for MFU): every parameter except the position
// embeddings (a lookup, no matmul), the tied token embedding counted once as the LM head's
// [V, C] weight: P = V·C + L·(12·C² + 13·C) + 2·C.
double gpt2_matmul_params(const models::Gpt2Config& config);
// Model FLOPs of one GPT-2 training step, the standard count (PaLM appendix B, nanoGPT):
//   6 · P · B·T  +  12 · L · C · T · B·T
// (6 = forward 2 + backward 4 per parameter and token; the second term is Q·Kᵀ and P·V over the
// full T×T, not halved for the causal mask). Embedding lookups, norms, softmax, loss not counted.
double gpt2_train_flops_per_step(const models::Gpt2Config& config, int64_t batch, int64_t seq_len);

struct BenchOptions {
  std::string case_name;      // a case, "all", "list", or "" (the shape comes from `overrides`)
  BenchOverrides overrides;
  std::string device = "auto";
  std::optional<int64_t> steps, warmup;  // replace the case's counts
  double min_seconds = 0;     // keep stepping until the timed region lasts at least this long
  std::optional<double> peak_tflops;  // matmul rate for MFU; none: MFU omitted
  std::string json_path;      // "" none; one JSON object per line and case
  std::string peer;           // "" none, "pytorch" (eager) or "pytorch-compile"
  std::string peer_script;    // "" = bench/peer_pytorch.py found beside the wattwise binary
  std::string python = "python3";
  uint64_t seed = 1234;
  int64_t vocab_size = 30522;  // bert-base-uncased's (bert/distilbert; gpt2 keeps GPT-2's 50,257)
  // Data parallel (run_bench sets it when a launcher started this process): every rank trains on
  // its own batch of the case's size (weak scaling), the gradients all-reduced each step; rank 0
  // decides when the timed loop ends and reports the job's samples.
  dist::ProcessGroup* group = nullptr;
  int zero = 0;  // data parallel: the ZeRO stage (train.zero) of the training cases
  // Data parallel: the PCI bus ids of the job's GPUs on rank 0's machine, which rank 0 meters (so
  // energy_j is the job's GPUs' sum there); empty: the case's own GPU.
  std::vector<std::string> job_gpu_bus_ids;
};

// Runs one case on `device` and returns its JSON object (schema in docs/PERFORMANCE.md):
// samples/s, tokens/s, ms per step and per sample, energy of the timed region and J per sample,
// peak memory, model FLOPs and (with peak_tflops) MFU.
nlohmann::json run_bench_case(const BenchCase& bench_case, const BenchOptions& options);

// The `wattwise bench` command: runs the chosen cases (and their PyTorch peer when asked), prints
// a table to `out`, writes the JSON lines. `--case list` prints the cases (with json_path: their
// definitions, one JSON object per line). Returns the exit code.
int run_bench(const BenchOptions& options, std::ostream& out);

// The table `run_bench` prints, one row per result (and ratio rows for peers); exposed for tests.
std::string bench_table(const std::vector<nlohmann::json>& results);

}  // namespace ww::experiment
