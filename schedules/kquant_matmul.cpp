#include "kquant_matmul.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "dense_matmul.h"
#include "model_blob.h"

namespace bitnetc::schedules {

using namespace Halide;

namespace {

// Tasks of whole lane groups: about 32 for one token, as the ternary GEMV's (at least
// 256 KB of weights each), so the pool's two cores split the head evenly.
int kquant_groups_per_task(int groups) { return std::max(1, (groups + 31) / 32); }

}  // namespace

KQuantMatmulPipeline kquant_matmul(const KQuantMatmulShape& s) {
  KQuantMatmulPipeline p{ImageParam(UInt(8), 3, "lo"), ImageParam(UInt(8), 3, "hi"),   ImageParam(Int(8), 3, "sc"),
                         ImageParam(Int(8), 3, "m"),   ImageParam(Float(32), 3, "d"),  ImageParam(Float(32), 3, "dmin"),
                         ImageParam(Int(8), 2, "x"),   ImageParam(Float(32), 2, "xd"), Func("y")};
  if (s.K <= 0 || s.K % 256 != 0 || s.N <= 0) throw std::invalid_argument("kquant_matmul: bad shape");
  const int L = kquant_lanes(s.vector_bytes), W = 4 * L;
  const int K = static_cast<int>(s.K), blocks = K / 256, groups16 = K / 16;
  const int G = static_cast<int>(dense_matmul_padded_rows(s.N, s.vector_bytes) / L);
  Var lane("lane"), grp("grp"), b("b"), t("t"), g("g"), v("v");

  // u(j, lane, q4, g, grp): byte j of column quad q4 (0..3) of 16-group g, for the row in
  // `lane` of lane group grp; q4 is unrolled, so every shift is a constant.
  auto code = [&](Expr j, Expr q4, Expr g16, Expr group) {
    Expr lo = p.lo(4 * lane + j, 2 * g16 + q4 / 2, group) >> cast<uint8_t>(4 * (q4 % 2));
    Expr hi = p.hi(4 * lane + j, g16, group) >> cast<uint8_t>(2 * q4);
    return (lo & cast<uint8_t>(15)) | ((hi & cast<uint8_t>(3)) << cast<uint8_t>(4));
  };
  auto xcol = [&](Expr j, Expr q4, Expr g16) { return p.x(16 * g16 + 4 * q4 + j, t); };

  // gsum(lane, g, grp, t) = sum over the 16-group of u * x, exact in i32 (|u*x| <= 63*128).
  Func gsum("gsum"), xsum("xsum"), isum("isum"), imin("imin");
  RDom r(0, 4, 0, 4, "r");                    // r.x: the byte of a quad (the 4-way dot), r.y: the quad
  RDom rw(0, 2, 0, 4, "rw"), rq(0, 2, "rq");  // PairwiseI16: (half, quad), and a half's two bytes
  Func pair_sum;
  Var half("half");
  gsum(lane, g, grp, t) = 0;
  switch (s.reduce) {
    case MatmulReduce::DotU8I8:  // vpdpbusd: u8 codes times int8 x, four into each lane
      gsum(lane, g, grp, t) += cast<int32_t>(code(r.x, r.y, g, grp)) * cast<int32_t>(xcol(r.x, r.y, g));
      break;
    case MatmulReduce::DotI8I8:  // sdot: the codes (<= 63) read as int8
      gsum(lane, g, grp, t) += cast<int32_t>(cast<int8_t>(code(r.x, r.y, g, grp))) * cast<int32_t>(xcol(r.x, r.y, g));
      break;
    case MatmulReduce::PairwiseI16: {  // pmaddubsw (pairs, |sum| <= 2*63*128), then pmaddwd
      Func pair16("pair16");
      Var q4("q4");
      pair16(half, lane, q4, g, grp, t) = saturating_sum(
          rq, cast<int16_t>(code(2 * half + rq, q4, g, grp)) * cast<int16_t>(xcol(2 * half + rq, q4, g)), pair_sum);
      gsum(lane, g, grp, t) += Internal::widening_mul(pair16(rw.x, lane, rw.y, g, grp, t), cast<int16_t>(1));
      break;
    }
    case MatmulReduce::WidenedPairs:  // no dot instruction: i16 products, widened as added
      gsum(lane, g, grp, t) += cast<int32_t>(cast<int16_t>(code(r.x, r.y, g, grp)) * cast<int16_t>(xcol(r.x, r.y, g)));
      break;
  }
  RDom e(0, 16, "e"), rg(0, 16, "rg");
  xsum(g, t) = 0;
  xsum(g, t) += cast<int32_t>(p.x(16 * g + e, t));
  // Per 256-block: isum = sum over its 16-groups of sc * (sum u*x - 32 * sum x), imin = sum m * x.
  Expr group = 16 * b + rg;
  isum(lane, b, grp, t) = 0;
  isum(lane, b, grp, t) += cast<int32_t>(p.sc(lane, group, grp)) * (gsum(lane, group, grp, t) - 32 * xsum(group, t));
  imin(lane, b, grp, t) = 0;
  imin(lane, b, grp, t) += cast<int32_t>(p.m(lane, group, grp)) * xsum(group, t);

  // The float part, block after block: acc = (acc + (d*xd)*isum) - (dmin*xd)*imin.
  RDom rb(0, blocks, "rb");
  Func acc("acc");
  acc(lane, grp, t) = 0.0f;
  Expr xd = p.xd(rb, t);
  acc(lane, grp, t) =
      strict_float((acc(lane, grp, t) + (p.d(lane, rb, grp) * xd) * cast<float>(isum(lane, rb, grp, t))) -
                   (p.dmin(lane, rb, grp) * xd) * cast<float>(imin(lane, rb, grp, t)));
  p.y(v, t) = acc(v % L, v / L, t);

  // Tasks of whole lane groups on the pool; in a group, every sum vectorized over its L
  // rows, the codes loaded once per token.
  Var go("go"), task("task"), vi("vi");
  p.y.split(v, go, vi, L).split(go, task, go, kquant_groups_per_task(G), TailStrategy::GuardWithIf);
  p.y.reorder(vi, t, go, task).vectorize(vi).parallel(task);
  acc.compute_at(p.y, go).vectorize(lane);
  acc.update().reorder(lane, rb, t).vectorize(lane);
  for (Func f : {isum, imin}) {
    f.compute_at(p.y, go).vectorize(lane);
    f.update().reorder(lane, rg, b, t).vectorize(lane);
  }
  gsum.compute_at(isum, b).vectorize(lane);
  switch (s.reduce) {
    case MatmulReduce::DotU8I8:
    case MatmulReduce::DotI8I8:
      gsum.update().reorder(r.x, lane, r.y, g, t).atomic().vectorize(r.x).vectorize(lane).unroll(r.y);
      break;
    case MatmulReduce::PairwiseI16:
      gsum.update().reorder(rw.x, lane, rw.y, g, t).atomic().vectorize(rw.x).vectorize(lane).unroll(rw.y);
      // pmaddubsw's operands: a quad's 4L code bytes in memory order (rq, half, lane innermost first).
      pair_sum.compute_at(gsum, rw.y).reorder_storage(half, lane).reorder(half, lane).vectorize(half).vectorize(lane);
      pair_sum.update().reorder(rq, half, lane).atomic(true).vectorize(rq).vectorize(half).vectorize(lane);
      break;
    case MatmulReduce::WidenedPairs:
      gsum.update().reorder(r.x, lane, r.y, g, t).vectorize(lane).unroll(r.x).unroll(r.y);
      break;
  }
  xsum.compute_root();

  auto lane_parts = [&](ImageParam& im, int width, int cols) {
    im.dim(0).set_bounds(0, width).dim(1).set_bounds(0, cols).set_stride(width);
    im.dim(2).set_bounds(0, G).set_stride(width * cols);
  };
  lane_parts(p.lo, W, K / 8);
  lane_parts(p.hi, W, groups16);
  lane_parts(p.sc, L, groups16);
  lane_parts(p.m, L, groups16);
  lane_parts(p.d, L, blocks);
  lane_parts(p.dmin, L, blocks);
  p.x.dim(0).set_bounds(0, K);
  p.x.dim(1).set_stride(K);
  p.xd.dim(0).set_bounds(0, blocks);
  p.xd.dim(1).set_stride(blocks);
  p.y.output_buffer().dim(0).set_bounds(0, G * L);
  p.y.output_buffer().dim(1).set_stride(G * L);
  return p;
}

std::vector<uint8_t> pack_for_kquant_matmul(const KQuantWeights& w, int vector_bytes) {
  const int64_t L = kquant_lanes(vector_bytes), Np = dense_matmul_padded_rows(w.rows, vector_bytes);
  const int64_t K = w.cols, G = K / KQuantWeights::kGroup, B = K / KQuantWeights::kBlock;
  const rt::KQuantLaneSections at = rt::kquant_lane_sections(Np, K);
  std::vector<uint8_t> out(at.end, 0);
  auto* d = reinterpret_cast<float*>(out.data() + at.d);
  auto* dmin = reinterpret_cast<float*>(out.data() + at.dmin);
  for (int64_t n = 0; n < w.rows; ++n) {
    for (int64_t k = 0; k < K; ++k) {
      const int u = w.q[n * K + k] + 32;
      if (u < 0 || u > 63)
        throw std::invalid_argument("k-quant code " + std::to_string(w.q[n * K + k]) + " at row " + std::to_string(n) +
                                    ", column " + std::to_string(k) + " is outside [-32, 31]");
      out[at.lo + rt::kquant_lo_index(n, k, K, L)] |= static_cast<uint8_t>((u & 15) << rt::kquant_lo_shift(k));
      out[at.hi + rt::kquant_hi_index(n, k, K, L)] |= static_cast<uint8_t>((u >> 4) << rt::kquant_hi_shift(k));
    }
    for (int64_t g = 0; g < G; ++g) {
      out[at.sc + rt::head_tile_index(n, g, G, L)] = static_cast<uint8_t>(w.sc[n * G + g]);
      out[at.m + rt::head_tile_index(n, g, G, L)] = static_cast<uint8_t>(w.m[n * G + g]);
    }
    for (int64_t b = 0; b < B; ++b) {
      d[rt::head_tile_index(n, b, B, L)] = w.d[n * B + b];
      dmin[rt::head_tile_index(n, b, B, L)] = w.dmin[n * B + b];
    }
  }
  return out;
}

namespace {

template <typename E>
Halide::Buffer<E> lane_part(std::vector<uint8_t>& packed, uint64_t off, int width, int cols, int groups) {
  return Halide::Buffer<E>(reinterpret_cast<E*>(packed.data() + off), width, cols, groups);
}

}  // namespace

void set_kquant_weights(KQuantMatmulPipeline& p, const KQuantMatmulShape& s, std::vector<uint8_t>& packed) {
  const int K = static_cast<int>(s.K), L = kquant_lanes(s.vector_bytes);
  const int G = static_cast<int>(dense_matmul_padded_rows(s.N, s.vector_bytes) / L);
  const rt::KQuantLaneSections at = rt::kquant_lane_sections(int64_t{G} * L, K);
  p.lo.set(lane_part<uint8_t>(packed, at.lo, 4 * L, K / 8, G));
  p.hi.set(lane_part<uint8_t>(packed, at.hi, 4 * L, K / 16, G));
  p.sc.set(lane_part<int8_t>(packed, at.sc, L, K / 16, G));
  p.m.set(lane_part<int8_t>(packed, at.m, L, K / 16, G));
  p.d.set(lane_part<float>(packed, at.d, L, K / 256, G));
  p.dmin.set(lane_part<float>(packed, at.dmin, L, K / 256, G));
}

}  // namespace bitnetc::schedules
