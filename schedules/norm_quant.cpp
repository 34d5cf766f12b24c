#include "norm_quant.h"

#include <stdexcept>
#include <string>


namespace bitnetc::schedules {

using namespace Halide;

namespace {

Expr f64(double v) { return Internal::make_const(Float(64), v); }

// bitnetc_rms_scale: the factor a token's sum of squares gives.
Expr rms_scale(ir::NormKind kind, Expr sum_of_squares, int64_t n, float eps) {
  const Expr nf = static_cast<float>(n);
  if (kind == ir::NormKind::RmsF64Sum)
    return 1.0f / sqrt(cast<float>(sum_of_squares / f64(static_cast<double>(n))) + eps);
  if (kind == ir::NormKind::BitNorm) return (1.0f / sqrt(sum_of_squares / nf)) / nf;
  return 1.0f / sqrt(sum_of_squares / nf + eps);  // RmsF32 and RmsLlama2c round alike
}

// bitnetc_round: half away from zero (|v| < 2^23; larger floats are integers already).
// The sign of a zero result does not matter here: it becomes an int8 code.
Expr round_half_away(Expr v) {
  Expr t = trunc(v);
  Expr frac = v - t;
  Expr r = select(frac >= 0.5f, t + 1.0f, select(frac <= -0.5f, t - 1.0f, t));
  return select(abs(v) < 8388608.0f, r, v);
}

Expr clamp_to_int8(Expr v) { return cast<int8_t>(clamp(v, -128.0f, 127.0f)); }


}  // namespace

// Below 2^-14 a multiple of 2^-24 (adding 0.5 leaves that step), from 65520 infinity,
// else 10 mantissa bits rounded to nearest even.
Expr rounded_to_half(Expr x) {
  Expr bits = reinterpret<uint32_t>(x);
  Expr normal = reinterpret<float>((bits + cast<uint32_t>(0xFFF) + ((bits >> 13) & cast<uint32_t>(1))) &
                                   Internal::make_const(UInt(32), 0xFFFFE000u));
  Expr subnormal = strict_float((x + 0.5f) - 0.5f);
  return select(x < 6.103515625e-05f, subnormal,
                select(x >= 65520.0f, reinterpret<float>(Internal::make_const(UInt(32), 0x7F800000u)), normal));
}

NormQuantPipeline norm_quant(const NormQuantShape& s) {
  if (s.n < 1 || s.block < 1 || s.n % s.block != 0 || s.K_padded < s.n)
    throw std::invalid_argument("norm_quant: the block must divide n, and K_padded cover it");
  NormQuantPipeline p{ImageParam(Float(32), 2, "x"), ImageParam(Float(32), 1, "w"), Func("q"), Func("d"), Func("sum")};
  const bool q8k64 = s.quant == ir::ActQuant::PerRowQ8K64;
  if (q8k64 && (s.block != s.n || s.n % 16 != 0))
    throw std::invalid_argument("norm_quant: Q8_K64 quantizes whole rows of a multiple of 16");
  const int n = static_cast<int>(s.n), block = static_cast<int>(s.block);
  // Factors per token: one per block, or Q8_K64's four groups (element i in (i % 16) / 4).
  const int blocks = q8k64 ? kBitnetcQ8K64Groups : n / block;
  Var i("i"), t("t"), b("b");

  // The normalized activations y. Their sum of squares: one chain in index order.
  Func y("y"), sum_sq("sum_sq");
  if (!s.norm) {
    y(i, t) = p.x(i, t);
  } else {
    const Type acc = *s.norm == ir::NormKind::RmsF64Sum ? Float(64) : Float(32);
    RDom r(0, n, "r");
    sum_sq(t) = cast(acc, 0);
    sum_sq(t) = strict_float(sum_sq(t) + cast(acc, p.x(r, t) * p.x(r, t)));
    Func rscale("rscale");
    rscale(t) = strict_float(rms_scale(*s.norm, sum_sq(t), s.n, s.eps));
    rscale.compute_root();
    Expr scaled = p.x(i, t) * rscale(t);
    y(i, t) = strict_float(s.norm_weight && *s.norm != ir::NormKind::BitNorm ? scaled * p.w(i) : scaled);
  }

  // Per block: the largest magnitude and (Q8_K) the signed value that has it first.
  // NaNs count as zero, as in the reference's `if (|x| > amax)` (BitNorm of an all-zero
  // token is 0 * inf; the reference then quantizes the token to zeros).
  RDom rb(0, block, "rb");
  RDom rg(0, 4, 0, n / 16, "rg");  // Q8_K64: group b's elements 16 * rg.y + 4 * b + rg.x
  Func amax("amax"), first_max("first_max");
  Expr magnitude = q8k64 ? abs(y(16 * rg.y + 4 * b + rg.x, t)) : abs(y(b * block + rb, t));
  amax(b, t) = 0.0f;
  amax(b, t) = max(amax(b, t), strict_float(select(is_nan(magnitude), 0.0f, magnitude)));
  const bool q8k = s.quant == ir::ActQuant::PerBlockQ8K;
  if (q8k) first_max(b, t) = y(b * block + clamp(argmax(rb, abs(y(b * block + rb, t)))[0], 0, block - 1), t);

  // bitnetc_quant_scale: what x is multiplied by, the dequantization factor, and whether
  // every code is zero.
  Expr a = amax(b, t), mul, dq, zero = Internal::const_false();
  switch (s.quant) {
    case ir::ActQuant::PerTokenLlama2c: {
      Expr d = cast<float>(cast<double>(a) / f64(127.0));
      zero = d == 0.0f;
      mul = cast<float>(f64(1.0) / cast<double>(d));
      dq = d;
      break;
    }
    case ir::ActQuant::PerTokenHF:
      mul = (1.0f / select(a < 1e-5f, 1e-5f, a)) * 127.0f;
      dq = 1.0f / mul;
      break;
    case ir::ActQuant::PerTokenBitnetCpp:
      mul = cast<float>(f64(127.0) / select(f64(1e-5) < cast<double>(a), cast<double>(a), f64(1e-5)));
      dq = 1.0f / mul;
      break;
    case ir::ActQuant::PerBlockQ8K:
      zero = a == 0.0f;
      mul = -127.0f / first_max(b, t);
      dq = 1.0f / mul;
      break;
    case ir::ActQuant::PerRowQ8K64:  // d = amax / 127, codes rne(x * (1 / d))
      dq = a / 127.0f;
      zero = dq == 0.0f;
      mul = 1.0f / dq;
      break;
    case ir::ActQuant::PerBlockQ8_0:  // d = fp16(amax / 127), codes rne(x * (127 / amax))
      zero = a == 0.0f;
      dq = rounded_to_half(strict_float(a / 127.0f));
      mul = 127.0f / a;
      break;
  }
  Func scale("scale");
  scale(b, t) = Tuple(strict_float(select(zero, 0.0f, mul)), strict_float(select(zero, 0.0f, dq)), zero);

  // bitnetc_quant_code, element by element.
  Func code("code");
  {
    Expr group = q8k64 ? (i % 16) / 4 : i / block;
    Expr v = strict_float(y(i, t) * scale(group, t)[0]);
    Expr c;
    if (s.quant == ir::ActQuant::PerTokenLlama2c) {
      c = clamp_to_int8(strict_float(round_half_away(v)));  // |v| <= 127: the clamp never acts
    } else if (s.quant == ir::ActQuant::PerTokenHF) {
      c = clamp_to_int8(round(v));  // Halide's round is half to even
    } else if (s.quant == ir::ActQuant::PerRowQ8K64 || s.quant == ir::ActQuant::PerBlockQ8_0) {
      c = clamp_to_int8(round(v));  // half to even, as _mm_round_ps; packs saturate
    } else if (s.quant == ir::ActQuant::PerTokenBitnetCpp) {
      c = clamp_to_int8(strict_float(round_half_away(v)));
    } else {  // ggml's nearest_int: the low mantissa bits of v + 1.5 * 2^23
      Expr bits = reinterpret<int32_t>(strict_float(v + 12582912.0f));
      c = cast<int8_t>(min((bits & 0x007fffff) - 0x00400000, 127));
    }
    code(i, t) = select(scale(group, t)[2], cast<int8_t>(0), c);
  }
  p.q(i, t) = select(i < n, code(min(i, n - 1), t), cast<int8_t>(0));
  p.d(b, t) = scale(b, t)[1];
  p.sum(b, t) = 0;
  if (q8k64)
    p.sum(b, t) += cast<int32_t>(code(16 * rg.y + 4 * b + rg.x, t));
  else
    p.sum(b, t) += cast<int32_t>(code(b * block + rb, t));

  // Schedule: token by token (a decode step has one). The sum of squares is a scalar
  // chain (its order is the reference's); the rest runs in vectors over the width.
  const int lanes = s.vector_bytes / 4;
  if (s.norm) sum_sq.compute_root();
  y.compute_root().vectorize(i, lanes, TailStrategy::GuardWithIf);
  amax.compute_root();
  if (q8k64)
    amax.update().atomic().vectorize(rg.x);
  else
    amax.update().atomic().vectorize(rb, lanes);
  if (q8k) first_max.compute_root();
  scale.compute_root();
  code.compute_root().vectorize(i, s.vector_bytes, TailStrategy::GuardWithIf);
  p.q.vectorize(i, s.vector_bytes, TailStrategy::GuardWithIf);
  if (q8k64)
    p.sum.update().atomic().vectorize(rg.x);
  else
    p.sum.update().atomic().vectorize(rb, s.vector_bytes);

  // Shapes are constants of the generated code; the token count is the caller's.
  p.x.dim(0).set_bounds(0, n);
  p.x.dim(1).set_stride(n);
  if (s.norm_weight) p.w.dim(0).set_bounds(0, n);
  p.q.output_buffer().dim(0).set_bounds(0, static_cast<int>(s.K_padded));
  p.q.output_buffer().dim(1).set_stride(static_cast<int>(s.K_padded));
  for (Func f : {p.d, p.sum}) f.output_buffer().dim(0).set_bounds(0, blocks).dim(1).set_stride(blocks);
  return p;
}

}  // namespace bitnetc::schedules
