// Inference-only models (ModelPurpose::Inference) on the CPU, against models built for training with
// the same weights:
// - logits (and losses, GPT-2's generated tokens) are bit-identical, fp32 and the CPU's quantized
//   precisions (int8-weight, int8), BERT, DistilBERT and GPT-2; the inference arena's aliasing also
//   gives exactly the training forward's logits (dropout off);
// - memory_stats: no gradient buffer ever; with fp32 the masters are the working weights (held once);
//   quantized, the f32 masters of the quantized weights are gone;
// - training, gradients, re-initialising and re-quantizing are errors that say why;
// - saving after the masters were released writes the same file as the training model.
// The 16-bit and GPU cases (f32 masters released beside an f16/bf16 copy, the BERT-base peak-memory
// bound) are in test_cuda_model.cpp and test_cuda_gpt2.cpp.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"
#include "wattwise/core/device.h"
#include "wattwise/core/rng.h"
#include "wattwise/models/gpt2.h"
#include "wattwise/models/sequence_classifier.h"
#include "wattwise/ops/quantized.h"
#include "wattwise/train/trainer.h"

using namespace ww;
using namespace ww::models;
using ww::testing::expect_error;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kVocab = 1000;

ModelConfig classifier_config(Architecture arch) {
  ModelConfig c = preset_config(arch, "tiny", kVocab);
  c.max_position_embeddings = 64;
  c.num_labels = 3;
  c.initializer_range = 0.1f;  // logits far enough from 0 that a difference would show
  return c;
}

// Ragged padding (row b has b padded positions), token types on the second half of each row.
Batch make_batch(int64_t B, int64_t T, uint64_t seed, bool token_types, bool labels) {
  Rng rng(seed);
  std::vector<int32_t> ids(size_t(B * T)), mask(size_t(B * T), 1), types(size_t(B * T), 0), y;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) {
      const size_t i = size_t(b * T + t);
      ids[i] = 1 + int32_t(rng.next_u32() % uint32_t(kVocab - 1));
      types[i] = t >= T / 2 ? 1 : 0;
      if (t >= T - b) mask[i] = 0, ids[i] = 0, types[i] = 0;
    }
    y.push_back(int32_t(b % 3));
  }
  Batch batch;
  batch.input_ids = Tensor::from_vector(ids, {B, T});
  batch.attention_mask = Tensor::from_vector(mask, {B, T});
  if (token_types) batch.token_type_ids = Tensor::from_vector(types, {B, T});
  if (labels) batch.labels = Tensor::from_vector(y, {B});
  return batch;
}

bool bits_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::string file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("ww-test-inference-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

size_t cpu_bytes_now() { return memory_stats(Device::cpu()).current; }

// Weights of the encoder's quantized linears (q/k/v, attention output, feed-forward in and out).
int64_t quantized_weight_count(const ModelConfig& c) {
  return c.num_layers * (4 * c.hidden_size * c.hidden_size + 2 * c.hidden_size * c.intermediate_size);
}

}  // namespace

TEST(InferenceOnly, LogitsAreBitIdenticalToATrainingModel) {
  for (Architecture arch : {Architecture::Bert, Architecture::DistilBert}) {
    const bool types = arch == Architecture::Bert;
    const ModelConfig config = classifier_config(arch);
    SequenceClassifier trained(config, Device::cpu());
    SequenceClassifier inference(config, Device::cpu(), ModelPurpose::Inference);
    trained.init_weights(7);
    inference.init_weights(7);
    EXPECT_TRUE(inference.inference_only());
    EXPECT_FALSE(inference.prepared_for_inference());
    // Two shapes (the second re-plans the activations) and a batch with labels (the loss too).
    for (const Batch& batch : {make_batch(5, 24, 1, types, false), make_batch(3, 40, 2, types, true)}) {
      const std::vector<float> want = trained.forward(batch, false).to_float_vector();
      const std::vector<float> got = inference.forward(batch, false).to_float_vector();
      EXPECT_TRUE(bits_equal(got, want)) << architecture_name(arch);
      EXPECT_EQ(inference.loss(), trained.loss()) << architecture_name(arch);
    }
    EXPECT_TRUE(inference.prepared_for_inference());
    EXPECT_TRUE(inference.parameters().values_released());
    EXPECT_FALSE(inference.parameters().has_grads());

    // The inference arena aliases what training keeps apart (embeddings' LayerNorm in place, residual
    // sums in the projection scratch, GELU in place): the training forward without dropout must give
    // the same bits.
    trained.set_dropout(0, 0, 0);
    const Batch batch = make_batch(4, 32, 3, types, true);
    const std::vector<float> training_forward = trained.forward(batch, true).to_float_vector();
    EXPECT_TRUE(bits_equal(inference.forward(batch, false).to_float_vector(), training_forward))
        << architecture_name(arch);
  }
}

