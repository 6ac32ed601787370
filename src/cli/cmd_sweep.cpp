#include "cli/commands.h"
#include "cli/validators.h"
#include "wattwise/experiment/sweep.h"

namespace ww::cli {

Command sweep_command(CLI::App& app) {
  auto o = std::make_shared<experiment::SweepOptions>();
  auto device = std::make_shared<std::string>("auto");
  CLI::App* cmd = app.add_subcommand("sweep", "Accuracy, latency and energy over inference knobs; the Pareto frontier");
  // Each option's TOML key (docs/SWEEPS.md): given on the command line, it wins over --config.
  std::vector<std::pair<CLI::Option*, std::string>> keys;
  auto key = [&](CLI::Option* option, const std::string& name) { keys.emplace_back(option, name); return option; };
  key(cmd->add_option("--model", o->model_dir, "Model folder (Hugging Face layout), or a hub id in the Hugging Face cache")
          ->transform(model_folder()),
      "model");
  key(cmd->add_option("--data", o->data, "aclImdb folder or .tar.gz, GLUE task folder, or CSV/TSV/JSONL file"), "data");
  key(cmd->add_option("--split", o->split, "Split to evaluate: train, dev (validation) or test")->capture_default_str(), "split");
  key(cmd->add_option("--layers", o->layers, "Axis: encoder layers kept (the first k; no retraining)")
          ->check(integer_in(experiment::limits::kLayers, "encoder layers kept")),
      "layers");
  key(cmd->add_option("--seq-lens", o->max_lengths, "Axis: max sequence lengths (truncation at tokenisation)")
          ->check(integer_in(experiment::limits::kSequenceLength, "a max sequence length")),
      "max_length");
  key(cmd->add_option("--precisions", o->precisions, "Axis: precision names as eval takes them (fp32, tf32, bf16, fp16, ...)"), "precision");
  key(cmd->add_option("--attention", o->attention, "Axis: attention kernels (auto, fused, reference)"), "attention");
  key(cmd->add_option("--batch-sizes", o->batch_sizes, "Axis: batch sizes")->check(integer_in(experiment::limits::kBatchSize, "a batch size")), "batch_size");
  key(cmd->add_option("--dynamic-padding", o->dynamic_padding, "Axis: on (pad to each batch's longest) and/or off (pad to the max length)"),
      "dynamic_padding");
  key(cmd->add_flag("--skip-failed", o->skip_failed, "Record a configuration that fails (e.g. fp16 on a CPU) as skipped, and go on"),
      "skip_failed");
  key(cmd->add_option("--repeats", o->repeats, "Measured passes per configuration")
          ->capture_default_str()
          ->check(integer_in(experiment::limits::kRepeats, "measured passes per configuration")),
      "repeats");
  key(cmd->add_option("--min-seconds", o->min_seconds, "Measure more passes until they last this long")
          ->capture_default_str()
          ->check(number_in(0, 86400, "seconds of measured passes per configuration at least")),
      "min_seconds");
  key(cmd->add_option("--warmup", o->warmup, "Unmeasured warm-up passes per configuration")
          ->capture_default_str()
          ->check(integer_in(experiment::limits::kWarmupPasses, "unmeasured warm-up passes per configuration")),
      "warmup");
  key(cmd->add_option("--max-examples", o->max_examples, "Score a stratified sample of N examples of the split (0: all)")
          ->capture_default_str()
          ->check(integer_in(experiment::limits::kExampleCount, "examples to score (0: all)")),
      "max_examples");
  key(cmd->add_flag("--allow-nonfinite", o->allow_nonfinite, "Load a checkpoint holding NaN or Inf weights anyway (with a warning per tensor); refused by default"), "allow_nonfinite");
  key(cmd->add_flag("--clean-html", o->clean_html, "Strip HTML tags and collapse whitespace (as IMDB training did)"), "clean_html");
  key(cmd->add_option("--device", *device, "cpu, cuda[:N] or auto (a GPU when one is visible)")->capture_default_str(), "device");
  key(cmd->add_option("--objectives", o->objectives,
                      "Frontier objectives, METRIC:min|max,... (default accuracy:max,joules_per_example:min,latency_p50_ms:min)"),
      "objectives");
  key(cmd->add_option("--runs-dir", o->runs_dir, "Folder that receives the run folder")->capture_default_str(), "runs_dir");
  key(cmd->add_option("--name", o->name, "Run name (the folder is <UTC>_<name>)")->capture_default_str(), "name");
  cmd->add_option("--config", o->config, "A sweep TOML file (docs/SWEEPS.md); flags given here win over it");
  cmd->add_flag("--quiet", o->quiet, "No per-configuration progress lines");
  return {cmd, [o, device, keys] {
            for (const auto& [option, name] : keys)
              if (option->count() > 0) o->given.insert(name);
            if (o->given.count("device") || o->config.empty()) o->device = parse_device(*device);
            else o->device = parse_device("auto");  // the file's device (if any) replaces it
            experiment::run_sweep(*o);
            return 0;
          }};
}

}  // namespace ww::cli
