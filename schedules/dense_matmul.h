// Dense GEMV for the output head (logits = E x), as a Halide pipeline for one shape.
//
// The weights are stored in tiles of T rows, each transposed (tile t holds Wt[j][i] =
// W[t*T + i][j], T values per column contiguous, the tiles one after another), so that
// each step j broadcasts x[j] and adds Wt[j][0..T) * x[j] to T row sums at once and a
// tile streams through memory in one contiguous run. Every row is still summed over j in increasing order, without FMA
// (strict_float): the result is bit-identical to the interpreter's sequential dot
// products, while the loads stream through memory.
#pragma once

#include <cstdint>
#include <functional>
#include <tuple>
#include <vector>

#include "Halide.h"

namespace bitnetc::schedules {

struct DenseMatmulShape {
  int64_t K = 0, N = 0;  // y[N] = W[N][K] x[K]
  int vector_bytes = 32;
  bool f16 = false;  // weights stored as IEEE half (exact when every value is one), read as float
  bool q8 = false;   // weights stored as int8 with a float scale per row (--head=q8: changes numerics)
  // Every field, for the kernel cache's key (codegen/kernel_cache.h): a new field goes here too.
  auto fields() const { return std::tie(K, N, vector_bytes, f16, q8); }
};

// Rows per tile (T), and N padded with zero rows to whole tiles.
int dense_matmul_tile_rows(int vector_bytes);
int64_t dense_matmul_padded_rows(int64_t N, int vector_bytes);

// A matrix read a row at a time: fills out[0..K) with row n. Lets codegen pack a head
// straight from the model file without a float copy of it (1.3 GB for 2B4T's).
using RowSource = std::function<void(int64_t n, float* out)>;
RowSource rows_of(const std::vector<float>& w, int64_t K);  // a row-major N x K vector

// Packs an N x K matrix into the kernel's layout: [padded N / T][K][T] of float or, with
// `f16`, of IEEE half (round to nearest even), as raw bytes.
std::vector<uint8_t> transpose_for_dense_matmul(const RowSource& w, int64_t N, int64_t K, int vector_bytes,
                                              bool f16 = false);
// The same f16 layout from halves as they are (an F16 source, every value finite):
// writes rows [n0, n1) of the row-major N x K `w` into `tiles` (transpose_for_dense_matmul's
// size, zero-filled), the bytes that path gives without a round trip through float.
void put_half_rows_for_dense_matmul(const uint16_t* w, int64_t n0, int64_t n1, int64_t K, int vector_bytes,
                                    uint16_t* tiles);
inline std::vector<uint8_t> transpose_for_dense_matmul(const std::vector<float>& w, int64_t N, int64_t K,
                                                     int vector_bytes, bool f16 = false) {
  return transpose_for_dense_matmul(rows_of(w, K), N, K, vector_bytes, f16);
}

// Whether every value is exactly a finite IEEE half (then f16 storage changes no
// result; the kernel's conversion covers finite halves only).
bool exactly_finite_f16(const RowSource& w, int64_t N, int64_t K);
inline bool exactly_finite_f16(const std::vector<float>& w) {
  return exactly_finite_f16(rows_of(w, static_cast<int64_t>(w.size())), 1, static_cast<int64_t>(w.size()));
}

// --head=q8: a row of K values as int8 codes times one float scale (absmax / 127, round
// to nearest even); returns the scale. Every target's q8 head quantizes with this.
float quantize_row_q8(const float* row, int64_t K, int8_t* codes);

// --head=q8 in the kernel's tiles (quantize_row_q8 per row); `scales` gets one per
// padded row (zero past N).
std::vector<uint8_t> quantize_for_dense_matmul_q8(const RowSource& w, int64_t N, int64_t K, int vector_bytes,
                                                std::vector<float>& scales);
inline std::vector<uint8_t> quantize_for_dense_matmul_q8(const std::vector<float>& w, int64_t N, int64_t K,
                                                       int vector_bytes, std::vector<float>& scales) {
  return quantize_for_dense_matmul_q8(rows_of(w, K), N, K, vector_bytes, scales);
}

// Inputs: wt (float, IEEE half bits as uint16, or int8, [T, K, padded N / T], first
// dimension innermost), x (float, [K, M]: M rows of activations, any M >= 1),
// row_scale (float, [padded N]; read only for q8). Output: y (float, [padded N, M]; the
// rows past N are zero). For q8, y = (sum_k float(q) * x) * row_scale. Each of the M
// rows is summed exactly as the one-row GEMV sums it: batching changes no bit.
struct DenseMatmulPipeline {
  Halide::ImageParam wt, x, row_scale;
  Halide::Func y;
  std::vector<Halide::Argument> arguments() const { return {wt, x, row_scale}; }
};

DenseMatmulPipeline dense_matmul(const DenseMatmulShape& shape);

}  // namespace bitnetc::schedules
