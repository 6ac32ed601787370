#include <cstdio>

#include "cli/commands.h"
#include "cli/validators.h"
#include "wattwise/experiment/predict.h"

namespace ww::cli {

Command predict_command(CLI::App& app) {
  auto options = std::make_shared<experiment::PredictOptions>();
  auto device = std::make_shared<std::string>("auto");
  CLI::App* cmd = app.add_subcommand("predict", "Classify texts with a Hugging Face model folder");
  cmd->add_option("--model", options->model_dir,
                  "Model folder (config.json, model.safetensors, tokenizer files), or a hub id org/name[@revision] in the Hugging Face cache")
      ->required()
      ->transform(model_folder());
  cmd->add_option("--input", options->input, "Texts: .jsonl (text, text_pair), .tsv (sentence) or plain lines; - for stdin")
      ->required();
  cmd->add_option("--output", options->output, "Predictions, JSONL in input order; - for stdout")->required();
  cmd->add_option("--text-column", options->columns.text, "The JSONL field or TSV column of the text (default: text; TSV: sentence, ...)");
  cmd->add_option("--text-pair-column", options->columns.text_pair, "The JSONL field or TSV column of a pair's second text");
  cmd->add_option("--tokenizer", options->tokenizer, "Tokenizer folder (default: the model folder), or a hub id")
      ->transform(model_folder());
  cmd->add_option("--max-length", options->max_length, "Truncate to this many tokens (default: the model's limit, at most 512)")
      ->check(integer_in(experiment::limits::kOptionalLength, "tokens per example (0: the model's limit, at most 512)"));
  cmd->add_option("--batch-size", options->batch_size, "Examples per forward pass")
      ->capture_default_str()
      ->check(integer_in(experiment::limits::kBatchSize, "examples per forward pass"));
  cmd->add_option("--device", *device, "cpu, cuda[:N] or auto (a GPU when one is visible)")->capture_default_str();
  cmd->add_option("--precision", options->precision, "fp32, tf32, bf16, fp16 (16-bit: GPU only); quantized: int8-weight, int8, fp8 (fp8: GPU 8.9+)")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "tf32", "bf16", "fp16", "int8-weight", "int8", "fp8"}));
  cmd->add_option("--calibration", options->calibration.examples,
                  "int8/fp8: examples that calibrate the static input scales (max-abs)")
      ->capture_default_str()
      ->check(integer_in(experiment::limits::kCalibration, "the number of examples that calibrate the int8/fp8 input scales"));
  cmd->add_option("--calibration-data", options->calibration.data,
                  "int8/fp8: calibration texts (JSONL, TSV or plain lines; default: the data being run)");
  cmd->add_option("--attention", options->attention, "Attention kernel: auto (fused on a GPU), fused or reference")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "fused", "reference"}));
  cmd->add_flag("--allow-nonfinite", options->allow_nonfinite, "Load a checkpoint holding NaN or Inf weights anyway (with a warning per tensor); refused by default");
  cmd->add_option("--runs-dir", options->runs_dir, "Folder that receives the run folder (metrics.json, energy files)")
      ->capture_default_str();
  return {cmd, [options, device] {
            options->device = parse_device(*device);
            experiment::PredictSummary s = experiment::run_predict(*options);
            std::fprintf(stderr, "predicted %lld examples (%lld tokens) in %.3f s of model time -> %s\n"
                         "energy: %s\nrun folder: %s\n",
                         (long long)s.examples, (long long)s.tokens, s.seconds, options->output.c_str(),
                         s.energy_line.c_str(), s.run_dir.c_str());
            return 0;
          }};
}

}  // namespace ww::cli
