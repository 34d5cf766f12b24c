// Activation quantization fused with the rms_norm before it, as a Halide pipeline for
// one width: a token's float activations in, the int8 codes, dequantization factors and
// per-block code sums that the ternary kernels read out. Without a norm it quantizes its
// input as it is (a Quantize whose input is not a norm's output alone).
//
// The numerics are ir/numerics.h's, bit for bit (strict_float throughout: no FMA, no
// reciprocal approximations): the sum of squares runs in index order (one add chain per
// token, as the interpreter's), the scale and each normalized value round as
// bitnetc_rms_scale / bitnetc_rms_apply do, and the codes round as bitnetc_quant_code
// does (half away from zero, half to even, or ggml's nearest_int). Everything past the
// sum is vectorized; the normalized values live only in the kernel's scratch.
#pragma once

#include <cstdint>
#include <optional>
#include <tuple>
#include <vector>

#include "Halide.h"
#include "ir.h"

namespace bitnetc::schedules {

struct NormQuantShape {
  int64_t n = 0;             // activations per token
  int64_t K_padded = 0;      // codes per token, zero past n (the ternary kernels' padded K)
  int64_t block = 0;         // quantization block: n (per token, Q8_K64) or 256 (Q8_K)
  std::optional<ir::NormKind> norm;  // none: quantize the input as it is
  bool norm_weight = false;          // the norm multiplies by a weight vector
  float eps = 0;
  ir::ActQuant quant = ir::ActQuant::PerTokenLlama2c;
  int vector_bytes = 32;
  // Every field, for the kernel cache's key (codegen/kernel_cache.h): a new field goes here too.
  auto fields() const { return std::tie(n, K_padded, block, norm, norm_weight, eps, quant, vector_bytes); }
};

// Inputs: x (float, [n, tokens]), w (float, [n]; read only with a weighted norm).
// Outputs, in order: q (int8, [K_padded, tokens]), d (float, [n / block, tokens]; Q8_K64's
// four groups: [4, tokens]), sum
// (int32, [n / block, tokens]: the sum of each block's codes). The token count is the
// caller's; dimension 0 is innermost and every buffer is dense.
struct NormQuantPipeline {
  Halide::ImageParam x, w;
  Halide::Func q, d, sum;
  std::vector<Halide::Argument> arguments() const { return {x, w}; }
  Halide::Pipeline pipeline() const { return Halide::Pipeline({q, d, sum}); }
};

NormQuantPipeline norm_quant(const NormQuantShape& shape);

// The value of x >= 0 (or +inf) rounded to IEEE half, to nearest even, as a float:
// bitnetc_half_to_float(bitnetc_float_to_half(x)) (Q8_0's block factors).
Halide::Expr rounded_to_half(Halide::Expr x);

}  // namespace bitnetc::schedules
