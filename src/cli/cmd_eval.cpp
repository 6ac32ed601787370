#include <cstdio>

#include "cli/commands.h"
#include "cli/validators.h"
#include "wattwise/experiment/evaluate.h"

namespace ww::cli {

Command eval_command(CLI::App& app) {
  auto o = std::make_shared<experiment::EvalOptions>();
  auto device = std::make_shared<std::string>("auto");
  CLI::App* cmd = app.add_subcommand("eval", "Metrics of a model on a data split");
  cmd->add_option("--model", o->model_dir, "Model folder (Hugging Face layout), or a hub id org/name[@revision] in the Hugging Face cache")
      ->required()
      ->transform(model_folder());
  cmd->add_option("--data", o->data, "aclImdb folder or .tar.gz, GLUE task folder, or CSV/TSV/JSONL file (- for stdin); for a GPT-2 model: text file(s) or a WikiText folder")->required();
  cmd->add_option("--split", o->split, "train, dev (validation; GPT-2 text data: the last --valid-fraction) or test")->capture_default_str();
  cmd->add_option("--output", o->output, "Also write the metrics JSON here");
  cmd->add_option("--runs-dir", o->runs_dir, "Folder that receives the run folder")->capture_default_str();
  cmd->add_option("--max-length", o->max_length, "Truncation length (default: the model's, at most 512)")
      ->check(integer_in(experiment::limits::kOptionalLength, "tokens per example (0: the model's, at most 512)"));
  cmd->add_option("--batch-size", o->batch_size, "Examples per forward pass")
      ->capture_default_str()
      ->check(integer_in(experiment::limits::kBatchSize, "examples per forward pass"));
  cmd->add_flag("--allow-nonfinite", o->allow_nonfinite, "Load a checkpoint holding NaN or Inf weights anyway (with a warning per tensor); refused by default");
  cmd->add_flag("--clean-html", o->clean_html, "Strip HTML tags and collapse whitespace (as IMDB training did)");
  cmd->add_option("--text-column", o->text_column, "CSV/TSV/JSONL files: the column (field) of the text")->capture_default_str();
  cmd->add_option("--text-pair-column", o->text_pair_column, "CSV/TSV/JSONL files: the column of a pair's second text");
  cmd->add_option("--label-column", o->label_column, "CSV/TSV/JSONL files: the column of the label")->capture_default_str();
  cmd->add_option("--label-names", o->label_names,
                  "The data's label set in class-id order, e.g. neg,pos (labels are these names or their indices; "
                  "default: the model's id2label, else inferred from the data)")
      ->delimiter(',');
  cmd->add_option("--device", *device, "cpu, cuda[:N] or auto (a GPU when one is visible)")->capture_default_str();
  cmd->add_option("--precision", o->precision, "fp32, tf32, bf16, fp16 (16-bit: GPU only); quantized: int8-weight, int8, fp8 (fp8: GPU 8.9+)")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "tf32", "bf16", "fp16", "int8-weight", "int8", "fp8"}));
  cmd->add_option("--calibration", o->calibration.examples,
                  "int8/fp8: examples that calibrate the static input scales (max-abs)")
      ->capture_default_str()
      ->check(integer_in(experiment::limits::kCalibration, "the number of examples that calibrate the int8/fp8 input scales"));
  cmd->add_option("--calibration-data", o->calibration.data,
                  "int8/fp8: calibration texts (JSONL, TSV or plain lines; default: the data being run)");
  cmd->add_option("--attention", o->attention, "Attention kernel: auto (fused on a GPU), fused or reference")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "fused", "reference"}));
  cmd->add_option("--format", o->data_format, "GPT-2 models: text, wikitext or auto (wikitext when wiki.train.raw exists)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "text", "wikitext"}));
  cmd->add_option("--block-size", o->block_size, "GPT-2 models: tokens per sequence (default: the model's n_positions)")
      ->check(integer_in(experiment::limits::kOptionalLength, "tokens per sequence (0: the model's n_positions)"));
  cmd->add_option("--valid-fraction", o->valid_fraction,
                  "GPT-2 models, text data: share of the tokens at the end that is the dev (valid) split")
      ->capture_default_str()
      ->check(number_in(0, 1, "the share of the tokens held out as the dev split", false, true));
  cmd->add_option("--cache-dir", o->cache_dir, "GPT-2 models: token cache folder (default: ~/.cache/wattwise/tokens)");
  cmd->add_option("--max-sequences", o->max_sequences, "GPT-2 models: evaluate the first N sequences only (0: all)")
      ->capture_default_str()
      ->check(integer_in(experiment::limits::kExampleCount, "sequences to evaluate (0: all)"));
  return {cmd, [o, device] {
            o->device = parse_device(*device);
            nlohmann::json metrics = experiment::run_eval(*o);
            std::printf("%s\n", metrics.dump(2).c_str());
            return 0;
          }};
}

}  // namespace ww::cli
