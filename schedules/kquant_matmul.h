// The head of a k-quant weight (llama.cpp's Q4_K/Q5_K/Q6_K, ir/kquant.h) times Q8_K
// activations, as a Halide pipeline for one shape: ggml's vec_dot_q*_K_q8_K arithmetic,
// bit-exact to ir::kquant_dot.
//
// Per row and 256-block the integer sums isum = sum sc*q*x and imin = sum m*x are exact
// in any order, so they run vectorized over the rows of a tile (the weights in the head
// tiles of dense_matmul.h: T rows' values of one column contiguous). The float part then
// runs block after block in the reference's order, without FMA (strict_float).
#pragma once

#include <cstdint>
#include <tuple>
#include <vector>

#include "Halide.h"
#include "kquant.h"

namespace bitnetc::schedules {

struct KQuantMatmulShape {
  int64_t K = 0, N = 0;  // y[N] = W[N][K] x[K]; K a multiple of 256
  int vector_bytes = 32;
  // Every field, for the kernel cache's key (codegen/kernel_cache.h): a new field goes here too.
  auto fields() const { return std::tie(K, N, vector_bytes); }
};

// Inputs (tiles of T = dense_matmul_tile_rows rows, padded N = dense_matmul_padded_rows):
// q (int8, [T, K, padded N / T]), sc and m (int8, [T, K / 16, padded N / T]), d and dmin
// (float, [T, K / 256, padded N / T]), x (int8, [K, M]: M rows of Q8_K codes), xd (float,
// [K / 256, M]). Output: y (float, [padded N, M]). Each row is summed as one row alone.
struct KQuantMatmulPipeline {
  Halide::ImageParam q, sc, m, d, dmin, x, xd;
  Halide::Func y;
  std::vector<Halide::Argument> arguments() const { return {q, sc, m, d, dmin, x, xd}; }
};

KQuantMatmulPipeline kquant_matmul(const KQuantMatmulShape& shape);

// The weight in the kernel's layout, its parts one after another as
// rt::kquant_sections places them (runtime_stub/model_blob.h), rows past N zero.
std::vector<uint8_t> pack_for_kquant_matmul(const KQuantWeights& w, int vector_bytes);

}  // namespace bitnetc::schedules
