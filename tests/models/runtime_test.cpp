// The runtime's inference preparation (ModelPurpose::Inference, models/runtime.h) on every device,
// against models built for training with the same weights, for both model families.
// On the CPU:
// - logits (and losses, GPT-2's generated tokens) are bit-identical, fp32 and the CPU's quantized
//   precisions (int8-weight, int8), BERT, DistilBERT and GPT-2; the inference arena's aliasing also
//   gives exactly the training forward's logits (dropout off);
// - memory_stats: no gradient buffer ever; with fp32 the masters are the working weights (held once);
//   quantized, the f32 masters of the quantized weights are gone;
// - training, gradients, re-initialising and re-quantizing are errors that say why;
// - saving after the masters were released writes the same file as the training model.
// On a GPU (skipped with the reason without one):
// - logits bit-identical to a training model's in f32, f16, bf16 (both attention kernels, CUDA-graph
//   replays included) and quantized (int8-weight, int8, fp8), GPT-2's logits, loss and tokens too;
// - no gradients and no f32 masters on the device beside the 16-bit weights; BERT-base fp16 at
//   32 × 128 peaks under a bound computed from the sizes (and under PyTorch eager's measured
//   463 MiB); saving after release writes the training model's file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "model_test_util.h"
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

// ---- checkpoint segments (LayerStack) ---------------------------------------------------------

namespace {

struct Slot {
  Tensor out;
  int64_t index = -1;
};

// A stack of `layers` whose slots and boundaries are told apart by their (host) tensors' sizes.
LayerStack<Slot> planned_stack(int64_t layers, bool training, const std::string& checkpointing) {
  LayerStack<Slot> stack;
  stack.plan(layers, training, parse_checkpointing(checkpointing));
  for (size_t i = 0; i < stack.slots.size(); ++i) {
    stack.slots[i].out = Tensor::empty({int64_t(100 + i)}, DType::F32);
    stack.slots[i].index = int64_t(i);
  }
  for (size_t s = 1; s < stack.boundaries.size(); ++s) stack.boundaries[s] = Tensor::empty({int64_t(200 + s)}, DType::F32);
  stack.input = Tensor::empty({1}, DType::F32);
  return stack;
}

}  // namespace

// Which layer keeps its activations where, and the order of a checkpointed backward: every model
// family's layers go through this one plan.
TEST(LayerStack, SlotsBoundariesAndBackwardOrderFollowTheCheckpointing) {
  // Training without checkpointing: a slot per layer, no boundaries, backward last to first.
  LayerStack<Slot> all = planned_stack(5, true, "none");
  EXPECT_EQ(all.segment, 5);
  EXPECT_EQ(all.slots.size(), 5u);
  EXPECT_TRUE(all.boundaries.empty());
  for (int64_t l = 0; l < 5; ++l) EXPECT_EQ(all.slot(l).index, l);
  EXPECT_EQ(all.input_of(0).numel(), 1);
  EXPECT_EQ(all.input_of(3).numel(), all.slot(2).out.numel());
  std::vector<std::string> order;
  all.backward([&](int64_t l) { order.push_back(std::string("f").append(std::to_string(l))); },
               [&](int64_t l) { order.push_back(std::string("b").append(std::to_string(l))); });
  EXPECT_EQ(order, (std::vector<std::string>{"b4", "b3", "b2", "b1", "b0"}));

  // Segments of 2 over 5 layers: 2 slots reused, the inputs of segments 1 and 2 kept; the last
  // segment's activations are in place, earlier ones are recomputed just before their backward.
  LayerStack<Slot> every2 = planned_stack(5, true, "every-2");
  EXPECT_EQ(every2.segment, 2);
  EXPECT_EQ(every2.slots.size(), 2u);
  ASSERT_EQ(every2.boundaries.size(), 3u);
  EXPECT_EQ(every2.slot(3).index, 1);
  EXPECT_EQ(every2.output(1).numel(), 201);  // ends segment 0: segment 1's input
  EXPECT_EQ(every2.output(3).numel(), 202);
  EXPECT_EQ(every2.output(4).numel(), 100);  // the last layer's output stays in its slot
  EXPECT_EQ(every2.input_of(2).numel(), 201);
  order.clear();
  every2.backward([&](int64_t l) { order.push_back(std::string("f").append(std::to_string(l))); },
                  [&](int64_t l) { order.push_back(std::string("b").append(std::to_string(l))); });
  EXPECT_EQ(order, (std::vector<std::string>{"b4", "f2", "f3", "b3", "b2", "f0", "f1", "b1", "b0"}));

  // Inference: one slot for every layer, whatever the checkpointing.
  LayerStack<Slot> inference = planned_stack(5, false, "every");
  EXPECT_EQ(inference.segment, 5);
  EXPECT_EQ(inference.slots.size(), 1u);
  EXPECT_TRUE(inference.boundaries.empty());
  EXPECT_EQ(inference.slot(4).index, 0);
}

