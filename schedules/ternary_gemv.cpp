#include "ternary_gemv.h"

#include <stdexcept>

namespace bitnetc::schedules {

using namespace Halide;

int64_t padded_k(int64_t K, int vector_bytes) {
  const int64_t block = 4 * vector_bytes;
  return (K + block - 1) / block * block;
}

std::vector<uint8_t> pack_ternary_rows(const TernaryWeights& w, int W) {
  const int64_t Kp = padded_k(w.cols, W), row_bytes = Kp / 4;
  std::vector<uint8_t> out(static_cast<size_t>(w.rows * row_bytes), 0);
  for (int64_t n = 0; n < w.rows; ++n) {
    uint8_t* row = &out[n * row_bytes];
    for (int64_t k = 0; k < Kp; ++k) {
      const int code = k < w.cols ? w.codes[n * w.cols + k] + 1 : 1;  // padding: weight 0
      const int64_t b = k / (4 * W), s = (k / W) % 4, j = k % W;
      row[b * W + j] |= static_cast<uint8_t>(code << (6 - 2 * s));
    }
  }
  return out;
}

GemvPipeline ternary_gemv(const GemvShape& shape) {
  const int W = shape.vector_bytes;
  if (W != 32 && W != 64) throw std::invalid_argument("ternary_gemv: vector_bytes must be 32 or 64");
  if (shape.act_block <= 0 || shape.K % shape.act_block != 0 || shape.act_block % W != 0)
    throw std::invalid_argument(
        "ternary_gemv: the activation block must divide K and be a multiple of the vector width");
  const int64_t Kp = padded_k(shape.K, W);
  const int n_act = static_cast<int>(shape.K / shape.act_block);

  GemvPipeline p{ImageParam(UInt(8), 2, "packed"),  ImageParam(Int(8), 1, "x"), ImageParam(Int(32), 1, "x_sum"),
                 ImageParam(Float(32), 1, "d_act"), Param<float>("w_scale"),    Func("y")};
  Var n("n"), j("j"), s("s"), b("b"), jp("jp"), blk("blk");

  // code(j, s, b, n): W consecutive codes per (s, b) come from one W-byte load and a shift.
  Func code("code");
  code(j, s, b, n) = (p.packed(b * W + j, n) >> cast<uint8_t>(6 - 2 * s)) & cast<uint8_t>(3);
  Func xs("xs");
  xs(j, s, b) = p.x(b * 4 * W + s * W + j);

  // Adjacent pairs in a saturating i16 sum: Halide selects pmaddubsw for it. Saturation
  // never happens: |2*127 + 2*128| < 2^15.
  RDom rp(0, 2, "rp");
  Func pair("pair"), pair_sum("pair_sum");
  pair(jp, s, b, n) =
      saturating_sum(rp, cast<int16_t>(code(2 * jp + rp, s, b, n)) * cast<int16_t>(xs(2 * jp + rp, s, b)), pair_sum);

  // Integer sums per activation block. A block of act_block weights covers whole W-wide
  // groups when act_block is a multiple of W (per-token and 256-blocks both are).
  const int groups_per_act = static_cast<int>(shape.act_block / W);
  Func acc("acc");
  // Over pairs (r.x), then the four shifts of a byte (r.y, unrolled), then byte groups
  // (r.z) when an activation block covers whole 4W-weight blocks; else group by group.
  const bool whole_blocks = groups_per_act % 4 == 0;
  RDom r = whole_blocks ? RDom(0, W / 2, 0, 4, 0, groups_per_act / 4, "r") : RDom(0, W / 2, 0, groups_per_act, "r");
  Expr g = whole_blocks ? (blk * (groups_per_act / 4) + r.z) * 4 + r.y : blk * groups_per_act + r.y;
  acc(blk, n) = 0;
  acc(blk, n) += cast<int32_t>(pair(r.x, g % 4, g / 4, n));

  RDom rb(0, n_act, "rb");
  Func yf("yf");
  yf(n) = 0.0f;
  // strict_float: no FMA contraction, so the rounding matches the interpreter's.
  yf(n) = strict_float(yf(n) + cast<float>(acc(rb, n) - p.x_sum(rb)) * (p.d_act(rb) * p.w_scale));
  p.y(n) = yf(n);

  // Schedule: tiles of kRows rows in parallel; inside a tile the rows share each loaded
  // activation vector (rows innermost, unrolled), with the pair products vectorized over
  // W/2 lanes.
  const int kRows = W == 64 ? 1 : 4;  // measured (bench_gemv): AVX2 gains from sharing x, AVX-512 does not
  Var no("no"), ni("ni");
  p.y.split(n, no, ni, kRows, TailStrategy::GuardWithIf).parallel(no);
  yf.compute_at(p.y, no);
  acc.compute_at(p.y, no);
  RVar rxo("rxo"), rxi("rxi");
  acc.update().split(r.x, rxo, rxi, W / 2).atomic().vectorize(rxi);
  if (whole_blocks)
    acc.update().reorder(rxi, n, rxo, r.y, r.z, blk).unroll(n).unroll(r.y);
  else
    acc.update().reorder(rxi, n, rxo, r.y, blk).unroll(n);
  Var pj = pair_sum.args()[0];
  pair_sum.compute_at(acc, n).vectorize(pj, W / 2);
  pair_sum.update().atomic(true).vectorize(rp).vectorize(pj, W / 2);

  // Shapes are constants of the generated code.
  p.packed.dim(0).set_bounds(0, static_cast<int>(Kp / 4)).dim(1).set_bounds(0, static_cast<int>(shape.N));
  p.packed.dim(1).set_stride(static_cast<int>(Kp / 4));
  p.x.dim(0).set_bounds(0, static_cast<int>(Kp));
  p.x_sum.dim(0).set_bounds(0, n_act);
  p.d_act.dim(0).set_bounds(0, n_act);
  p.y.output_buffer().dim(0).set_bounds(0, static_cast<int>(shape.N));
  return p;
}

}  // namespace bitnetc::schedules
