// The reference interpreter: the oracle every compiled target is tested against.
//
// Plain scalar C++, one token at a time, no SIMD, no threads. Ternary matmuls are exact
// integer dot products of int8 activations with {-1, 0, +1} codes; everything else is
// float32 (the KV cache too), summed sequentially in index order, with the operation
// order each op's attributes name (see ir.h).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "ir.h"

namespace bitnetc::ir {

// Compiled outputs run the same step list with generated kernels for the ternary
// matmuls: when set, `matmul(op_index, q, d, out)` replaces the scalar dot products of
// op `op_index` (q: int8 activations, d: dequant factor per activation block).
using TernaryMatmulFn = std::function<void(size_t op_index, const int8_t* q, const float* d, float* out)>;
// Likewise for dense matmuls (the head): `dense(op_index, x, out)`.
using DenseMatmulFn = std::function<void(size_t op_index, const float* x, float* out)>;

class Interpreter {
 public:
  explicit Interpreter(const Graph& g, TernaryMatmulFn matmul = {}, DenseMatmulFn dense = {});

  // Runs one decode step: `token` at position `pos` (0-based, < n_ctx). Positions must
  // be fed in order; the KV cache keeps positions 0..pos. Returns the logits.
  const std::vector<float>& forward(int32_t token, int32_t pos);

  // Forgets the KV cache (a new sequence starts at position 0).
  void reset() { next_pos_ = 0; }

 private:
  struct Q8 {
    std::vector<int8_t> q;
    std::vector<float> d;  // dequant factors (act_quant_factor_count)
    ActQuant quant = ActQuant::PerTokenHF;
  };

  const Graph& g_;
  TernaryMatmulFn matmul_;
  DenseMatmulFn dense_;
  std::vector<std::vector<float>> f32_;                // per value
  std::vector<Q8> q8_;                                 // per value
  std::vector<std::vector<float>> k_cache_, v_cache_;  // per layer: [n_ctx][kv_dim]
  int32_t next_pos_ = 0;
};

// The building blocks: the scalar reference of each op, which the interpreter calls
// itself, which the compiled outputs' runtime shares where it computes an op in plain
// C++ (one home for each op's numerics), and against which tests/test_ops.cpp checks
// every generated kernel of every back end, bit for bit.

// A ternary matmul: y[r] = sum over blocks, in order, of the exact integer dot of row r's
// codes with q over the block, times (d[activation block] * the weight's scale there);
// blocks end where either the activations' scale (a token, or Q8_K's 256 values) or the
// weight's (w.scale_block) changes. Q8_K64 activations: ternary_matmul_q8k64.
void ternary_matmul(const TernaryWeights& w, ActQuant quant, const int8_t* q, const float* d, float* y);
// ik_llama.cpp's arithmetic over Q8_K64 activations (codes q, four group factors d): per
// row, the exact group sums, bitnetc_q8k64_group_term of each, combined as ik's x86
// kernels do (bitnetc_q8k64_combine) with the row's weight scale.
void ternary_matmul_q8k64(const TernaryWeights& w, const int8_t* q, const float* d, float* y);
// A dense matmul (the head): y[r] = sum over c, in order, of w[r][c] * x[c] in float.
void dense_matmul(const float* w, int64_t rows, int64_t cols, const float* x, float* y);
// A k-quant matmul (a Q4_K/Q5_K/Q6_K head): kquant_dot of every row.
void kquant_matmul(const KQuantWeights& w, const int8_t* x, const float* xd, float* y);
// A Q8_0 matmul (a Q8_0 head): q8_0_dot of every row.
void q8_0_matmul(const Q8_0Weights& w, const int8_t* x, const float* xd, float* y);
// Row `token` of an embedding table (a k-quant or Q8_0 one dequantized).
void embedding_row(const DenseWeights& w, int32_t token, float* out);
void quantize_activations(ActQuant kind, const float* x, int64_t n, int8_t* q, float* d);
// Row r of a k-quant weight times Q8_K activations (codes x, a factor per 256-block xd):
// per super-block the exact integer sums isum = sum sc*q*x and imin = sum m*x (ggml's
// vec_dot_q*_K_q8_K), then, block after block, acc = (acc + (d*xd)*isum) - (dmin*xd)*imin.
// The generated head kernels compute exactly this.
float kquant_dot(const KQuantWeights& w, int64_t r, const int8_t* x, const float* xd);
// Row r of a Q8_0 weight times Q8_0 activations (codes x, a factor per 32-block xd), in
// ggml's eight lanes (bitnetc_q8_0_lane_step, then bitnetc_q8_0_hsum). The generated head
// kernels compute exactly this.
float q8_0_dot(const Q8_0Weights& w, int64_t r, const int8_t* x, const float* xd);
void rms_norm(NormKind kind, const float* x, int64_t n, const float* w, float eps, float* y);
// RoPE angles of a Rope op at `pos`: cos and sin of each of the head_dim/2 pairs.
void rope_cos_sin(const Op& op, int32_t pos, float* cos, float* sin);
// Rotates every head of x[n] by those angles.
void rope_rotate(RopeStyle style, int head_dim, const float* cos, const float* sin, float* x, int64_t n);
// One token's attention at `pos` over caches of [pos + 1][kv_dim] (k and v of `pos`
// already written); `scores` has room for pos + 1 floats.
void attend(const Op& op, const float* q, const float* k_cache, const float* v_cache, int kv_dim, int32_t pos,
            float* scores, float* out);
// One head of it (heads are independent: outputs may attend them in parallel).
void attend_head(const Op& op, int head, const float* q, const float* k_cache, const float* v_cache, int kv_dim,
                 int32_t pos, float* scores, float* out);
float activate(Activation a, float gate);

}  // namespace bitnetc::ir

namespace bitnetc::ir {}  // namespace bitnetc::ir
