#include <chrono>

#include "cli/commands.h"
#include "cli/validators.h"
#include "wattwise/experiment/limits.h"
#include "wattwise/serve/server.h"

namespace ww::cli {

Command serve_command(CLI::App& app) {
  auto options = std::make_shared<serve::ServeOptions>();
  auto device = std::make_shared<std::string>("auto");
  auto max_wait_ms = std::make_shared<double>(5.0);
  CLI::App* cmd = app.add_subcommand("serve", "Serve a sequence classifier over HTTP (POST /predict, GET /health, /info, /metrics)");
  cmd->add_option("--model", options->model.model_dir,
                  "Model folder (config.json, model.safetensors, tokenizer files), or a hub id org/name[@revision] in the Hugging Face cache")
      ->required()
      ->transform(model_folder());
  cmd->add_option("--tokenizer", options->model.tokenizer, "Tokenizer folder (default: the model folder), or a hub id")
      ->transform(model_folder());
  cmd->add_option("--max-length", options->model.max_length, "Longest input in tokens (default: the model's limit, at most 512)")
      ->check(integer_in(experiment::limits::kOptionalLength, "tokens per input (0: the model's limit, at most 512)"));
  cmd->add_option("--device", *device, "cpu, cuda[:N] or auto (a GPU when one is visible)")->capture_default_str();
  cmd->add_option("--precision", options->model.precision, "fp32, tf32, bf16, fp16 (16-bit: GPU only); quantized: int8-weight, int8, fp8 (fp8: GPU 8.9+)")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "tf32", "bf16", "fp16", "int8-weight", "int8", "fp8"}));
  cmd->add_option("--calibration-data", options->calibration.data,
                  "int8/fp8: texts that calibrate the static input scales (JSONL, TSV or plain lines)");
  cmd->add_option("--calibration", options->calibration.examples, "int8/fp8: how many of those texts")
      ->capture_default_str()
      ->check(integer_in(experiment::limits::kCalibration, "the number of examples that calibrate the int8/fp8 input scales"));
  cmd->add_option("--attention", options->model.attention, "Attention kernel: auto (fused on a GPU), fused or reference")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "fused", "reference"}));
  cmd->add_flag("--allow-nonfinite", options->model.allow_nonfinite, "Load a checkpoint holding NaN or Inf weights anyway");
  cmd->add_option("--host", options->host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", options->port, "Port to listen on (0: any free port, printed and written to --port-file)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--port-file", options->port_file, "File that receives the port once the server listens");
  cmd->add_option("--max-batch", options->policy.max_batch, "Inputs per forward pass (and per request)")
      ->capture_default_str()
      ->check(integer_in(experiment::limits::kBatchSize, "inputs per forward pass"));
  cmd->add_option("--max-batch-tokens", options->policy.max_batch_tokens, "Padded tokens per forward pass (inputs x longest)")
      ->capture_default_str()
      ->check(integer_in(experiment::limits::kSequenceLength, "padded tokens per forward pass"));
  cmd->add_option("--max-wait-ms", *max_wait_ms, "Longest time a request waits for others to share its batch")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 60000.0));
  cmd->add_option("--max-queue", options->max_queue, "Requests waiting for a batch; beyond, 503 with Retry-After")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  cmd->add_option("--max-body-bytes", options->max_body_bytes, "Largest request body; beyond, 413")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(2), int64_t(1) << 30));
  cmd->add_option("--timeout-ms", options->timeout_ms, "Longest time from a request's arrival to its answer; beyond, 504")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(1), int64_t(3'600'000)));
  cmd->add_option("--threads", options->threads, "Connections served at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--emissions", options->emissions, "CodeCarbon emissions.csv that gets the server's row at shutdown");
  return {cmd, [options, device, max_wait_ms] {
            options->model.device = parse_device(*device);
            options->policy.max_wait = std::chrono::microseconds(int64_t(*max_wait_ms * 1e3));
            return serve::run_serve(*options);
          }};
}

}  // namespace ww::cli
