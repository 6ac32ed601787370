// Fused self-attention, FlashAttention-2 style (see kernels/attention.h for the contract): the
// WMMA/FMA kernels and the entry points, which send f16/bf16 at head dims 32 and 64 to the mma.sync
// kernels of flash_attention_mma.cu (flash_attention.cuh says what the two share).
//
// Cost model (written before optimising). Per (batch, head) the forward pass is two T×T×D GEMMs,
// 4·T²·D FLOP; backward recomputes the scores in both of its kernels: dK/dV kernel S, dP, dV, dK
// (4 GEMMs), dQ kernel S, dP, dQ (3 GEMMs), 14·T²·D FLOP (FA2 proper: 10·T²·D with atomics).
// BERT-base training shape B=32, T=256, H=12, D=64:
//   forward  4·256²·64·384  = 6.4 GFLOP  → 9 µs at 700 TFLOP/s (H100 dense bf16, cuBLAS);
//   backward 14·256²·64·384 = 22.5 GFLOP → 32 µs at 700 TFLOP/s.
//   Memory: qkv is 32·256·2304·2 B = 38 MB (bf16), read once per kernel (plus out/dout) → about
//   12 µs per pass at 3.3 TB/s, so at this T the forward is as much memory- as compute-bound.
// This first version (WMMA 16×16×16, operands staged in shared memory, no cp.async double
// buffering, accumulators kept in shared memory so the online-softmax rescale is a plain loop)
// should land near 20-35% of peak: forward ≈ 30-50 µs, backward ≈ 100-150 µs. The reference path
// for the same shape moves the B·H·T²·4 B = 100 MB probability matrix several times (~1 ms).
//
// Structure. A CTA has kWarps warps; warp w owns 16 rows of the CTA's row block (queries in the
// forward and dQ kernels, keys in the dK/dV kernel) and loops over tiles of kCols columns (keys,
// resp. queries) staged in shared memory by the whole CTA. Two warp-level products do all the
// arithmetic: warp_scores (S = A·Bᵀ, 16×kCols, f32) and warp_pv (O += P·X, 16×DMAX, f32). For f16
// and bf16 they use tensor cores (nvcuda::wmma, f32 accumulate); for f32 they are plain FMA loops
// over the same tiles, so the three precisions share every other line.
// Head dims: the kernels are instantiated for DMAX = 32, 64, 128 and zero-pad D up to DMAX in
// shared memory, so any multiple of 8 up to 128 works (32, 64, 128 without waste).
// Key tiles that hold only padding are skipped (they would add exact zeros), so a short sequence
// in a padded batch costs little more than its real length.
// Softmax runs in base 2 (scores pre-multiplied by scale·log2 e); lse is stored in natural units.
// Backward is deterministic: no atomics, every sum has a fixed order.
#include "kernels/attention.h"

#include <mma.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/flash_attention.cuh"

