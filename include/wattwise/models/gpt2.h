#pragma once
// GPT2LMHeadModel (Hugging Face's GPT-2 causal language model) with explicit forward and backward
// passes: learned token and position embeddings, pre-LayerNorm blocks with causal self-attention
// and a tanh-GELU MLP, a final LayerNorm and a language-model head tied to the token embeddings.
// Like SequenceClassifier, the model code only calls ops::, so one implementation serves the CPU
// and CUDA devices, and it runs on the same ModelRuntime (runtime.h: execution options, working
// weights, activation arena, CUDA graphs, checkpoint segments, inference preparation).
//
// Weight layout: Hugging Face stores GPT-2's projections as Conv1D weights [in, out]; wattwise
// keeps them as nn.Linear weights [out, in] (what ops::linear_* take) under the same names and
// transposes on load and save, so files round-trip unchanged.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "wattwise/core/tensor.h"
#include "wattwise/models/execution.h"
#include "wattwise/models/model.h"
#include "wattwise/models/parameters.h"
#include "wattwise/models/runtime.h"

namespace ww::models {

// Hyper-parameters of a Hugging Face GPT-2 config.json. Keys we do not interpret are kept in
// `extra` so a saved config round-trips; a value we cannot honour (another activation, untied
// embeddings, n_inner other than 4·n_embd, ...) is an error naming the key.
struct Gpt2Config {
  int64_t vocab_size = 50257;
  int64_t n_positions = 1024;
  int64_t n_embd = 768;
  int64_t n_layer = 12;
  int64_t n_head = 12;
  float layer_norm_epsilon = 1e-5f;
  float resid_pdrop = 0.1f;
  float embd_pdrop = 0.1f;
  float attn_pdrop = 0.1f;
  float initializer_range = 0.02f;
  int32_t bos_token_id = 50256;
  int32_t eos_token_id = 50256;
  nlohmann::json extra = nlohmann::json::object();

  int64_t head_dim() const { return n_embd / n_head; }
  int64_t inner_size() const { return 4 * n_embd; }
  // Throws naming origin, the key and the bad value: sizes must be positive and fit the int32 the
  // kernels and token ids use, and the parameter count must fit in 64 bits.
  void validate(const std::string& origin) const;
  int64_t parameter_count() const;  // overflow-checked; the exact count of the model built from it
  // Throws ww::Error before anything is allocated when `bytes_per_parameter` x the parameter count
  // cannot fit in the memory `device` has available, naming the keys of the largest term.
  void check_fits(Device device, int64_t bytes_per_parameter, const std::string& origin) const;
  std::string sizes() const;  // "n_layer 12, n_embd 768, ...": the sizes, for messages

  // `origin` (a file name) goes into error messages.
  static Gpt2Config from_json(const nlohmann::json& json, const std::string& origin = "config.json");
  nlohmann::json to_json() const;  // HF key names, model_type "gpt2", architectures GPT2LMHeadModel
  static Gpt2Config load(const std::filesystem::path& path);  // a config.json or its folder
  void save(const std::filesystem::path& path) const;

  // Named sizes: "tiny" (2 layers, 64 hidden, 4 heads, 64 positions; for tests), "mini" (4×256),
  // "small" (GPT-2 124M: 12×768, 12 heads, 1024 positions). vocab_size <= 0 keeps the preset's
  // (50257 for every preset; a smaller one makes its last id bos/eos). An unknown name is an error listing the known ones.
  static Gpt2Config preset(const std::string& name, int64_t vocab_size = 0);
};

// How generate() picks each next token. Greedy takes the arg-max; otherwise the logits are divided
// by `temperature`, restricted to the `top_k` most likely tokens (0: all) and then to the smallest
// set whose probability reaches `top_p` (1: all), and a token is drawn with a Philox stream seeded
// by `seed` (the same seed gives the same tokens on every device).
struct GenerateOptions {
  int64_t max_new_tokens = 32;
  bool greedy = true;
  float temperature = 1.0f;  // > 0
  int64_t top_k = 0;
  float top_p = 1.0f;        // in (0, 1]
  uint64_t seed = 0;
  int32_t eos_token_id = -1;  // stop after emitting this token (< 0: never)
  // true: prefill once, then one token per step against cached keys and values; false: run the
  // whole sequence again at every step (the reference the cache is tested against).
  bool use_cache = true;
  // Called with each new token as it is chosen (streaming output); returning false stops early.
  std::function<bool(int32_t)> on_token;
};

class Gpt2LMHeadModel : public ModelRuntime {
 public:
  Gpt2LMHeadModel(const Gpt2Config& config, Device device, ModelPurpose purpose = ModelPurpose::Training);

