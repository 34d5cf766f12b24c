// Dense GEMV for the output head (logits = E x), as a Halide pipeline for one shape.
//
// The weights are stored transposed (Wt[j][v]: the K values of column j for all N rows
// are contiguous), so that each step j broadcasts x[j] and adds Wt[j][v..v+L) * x[j] to
// L row sums at once. Every row is still summed over j in increasing order, without FMA
// (strict_float): the result is bit-identical to the interpreter's sequential dot
// products, while the loads stream through memory.
#pragma once

#include <cstdint>
#include <vector>

#include "Halide.h"

namespace bitnetc::schedules {

struct DenseGemvShape {
  int64_t K = 0, N = 0;  // y[N] = W[N][K] x[K]
  int vector_bytes = 32;
};

// Rows are padded with zeros to whole tiles of this many (so no tile reads past the end).
int64_t dense_gemv_padded_rows(int64_t N, int vector_bytes);

// Transposes a row-major N x K matrix into the kernel's layout: [K][padded N].
std::vector<float> transpose_for_dense_gemv(const std::vector<float>& w, int64_t N, int64_t K, int vector_bytes);

// Inputs: wt (float, [padded N, K] with N innermost), x (float, [K]). Output: y (float,
// [padded N]; the rows past N are zero).
struct DenseGemvPipeline {
  Halide::ImageParam wt, x;
  Halide::Func y;
  std::vector<Halide::Argument> arguments() const { return {wt, x}; }
};

DenseGemvPipeline dense_gemv(const DenseGemvShape& shape);

}  // namespace bitnetc::schedules