namespace ww::kernels::cuda {
namespace {

// ---- tile geometry -------------------------------------------------------------------------

template <typename T, int DMAX>
struct Tiles {
  static constexpr bool kIsF32 = std::is_same_v<T, float>;
  // f32 with D up to 128 would need more shared memory than an SM has at 64×64: halve the tiles.
  static constexpr bool kSmall = kIsF32 && DMAX == 128;
  static constexpr int kWarps = kSmall ? 2 : 4;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kRows = 16 * kWarps;  // rows a CTA owns
  static constexpr int kCols = kSmall ? 32 : 64;  // columns per loop tile
  // Operand rows (Q, K, V, dO) in shared memory. WMMA wants a multiple of 8 elements (16 B); the
  // f32 loops read a column per lane, so an odd stride keeps those reads free of bank conflicts.
  static constexpr int kLd = kIsF32 ? DMAX + 1 : DMAX + 8;
  static constexpr int kLdS = kCols + 4;  // f32 score rows
  static constexpr int kLdP = kCols + 8;  // T probability rows (A operand of warp_pv)
  static constexpr int kLdO = DMAX + 4;   // f32 accumulator rows
  static_assert(kCols % 32 == 0 && DMAX % 32 == 0, "lane mappings assume multiples of 32");
};

template <typename T, int DMAX>
struct ForwardSmem {
  using G = Tiles<T, DMAX>;
  T *q, *k, *v, *p;
  float *s, *o;
  int* key_ok;
  size_t bytes;
  __host__ __device__ explicit ForwardSmem(uintptr_t base) {
    Carver c{base};
    q = c.take<T>(G::kRows * G::kLd);
    k = c.take<T>(G::kCols * G::kLd);
    v = c.take<T>(G::kCols * G::kLd);
    s = c.take<float>(G::kRows * G::kLdS);
    p = c.take<T>(G::kRows * G::kLdP);
    o = c.take<float>(G::kRows * G::kLdO);
    key_ok = c.take<int>(G::kCols);
    bytes = c.used;
  }
};

// dK/dV kernel: rows are keys, columns queries.
template <typename T, int DMAX>
struct KeySideSmem {
  using G = Tiles<T, DMAX>;
  T *k, *v, *q, *dout, *p, *ds;
  float *s, *dp, *dk, *dv, *lse, *delta;
  int* key_ok;
  size_t bytes;
  __host__ __device__ explicit KeySideSmem(uintptr_t base) {
    Carver c{base};
    k = c.take<T>(G::kRows * G::kLd);
    v = c.take<T>(G::kRows * G::kLd);
    q = c.take<T>(G::kCols * G::kLd);
    dout = c.take<T>(G::kCols * G::kLd);
    s = c.take<float>(G::kRows * G::kLdS);
    dp = c.take<float>(G::kRows * G::kLdS);
    p = c.take<T>(G::kRows * G::kLdP);
    ds = c.take<T>(G::kRows * G::kLdP);
    dk = c.take<float>(G::kRows * G::kLdO);
    dv = c.take<float>(G::kRows * G::kLdO);
    lse = c.take<float>(G::kCols);
    delta = c.take<float>(G::kCols);
    key_ok = c.take<int>(G::kRows);
    bytes = c.used;
  }
};

// dQ kernel: rows are queries, columns keys.
template <typename T, int DMAX>
struct QuerySideSmem {
  using G = Tiles<T, DMAX>;
  T *q, *dout, *k, *v, *ds;
  float *s, *dp, *dq, *lse, *delta;
  int* key_ok;
  size_t bytes;
  __host__ __device__ explicit QuerySideSmem(uintptr_t base) {
    Carver c{base};
    q = c.take<T>(G::kRows * G::kLd);
    dout = c.take<T>(G::kRows * G::kLd);
    k = c.take<T>(G::kCols * G::kLd);
    v = c.take<T>(G::kCols * G::kLd);
    s = c.take<float>(G::kRows * G::kLdS);
    dp = c.take<float>(G::kRows * G::kLdS);
    ds = c.take<T>(G::kRows * G::kLdP);
    dq = c.take<float>(G::kRows * G::kLdO);
    lse = c.take<float>(G::kRows);
    delta = c.take<float>(G::kRows);
    key_ok = c.take<int>(G::kCols);
    bytes = c.used;
  }
};

// ---- dropout (the rule: see flash_attention.cuh) --------------------------------------------

// Bit e set iff key key0 + e of probability row `row` survives; key0 % 4 == 0, so the four keys
// are one word of one Philox block.
__device__ inline unsigned keep_bits4(const Params& p, uint64_t row, int64_t key0) {
  if (!p.use_dropout) return 0xFu;
  const Philox4 w = dropout_block(p, row * p.blocks_per_row + uint64_t(key0 >> 4));
  return flash_lanes::keep_nibble(flash_lanes::word_of(w, int(key0 >> 2) & 3), p.threshold);
}

// ---- CTA-wide staging ----------------------------------------------------------------------

// dst[r][0..DMAX) = src row (row0 + r)'s first head_dim elements, zero past head_dim or past the
// sequence. src points at row 0 of this (batch, block, head); rows are `stride` elements apart.
// head_dim is a multiple of 8, so every 16-byte chunk is wholly inside or outside.
template <typename T, int DMAX, int LD>
__device__ void load_rows(T* dst, const T* src, int64_t stride, int64_t row0, int rows, int64_t seq_len,
                         int64_t head_dim) {
  constexpr int kVec = 16 / int(sizeof(T));
  constexpr int kChunks = DMAX / kVec;
  for (int u = threadIdx.x; u < rows * kChunks; u += blockDim.x) {
    const int r = u / kChunks, c = (u % kChunks) * kVec;
    const int64_t row = row0 + r;
    uint4 bits = make_uint4(0, 0, 0, 0);
    if (row < seq_len && c < head_dim) bits = *reinterpret_cast<const uint4*>(src + row * stride + c);
    if constexpr ((LD * sizeof(T)) % 16 == 0) {
      *reinterpret_cast<uint4*>(dst + r * LD + c) = bits;
    } else {
      const T* elements = reinterpret_cast<const T*>(&bits);
#pragma unroll
      for (int e = 0; e < kVec; ++e) dst[r * LD + c + e] = elements[e];
    }
  }
}

// Rows (row0 + r) < seq_len of dst get scale · acc[r][0..head_dim), converted to T.
template <typename T, int DMAX, int LDO>
__device__ void store_rows(T* dst, int64_t stride, const float* acc, int64_t row0, int rows, int64_t seq_len,
                          int64_t head_dim, float scale) {
  constexpr int kVec = 16 / int(sizeof(T));
  constexpr int kChunks = DMAX / kVec;
  for (int u = threadIdx.x; u < rows * kChunks; u += blockDim.x) {
    const int r = u / kChunks, c = (u % kChunks) * kVec;
    const int64_t row = row0 + r;
    if (row >= seq_len || c >= head_dim) continue;
    union {
      uint4 bits;
      T elements[kVec];
    } pack;
#pragma unroll
    for (int e = 0; e < kVec; ++e) pack.elements[e] = store_float<T>(acc[r * LDO + c + e] * scale);
    *reinterpret_cast<uint4*>(dst + row * stride + c) = pack.bits;
  }
}

__device__ void zero_floats(float* dst, int count) {
  for (int u = threadIdx.x; u < count; u += blockDim.x) dst[u] = 0.0f;
}

// ---- warp-level products -------------------------------------------------------------------

// Tensor cores for T: f16 always, bf16 from sm_80 (the build also emits sm_75 code, where bf16
// takes the FMA loops; H100 runs the sm_90a code).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
constexpr bool kBf16TensorCores = false;
#else
constexpr bool kBf16TensorCores = true;
#endif
template <typename T>
constexpr bool kUseWmma = std::is_same_v<T, __half> || (std::is_same_v<T, __nv_bfloat16> && kBf16TensorCores);

// s[r][c] = Σ_d a[r][d] · b[c][d] for r < 16, c < NCOLS (a: the warp's 16 rows, b: a tile).
template <typename T, int DMAX, int NCOLS, int LD, int LDS>
__device__ void warp_scores(float* s, const T* a, const T* b) {
  if constexpr (!kUseWmma<T>) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int m = 0; m < NCOLS / 32; ++m) {
      const int c = lane + 32 * m;
      float acc[16];
#pragma unroll
      for (int r = 0; r < 16; ++r) acc[r] = 0.0f;
#pragma unroll 4
      for (int d = 0; d < DMAX; ++d) {
        const float bv = load_float(b[c * LD + d]);
#pragma unroll
        for (int r = 0; r < 16; ++r) acc[r] = fmaf(load_float(a[r * LD + d]), bv, acc[r]);
      }
#pragma unroll
      for (int r = 0; r < 16; ++r) s[r * LDS + c] = acc[r];
    }
  } else {
    using namespace nvcuda;
    wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> fb;  // bᵀ
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
#pragma unroll
    for (int n = 0; n < NCOLS / 16; ++n) {
      wmma::fill_fragment(acc, 0.0f);
#pragma unroll
      for (int k = 0; k < DMAX / 16; ++k) {
        wmma::load_matrix_sync(fa, a + k * 16, LD);
        wmma::load_matrix_sync(fb, b + n * 16 * LD + k * 16, LD);
        wmma::mma_sync(acc, fa, fb, acc);
      }
      wmma::store_matrix_sync(s + n * 16, acc, LDS, wmma::mem_row_major);
    }
  }
}