  // Reads config.json + model.safetensors (or a sharded index) from a Hugging Face GPT-2 folder;
  // f32, f16 or bf16 weights load into f32 masters. Accepts names with or without the
  // "transformer." prefix; lm_head.weight may be absent (tied) or must equal wte; attention mask
  // buffers (attn.bias, attn.masked_bias) are ignored. A missing tensor or a wrong shape is an
  // error naming the tensor, the file and the expected shape. `purpose`: see ModelPurpose (model.h).
  // NaN or Inf in a weight is refused unless `allow_nonfinite` (then a warning).
  static Gpt2LMHeadModel from_pretrained(const std::filesystem::path& dir, Device device,
                                         ModelPurpose purpose = ModelPurpose::Training,
                                         bool allow_nonfinite = false);
  // Hugging Face's initialisation: N(0, initializer_range) for weights and embeddings, the
  // residual output projections (attn.c_proj, mlp.c_proj) scaled by 1/√(2·n_layer), zero biases,
  // unit LayerNorm.
  void init_weights(uint64_t seed);
  // Writes config.json and model.safetensors into `dir` (created if needed) with HF names and
  // Conv1D layout, weights as `store_dtype` (f32, f16 or bf16), no lm_head.weight (tied): what
  // transformers' GPT2LMHeadModel.from_pretrained loads unchanged. An inference-only model that
  // released its f32 masters saves the copies its forward reads, as SequenceClassifier::save says
  // (store_dtype must then be its compute dtype).
  void save(const std::filesystem::path& dir, DType store_dtype = DType::F32) const;

  // Batch: input_ids i32 [B,T]; attention_mask i32 [B,T] optional (undefined: all real; padding
  // must be on the right: the positions are 0..T-1 either way, as HF's without position_ids);
  // labels i32 [B,T] optional, aligned with input_ids (position t is scored against labels[t+1],
  // -100 ignored).
  // With labels: computes the mean loss over scored tokens (loss()) WITHOUT materialising the
  // vocabulary logits of the whole batch, and returns an undefined Tensor. Without labels
  // (inference): returns the logits [B,T,V] in the compute dtype (a view valid until the next
  // forward).
  // Cost note: forward() with labels computes the losses only, so backward() recomputes each
  // logits chunk (one extra [rows, C]·[C, V] GEMM) before its gradient; train_step_graphed knows
  // the loss scale up front and does loss and gradient in one pass.
  Tensor forward(const Batch& batch, bool training) override;
  // Number of scored tokens in the last forward's labels (after the shift).
  int64_t scored_tokens() const { return num_valid_; }
  void train_step_graphed(const Batch& batch, float loss_scale, const std::function<void()>& tail) override;

  // Logits f32 [B,V] (on the CPU) of each row's last real token (the attention mask's last 1;
  // the last position without a mask): what a sampler needs.
  Tensor last_token_logits(const Batch& batch);

  // Continues `prompt_ids` (non-empty, prompt + max_new_tokens <= n_positions) and returns the new
  // tokens only (the prompt is not repeated), stopping after eos_token_id when set.
  std::vector<int32_t> generate(const std::vector<int32_t>& prompt_ids, const GenerateOptions& options);