// ---- on a GPU ---------------------------------------------------------------------------------

namespace gpu {
namespace {

using ww::testing::make_batch;
using ww::testing::test_config;

// max |a − b| / max |b|
double scaled_error(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, double(std::abs(a[i] - b[i])));
    scale = std::max(scale, double(std::abs(b[i])));
  }
  return worst / std::max(scale, 1e-30);
}

std::string dtype_label(DType d) { return std::string(dtype_name(d)); }

void sync_gpu() {
#ifdef WW_HAVE_CUDA
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
#endif
}

size_t gpu_bytes_now() { return memory_stats(Device::cuda(0)).current; }

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Parameters the kernels always read in f32: the embedding tables and every LayerNorm.
int64_t f32_read_count(const ModelConfig& c) {
  return (c.vocab_size + c.max_position_embeddings + c.type_vocab_size) * c.hidden_size +
         (2 + 4 * c.num_layers) * c.hidden_size;
}

bool fp8_runs_here() {
  try {
    ops::check_quantization_supported(ops::QuantMethod::Fp8, Device::cuda(0));
    return true;
  } catch (const Error&) {
    return false;
  }
}

std::string bytes_of(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace

TEST(InferenceOnlyOnGpu, LogitsAreBitIdenticalToATrainingModel) {
  WW_REQUIRE_CUDA();
  const Device gpu = Device::cuda(0);
  for (Architecture arch : {Architecture::Bert, Architecture::DistilBert})
    for (DType d : {DType::F32, DType::F16, DType::BF16})
      for (AttentionKernel kernel : {AttentionKernel::Fused, AttentionKernel::Reference}) {
        SCOPED_TRACE(std::string(architecture_name(arch)) + " " + dtype_label(d) + " " + attention_kernel_name(kernel));
        SequenceClassifier trained(test_config(arch), gpu);
        SequenceClassifier inference(test_config(arch), gpu, ModelPurpose::Inference);
        trained.init_weights(5);
        inference.init_weights(5);
        ExecutionOptions o;
        o.compute_dtype = d;
        o.attention = kernel;
        trained.set_execution(o);
        inference.set_execution(o);
        // Host batches (uploaded), a repeated shape (a CUDA-graph replay) and a batch already on the GPU.
        const Batch batches[] = {make_batch(4, 77, 30, arch == Architecture::Bert, Device::cpu()),
                                 make_batch(3, 40, 31, arch == Architecture::Bert, Device::cpu()),
                                 make_batch(4, 77, 32, arch == Architecture::Bert, Device::cpu()),
                                 make_batch(2, 64, 33, arch == Architecture::Bert, gpu)};
        for (const Batch& batch : batches) {
          const std::vector<float> want = trained.forward(batch, false).to_float_vector();
          const std::vector<float> got = inference.forward(batch, false).to_float_vector();
          EXPECT_TRUE(same_bits(got, want));
          EXPECT_EQ(inference.loss(), trained.loss());
        }
        EXPECT_TRUE(inference.prepared_for_inference());
        EXPECT_FALSE(inference.parameters().has_grads());
      }
}

TEST(InferenceOnlyOnGpu, SixteenBitModelHoldsNoF32MastersAndNoGradients) {
  WW_REQUIRE_CUDA();
  const Device gpu = Device::cuda(0);
  const ModelConfig config = test_config(Architecture::Bert);
  for (DType d : {DType::F16, DType::BF16}) {
    SCOPED_TRACE(dtype_label(d));
    sync_gpu();
    const size_t before = gpu_bytes_now();
    SequenceClassifier model(config, gpu, ModelPurpose::Inference);
    model.init_weights(5);
    ExecutionOptions o;
    o.compute_dtype = d;
    model.set_execution(o);
    // Loaded and configured, nothing run: the masters wait in host memory.
    EXPECT_LE(gpu_bytes_now() - before, size_t(4096)) << "the f32 masters went to the GPU";
    model.forward(make_batch(4, 77, 40, true, Device::cpu()), false);
    sync_gpu();
    const size_t held = gpu_bytes_now() - before;
    const int64_t P = model.parameters().numel(), F = f32_read_count(config);
    // 16-bit GEMM weights and biases, f32 embedding tables and LayerNorms; each parameter pads < 128
    // elements to keep its alignment.
    const size_t weights = size_t(2 * (P - F) + 4 * F);
    const size_t padding = model.parameters().all().size() * 128 * (2 + 4);
    EXPECT_GE(model.inference_weight_bytes(), weights);
    EXPECT_LE(model.inference_weight_bytes(), weights + padding);
    EXPECT_LE(held, model.inference_weight_bytes() + model.activation_bytes() + 64 * 1024);
    EXPECT_LT(held - model.activation_bytes(), size_t(4 * P)) << "f32 masters are still on the GPU";
    EXPECT_FALSE(model.parameters().has_grads());
    EXPECT_TRUE(model.parameters().values_released());
    // The precision is fixed now; the same one is fine.
    model.set_execution(o);
    ExecutionOptions other;
    other.compute_dtype = d == DType::F16 ? DType::BF16 : DType::F16;
    ww::testing::expect_error([&] { model.set_execution(other); }, {"prepared for", "load it again"});
    ww::testing::expect_error([&] { train::Trainer trainer(model, train::TrainerOptions{}); },
                              {"optimizer", "inference only"});
  }
}

TEST(InferenceOnlyOnGpu, QuantizedLogitsAreBitIdenticalToATrainingModel) {
  WW_REQUIRE_CUDA();
  const Device gpu = Device::cuda(0);
  std::vector<ops::QuantMethod> methods = {ops::QuantMethod::Int8Weight, ops::QuantMethod::Int8};
  if (fp8_runs_here()) methods.push_back(ops::QuantMethod::Fp8);
  for (ops::QuantMethod method : methods)
    for (DType d : {DType::F32, DType::F16}) {
      if (method == ops::QuantMethod::Fp8 && d == DType::F32) continue;  // fp8 GEMMs take 16-bit activations
      SCOPED_TRACE(std::string(ops::quant_method_name(method)) + " " + dtype_label(d));
      SequenceClassifier trained(test_config(Architecture::Bert), gpu);
      SequenceClassifier inference(test_config(Architecture::Bert), gpu, ModelPurpose::Inference);
      trained.init_weights(8);
      inference.init_weights(8);
      ExecutionOptions o;
      o.compute_dtype = d;
      trained.set_execution(o);
      inference.set_execution(o);
      QuantizationOptions q;
      q.method = method;
      for (uint64_t seed : {50, 51}) {
        Batch b = make_batch(4, 48, seed, true, Device::cpu());
        b.labels = Tensor();
        q.calibration.push_back(b);
      }
      trained.quantize_for_inference(q);
      inference.quantize_for_inference(q);
      EXPECT_FALSE(inference.prepared_for_inference()) << "calibration released the masters";
      for (uint64_t seed : {52, 53, 52}) {  // the third replays the first's CUDA graph
        const Batch batch = make_batch(4, 48, seed, true, Device::cpu());
        EXPECT_TRUE(same_bits(inference.forward(batch, false).to_float_vector(),
                              trained.forward(batch, false).to_float_vector()));
      }
      EXPECT_TRUE(inference.prepared_for_inference());
      // The quantized weights are held as 8-bit only: the float copies hold the rest.
      const ModelConfig& c = inference.config();
      const int64_t P = inference.parameters().numel(), F = f32_read_count(c);
      const int64_t Q = c.num_layers * (4 * c.hidden_size * c.hidden_size + 2 * c.hidden_size * c.intermediate_size);
      const int64_t rest = P - F - Q;  // biases, pooler and classifier: in the compute dtype
      const size_t bytes = size_t(4 * F + (d == DType::F32 ? 4 : 2) * rest);
      EXPECT_GE(inference.inference_weight_bytes(), bytes);
      EXPECT_LE(inference.inference_weight_bytes(), bytes + inference.parameters().all().size() * 128 * 6);
    }
}

// Peak GPU memory of BERT-base fp16 inference, batch B × 128 (N = 128·B tokens), bounded from the
// sizes (P = 109.48 M parameters with 2 labels, C = 768, I = 3072, H = 12, L = 12):
// - weights: every GEMM weight and bias once in fp16, 2·(P − F) = 2·85.6 M ≈ 171 MB; the embedding
//   tables and LayerNorm parameters in f32, as their kernels read them: 4·F with
//   F = (30522 + 512 + 2)·768 + (2 + 4·12)·768 = 23.87 M, ≈ 95 MB;
// - activations (one layer's set, reused by every layer): N·(8C + I) fp16 values (embeddings,
//   q/k/v, context, LayerNorm output, layer output, projection scratch, feed-forward) + N·6 f32
//   LayerNorm statistics + B·H·T f32 softmax statistics of the fused attention: 75.8 MB at B = 32;
// - 1 MiB for the inputs, the pooled head, alignment padding.
// Batch 32: ≈ 343 MB (327 MiB); batch 1: ≈ 269 MB (257 MiB). PyTorch eager (model.half() under
// inference_mode) peaked at 463 MiB for both on an H100 (docs/PERFORMANCE.md). Before inference-only
// models we held 4·P = 438 MB of f32 masters beside the fp16 copy: this test fails for that.
TEST(InferenceOnlyOnGpu, BertBaseFp16PeakMemoryStaysUnderTheSizeBound) {
  WW_REQUIRE_CUDA();
  const Device gpu = Device::cuda(0);
  ModelConfig config = preset_config(Architecture::Bert, "base", 30522);
  config.num_labels = 2;
  const int64_t C = config.hidden_size, I = config.intermediate_size, H = config.num_heads, T = 128;
  for (int64_t B : {int64_t(32), int64_t(1)}) {
    SCOPED_TRACE("batch " + std::to_string(B));
    const int64_t N = B * T;
    // Full-length rows of token ids in [1000, vocab), as `wattwise bench` feeds.
    Rng rng(static_cast<uint64_t>(B));
    std::vector<int32_t> ids(static_cast<size_t>(N)), mask(static_cast<size_t>(N), 1), types(static_cast<size_t>(N), 0);
    for (auto& id : ids) id = 1000 + int32_t(rng.next_u32() % uint32_t(config.vocab_size - 1000));
    Batch batch;
    batch.input_ids = Tensor::from_vector(ids, {B, T});
    batch.attention_mask = Tensor::from_vector(mask, {B, T});
    batch.token_type_ids = Tensor::from_vector(types, {B, T});

    sync_gpu();
    const size_t before = gpu_bytes_now();
    reset_peak_memory(gpu);
    SequenceClassifier model(config, gpu, ModelPurpose::Inference);
    model.init_weights(1);
    ExecutionOptions o;
    o.compute_dtype = DType::F16;
    model.set_execution(o);
    for (int i = 0; i < 3; ++i) model.forward(batch, false).to_float_vector();  // eager, recorded, replayed
    sync_gpu();
    const size_t peak = memory_stats(gpu).peak - before;

    const int64_t P = model.parameters().numel(), F = f32_read_count(config);
    const double weights = 2.0 * double(P - F) + 4.0 * double(F);
    const double activations = double(N) * double(8 * C + I) * 2 + double(N) * 6 * 4 + double(B * H * T) * 4;
    const double bound = weights + activations + double(1 << 20);
    const double mib = 1024.0 * 1024.0;
    std::printf("BERT-base fp16 inference-only, batch %lld x %lld: peak %.1f MiB (bound %.1f MiB, weights %.1f MiB, "
                "PyTorch eager 463 MiB)\n",
                (long long)B, (long long)T, double(peak) / mib, bound / mib, weights / mib);
    EXPECT_LE(double(peak), bound);
    EXPECT_LE(double(peak), 463.0 * mib) << "above PyTorch eager's measured peak (docs/PERFORMANCE.md)";
    EXPECT_GE(double(peak), weights) << "the weights are not all on the GPU?";
    EXPECT_FALSE(model.parameters().has_grads());
  }
}

TEST(InferenceOnlyOnGpu, SavingAfterReleaseWritesTheTrainingModelsFile) {
  WW_REQUIRE_CUDA();
  const Device gpu = Device::cuda(0);
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("ww-test-cuda-inference-save-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  for (DType d : {DType::F16, DType::BF16}) {
    SCOPED_TRACE(dtype_label(d));
    SequenceClassifier trained(test_config(Architecture::Bert), gpu);
    SequenceClassifier inference(test_config(Architecture::Bert), gpu, ModelPurpose::Inference);
    trained.init_weights(6);
    inference.init_weights(6);
    ExecutionOptions o;
    o.compute_dtype = d;
    inference.set_execution(o);
    const Batch batch = make_batch(4, 30, 60, true, Device::cpu());
    const std::vector<float> logits = inference.forward(batch, false).to_float_vector();
    ASSERT_TRUE(inference.prepared_for_inference());
    const std::string tag(dtype_name(d));
    trained.save(dir / ("trained_" + tag), d);
    inference.save(dir / ("inference_" + tag), d);
    EXPECT_EQ(bytes_of(dir / ("inference_" + tag) / "model.safetensors"),
              bytes_of(dir / ("trained_" + tag) / "model.safetensors"));
    // Wider values than it holds, or the other 16-bit format: errors naming the reason.
    for (DType wrong : {DType::F32, d == DType::F16 ? DType::BF16 : DType::F16})
      ww::testing::expect_error([&] { inference.save(dir / "wrong", wrong); },
                                {"cannot save parameter", std::string("only in ") + tag});
    // It loads back (the embedding tables and LayerNorms now rounded to 16-bit, as any 16-bit save).
    LoadOptions load;
    load.purpose = ModelPurpose::Inference;
    SequenceClassifier reloaded = SequenceClassifier::from_pretrained(dir / ("inference_" + tag), gpu, load);
    reloaded.set_execution(o);
    EXPECT_LT(scaled_error(reloaded.forward(batch, false).to_float_vector(), logits), 5e-2);
  }
  std::filesystem::remove_all(dir);
}

TEST(InferenceOnlyGpt2OnGpu, ModelMatchesATrainingModelAndHoldsNoMasters) {
  WW_REQUIRE_CUDA();
  const Device gpu = Device::cuda(0);
  const Gpt2Config config = Gpt2Config::preset("tiny", 300);
  Rng rng(9);
  std::vector<int32_t> ids(2 * 48), mask(2 * 48, 1);
  for (auto& id : ids) id = int32_t(rng.next_u32() % 300);
  for (int t = 40; t < 48; ++t) mask[size_t(48 + t)] = 0;
  Batch batch;
  batch.input_ids = Tensor::from_vector(ids, {2, 48});
  batch.attention_mask = Tensor::from_vector(mask, {2, 48});
  Batch scored = batch;
  scored.labels = batch.input_ids;
  for (DType d : {DType::F32, DType::F16, DType::BF16}) {
    SCOPED_TRACE(std::string(dtype_name(d)));
    Gpt2LMHeadModel inference(config, gpu, ModelPurpose::Inference);
    Gpt2LMHeadModel trained(config, gpu);
    inference.init_weights(3);
    trained.init_weights(3);
    ExecutionOptions e;
    e.compute_dtype = d;
    inference.set_execution(e);
    trained.set_execution(e);
    const std::vector<float> got = inference.forward(batch, false).to_float_vector();
    const std::vector<float> want = trained.forward(batch, false).to_float_vector();
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << "logits differ";
    inference.forward(scored, false);
    trained.forward(scored, false);
    EXPECT_EQ(inference.loss(), trained.loss());
    GenerateOptions g;
    g.max_new_tokens = 10;
    EXPECT_EQ(inference.generate({7, 8, 9}, g), trained.generate({7, 8, 9}, g));

    // What the forward reads: 16-bit GEMM weights and tied head, f32 embedding tables and LayerNorms
    // (the token embedding in both forms); in f32 every parameter once.
    const int64_t P = inference.parameters().numel(), C = config.n_embd;
    const int64_t wte = config.vocab_size * C, wpe = config.n_positions * C, ln = (2 + 4 * config.n_layer) * C;
    const size_t weights = d == DType::F32 ? size_t(4 * P) : size_t(2 * (P - wpe - ln) + 4 * (wte + wpe + ln));
    EXPECT_GE(inference.inference_weight_bytes(), weights);
    EXPECT_LE(inference.inference_weight_bytes(), weights + inference.parameters().all().size() * 128 * 6);
    EXPECT_TRUE(inference.prepared_for_inference());
    EXPECT_FALSE(inference.parameters().has_grads());
    if (d != DType::F32) {
      EXPECT_LT(inference.inference_weight_bytes(), size_t(4 * P)) << "the f32 masters are held beside the 16-bit copy";
    }
    ww::testing::expect_error([&] { inference.forward(scored, true); }, {"inference only"});
  }
}

}  // namespace gpu