// o[r][d] += Σ_k p[r][k] · x[k][d] for r < 16, k < NCOLS, d < DMAX (o: f32 accumulators).
template <typename T, int DMAX, int NCOLS, int LD, int LDP, int LDO>
__device__ void warp_pv(float* o, const T* p, const T* x) {
  if constexpr (!kUseWmma<T>) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int m = 0; m < DMAX / 32; ++m) {
      const int c = lane + 32 * m;
      float acc[16];
#pragma unroll
      for (int r = 0; r < 16; ++r) acc[r] = o[r * LDO + c];
#pragma unroll 4
      for (int k = 0; k < NCOLS; ++k) {
        const float xv = load_float(x[k * LD + c]);
#pragma unroll
        for (int r = 0; r < 16; ++r) acc[r] = fmaf(load_float(p[r * LDP + k]), xv, acc[r]);
      }
#pragma unroll
      for (int r = 0; r < 16; ++r) o[r * LDO + c] = acc[r];
    }
  } else {
    using namespace nvcuda;
    wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
#pragma unroll
    for (int n = 0; n < DMAX / 16; ++n) {
      wmma::load_matrix_sync(acc, o + n * 16, LDO, wmma::mem_row_major);
#pragma unroll
      for (int k = 0; k < NCOLS / 16; ++k) {
        wmma::load_matrix_sync(fa, p + k * 16, LDP);
        wmma::load_matrix_sync(fb, x + k * 16 * LD + n * 16, LD);
        wmma::mma_sync(acc, fa, fb, acc);
      }
      wmma::store_matrix_sync(o + n * 16, acc, LDO, wmma::mem_row_major);
    }
  }
}

// ---- forward -------------------------------------------------------------------------------

