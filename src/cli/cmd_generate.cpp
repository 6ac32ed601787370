#include <cstdio>

#include "cli/commands.h"
#include "cli/validators.h"
#include "wattwise/experiment/generate.h"

namespace ww::cli {

Command generate_command(CLI::App& app) {
  auto o = std::make_shared<experiment::GenerateRunOptions>();
  auto device = std::make_shared<std::string>("auto");
  auto no_eos_stop = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("generate", "Continue a prompt with a GPT-2 model folder");
  cmd->add_option("--model", o->model_dir,
                  "GPT-2 model folder (config.json, model.safetensors, vocab.json, merges.txt), or a hub id in the Hugging Face cache")
      ->required()
      ->transform(model_folder());
  cmd->add_option("--prompt", o->prompt, "Text to continue")->required();
  cmd->add_option("--max-new-tokens", o->max_new_tokens, "Tokens to generate at most")
      ->capture_default_str()
      ->check(integer_in(experiment::limits::kNewTokens, "tokens to generate at most"));
  cmd->add_flag("--allow-nonfinite", o->allow_nonfinite, "Load a checkpoint holding NaN or Inf weights anyway (with a warning per tensor); refused by default");
  cmd->add_flag("--greedy", o->greedy, "Always take the most likely token (ignores temperature, top-k, top-p, seed)");
  cmd->add_option("--temperature", o->temperature, "Sampling temperature (> 0)")->capture_default_str();
  cmd->add_option("--top-k", o->top_k, "Sample among the k most likely tokens (0: all)")
      ->capture_default_str()
      ->check(integer_in(experiment::limits::kTopK, "the number of most likely tokens to sample among (0: all)"));
  cmd->add_option("--top-p", o->top_p, "Sample within the smallest set of tokens reaching this probability (1: all)")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "Sampling seed (the same seed gives the same text)")
      ->capture_default_str()
      ->check(integer_in(experiment::limits::kSeed, "the sampling seed"));
  cmd->add_flag("--no-eos-stop", *no_eos_stop, "Keep generating after <|endoftext|>");
  cmd->add_option("--device", *device, "cpu, cuda[:N] or auto (a GPU when one is visible)")->capture_default_str();
  cmd->add_option("--precision", o->precision, "fp32, tf32, bf16 or fp16 (16-bit: GPU only)")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "tf32", "bf16", "fp16"}));
  return {cmd, [o, device, no_eos_stop] {
            o->device = parse_device(*device);
            o->stop_at_eos = !*no_eos_stop;
            bool prompt_shown = false;
            // Stream: the prompt, then each piece of text as its token is chosen.
            o->on_text = [&](const std::string& piece) {
              if (!prompt_shown) std::fwrite(o->prompt.data(), 1, o->prompt.size(), stdout), prompt_shown = true;
              std::fwrite(piece.data(), 1, piece.size(), stdout);
              std::fflush(stdout);
            };
            experiment::GenerateRunResult r = experiment::run_generate(*o);
            if (!prompt_shown) std::fwrite(o->prompt.data(), 1, o->prompt.size(), stdout);
            std::fputc('\n', stdout);
            std::fprintf(stderr, "generated %zu tokens in %.3f s (%.1f tokens/s) after a %zu-token prompt\n",
                         r.new_ids.size(), r.seconds, r.tokens_per_s, r.prompt_ids.size());
            return 0;
          }};
}

}  // namespace ww::cli