TEST(InferenceOnly, InferencePlanHoldsNoTrainingBuffers) {
  // Per token, BERT-tiny inference in f32 holds: the hidden state (C: the embeddings, which every
  // layer overwrites in place), q/k/v (3C), context (C, later the first LayerNorm's output), the
  // projection scratch (C), the feed-forward activation (I) and six f32 LayerNorm statistics; plus
  // the [B, H, T, T] attention probabilities of the reference kernel and small per-example
  // buffers. Nothing else: a separate layer output (C more floats), a separate embeddings output,
  // the two residual sums kept for backward or a second I-wide buffer do not fit under the bound.
  const ModelConfig config = classifier_config(Architecture::Bert);
  SequenceClassifier model(config, Device::cpu(), ModelPurpose::Inference);
  const int64_t B = 8, T = 64, N = B * T, C = config.hidden_size, I = config.intermediate_size, H = config.num_heads;
  const size_t per_token = size_t(6 * C + I + 6) * sizeof(float);
  const size_t probs = size_t(B * H * T * T) * sizeof(float);
  const size_t small = 64 * 1024;  // inputs, pooled vectors, logits, losses, 256-byte alignment
  const size_t bound = size_t(N) * per_token + probs + small;
  EXPECT_LE(model.planned_activation_bytes(B, T, false), bound);
  EXPECT_GT(model.planned_activation_bytes(B, T, true), bound);
}

TEST(InferenceOnly, QuantizedLogitsAreBitIdenticalToATrainingModel) {
  TempDir dir("quantized");
  for (Architecture arch : {Architecture::Bert, Architecture::DistilBert}) {
    const bool types = arch == Architecture::Bert;
    SequenceClassifier source(classifier_config(arch), Device::cpu());
    source.init_weights(11);
    const fs::path folder = dir.path() / architecture_name(arch);
    source.save(folder);
    for (ops::QuantMethod method : {ops::QuantMethod::Int8Weight, ops::QuantMethod::Int8}) {
      QuantizationOptions q;
      q.method = method;
      q.calibration = {make_batch(4, 24, 20, types, false), make_batch(2, 16, 21, types, false)};
      SequenceClassifier trained = SequenceClassifier::from_pretrained(folder, Device::cpu());
      LoadOptions load;
      load.purpose = ModelPurpose::Inference;
      SequenceClassifier inference = SequenceClassifier::from_pretrained(folder, Device::cpu(), load);
      trained.quantize_for_inference(q);
      inference.quantize_for_inference(q);
      EXPECT_FALSE(inference.prepared_for_inference()) << "calibration must not release the masters";
      const Batch batch = make_batch(6, 20, 22, types, false);
      EXPECT_TRUE(bits_equal(inference.forward(batch, false).to_float_vector(),
                             trained.forward(batch, false).to_float_vector()))
          << architecture_name(arch) << " " << ops::quant_method_name(method);
      EXPECT_TRUE(inference.prepared_for_inference());
      // The quantized weights are held once, as int8: the f32 copies hold everything else only.
      const int64_t P = inference.parameters().numel(), Q = quantized_weight_count(inference.config());
      // (Each gap left by a quantized weight pads < 128 elements to keep the alignment.)
      const size_t f32_bytes = size_t(P - Q) * sizeof(float);
      EXPECT_GE(inference.inference_weight_bytes(), f32_bytes);
      EXPECT_LE(inference.inference_weight_bytes(), f32_bytes + inference.parameters().all().size() * 128 * sizeof(float))
          << "the f32 inference weights should be the unquantized parameters only";
    }
  }
}