// Grid (query tiles, H, B). Lanes 2r and 2r+1 of a warp share query row r of the warp's 16: each
// takes alternate 4-column chunks of the key tile (4 consecutive keys = one word of a Philox block)
// and both keep the row's running max m and sum l.
template <typename T, int DMAX>
__global__ void __launch_bounds__(Tiles<T, DMAX>::kThreads)
    flash_forward_kernel(T* out, float* lse, const T* qkv, Params p) {
  using G = Tiles<T, DMAX>;
  extern __shared__ __align__(128) unsigned char smem_bytes[];
  const ForwardSmem<T, DMAX> sm(reinterpret_cast<uintptr_t>(smem_bytes));

  const int64_t T_len = p.seq_len, C = p.channels, D = p.head_dim, qkv_row = 3 * C;
  const int64_t b = blockIdx.z, h = blockIdx.y, q0 = int64_t(blockIdx.x) * G::kRows;
  const int64_t bh = b * p.heads + h;
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const T* q_src = qkv + b * T_len * qkv_row + h * D;

  load_rows<T, DMAX, G::kLd>(sm.q, q_src, qkv_row, q0, G::kRows, T_len, D);
  zero_floats(sm.o, G::kRows * G::kLdO);

  const T* q_w = sm.q + warp * 16 * G::kLd;
  float* s_w = sm.s + warp * 16 * G::kLdS;
  T* p_w = sm.p + warp * 16 * G::kLdP;
  float* o_w = sm.o + warp * 16 * G::kLdO;
  const int r = lane >> 1, half = lane & 1;
  const int64_t i = q0 + warp * 16 + r;
  const uint64_t prob_row = uint64_t(bh * T_len + i);  // this query's row of the probabilities

  float m = -INFINITY, l = 0.0f;  // running max (base-2 units) and sum of the row
  const int64_t key_end = p.causal ? (T_len < q0 + G::kRows ? T_len : q0 + G::kRows) : T_len;
  for (int64_t k0 = 0; k0 < key_end; k0 += G::kCols) {
    __syncthreads();  // the previous tile's readers are done
    load_rows<T, DMAX, G::kLd>(sm.k, q_src + C, qkv_row, k0, G::kCols, T_len, D);
    load_rows<T, DMAX, G::kLd>(sm.v, q_src + 2 * C, qkv_row, k0, G::kCols, T_len, D);
    const int any_key = load_key_flags(sm.key_ok, p.key_mask, b, k0, G::kCols, T_len);
    // A tile of padding only would leave m, l and o exactly as they are: skip it.
    if (!__syncthreads_or(any_key)) continue;

    warp_scores<T, DMAX, G::kCols, G::kLd, G::kLdS>(s_w, q_w, sm.k);
    __syncwarp();

    constexpr int kChunks = G::kCols / 8;  // 4-key chunks per lane
    float x[kChunks][4];
    float tile_max = -INFINITY;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int j0 = 4 * (half + 2 * c);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int j = j0 + e;
        const bool allowed = sm.key_ok[j] && !(p.causal && k0 + j > i);
        x[c][e] = allowed ? s_w[r * G::kLdS + j] * p.scale_log2 : -INFINITY;
        tile_max = fmaxf(tile_max, x[c][e]);
      }
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    const float m_new = fmaxf(m, tile_max);
    const float m_use = m_new == -INFINITY ? 0.0f : m_new;  // no real key yet: every term is 0
    const float alpha = exp2f(m - m_use);
    float tile_sum = 0.0f;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int j0 = 4 * (half + 2 * c);
      const unsigned keep = keep_bits4(p, prob_row, k0 + j0);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float pe = exp2f(x[c][e] - m_use);
        tile_sum += pe;  // the normaliser counts every probability, dropped or not
        p_w[r * G::kLdP + j0 + e] = store_float<T>(((keep >> e) & 1u) ? pe * p.keep_scale : 0.0f);
      }
    }
    tile_sum += __shfl_xor_sync(0xffffffffu, tile_sum, 1);
    l = l * alpha + tile_sum;
    m = m_new;
    for (int d = half; d < DMAX; d += 2) o_w[r * G::kLdO + d] *= alpha;
    __syncwarp();
    warp_pv<T, DMAX, G::kCols, G::kLd, G::kLdP, G::kLdO>(o_w, p_w, sm.v);
  }

  __syncwarp();
  const float inv_l = l > 0.0f ? 1.0f / l : 0.0f;  // a row without real keys outputs zeros
  for (int d = half; d < DMAX; d += 2) o_w[r * G::kLdO + d] *= inv_l;
  if (half == 0 && i < T_len) lse[bh * T_len + i] = l > 0.0f ? (m + log2f(l)) * kLn2 : -INFINITY;
  __syncthreads();
  store_rows<T, DMAX, G::kLdO>(out + b * T_len * C + h * D, C, sm.o, q0, G::kRows, T_len, D, 1.0f);
}

// ---- backward ------------------------------------------------------------------------------

