// The head of a Q8_0 weight (llama.cpp's Q8_0, ir/kquant.h) times Q8_0 activations, as a
// Halide pipeline for one shape: ggml's vec_dot_q8_0_q8_0 arithmetic, bit-exact to
// ir::q8_0_dot.
//
// Per row, 32-block and lane j the integer sum of elements 4j..4j+3 is exact; the float
// part then runs block after block in eight lanes, acc_j = fma(d_w * d_x, S_j, acc_j), and
// ends in hsum_float_8's order. Halide 14 has no fused multiply-add in its language, so
// the kernel calls LLVM's (exact_fma_f32). Everything runs vectorized over a tile's rows.
#pragma once

#include <cstdint>
#include <tuple>
#include <vector>

#include "Halide.h"
#include "kquant.h"

namespace bitnetc::schedules {

struct Q8_0MatmulShape {
  int64_t K = 0, N = 0;  // y[N] = W[N][K] x[K]; K a multiple of 32
  int vector_bytes = 32;
  // Every field, for the kernel cache's key (codegen/kernel_cache.h): a new field goes here too.
  auto fields() const { return std::tie(K, N, vector_bytes); }
};

// Inputs (tiles of T = dense_matmul_tile_rows rows, padded N = dense_matmul_padded_rows):
// q (int8, [T, K, padded N / T]), d (float, [T, K / 32, padded N / T]), x (int8, [K, M]:
// M rows of Q8_0 codes), xd (float, [K / 32, M]). Output: y (float, [padded N, M]).
struct Q8_0MatmulPipeline {
  Halide::ImageParam q, d, x, xd;
  Halide::Func y;
  std::vector<Halide::Argument> arguments() const { return {q, d, x, xd}; }
};

Q8_0MatmulPipeline q8_0_matmul(const Q8_0MatmulShape& shape);

// fma(a, b, c) of three floats, correctly rounded: LLVM's llvm.fma.f32.
Halide::Expr exact_fma_f32(Halide::Expr a, Halide::Expr b, Halide::Expr c);

// The weight in the kernel's layout, its parts one after another as rt::q8_0_sections
// places them (runtime_stub/model_blob.h), rows past N zero.
std::vector<uint8_t> pack_for_q8_0_matmul(const Q8_0Weights& w, int vector_bytes);

}  // namespace bitnetc::schedules
