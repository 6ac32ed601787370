#include "wattwise/experiment/init_model.h"

#include "wattwise/core/error.h"
#include "wattwise/experiment/run_dir.h"
#include "wattwise/models/sequence_classifier.h"
#include "wattwise/text/tokenizer.h"

namespace ww::experiment {

void init_model(const InitModelOptions& options) {
  models::Architecture arch;
  if (options.arch == "bert") arch = models::Architecture::Bert;
  else if (options.arch == "distilbert") arch = models::Architecture::DistilBert;
  else fail("--arch '", options.arch, "' is not supported (expected bert or distilbert)");
  if (options.output.empty()) fail("init-model needs an output folder (-o DIR)");
  std::error_code ec;
  if (std::filesystem::exists(options.output) && !std::filesystem::is_empty(options.output, ec) && !options.force)
    fail(options.output.string(), ": folder exists and is not empty (pass --force to write into it)");

  std::unique_ptr<text::Tokenizer> tokenizer = text::load_tokenizer(options.tokenizer);
  models::ModelConfig config = models::preset_config(arch, options.preset, tokenizer->vocab_size());
  config.num_labels = options.num_labels;
  config.regression = options.num_labels == 1;
  config.max_position_embeddings = options.max_positions;
  config.pad_token_id = tokenizer->pad_id();
  config.validate("init-model");
  models::SequenceClassifier model(config, Device::cpu());
  model.init_weights(options.seed);
  // A failed write (full disk, interruption) leaves no half-written model: a folder made here is
  // removed, one that was empty is emptied again (a non-empty one under --force keeps what it had).
  const bool created = !std::filesystem::exists(options.output, ec);
  const bool was_empty = !created && std::filesystem::is_empty(options.output, ec);
  RunDirGuard guard(created ? options.output : std::filesystem::path());
  try {
    model.save(options.output);
    tokenizer->save(options.output, config.max_position_embeddings);
  } catch (...) {
    if (was_empty)
      for (const auto& entry : std::filesystem::directory_iterator(options.output, ec))
        std::filesystem::remove_all(entry.path(), ec);
    throw;
  }
  guard.keep();
}

}  // namespace ww::experiment