// delta[b,h,i] = Σ_d dO[b,i,h,d] · O[b,i,h,d] (= Σ_j dP_ij · P_ij, dropout included). One warp per
// row r = (b·T + i)·H + h, a fixed-order shuffle sum.
template <typename T>
__global__ void flash_delta_kernel(float* delta, const T* dout, const T* out, int64_t rows, Params p) {
  const int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = int(threadIdx.x) % 32;
  if (row >= rows) return;  // whole warps only
  const int64_t h = row % p.heads, bi = row / p.heads;
  const int64_t b = bi / p.seq_len, i = bi % p.seq_len;
  const T* o = out + bi * p.channels + h * p.head_dim;
  const T* g = dout + bi * p.channels + h * p.head_dim;
  float acc = 0.0f;
  for (int64_t d = lane; d < p.head_dim; d += 32) acc = fmaf(load_float(g[d]), load_float(o[d]), acc);
  for (int s = 16; s > 0; s >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, s);
  if (lane == 0) delta[(b * p.heads + h) * p.seq_len + i] = acc;
}

// The same delta with 16-byte loads: a row's head_dim / V lanes (a power of two up to 32) each
// load V elements of dO and O, several rows per warp, and sum in a fixed order (their own V
// products, then a butterfly over the row's lanes). One warp per row reading 2-byte elements took
// several times the DRAM time of dO and O at GPT-2's shape.
template <typename T, int V>
__global__ void flash_delta_vector_kernel(float* delta, const T* dout, const T* out, int64_t rows, int lanes_per_row,
                                          Params p) {
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t row = t / lanes_per_row;
  const int part = int(t % lanes_per_row);
  float acc = 0.0f;
  if (row < rows) {  // lanes past the last row still join the shuffles
    const int64_t h = row % p.heads, bi = row / p.heads;
    float g[V], o[V];
    load_floats<V>(dout + bi * p.channels + h * p.head_dim + part * V, g);
    load_floats<V>(out + bi * p.channels + h * p.head_dim + part * V, o);
#pragma unroll
    for (int k = 0; k < V; ++k) acc = fmaf(g[k], o[k], acc);
  }
  for (int s = lanes_per_row / 2; s > 0; s >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, s);
  if (row < rows && part == 0) {
    const int64_t h = row % p.heads, bi = row / p.heads;
    delta[(bi / p.seq_len * p.heads + h) * p.seq_len + bi % p.seq_len] = acc;
  }
}
// Grid (key tiles, H, B): dK, dV of the CTA's keys, looping over query tiles. Warp w owns keys
// k0 + 16w..; in the elementwise step lane units cover (query column, 4 consecutive keys).
template <typename T, int DMAX>
__global__ void __launch_bounds__(Tiles<T, DMAX>::kThreads)
    flash_dkdv_kernel(T* dqkv, const T* qkv, const T* dout, const float* lse, const float* delta, Params p) {
  using G = Tiles<T, DMAX>;
  extern __shared__ __align__(128) unsigned char smem_bytes[];
  const KeySideSmem<T, DMAX> sm(reinterpret_cast<uintptr_t>(smem_bytes));

  const int64_t T_len = p.seq_len, C = p.channels, D = p.head_dim, qkv_row = 3 * C;
  const int64_t b = blockIdx.z, h = blockIdx.y, k0 = int64_t(blockIdx.x) * G::kRows;
  const int64_t bh = b * p.heads + h;
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const T* q_src = qkv + b * T_len * qkv_row + h * D;
  const T* dout_src = dout + b * T_len * C + h * D;

  load_rows<T, DMAX, G::kLd>(sm.k, q_src + C, qkv_row, k0, G::kRows, T_len, D);
  load_rows<T, DMAX, G::kLd>(sm.v, q_src + 2 * C, qkv_row, k0, G::kRows, T_len, D);
  const int any_key_here = load_key_flags(sm.key_ok, p.key_mask, b, k0, G::kRows, T_len);
  zero_floats(sm.dk, G::kRows * G::kLdO);
  zero_floats(sm.dv, G::kRows * G::kLdO);
  // Keys of padding only get no probability anywhere: dK = dV = 0, no query tile to visit.
  const bool any_key = __syncthreads_or(any_key_here) != 0;

  const T* k_w = sm.k + warp * 16 * G::kLd;
  const T* v_w = sm.v + warp * 16 * G::kLd;
  float* s_w = sm.s + warp * 16 * G::kLdS;
  float* dp_w = sm.dp + warp * 16 * G::kLdS;
  T* p_w = sm.p + warp * 16 * G::kLdP;
  T* ds_w = sm.ds + warp * 16 * G::kLdP;
  float* dk_w = sm.dk + warp * 16 * G::kLdO;
  float* dv_w = sm.dv + warp * 16 * G::kLdO;
  const int* key_ok_w = sm.key_ok + warp * 16;
  const int64_t warp_key0 = k0 + warp * 16;

  // Causal: queries before k0 see none of these keys.
  const int64_t q_begin = !any_key ? T_len : p.causal ? (k0 / G::kCols) * G::kCols : 0;
  for (int64_t q0 = q_begin; q0 < T_len; q0 += G::kCols) {
    __syncthreads();
    load_rows<T, DMAX, G::kLd>(sm.q, q_src, qkv_row, q0, G::kCols, T_len, D);
    load_rows<T, DMAX, G::kLd>(sm.dout, dout_src, C, q0, G::kCols, T_len, D);
    for (int j = threadIdx.x; j < G::kCols; j += blockDim.x) {
      const int64_t i = q0 + j;
      sm.lse[j] = lse_base2(lse, bh, T_len, i);
      sm.delta[j] = i < T_len ? delta[bh * T_len + i] : 0.0f;
    }
    __syncthreads();

    warp_scores<T, DMAX, G::kCols, G::kLd, G::kLdS>(s_w, k_w, sm.q);      // Sᵀ[key][query]
    warp_scores<T, DMAX, G::kCols, G::kLd, G::kLdS>(dp_w, v_w, sm.dout);  // dPᵀ = V dOᵀ
    __syncwarp();

#pragma unroll
    for (int m = 0; m < G::kCols / 8; ++m) {
      const int unit = lane + 32 * m;
      const int col = unit % G::kCols, kr0 = 4 * (unit / G::kCols);
      const int64_t i = q0 + col;
      const unsigned keep = keep_bits4(p, uint64_t(bh * T_len + i), warp_key0 + kr0);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int kr = kr0 + e;
        const bool allowed = i < T_len && key_ok_w[kr] && !(p.causal && warp_key0 + kr > i);
        const float pe = allowed ? exp2f(s_w[kr * G::kLdS + col] * p.scale_log2 - sm.lse[col]) : 0.0f;
        const bool kept = (keep >> e) & 1u;
        const float dp_used = kept ? dp_w[kr * G::kLdS + col] * p.keep_scale : 0.0f;
        p_w[kr * G::kLdP + col] = store_float<T>(kept ? pe * p.keep_scale : 0.0f);
        ds_w[kr * G::kLdP + col] = store_float<T>(pe * (dp_used - sm.delta[col]));
      }
    }
    __syncwarp();
    warp_pv<T, DMAX, G::kCols, G::kLd, G::kLdP, G::kLdO>(dv_w, p_w, sm.dout);  // dV += dropout(P)ᵀ dO
    warp_pv<T, DMAX, G::kCols, G::kLd, G::kLdP, G::kLdO>(dk_w, ds_w, sm.q);    // dK += dSᵀ Q
  }

  __syncthreads();
  T* dqkv_b = dqkv + b * T_len * qkv_row + h * D;
  store_rows<T, DMAX, G::kLdO>(dqkv_b + C, qkv_row, sm.dk, k0, G::kRows, T_len, D, p.scale);
  store_rows<T, DMAX, G::kLdO>(dqkv_b + 2 * C, qkv_row, sm.dv, k0, G::kRows, T_len, D, 1.0f);
}

