#include <iostream>

#include "cli/commands.h"
#include "cli/validators.h"
#include "wattwise/experiment/bench.h"

namespace ww::cli {

namespace {
// Values of the shape flags; only the flags given replace the case's fields.
struct ShapeFlags {
  std::string arch, preset, mode, precision, attention, checkpointing;
  int64_t batch = 0, seq_len = 0, steps = 0, warmup = 0;
  double peak_tflops = 0;
};
}  // namespace

Command bench_command(CLI::App& app) {
  auto options = std::make_shared<experiment::BenchOptions>();
  auto flags = std::make_shared<ShapeFlags>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "Benchmark training or inference: samples/s, tokens/s, J per sample, peak memory, MFU");
  cmd->add_option("--case", options->case_name, "A named case, 'all' or 'list' (flags below replace its fields)");
  auto* arch = cmd->add_option("--arch", flags->arch, "bert, distilbert (sequence classification) or gpt2 (causal LM)")
                   ->check(CLI::IsMember({"bert", "distilbert", "gpt2"}));
  auto* preset = cmd->add_option("--preset", flags->preset,
                                 "Model size: tiny, mini, small, minilm or base (gpt2: tiny, mini or small = 124M, the default)")
                     ->check(CLI::IsMember({"tiny", "mini", "small", "minilm", "base"}));
  auto* mode = cmd->add_option("--mode", flags->mode,
                               "train (forward, backward, AdamW step) or infer (forward; not for gpt2)")
                   ->check(CLI::IsMember({"train", "infer"}));
  auto* batch = cmd->add_option("--batch", flags->batch, "Examples per step")
                   ->check(integer_in(experiment::limits::kBatchSize, "examples per step"));
  auto* seq_len = cmd->add_option("--seq-len", flags->seq_len, "Tokens per example (all real, no padding)")
                     ->check(integer_in(experiment::limits::kSequenceLength, "tokens per example"));
  auto* precision = cmd->add_option("--precision", flags->precision, "fp32, tf32, bf16 or fp16 (16-bit: GPU only)")
                        ->check(CLI::IsMember({"fp32", "tf32", "bf16", "fp16"}));
  auto* attention = cmd->add_option("--attention", flags->attention, "auto, fused or reference")
                        ->check(CLI::IsMember({"auto", "fused", "reference"}));
  auto* checkpointing = cmd->add_option("--checkpointing", flags->checkpointing, "none, every, every-K or sqrt");
  cmd->add_option("--device", options->device, "cpu, cuda[:N] or auto (a GPU when one is visible)")
      ->capture_default_str();
  auto* steps = cmd->add_option("--steps", flags->steps, "Timed steps (default: the case's)")
                   ->check(integer_in({1, experiment::limits::kStepCount.max}, "timed steps"));
  auto* warmup = cmd->add_option("--warmup", flags->warmup, "Untimed steps before them (default: the case's)")
                    ->check(integer_in(experiment::limits::kStepCount, "untimed steps before the timed ones"));
  cmd->add_option("--min-seconds", options->min_seconds,
                  "Keep stepping until the timed region lasts this long (GPU joules: NVML's counter needs ~6 s "
                  "for ~1%; 2 s regions varied ~5% on an H100)")
      ->capture_default_str()
      ->check(number_in(0, 86400, "seconds the timed region lasts at least"));
  auto* peak = cmd->add_option("--peak-tflops", flags->peak_tflops,
                               "Matmul rate (TFLOP/s) that MFU divides by (default: MFU omitted)")
                  ->check(number_in(0, 1e9, "the peak matmul rate in TFLOP/s", true));
  cmd->add_option("--json", options->json_path, "Write one JSON object per case and line to this file");
  cmd->add_option("--peer", options->peer, "Also run the PyTorch peer on each case: pytorch (eager) or pytorch-compile")
      ->check(CLI::IsMember({"pytorch", "pytorch-compile"}));
  cmd->add_option("--peer-script", options->peer_script, "Path of bench/peer_pytorch.py (default: found beside the binary)");
  cmd->add_option("--python", options->python, "Python interpreter for the peer")->capture_default_str();
  cmd->add_option("--zero", options->zero,
                  "Under a launcher: the ZeRO stage of the training cases (0, 1 or 2, as train.zero)")
      ->check(CLI::Range(0, 2))
      ->capture_default_str();
  cmd->add_option("--seed", options->seed, "Seed of the weights and inputs")
      ->capture_default_str()
      ->check(integer_in(experiment::limits::kSeed, "the seed of the weights and inputs"));
  return {cmd, [=] {
            auto& o = options->overrides;
            if (arch->count()) o.arch = flags->arch;
            if (preset->count()) o.preset = flags->preset;
            if (mode->count()) o.mode = flags->mode;
            if (precision->count()) o.precision = flags->precision;
            if (attention->count()) o.attention = flags->attention;
            if (checkpointing->count()) o.checkpointing = flags->checkpointing;
            if (batch->count()) o.batch = flags->batch;
            if (seq_len->count()) o.seq_len = flags->seq_len;
            if (steps->count()) options->steps = flags->steps;
            if (warmup->count()) options->warmup = flags->warmup;
            if (peak->count()) options->peak_tflops = flags->peak_tflops;
            return experiment::run_bench(*options, std::cout);
          }};
}

}  // namespace ww::cli