  // Dropout overrides (residual/embedding, attention); 0 turns one off.
  void set_dropout(float hidden, float attention);
  // Rows of the language-model head processed at once (logits chunk [rows, V]); default 4096.
  void set_loss_chunk_rows(int64_t rows);
  const Gpt2Config& config() const { return config_; }
  size_t planned_activation_bytes(int64_t batch, int64_t seq_len, bool training) const;

 private:
  struct LayerNames {
    std::string ln1_w, ln1_b, attn_w, attn_b, attn_proj_w, attn_proj_b, ln2_w, ln2_b, fc_w, fc_b, mlp_proj_w,
        mlp_proj_b;
  };
  struct LayerActivations {
    Tensor ln1_out, ln1_mean, ln1_rstd, qkv, probs, lse, context, res1, ln2_out, ln2_mean, ln2_rstd, fc_pre,
        fc_act, out;
  };
  struct Activations {
    int64_t batch = 0, seq_len = 0, chunk = 0;
    bool training = false, full_logits = false;
    DType dtype = DType::F32;
    AttentionKernel attention = AttentionKernel::Reference;
    Tensor in_ids, in_mask, in_labels;  // fixed device input buffers (GPU)
    Tensor emb;                         // embeddings output (after dropout): layer 0's input
    LayerStack<LayerActivations> stack; // the blocks' activations and checkpoint segments
    Tensor proj;                        // per-layer scratch
    Tensor lnf_out, lnf_mean, lnf_rstd;
    Tensor logits;                      // [chunk, padded V] (or [N, V] for inference without labels)
    Tensor losses;                      // f32 [N]
    Tensor d_a, d_b, d_c, d_fc, d_qkv, d_scratch, d_lnf, ln_workspace;
  };

  void register_parameters();
  std::vector<WeightUse> weight_uses() const override;
  void check_batch(const Batch& batch) const;
  void allocate_activations(Arena& arena, Activations& a, int64_t batch, int64_t seq_len, bool training,
                            bool full_logits) const;
  size_t activation_bytes_for(int64_t batch, int64_t seq_len, bool training, bool full_logits) const;
  void plan_activations(int64_t batch, int64_t seq_len, bool training, bool full_logits);
  Batch stage_inputs(const Batch& batch);
  void layer_forward(int64_t l, const Tensor& x, LayerActivations& s, const Tensor& out, bool training,
                     const Tensor& key_mask);
  void layer_backward(int64_t l, const Tensor& x, LayerActivations& s, const Tensor& key_mask);
  void trunk_forward(const Batch& batch, bool training);  // embeddings, blocks, ln_f
  // The chunked head: per chunk of rows, logits = X·Wteᵀ, cross-entropy losses and, with
  // `with_grad`, the gradient in place, d_lnf rows = dlogits·Wte and dWte += dlogitsᵀ·X.
  void head_loss(const Tensor& shifted_labels, bool with_grad, float scale);
  // The row length of the loss chunks' logits buffer: vocab_size rounded up to a multiple of 64.
  int64_t padded_vocab_size() const { return (config_.vocab_size + 63) / 64 * 64; }
  // The head's loss and gradient, then trunk_backward.
  void backward_kernels(float loss_scale) override;
  // Backward from d_lnf (the head's gradient, already computed) through ln_f, the blocks and the
  // embeddings.
  void trunk_backward();

  Gpt2Config config_;
  std::vector<LayerNames> layer_names_;
  std::string wte_, wpe_, lnf_w_, lnf_b_;
  // The LM head's GEMM weight with the vocabulary padded to padded_vocab_size() rows: wte's GEMM
  // copy (refreshed by head_loss) over zero rows. cuBLASLt runs the head's forward and dX GEMMs
  // 8× faster with a vocabulary of a multiple of 64 than with 50,257 (bench/cuda/lm_head_gemm.cu).
  Tensor head_weight_;
  void ensure_head_weight();
  Activations act_;
  Tensor shifted_labels_;  // i32 [N] on the device: labels[t+1], -100 at each row's end
  int64_t loss_chunk_rows_ = 4096;
};

}  // namespace ww::models