// Grid (query tiles, H, B): dQ of the CTA's queries, looping over key tiles; lane layout as in
// the forward kernel.
template <typename T, int DMAX>
__global__ void __launch_bounds__(Tiles<T, DMAX>::kThreads)
    flash_dq_kernel(T* dqkv, const T* qkv, const T* dout, const float* lse, const float* delta, Params p) {
  using G = Tiles<T, DMAX>;
  extern __shared__ __align__(128) unsigned char smem_bytes[];
  const QuerySideSmem<T, DMAX> sm(reinterpret_cast<uintptr_t>(smem_bytes));

  const int64_t T_len = p.seq_len, C = p.channels, D = p.head_dim, qkv_row = 3 * C;
  const int64_t b = blockIdx.z, h = blockIdx.y, q0 = int64_t(blockIdx.x) * G::kRows;
  const int64_t bh = b * p.heads + h;
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const T* q_src = qkv + b * T_len * qkv_row + h * D;

  load_rows<T, DMAX, G::kLd>(sm.q, q_src, qkv_row, q0, G::kRows, T_len, D);
  load_rows<T, DMAX, G::kLd>(sm.dout, dout + b * T_len * C + h * D, C, q0, G::kRows, T_len, D);
  for (int j = threadIdx.x; j < G::kRows; j += blockDim.x) {
    const int64_t i = q0 + j;
    sm.lse[j] = lse_base2(lse, bh, T_len, i);
    sm.delta[j] = i < T_len ? delta[bh * T_len + i] : 0.0f;
  }
  zero_floats(sm.dq, G::kRows * G::kLdO);

  const T* q_w = sm.q + warp * 16 * G::kLd;
  const T* dout_w = sm.dout + warp * 16 * G::kLd;
  float* s_w = sm.s + warp * 16 * G::kLdS;
  float* dp_w = sm.dp + warp * 16 * G::kLdS;
  T* ds_w = sm.ds + warp * 16 * G::kLdP;
  float* dq_w = sm.dq + warp * 16 * G::kLdO;
  const int r = lane >> 1, half = lane & 1;
  const int64_t i = q0 + warp * 16 + r;
  const uint64_t prob_row = uint64_t(bh * T_len + i);

  const int64_t key_end = p.causal ? (T_len < q0 + G::kRows ? T_len : q0 + G::kRows) : T_len;
  for (int64_t k0 = 0; k0 < key_end; k0 += G::kCols) {
    __syncthreads();  // also orders the loads above before the first tile's reads
    load_rows<T, DMAX, G::kLd>(sm.k, q_src + C, qkv_row, k0, G::kCols, T_len, D);
    load_rows<T, DMAX, G::kLd>(sm.v, q_src + 2 * C, qkv_row, k0, G::kCols, T_len, D);
    const int any_key = load_key_flags(sm.key_ok, p.key_mask, b, k0, G::kCols, T_len);
    if (!__syncthreads_or(any_key)) continue;  // padding only: dS = 0 on the whole tile

    warp_scores<T, DMAX, G::kCols, G::kLd, G::kLdS>(s_w, q_w, sm.k);
    warp_scores<T, DMAX, G::kCols, G::kLd, G::kLdS>(dp_w, dout_w, sm.v);  // dP = dO Vᵀ
    __syncwarp();

    const float row_lse = sm.lse[warp * 16 + r], row_delta = sm.delta[warp * 16 + r];
#pragma unroll
    for (int c = 0; c < G::kCols / 8; ++c) {
      const int j0 = 4 * (half + 2 * c);
      const unsigned keep = keep_bits4(p, prob_row, k0 + j0);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int j = j0 + e;
        const bool allowed = sm.key_ok[j] && !(p.causal && k0 + j > i);
        const float pe = allowed ? exp2f(s_w[r * G::kLdS + j] * p.scale_log2 - row_lse) : 0.0f;
        const float dp_used = ((keep >> e) & 1u) ? dp_w[r * G::kLdS + j] * p.keep_scale : 0.0f;
        ds_w[r * G::kLdP + j] = store_float<T>(pe * (dp_used - row_delta));
      }
    }
    __syncwarp();
    warp_pv<T, DMAX, G::kCols, G::kLd, G::kLdP, G::kLdO>(dq_w, ds_w, sm.k);  // dQ += dS K
  }

  __syncthreads();
  store_rows<T, DMAX, G::kLdO>(dqkv + b * T_len * qkv_row + h * D, qkv_row, sm.dq, q0, G::kRows, T_len, D,
                               p.scale);
}

