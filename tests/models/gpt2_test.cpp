// GPT-2 (Gpt2LMHeadModel): config.json handling; parity with transformers on the tiny fixture
// (logits, loss, every gradient) on the CPU and a CUDA device (f32 with both attention kernels, and
// bf16); save/load round trips and load errors; generation with and without the KV cache (on a GPU
// against the CPU's tokens); the CUDA-graph training step against the direct one; and a short
// training run on tiny shakespeare. GPU tests skip with the reason when no GPU is usable.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "cuda_test_util.h"
#include "gpt2_test_util.h"
#include "wattwise/core/rng.h"
#include "wattwise/io/safetensors.h"
#include "wattwise/text/bpe.h"
#include "wattwise/train/trainer.h"

namespace ww {
namespace {

using namespace ww::models;
using ww::testing::gpt2_batch;
using ww::testing::gpt2_fixture_dir;
using ww::testing::int_vector;
namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("ww_test_gpt2_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

template <typename F>
void expect_error(F&& f, const std::vector<std::string>& fragments) {
  try {
    f();
    ADD_FAILURE() << "expected ww::Error";
  } catch (const Error& e) {
    for (const auto& frag : fragments)
      EXPECT_NE(std::string(e.what()).find(frag), std::string::npos) << "message: " << e.what() << "\nmissing: " << frag;
  }
}

// ---- config ----

TEST(Gpt2Config, ReadsFixtureAndRoundTrips) {
  Gpt2Config c = Gpt2Config::load(gpt2_fixture_dir());
  EXPECT_EQ(c.n_embd, 32);
  EXPECT_EQ(c.n_layer, 2);
  EXPECT_EQ(c.n_head, 4);
  EXPECT_EQ(c.vocab_size, 256);
  EXPECT_EQ(c.n_positions, 64);
  EXPECT_FLOAT_EQ(c.initializer_range, 0.1f);
  Gpt2Config back = Gpt2Config::from_json(c.to_json());
  EXPECT_EQ(back.to_json(), c.to_json());
  EXPECT_EQ(back.extra.value("summary_type", ""), "cls_index");  // uninterpreted keys kept

  Gpt2Config small = Gpt2Config::preset("small");
  EXPECT_EQ(small.n_layer, 12);
  EXPECT_EQ(small.n_embd, 768);
  EXPECT_EQ(small.vocab_size, 50257);
  EXPECT_EQ(Gpt2Config::preset("tiny", 300).vocab_size, 300);
  EXPECT_EQ(Gpt2Config::preset("tiny", 300).eos_token_id, 299);
  expect_error([] { Gpt2Config::preset("huge"); }, {"huge", "tiny, mini or small"});
}

TEST(Gpt2Config, RejectsWhatItCannotCompute) {
  nlohmann::json j = Gpt2Config::preset("tiny").to_json();
  auto with = [&](const char* key, nlohmann::json value) {
    nlohmann::json k = j;
    k[key] = value;
    return k;
  };
  expect_error([&] { Gpt2Config::from_json(with("activation_function", "relu"), "cfg.json"); },
               {"cfg.json", "activation_function 'relu'"});
  expect_error([&] { Gpt2Config::from_json(with("tie_word_embeddings", false), "cfg.json"); }, {"tie_word_embeddings"});
  expect_error([&] { Gpt2Config::from_json(with("n_inner", 100), "cfg.json"); }, {"n_inner 100"});
  expect_error([&] { Gpt2Config::from_json(with("n_head", 5), "cfg.json"); }, {"n_embd 64", "n_head 5"});
  expect_error([&] { Gpt2Config::from_json(with("model_type", "bert"), "cfg.json"); }, {"model_type 'bert'"});
  expect_error([&] { Gpt2Config::from_json(with("n_layer", "two"), "cfg.json"); }, {"n_layer", "invalid"});
}

// ---- parity with transformers ----

// Logits, loss and every gradient against transformers on the tiny fixture on each device: the CPU,
// and a CUDA device in f32 with the fused and the reference attention (skipped without a GPU).
class Gpt2ParityOnDevice : public ::testing::TestWithParam<std::string> {};

TEST_P(Gpt2ParityOnDevice, MatchesTransformersOnTinyFixture) {
  if (GetParam() == "cpu") {
    Gpt2LMHeadModel model = Gpt2LMHeadModel::from_pretrained(gpt2_fixture_dir(), Device::cpu());
    testing::expect_gpt2_parity(testing::measure_gpt2_parity(model), "gpt2_tiny cpu");
    return;
  }
  WW_REQUIRE_CUDA();
  for (AttentionKernel kernel : {AttentionKernel::Fused, AttentionKernel::Reference}) {
    const std::string label = std::string("gpt2_tiny cuda f32 ") + attention_kernel_name(kernel);
    Gpt2LMHeadModel model = Gpt2LMHeadModel::from_pretrained(gpt2_fixture_dir(), Device::cuda(0));
    ExecutionOptions e;
    e.attention = kernel;
    model.set_execution(e);
    testing::expect_gpt2_parity(testing::measure_gpt2_parity(model), label);
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, Gpt2ParityOnDevice, ::testing::Values("cpu", "cuda"),
                         [](const auto& info) { return info.param; });

TEST(Gpt2Parity, LossChunksAndCheckpointingGiveTheSameGradients) {
  // Small chunks (5 rows: chunks cross sequence boundaries, the last one partial) and activation
  // checkpointing compute the same function.
  for (int variant = 0; variant < 2; ++variant) {
    SCOPED_TRACE(variant == 0 ? "chunk rows 5" : "checkpointing every + chunk rows 7");
    Gpt2LMHeadModel model = Gpt2LMHeadModel::from_pretrained(gpt2_fixture_dir(), Device::cpu());
    if (variant == 0) {
      model.set_loss_chunk_rows(5);
    } else {
      ExecutionOptions e;
      e.checkpointing = parse_checkpointing("every");
      model.set_execution(e);
      model.set_loss_chunk_rows(7);
    }
    testing::expect_gpt2_parity(testing::measure_gpt2_parity(model), variant == 0 ? "chunk 5" : "checkpointed");
  }
}

TEST(Gpt2Parity, DropoutIsReproducibleAndChangesTheLoss) {
  io::SafetensorsFile expected = io::SafetensorsFile::open(gpt2_fixture_dir() / "expected.safetensors");
  Gpt2LMHeadModel model = Gpt2LMHeadModel::from_pretrained(gpt2_fixture_dir(), Device::cpu());
  model.set_dropout_seed(3);
  model.set_dropout_step_for_testing(10);
  model.forward(gpt2_batch(expected, true), true);
  const float first = model.loss();
  model.set_dropout_step_for_testing(10);
  model.forward(gpt2_batch(expected, true), true);
  EXPECT_EQ(model.loss(), first);
  EXPECT_GT(std::abs(first - expected.read("loss").to_float_vector()[0]), 1e-4);
}

TEST(Gpt2Parity, LastTokenLogitsAreThoseOfTheLastRealPosition) {
  io::SafetensorsFile expected = io::SafetensorsFile::open(gpt2_fixture_dir() / "expected.safetensors");
  Gpt2LMHeadModel model = Gpt2LMHeadModel::from_pretrained(gpt2_fixture_dir(), Device::cpu());
  Batch batch = gpt2_batch(expected, false);
  std::vector<float> last = model.last_token_logits(batch).to_float_vector();
  std::vector<float> ref = expected.read("logits").to_float_vector();
  const int64_t T = 12, V = 256;
  const int64_t lengths[] = {12, 9, 5};
  ASSERT_EQ(int64_t(last.size()), 3 * V);
  double worst = 0;
  for (int64_t b = 0; b < 3; ++b)
    for (int64_t v = 0; v < V; ++v)
      worst = std::max(worst, double(std::abs(last[size_t(b * V + v)] - ref[size_t((b * T + lengths[b] - 1) * V + v)])));
  EXPECT_LE(worst, 1e-5);
}

// ---- save / load ----

TEST(Gpt2Io, SaveReloadRoundTripsTheFileExactly) {
  fs::path dir = temp_dir("roundtrip");
  Gpt2LMHeadModel model = Gpt2LMHeadModel::from_pretrained(gpt2_fixture_dir(), Device::cpu());
  model.save(dir);
  // Every tensor of the HF file comes back with the same shape (Conv1D layout) and bytes.
  io::SafetensorsFile original = io::SafetensorsFile::open(gpt2_fixture_dir() / "model.safetensors");
  io::SafetensorsFile saved = io::SafetensorsFile::open(dir / "model.safetensors");
  EXPECT_EQ(saved.tensors().size(), original.tensors().size());
  for (const auto& t : original.tensors()) {
    ASSERT_NE(saved.find(t.name), nullptr) << t.name;
    EXPECT_EQ(saved.find(t.name)->shape, t.shape) << t.name;
    EXPECT_EQ(saved.raw_bytes(*saved.find(t.name)), original.raw_bytes(t)) << t.name;
  }
  Gpt2LMHeadModel reloaded = Gpt2LMHeadModel::from_pretrained(dir, Device::cpu());
  EXPECT_EQ(reloaded.parameters().flat_values().to_float_vector(), model.parameters().flat_values().to_float_vector());
  EXPECT_EQ(Gpt2Config::load(dir).to_json().value("dtype", ""), "float32");

  // bf16 storage loads back into f32 masters within bf16 rounding.
  fs::path bf = temp_dir("bf16");
  model.save(bf, DType::BF16);
  Gpt2LMHeadModel half = Gpt2LMHeadModel::from_pretrained(bf, Device::cpu());
  std::vector<float> a = half.parameters().flat_values().to_float_vector(),
                     b = model.parameters().flat_values().to_float_vector();
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], std::abs(b[i]) * 4e-3 + 1e-30) << i;
  fs::remove_all(dir);
  fs::remove_all(bf);
}

// Writes a copy of the fixture's model.safetensors with `edit` applied to its tensor list.
fs::path edited_copy(const std::string& name,
                     const std::function<void(std::vector<std::pair<std::string, Tensor>>&)>& edit) {
  fs::path dir = temp_dir(name);
  fs::copy_file(gpt2_fixture_dir() / "config.json", dir / "config.json");
  io::SafetensorsFile original = io::SafetensorsFile::open(gpt2_fixture_dir() / "model.safetensors");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& t : original.tensors()) tensors.emplace_back(t.name, original.read(t.name));
  edit(tensors);
  io::save_safetensors(dir / "model.safetensors", tensors);
  return dir;
}

TEST(Gpt2Io, BadFilesGiveClearErrors) {
  const std::string wte = "transformer.wte.weight", c_fc = "transformer.h.1.mlp.c_fc.weight";
  fs::path missing = edited_copy("missing", [&](auto& ts) {
    ts.erase(std::remove_if(ts.begin(), ts.end(), [&](auto& p) { return p.first == c_fc; }), ts.end());
  });
  expect_error([&] { Gpt2LMHeadModel::from_pretrained(missing, Device::cpu()); },
               {"missing tensor 'transformer.h.1.mlp.c_fc.weight'", "[32, 128]"});
  fs::path shape = edited_copy("shape", [&](auto& ts) {
    for (auto& [n, t] : ts)
      if (n == c_fc) t = Tensor::zeros({128, 32}, DType::F32);  // nn.Linear layout instead of Conv1D
  });
  expect_error([&] { Gpt2LMHeadModel::from_pretrained(shape, Device::cpu()); },
               {"transformer.h.1.mlp.c_fc.weight", "[128, 32]", "[32, 128]"});
  fs::path extra = edited_copy("extra", [&](auto& ts) { ts.emplace_back("transformer.h.9.ln_1.weight", Tensor::zeros({32}, DType::F32)); });
  expect_error([&] { Gpt2LMHeadModel::from_pretrained(extra, Device::cpu()); }, {"unexpected tensor 'transformer.h.9.ln_1.weight'"});
  fs::path untied = edited_copy("untied", [&](auto& ts) { ts.emplace_back("lm_head.weight", Tensor::zeros({256, 32}, DType::F32)); });
  expect_error([&] { Gpt2LMHeadModel::from_pretrained(untied, Device::cpu()); }, {"lm_head.weight differs"});
  // Accepted: a tied lm_head.weight, old mask buffers, names without the "transformer." prefix.
  fs::path tolerated = edited_copy("tolerated", [&](auto& ts) {
    Tensor w;
    for (auto& [n, t] : ts)
      if (n == wte) w = t;
    ts.emplace_back("lm_head.weight", w);
    ts.emplace_back("transformer.h.0.attn.bias", Tensor::zeros({1, 1, 64, 64}, DType::F32));
    for (auto& [n, t] : ts)
      if (n.rfind("transformer.", 0) == 0) n = n.substr(12);
  });
  Gpt2LMHeadModel ok = Gpt2LMHeadModel::from_pretrained(tolerated, Device::cpu());
  Gpt2LMHeadModel ref = Gpt2LMHeadModel::from_pretrained(gpt2_fixture_dir(), Device::cpu());
  EXPECT_EQ(ok.parameters().flat_values().to_float_vector(), ref.parameters().flat_values().to_float_vector());
  for (const auto& d : {missing, shape, extra, untied, tolerated}) fs::remove_all(d);

  // Batches the model cannot take.
  Batch b;
  b.input_ids = Tensor::zeros({1, 65}, DType::I32);
  expect_error([&] { ref.forward(b, false); }, {"sequence length 65", "n_positions 64"});
  b.input_ids = Tensor::zeros({2, 4}, DType::I32);
  b.labels = Tensor::zeros({2}, DType::I32);
  expect_error([&] { ref.forward(b, false); }, {"labels", "[2, 4]"});
  b.labels = Tensor();
  b.input_ids.data<int32_t>()[3] = 256;
  expect_error([&] { ref.forward(b, false); }, {"256"});
}

// ---- generation ----

TEST(Gpt2Generate, GreedyWithCacheEqualsFullReforwardAndTransformers) {
  io::SafetensorsFile expected = io::SafetensorsFile::open(gpt2_fixture_dir() / "expected.safetensors");
  Gpt2LMHeadModel model = Gpt2LMHeadModel::from_pretrained(gpt2_fixture_dir(), Device::cpu());
  const std::vector<int32_t> prompt = int_vector(expected.read("greedy_prompt"));
  const std::vector<int32_t> hf = int_vector(expected.read("greedy_tokens"));
  GenerateOptions o;
  o.max_new_tokens = int64_t(hf.size());
  std::vector<int32_t> cached = model.generate(prompt, o);
  o.use_cache = false;
  std::vector<int32_t> full = model.generate(prompt, o);
  EXPECT_EQ(cached, full);
  EXPECT_EQ(cached, hf) << "transformers' model.generate(do_sample=False)";
}

TEST(Gpt2Generate, SamplingIsSeededAndFiltersBehave) {
  Gpt2LMHeadModel model(Gpt2Config::preset("tiny", 300), Device::cpu());
  model.init_weights(11);
  const std::vector<int32_t> prompt = {5, 17, 250, 3};
  GenerateOptions greedy;
  greedy.max_new_tokens = 24;
  const std::vector<int32_t> g = model.generate(prompt, greedy);
  ASSERT_EQ(g.size(), 24u);

  GenerateOptions s = greedy;
  s.greedy = false;
  s.temperature = 1.5f;
  s.seed = 7;
  const std::vector<int32_t> a = model.generate(prompt, s), b = model.generate(prompt, s);
  EXPECT_EQ(a, b) << "same seed, same tokens";
  s.use_cache = false;
  EXPECT_EQ(model.generate(prompt, s), a) << "the cache does not change sampling";
  s.use_cache = true;
  s.seed = 8;
  EXPECT_NE(model.generate(prompt, s), a) << "another seed, other tokens (near-uniform random model)";

  GenerateOptions k1 = s;
  k1.top_k = 1;
  EXPECT_EQ(model.generate(prompt, k1), g) << "top_k = 1 is greedy";
  GenerateOptions p = s;
  p.top_p = 1e-6f;
  EXPECT_EQ(model.generate(prompt, p), g) << "a tiny top_p keeps only the most likely token";
  GenerateOptions k5 = s;
  k5.top_k = 5;  // every sampled token is among the 5 most likely: checked via full logits
  std::vector<int32_t> seq = prompt;
  std::vector<int32_t> out = model.generate(prompt, k5);
  for (int32_t tok : out) {
    Batch batch;
    batch.input_ids = Tensor::from_vector(seq, {1, int64_t(seq.size())});
    std::vector<float> logits = model.last_token_logits(batch).to_float_vector();
    int64_t above = 0;
    for (float v : logits) above += v > logits[size_t(tok)];
    EXPECT_LT(above, 5);
    seq.push_back(tok);
  }

  // Stops: end-of-text token and the callback.
  GenerateOptions eos = greedy;
  eos.eos_token_id = g[3];
  std::vector<int32_t> stopped = model.generate(prompt, eos);
  EXPECT_EQ(stopped.back(), g[3]);
  EXPECT_LE(stopped.size(), 4u);
  GenerateOptions cb = greedy;
  std::vector<int32_t> streamed;
  cb.on_token = [&](int32_t t) {
    streamed.push_back(t);
    return streamed.size() < 5;
  };
  EXPECT_EQ(model.generate(prompt, cb), streamed);
  EXPECT_EQ(streamed, std::vector<int32_t>(g.begin(), g.begin() + 5));

  expect_error([&] { model.generate({}, greedy); }, {"prompt is empty"});
  GenerateOptions too_long = greedy;
  too_long.max_new_tokens = 61;
  expect_error([&] { model.generate(prompt, too_long); }, {"n_positions 64"});
  expect_error([&] { model.generate({300}, greedy); }, {"token id 300"});
  GenerateOptions bad = s;
  bad.temperature = 0;
  expect_error([&] { model.generate(prompt, bad); }, {"temperature"});
}

// ---- training ----

TEST(Gpt2Train, InitialisationFollowsTransformers) {
  Gpt2Config c = Gpt2Config::preset("tiny", 1000);
  c.n_layer = 8;
  Gpt2LMHeadModel model(c, Device::cpu());
  model.init_weights(1);
  auto stddev = [&](const std::string& name) {
    std::vector<float> v = model.parameters().value(name).to_float_vector();
    double s = 0;
    for (float x : v) s += double(x) * x;
    return std::sqrt(s / double(v.size()));
  };
  EXPECT_NEAR(stddev("transformer.wte.weight"), 0.02, 0.001);
  EXPECT_NEAR(stddev("transformer.h.3.mlp.c_fc.weight"), 0.02, 0.001);
  EXPECT_NEAR(stddev("transformer.h.3.mlp.c_proj.weight"), 0.02 / 4.0, 0.0005);  // 1/√(2·8)
  EXPECT_EQ(stddev("transformer.h.3.attn.c_attn.bias"), 0.0);
  EXPECT_EQ(model.parameters().value("transformer.ln_f.weight").to_float_vector(), std::vector<float>(64, 1.0f));
}

TEST(Gpt2Train, TinyShakespeareLossFalls) {
  const fs::path data = fs::path(WW_SHARED_DATA);
  const fs::path text_file = data / "tinyshakespeare/input.txt", tok = data / "tokenizers/gpt2";
  if (!fs::exists(text_file) || !fs::exists(tok / "vocab.json"))
    GTEST_SKIP() << "needs " << text_file << " and " << tok << " (the shared data folder)";
  std::ifstream in(text_file);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str().substr(0, 60000);
  auto tokenizer = text::load_bpe_files(tok / "vocab.json", tok / "merges.txt");
  const std::vector<int32_t> ids = tokenizer->encode_sequence(text);
  ASSERT_GT(ids.size(), 10000u);

  Gpt2Config c = Gpt2Config::preset("tiny");  // 2 layers, 64 hidden, GPT-2's 50257 tokens
  c.resid_pdrop = c.embd_pdrop = c.attn_pdrop = 0.0f;
  Gpt2LMHeadModel model(c, Device::cpu());
  model.init_weights(42);
  train::TrainerOptions t;
  const int64_t steps = 24, B = 4, T = 48;
  t.optimizer.kind = train::OptimizerKind::AdamW;
  t.optimizer.weight_decay = 0.0;
  t.schedule.kind = train::ScheduleKind::Constant;
  t.schedule.learning_rate = 2e-2;
  t.schedule.total_steps = steps;
  train::Trainer trainer(model, t);
  Rng rng(3);
  const auto start = std::chrono::steady_clock::now();
  double first = 0, last = 0;
  for (int64_t step = 0; step < steps; ++step) {
    std::vector<int32_t> batch_ids;
    for (int64_t b = 0; b < B; ++b) {
      const int64_t at = int64_t(rng.below(ids.size() - T));
      batch_ids.insert(batch_ids.end(), ids.begin() + at, ids.begin() + at + T);
    }
    Batch batch;
    batch.input_ids = Tensor::from_vector(batch_ids, {B, T});
    batch.labels = Tensor::from_vector(batch_ids, {B, T});
    auto r = trainer.train_micro_batch(batch);
    ASSERT_TRUE(r.has_value());
    if (step == 0) first = r->loss;
    if (step >= steps - 5) last += r->loss / 5;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("tiny shakespeare, GPT-2 BPE, tiny GPT-2: loss %.3f -> %.3f (mean of the last 5 steps) in %lld steps, %.1f s\n",
              first, last, (long long)steps, seconds);
  EXPECT_GT(first, 10.0);  // ≈ ln 50257 = 10.8 at initialisation
  EXPECT_LT(last, 7.5);  // measured 6.93 here (from 10.82)
}

// ---- transformers loads what we save ----

TEST(Gpt2Io, TransformersLoadsOurSaveAndAgrees) {
  if (std::system("python3 -c 'import torch, transformers, safetensors' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3 with torch, transformers and safetensors is not installed";
  // A fresh model (not a copy of the fixture), seeded differently from the fixture.
  Gpt2Config c = Gpt2Config::preset("tiny", 300);
  Gpt2LMHeadModel model(c, Device::cpu());
  model.init_weights(99);
  io::SafetensorsFile expected = io::SafetensorsFile::open(gpt2_fixture_dir() / "expected.safetensors");
  Batch batch = gpt2_batch(expected, false);
  fs::path dir = temp_dir("hf");
  model.save(dir);
  std::vector<float> logits = model.forward(batch, false).to_float_vector();
  io::save_safetensors(dir / "wattwise_check.safetensors",
                       {{"input_ids", batch.input_ids}, {"attention_mask", batch.attention_mask},
                        {"logits", Tensor::from_vector(logits, {3, 12, 300})}});
  const std::string cmd = "python3 " + std::string(WW_SOURCE_DIR) + "/scripts/make_gpt2_fixtures.py --check-saved " +
                          dir.string() + " 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  fs::remove_all(dir);
}

// ---- on a GPU: 16-bit, the graphed training step, generation against the CPU ----

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) worst = std::max(worst, double(std::abs(a[i] - b[i])));
  return a.size() == b.size() ? worst : INFINITY;
}

TEST(CudaGpt2, FixtureParityInBf16) {
  WW_REQUIRE_CUDA();
  Gpt2LMHeadModel model = Gpt2LMHeadModel::from_pretrained(gpt2_fixture_dir(), Device::cuda(0));
  ExecutionOptions e;
  e.compute_dtype = DType::BF16;
  model.set_execution(e);
  // bf16 activations (8 significant bits): logits of magnitude ~1 within a few 1e-2.
  testing::expect_gpt2_parity(testing::measure_gpt2_parity(model), "gpt2_tiny cuda bf16", 5e-2, 1e-2, 5e-2);
}

TEST(CudaGpt2, GraphedTrainingStepEqualsDirectStep) {
  WW_REQUIRE_CUDA();
  io::SafetensorsFile expected = io::SafetensorsFile::open(gpt2_fixture_dir() / "expected.safetensors");
  const Batch batch = gpt2_batch(expected, true);
  Gpt2LMHeadModel direct = Gpt2LMHeadModel::from_pretrained(gpt2_fixture_dir(), Device::cuda(0));
  direct.set_dropout_seed(5);
  direct.set_loss_chunk_rows(16);  // several chunks, the last one partial
  direct.zero_grad();
  direct.forward(batch, true);
  direct.backward(2.0f);
  const std::vector<float> want = direct.parameters().flat_grads().to_float_vector();

  Gpt2LMHeadModel graphed = Gpt2LMHeadModel::from_pretrained(gpt2_fixture_dir(), Device::cuda(0));
  graphed.set_dropout_seed(5);
  graphed.set_loss_chunk_rows(16);
  ASSERT_TRUE(graphed.can_graph_training(batch));
  for (int run = 0; run < 2; ++run) {  // run 0 records, run 1 replays
    SCOPED_TRACE(run == 0 ? "recorded" : "replayed");
    graphed.zero_grad();
    graphed.set_dropout_step_for_testing(0);
    graphed.train_step_graphed(batch, 2.0f, [] {});
    EXPECT_NEAR(graphed.loss(), direct.loss(), 1e-6);
    EXPECT_LE(max_abs_diff(graphed.parameters().flat_grads().to_float_vector(), want), 1e-6);
  }
}

TEST(CudaGpt2, CachedGreedyGenerationEqualsCpu) {
  WW_REQUIRE_CUDA();
  io::SafetensorsFile expected = io::SafetensorsFile::open(gpt2_fixture_dir() / "expected.safetensors");
  const std::vector<int32_t> prompt = int_vector(expected.read("greedy_prompt"));
  const std::vector<int32_t> hf = int_vector(expected.read("greedy_tokens"));
  Gpt2LMHeadModel cpu = Gpt2LMHeadModel::from_pretrained(gpt2_fixture_dir(), Device::cpu());
  GenerateOptions o;
  o.max_new_tokens = int64_t(hf.size());
  const std::vector<int32_t> want = cpu.generate(prompt, o);
  for (AttentionKernel kernel : {AttentionKernel::Fused, AttentionKernel::Reference}) {
    SCOPED_TRACE(attention_kernel_name(kernel));
    Gpt2LMHeadModel gpu = Gpt2LMHeadModel::from_pretrained(gpt2_fixture_dir(), Device::cuda(0));
    ExecutionOptions e;
    e.attention = kernel;
    gpu.set_execution(e);
    EXPECT_EQ(gpu.generate(prompt, o), want);
    o.use_cache = false;
    EXPECT_EQ(gpu.generate(prompt, o), want);
    o.use_cache = true;
  }
  EXPECT_EQ(want, hf);
}

}  // namespace
}  // namespace ww