TEST(InferenceOnly, HoldsNoGradientsAndOnlyWhatTheForwardReads) {
  const ModelConfig config = classifier_config(Architecture::Bert);
  const Batch batch = make_batch(4, 32, 5, true, true);
  const size_t slack = 64 * 1024;  // the dropout offset, a loss read-back, 256-byte alignment

  // fp32: the masters are the working weights, held once; no gradients.
  {
    const size_t before = cpu_bytes_now();
    SequenceClassifier model(config, Device::cpu(), ModelPurpose::Inference);
    model.init_weights(3);
    model.forward(batch, false);
    const size_t held = cpu_bytes_now() - before;
    const size_t weights = size_t(model.parameters().numel()) * sizeof(float);
    EXPECT_GE(held, weights + model.activation_bytes());
    EXPECT_LE(held, weights + model.activation_bytes() + slack) << "more than one copy of the weights";
    EXPECT_FALSE(model.parameters().has_grads());
    EXPECT_EQ(model.inference_weight_bytes(), weights);
  }
  // The same model built for training holds a gradient buffer after a backward pass: the bound above
  // would fail for it.
  {
    const size_t before = cpu_bytes_now();
    SequenceClassifier model(config, Device::cpu());
    model.init_weights(3);
    model.forward(batch, true);
    model.backward();
    const size_t held = cpu_bytes_now() - before;
    EXPECT_GE(held, 2 * size_t(model.parameters().numel()) * sizeof(float));
  }
  // int8: the f32 masters of the quantized weights are released; they are held as int8 only.
  {
    const size_t before = cpu_bytes_now();
    SequenceClassifier model(config, Device::cpu(), ModelPurpose::Inference);
    model.init_weights(3);
    QuantizationOptions q;
    q.method = ops::QuantMethod::Int8;
    q.calibration = {make_batch(4, 32, 6, true, false)};
    model.quantize_for_inference(q);
    model.forward(batch, false);
    const size_t held = cpu_bytes_now() - before;
    const int64_t P = model.parameters().numel(), Q = quantized_weight_count(config);
    // f32 for the rest, one byte per quantized weight, an f32 scale per output channel.
    const size_t weights = size_t(P - Q) * sizeof(float) + size_t(Q) +
                           size_t(config.num_layers * (3 + 1 + 1) * config.hidden_size + config.num_layers *
                                  config.intermediate_size) * sizeof(float);
    const size_t padding = model.parameters().all().size() * 128 * sizeof(float);  // alignment of the f32 copies
    EXPECT_LE(held, weights + padding + model.activation_bytes() + slack);
    EXPECT_LT(held - model.activation_bytes(), size_t(P) * sizeof(float)) << "the f32 masters are still held";
    EXPECT_GE(held, weights + model.activation_bytes());
  }
}

TEST(InferenceOnly, TrainingIsAClearError) {
  SequenceClassifier model(classifier_config(Architecture::Bert), Device::cpu(), ModelPurpose::Inference);
  model.init_weights(1);
  const Batch batch = make_batch(2, 8, 1, true, true);
  expect_error([&] { model.forward(batch, true); }, {"forward(training=true)", "inference only", "no gradient"});
  expect_error([&] { model.backward(); }, {"backward()", "inference only"});
  expect_error([&] { model.parameters().flat_grads(); }, {"inference only", "cannot be trained"});
  expect_error([&] { model.parameters().grad(model.parameters().all().front().name); }, {"inference only"});
  expect_error([&] { train::Trainer trainer(model, train::TrainerOptions{}); }, {"optimizer", "inference only"});
  EXPECT_FALSE(model.parameters().has_grads());

  Gpt2LMHeadModel lm(Gpt2Config::preset("tiny", 300), Device::cpu(), ModelPurpose::Inference);
  lm.init_weights(1);
  Batch text;
  text.input_ids = Tensor::from_vector(std::vector<int32_t>{1, 2, 3, 4}, {1, 4});
  text.labels = text.input_ids;
  expect_error([&] { lm.forward(text, true); }, {"forward(training=true)", "inference only"});
  expect_error([&] { train::Trainer trainer(lm, train::TrainerOptions{}); }, {"optimizer", "inference only"});
  EXPECT_FALSE(lm.parameters().has_grads());

  SequenceClassifier trainable(classifier_config(Architecture::Bert), Device::cpu());
  expect_error([&] { trainable.prepare_for_inference(); }, {"built for training", "ModelPurpose::Inference"});
}

TEST(InferenceOnly, ReleasedMastersMakeWritesAndRequantizingClearErrors) {
  const ModelConfig config = classifier_config(Architecture::DistilBert);
  SequenceClassifier model(config, Device::cpu(), ModelPurpose::Inference);
  model.init_weights(2);
  QuantizationOptions q;
  q.method = ops::QuantMethod::Int8Weight;
  model.quantize_for_inference(q);
  model.prepare_for_inference();  // releases the masters before any forward
  EXPECT_TRUE(model.prepared_for_inference());
  expect_error([&] { model.init_weights(3); }, {"released", "inference-only"});
  expect_error([&] { model.quantize_for_inference(q); }, {"quantize it before its first forward"});
  expect_error([&] { model.clear_quantization(); }, {"quantized", "load the model again"});
  expect_error([&] { model.parameters().value(model.parameters().all().front().name); }, {"released"});
  ExecutionOptions same;  // f32 again (another attention setting would be fine too)
  model.set_execution(same);
  const Batch batch = make_batch(3, 16, 4, false, false);
  const std::vector<float> logits = model.forward(batch, false).to_float_vector();

  SequenceClassifier reference(config, Device::cpu());
  reference.init_weights(2);
  reference.quantize_for_inference(q);
  EXPECT_TRUE(bits_equal(logits, reference.forward(batch, false).to_float_vector()));

  // Layer reduction needs no masters: the remaining layers' weights are all there.
  model.keep_first_layers(1);
  reference.keep_first_layers(1);
  EXPECT_TRUE(bits_equal(model.forward(batch, false).to_float_vector(),
                         reference.forward(batch, false).to_float_vector()));
}