// ---- host side -----------------------------------------------------------------------------

template <typename T, int DMAX>
void forward_impl(void* out, float* lse, const void* qkv, const int32_t* key_mask,
                  const AttentionConfig& config) {
  using G = Tiles<T, DMAX>;
  const size_t bytes = ForwardSmem<T, DMAX>(0).bytes;
  auto kernel = flash_forward_kernel<T, DMAX>;
  allow_shared_memory(kernel, bytes, "cudaFuncSetAttribute (flash_forward_kernel)");
  kernel<<<grid_for(G::kRows, config), G::kThreads, bytes, stream()>>>(
      static_cast<T*>(out), lse, static_cast<const T*>(qkv), make_params(key_mask, config));
  check_launch("flash_forward_kernel");
}

template <typename T, int DMAX>
void backward_impl(void* dqkv, float* delta, const void* dout, const void* qkv, const void* out,
                   const float* lse, const int32_t* key_mask, const AttentionConfig& config) {
  using G = Tiles<T, DMAX>;
  const Params p = make_params(key_mask, config);
  const T* qkv_t = static_cast<const T*>(qkv);
  const T* dout_t = static_cast<const T*>(dout);
  T* dqkv_t = static_cast<T*>(dqkv);

  const int64_t rows = config.batch * config.seq_len * config.num_heads;
  constexpr int kDeltaThreads = 256;
  constexpr int V = 16 / int(sizeof(T));
  const int lanes_per_row = int(p.head_dim / V);
  const bool vectors = p.head_dim % V == 0 && lanes_per_row <= 32 && (lanes_per_row & (lanes_per_row - 1)) == 0 &&
                       p.channels % V == 0 && reinterpret_cast<uintptr_t>(dout) % 16 == 0 &&
                       reinterpret_cast<uintptr_t>(out) % 16 == 0;
  if (vectors) {
    flash_delta_vector_kernel<T, V>
        <<<unsigned((rows * lanes_per_row + kDeltaThreads - 1) / kDeltaThreads), kDeltaThreads, 0, stream()>>>(
            delta, dout_t, static_cast<const T*>(out), rows, lanes_per_row, p);
  } else {
    flash_delta_kernel<T><<<unsigned((rows * 32 + kDeltaThreads - 1) / kDeltaThreads), kDeltaThreads, 0, stream()>>>(
        delta, dout_t, static_cast<const T*>(out), rows, p);
  }
  check_launch("flash_delta_kernel");

  if constexpr (kMmaType<T> && (DMAX == 32 || DMAX == 64)) {
    if (use_mma_backward(config)) {
      backward_mma_for_dim<T, DMAX>(dqkv_t, qkv_t, dout_t, lse, delta, key_mask, config);
      return;
    }
  }

  const size_t key_bytes = KeySideSmem<T, DMAX>(0).bytes;
  auto dkdv = flash_dkdv_kernel<T, DMAX>;
  allow_shared_memory(dkdv, key_bytes, "cudaFuncSetAttribute (flash_dkdv_kernel)");
  dkdv<<<grid_for(G::kRows, config), G::kThreads, key_bytes, stream()>>>(dqkv_t, qkv_t, dout_t, lse, delta, p);
  check_launch("flash_dkdv_kernel");

  const size_t query_bytes = QuerySideSmem<T, DMAX>(0).bytes;
  auto dq = flash_dq_kernel<T, DMAX>;
  allow_shared_memory(dq, query_bytes, "cudaFuncSetAttribute (flash_dq_kernel)");
  dq<<<grid_for(G::kRows, config), G::kThreads, query_bytes, stream()>>>(dqkv_t, qkv_t, dout_t, lse, delta, p);
  check_launch("flash_dq_kernel");
}

