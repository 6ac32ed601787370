// `wattwise tokenize`: text file in, JSON Lines of input ids out.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/validators.h"
#include "wattwise/experiment/run_dir.h"
#include "wattwise/text/tokenize_file.h"

namespace ww::cli {

Command tokenize_command(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "tokenize",
      "Tokenize a text file (.jsonl with \"text\"/\"text_pair\", GLUE .tsv, or plain text, one "
      "example per line) into JSON Lines of input_ids (and token_type_ids for pairs)");
  auto options = std::make_shared<ww::text::TokenizeOptions>();
  sub->add_option("--tokenizer", options->tokenizer,
                  "Tokenizer folder (tokenizer.json, vocab.txt or GPT-2's vocab.json + merges.txt "
                  "[+ tokenizer_config.json]) or file, or a hub id in the Hugging Face cache")
      ->required()
      ->transform(model_folder());
  sub->add_option("--input", options->input, "Input file: .jsonl/.json, .tsv or plain text")->required();
  sub->add_option("--output", options->output, "Output JSON Lines file (written atomically)")->required();
  sub->add_option("--max-length", options->max_length,
                  "Truncate each example to N ids including special tokens (0: no truncation)")
      ->check(integer_in({0, 1 << 24}, "ids per example, special tokens included (0: no truncation)"));
  return {sub, [options] {
            experiment::check_output_is_not_input(options->input, "--input", options->output, "--output");
            ww::text::TokenizeSummary s = ww::text::tokenize_file(*options);
            double mb = double(s.text_bytes) / 1e6;
            std::printf(
                "tokenized %zu examples (%zu pairs, %.3f MB of text) into %zu tokens, %zu truncated; "
                "encode %.3f s (%.1f MB/s) -> %s\n",
                s.examples, s.pairs, mb, s.tokens, s.truncated, s.encode_seconds,
                s.encode_seconds > 0 ? mb / s.encode_seconds : 0.0, options->output.c_str());
            return 0;
          }};
}

}  // namespace ww::cli