TEST(InferenceOnly, SavingAfterReleaseWritesTheTrainingModelsFile) {
  TempDir dir("save");
  const ModelConfig config = classifier_config(Architecture::Bert);
  SequenceClassifier trained(config, Device::cpu());
  SequenceClassifier inference(config, Device::cpu(), ModelPurpose::Inference);
  trained.init_weights(9);
  inference.init_weights(9);
  const Batch batch = make_batch(3, 16, 8, true, false);
  const std::vector<float> logits = inference.forward(batch, false).to_float_vector();
  ASSERT_TRUE(inference.prepared_for_inference());
  for (DType store : {DType::F32, DType::F16, DType::BF16}) {
    const std::string tag(dtype_name(store));
    trained.save(dir.path() / ("trained_" + tag), store);
    inference.save(dir.path() / ("inference_" + tag), store);
    EXPECT_EQ(file_bytes(dir.path() / ("inference_" + tag) / "model.safetensors"),
              file_bytes(dir.path() / ("trained_" + tag) / "model.safetensors"))
        << tag;
    EXPECT_EQ(file_bytes(dir.path() / ("inference_" + tag) / "config.json"),
              file_bytes(dir.path() / ("trained_" + tag) / "config.json"))
        << tag;
  }
  SequenceClassifier reloaded = SequenceClassifier::from_pretrained(dir.path() / "inference_f32", Device::cpu());
  EXPECT_TRUE(bits_equal(reloaded.forward(batch, false).to_float_vector(), logits));

  // Quantized weights have no Hugging Face form, and the masters are gone.
  SequenceClassifier quantized(config, Device::cpu(), ModelPurpose::Inference);
  quantized.init_weights(9);
  QuantizationOptions q;
  q.method = ops::QuantMethod::Int8Weight;
  quantized.quantize_for_inference(q);
  quantized.save(dir.path() / "quantized_before_forward");  // masters still there: fine
  quantized.forward(batch, false);
  expect_error([&] { quantized.save(dir.path() / "quantized"); },
               {"cannot save parameter", "attention.self.query.weight", "quantized copy"});
}

TEST(InferenceOnlyGpt2, LogitsLossAndGenerationMatchATrainingModel) {
  const Gpt2Config config = Gpt2Config::preset("tiny", 300);
  Gpt2LMHeadModel trained(config, Device::cpu());
  Gpt2LMHeadModel inference(config, Device::cpu(), ModelPurpose::Inference);
  trained.init_weights(4);
  inference.init_weights(4);
  Rng rng(3);
  std::vector<int32_t> ids(2 * 24), mask(2 * 24, 1);
  for (auto& id : ids) id = int32_t(rng.next_u32() % 300);
  for (int t = 18; t < 24; ++t) mask[size_t(24 + t)] = 0;
  Batch batch;
  batch.input_ids = Tensor::from_vector(ids, {2, 24});
  batch.attention_mask = Tensor::from_vector(mask, {2, 24});
  EXPECT_TRUE(bits_equal(inference.forward(batch, false).to_float_vector(),
                         trained.forward(batch, false).to_float_vector()));
  EXPECT_TRUE(inference.prepared_for_inference());
  EXPECT_TRUE(bits_equal(inference.last_token_logits(batch).to_float_vector(),
                         trained.last_token_logits(batch).to_float_vector()));
  Batch scored = batch;
  scored.labels = batch.input_ids;
  inference.forward(scored, false);
  trained.forward(scored, false);
  EXPECT_EQ(inference.loss(), trained.loss());
  // The training forward (dropout off) keeps separate LayerNorm outputs and GELU buffers: same loss.
  trained.set_dropout(0, 0);
  trained.forward(scored, true);
  EXPECT_EQ(inference.loss(), trained.loss());

  GenerateOptions g;
  g.max_new_tokens = 12;
  const std::vector<int32_t> prompt = {5, 17, 42};
  EXPECT_EQ(inference.generate(prompt, g), trained.generate(prompt, g));
  g.use_cache = false;
  EXPECT_EQ(inference.generate(prompt, g), trained.generate(prompt, g));
  EXPECT_FALSE(inference.parameters().has_grads());

  // Saving after release: the training model's file (Conv1D transposes included).
  TempDir dir("gpt2");
  trained.save(dir.path() / "trained");
  inference.save(dir.path() / "inference");
  EXPECT_EQ(file_bytes(dir.path() / "inference" / "model.safetensors"),
            file_bytes(dir.path() / "trained" / "model.safetensors"));
}