// The padded head dim DMAX ∈ {32, 64, 128} that holds head_dim.
template <typename T>
void forward_for_type(void* out, float* lse, const void* qkv, const int32_t* key_mask,
                      const AttentionConfig& config) {
  if constexpr (kMmaType<T>) {
    if (use_mma_path(config)) {
      if (config.head_dim == 32) forward_mma_for_dim<T, 32>(out, lse, qkv, key_mask, config);
      else forward_mma_for_dim<T, 64>(out, lse, qkv, key_mask, config);
      return;
    }
  }
  if (config.head_dim <= 32) forward_impl<T, 32>(out, lse, qkv, key_mask, config);
  else if (config.head_dim <= 64) forward_impl<T, 64>(out, lse, qkv, key_mask, config);
  else forward_impl<T, 128>(out, lse, qkv, key_mask, config);
}

template <typename T>
void backward_for_type(void* dqkv, float* delta, const void* dout, const void* qkv, const void* out,
                       const float* lse, const int32_t* key_mask, const AttentionConfig& config) {
  if (config.head_dim <= 32) backward_impl<T, 32>(dqkv, delta, dout, qkv, out, lse, key_mask, config);
  else if (config.head_dim <= 64) backward_impl<T, 64>(dqkv, delta, dout, qkv, out, lse, key_mask, config);
  else backward_impl<T, 128>(dqkv, delta, dout, qkv, out, lse, key_mask, config);
}

// What the launchers need beyond the op layer's checks.
void check_launchable(const AttentionConfig& config, DType dtype, const char* what) {
  if (!flash_attention_supports_head_dim(config.head_dim))
    fail(what, ": head dim ", config.head_dim, " is not supported (needs a multiple of 8 up to 128)");
  if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16)
    fail(what, ": element type ", dtype_name(dtype), " is not supported (f32, f16 or bf16)");
  if (config.num_heads > 65535 || config.batch > 65535)
    fail(what, ": B = ", config.batch, " and H = ", config.num_heads, " must each be at most 65535");
}

}  // namespace

bool flash_attention_supports_head_dim(int64_t head_dim) {
  return head_dim > 0 && head_dim <= 128 && head_dim % 8 == 0;
}

void flash_attention_forward(void* out, float* lse, const void* qkv, const int32_t* key_mask,
                             const AttentionConfig& config, DType dtype) {
  const char* what = "attention_forward_fused (CUDA)";
  if (config.batch * config.num_heads * config.seq_len == 0) return;
  check_launchable(config, dtype, what);
  if (dtype == DType::F32) forward_for_type<float>(out, lse, qkv, key_mask, config);
  else if (dtype == DType::F16) forward_for_type<__half>(out, lse, qkv, key_mask, config);
  else forward_for_type<__nv_bfloat16>(out, lse, qkv, key_mask, config);
}

void flash_attention_backward(void* dqkv, float* delta, const void* dout, const void* qkv,
                              const void* out, const float* lse, const int32_t* key_mask,
                              const AttentionConfig& config, DType dtype) {
  const char* what = "attention_backward_fused (CUDA)";
  if (config.batch * config.num_heads * config.seq_len == 0) return;
  check_launchable(config, dtype, what);
  if (dtype == DType::F32) backward_for_type<float>(dqkv, delta, dout, qkv, out, lse, key_mask, config);
  else if (dtype == DType::F16) backward_for_type<__half>(dqkv, delta, dout, qkv, out, lse, key_mask, config);
  else backward_for_type<__nv_bfloat16>(dqkv, delta, dout, qkv, out, lse, key_mask, config);
}

}  // namespace ww::kernels::cuda
