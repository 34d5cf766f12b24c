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
    std::vector<float> d;  // dequant factor per block
    int64_t block = 0;
  };

  const Graph& g_;
  TernaryMatmulFn matmul_;
  DenseMatmulFn dense_;
  std::vector<std::vector<float>> f32_;                // per value
  std::vector<Q8> q8_;                                 // per value
  std::vector<std::vector<float>> k_cache_, v_cache_;  // per layer: [n_ctx][kv_dim]
  int32_t next_pos_ = 0;
};

// The building blocks, exposed for the kernel tests of later stages.
void quantize_activations(ActQuant kind, const float* x, int64_t n, int8_t* q, float* d);
void rms_norm(NormKind kind, const float* x, int64_t n, const float* w, float eps, float* y);

}  // namespace bitnetc::ir
