// The head of a k-quant weight (llama.cpp's Q4_K/Q5_K/Q6_K, ir/kquant.h) times Q8_K
// activations, as a Halide pipeline for one shape: ggml's vec_dot_q*_K_q8_K arithmetic,
// bit-exact to ir::kquant_dot.
//
// The codes are packed at 6 bits (Q6_K's own size; the head is a third of a BitNet
// decode's bytes): u = q + 32 in [0, 63] (every Q4_K/Q5_K/Q6_K code fits), its low nibble
// and its two high bits in two planes. Rows lie in lanes as the ternary row lanes do
// (ternary_matmul.h): a group of L = vector_bytes / 4 rows, each row four adjacent
// columns in its 32-bit lane, so that one 4-way dot (vpdpbusd, pmaddubsw + pmaddwd, sdot)
// adds four products into the row's lane. Per row and 256-block the integer sums
// isum = sum sc*q*x = sum over 16-groups of sc * (sum u*x - 32 * sum x) and
// imin = sum m*x are exact in any order; the float part then runs block after block in
// the reference's order, without FMA (strict_float).
#pragma once

#include <cstdint>
#include <tuple>
#include <vector>

#include "Halide.h"
#include "kquant.h"
#include "ternary_matmul.h"

namespace bitnetc::schedules {

struct KQuantMatmulShape {
  int64_t K = 0, N = 0;  // y[N] = W[N][K] x[K]; K a multiple of 256
  int vector_bytes = 32;
  // The 4-way dot of u8 codes and int8 activations: the ternary kernels' choice for the
  // target (codegen::ternary_reduce); WidenedPairs stands for "no dot instruction".
  MatmulReduce reduce = MatmulReduce::PairwiseI16;
  // Every field, for the kernel cache's key (codegen/kernel_cache.h): a new field goes here too.
  auto fields() const { return std::tie(K, N, vector_bytes, reduce); }
};

// The kernel's vector width on a target of `target_vector_bytes`: at most 32 bytes. On
// AVX-512 the head on 32-byte vectors streamed at 39 GB/s against 32 on 64-byte ones
// (bench_matmul "kquant head", bench/RESULTS.md).
inline int kquant_vector_bytes(int target_vector_bytes) { return target_vector_bytes < 32 ? target_vector_bytes : 32; }
// Rows per lane group: the record's `tile` (rt::kquant_lane_sections).
inline int kquant_lanes(int vector_bytes) { return vector_bytes / 4; }

// Inputs (G = padded N / L groups of L = kquant_lanes rows; padded N =
// dense_matmul_padded_rows), as rt::kquant_lane_sections lays them out: lo and hi
// (uint8, [4L, K / 8 and K / 16, G]: the code planes, rt::kquant_lo_index/hi_index), sc
// and m (int8, [L, K / 16, G]), d and dmin (float, [L, K / 256, G]), x (int8, [K, M]: M rows
// of Q8_K codes), xd (float, [K / 256, M]). Output: y (float, [padded N, M]). Each row is
// summed as one row alone.
struct KQuantMatmulPipeline {
  Halide::ImageParam lo, hi, sc, m, d, dmin, x, xd;
  Halide::Func y;
  std::vector<Halide::Argument> arguments() const { return {lo, hi, sc, m, d, dmin, x, xd}; }
};

KQuantMatmulPipeline kquant_matmul(const KQuantMatmulShape& shape);

// The weight in the kernel's layout, rows past N zero. Throws std::invalid_argument for a
// code outside [-32, 31] (no k-quant type writes one).
std::vector<uint8_t> pack_for_kquant_matmul(const KQuantWeights& w, int vector_bytes);

// Points the pipeline's weight inputs at `packed` (pack_for_kquant_matmul's bytes), for
// JIT callers (tests, benchmarks); `packed` must outlive the calls.
void set_kquant_weights(KQuantMatmulPipeline& p, const KQuantMatmulShape& shape, std::vector<uint8_t>& packed);

}  // namespace bitnetc::schedules
