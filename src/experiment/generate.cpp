#include "wattwise/experiment/generate.h"

#include <chrono>
#include <cmath>

#include "wattwise/core/error.h"
#include "wattwise/experiment/evaluate.h"
#include "wattwise/experiment/execution.h"
#include "wattwise/models/gpt2.h"
#include "wattwise/text/tokenizer.h"

namespace ww::experiment {

GenerateRunResult run_generate(const GenerateRunOptions& o) {
  if (o.max_new_tokens < 0) fail("--max-new-tokens must not be negative, got ", o.max_new_tokens);
  if (!o.greedy) {
    if (!(o.temperature > 0) || !std::isfinite(o.temperature)) fail("--temperature must be > 0, got ", o.temperature);
    if (o.top_k < 0) fail("--top-k must not be negative, got ", o.top_k);
    if (!(o.top_p > 0 && o.top_p <= 1)) fail("--top-p must be in (0, 1], got ", o.top_p);
  }
  if (o.prompt.empty()) fail("--prompt is empty (generation continues a text)");
  if (!is_gpt2_model_folder(o.model_dir))
    fail(o.model_dir.string(), ": not a GPT-2 model folder (config.json with model_type gpt2); generate needs a causal "
         "language model");
  models::Gpt2LMHeadModel model =
      models::Gpt2LMHeadModel::from_pretrained(o.model_dir, o.device, models::ModelPurpose::Inference, o.allow_nonfinite);
  apply_execution(model, {o.precision, "auto", "none"});
  std::unique_ptr<text::Tokenizer> tokenizer = text::load_tokenizer(o.model_dir);

  GenerateRunResult r;
  r.prompt_ids = tokenizer->encode(o.prompt, std::nullopt, 0).input_ids;
  if (r.prompt_ids.empty()) fail("--prompt gives no tokens");
  const int64_t positions = model.config().n_positions;
  if (int64_t(r.prompt_ids.size()) + o.max_new_tokens > positions)
    fail("the prompt (", r.prompt_ids.size(), " tokens) and --max-new-tokens ", o.max_new_tokens,
         " exceed the model's n_positions ", positions);

  models::GenerateOptions g;
  g.max_new_tokens = o.max_new_tokens;
  g.greedy = o.greedy;
  g.temperature = o.temperature;
  g.top_k = o.top_k;
  g.top_p = o.top_p;
  g.seed = o.seed;
  g.eos_token_id = o.stop_at_eos ? model.config().eos_token_id : -1;
  g.use_cache = true;
  // Byte-level BPE tokens may end inside a UTF-8 character: stream the decoded text of all new
  // tokens so far, printing only what it adds.
  std::vector<int32_t> streamed;
  std::string shown;
  if (o.on_text)
    g.on_token = [&](int32_t id) {
      streamed.push_back(id);
      std::string now = tokenizer->decode(streamed);
      if (now.size() > shown.size() && now.compare(0, shown.size(), shown) == 0) {
        o.on_text(now.substr(shown.size()));
        shown = std::move(now);
      }
      return true;
    };
  const auto start = std::chrono::steady_clock::now();
  if (o.max_new_tokens > 0) r.new_ids = model.generate(r.prompt_ids, g);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.tokens_per_s = r.seconds > 0 ? double(r.new_ids.size()) / r.seconds : 0;
  r.continuation = tokenizer->decode(r.new_ids);
  r.text = o.prompt + r.continuation;
  if (o.on_text && r.continuation.size() > shown.size()) o.on_text(r.continuation.substr(shown.size()));
  return r;
}

}  // namespace ww::experiment
