#include "kquant_matmul.h"

#include <cstring>

#include "dense_matmul.h"
#include "model_blob.h"

namespace bitnetc::schedules {

using namespace Halide;

KQuantMatmulPipeline kquant_matmul(const KQuantMatmulShape& s) {
  KQuantMatmulPipeline p{ImageParam(Int(8), 3, "q"),       ImageParam(Int(8), 3, "sc"),
                       ImageParam(Int(8), 3, "m"),       ImageParam(Float(32), 3, "d"),
                       ImageParam(Float(32), 3, "dmin"), ImageParam(Int(8), 2, "x"),
                       ImageParam(Float(32), 2, "xd"),   Func("y")};
  const int T = dense_matmul_tile_rows(s.vector_bytes);
  const int K = static_cast<int>(s.K), blocks = K / 256;
  const int Np = static_cast<int>(dense_matmul_padded_rows(s.N, s.vector_bytes));
  Var v("v"), b("b"), t("t");

  // Exact integer sums per (row, block, activation row), in any order: isum = sum over
  // the block's 16-weight groups of sc * (sum q*x), imin = sum of m * (the group's sum of
  // x). q*x (|q| <= 32, |x| <= 128) is an i16 product, widened as it is added; a group's
  // scale multiplies its sum once (a multiply per weight in i32 made the head
  // compute-bound: 43 % of an IQ2_BN decode for a quarter of its bytes).
  RDom e(0, 16, "e"), rg(0, 16, "rg");
  Var g("g");
  Func gsum("gsum"), xsum("xsum"), isum("isum"), imin("imin");
  gsum(v, g, t) = 0;
  gsum(v, g, t) += cast<int32_t>(cast<int16_t>(p.q(v % T, 16 * g + e, v / T)) * cast<int16_t>(p.x(16 * g + e, t)));
  xsum(g, t) = 0;
  xsum(g, t) += cast<int32_t>(p.x(16 * g + e, t));
  Expr group = 16 * b + rg;
  isum(v, b, t) = 0;
  isum(v, b, t) += cast<int32_t>(p.sc(v % T, group, v / T)) * gsum(v, group, t);
  imin(v, b, t) = 0;
  imin(v, b, t) += cast<int32_t>(p.m(v % T, group, v / T)) * xsum(group, t);

  // The float part, block after block: acc = (acc + (d*xd)*isum) - (dmin*xd)*imin.
  RDom rb(0, blocks, "rb");
  Func acc("acc");
  acc(v, t) = 0.0f;
  Expr xd = p.xd(rb, t);
  acc(v, t) = strict_float((acc(v, t) + (p.d(v % T, rb, v / T) * xd) * cast<float>(isum(v, rb, t))) -
                           (p.dmin(v % T, rb, v / T) * xd) * cast<float>(imin(v, rb, t)));
  p.y(v, t) = acc(v, t);

  // A tile of rows at a time, on the pool; inside it every sum vectorized over its rows.
  const int lanes = s.vector_bytes / 4;
  Var vo("vo"), vi("vi");
  p.y.split(v, vo, vi, T).reorder(vi, t, vo).parallel(vo).vectorize(vi, lanes);
  acc.compute_at(p.y, vo).vectorize(v, lanes);
  acc.update().reorder(v, rb, t).vectorize(v, lanes);
  for (Func f : {isum, imin}) {
    f.compute_at(p.y, vo).vectorize(v, lanes);
    f.update().reorder(v, rg, b, t).vectorize(v, lanes);
  }
  gsum.compute_at(isum, b).vectorize(v, lanes);
  gsum.update().reorder(v, e, g, t).vectorize(v, lanes).unroll(e);
  xsum.compute_root();

  auto tiles = [&](ImageParam& im, int cols) {
    im.dim(0).set_bounds(0, T).dim(1).set_bounds(0, cols).set_stride(T);
    im.dim(2).set_bounds(0, Np / T).set_stride(T * cols);
  };
  tiles(p.q, K);
  tiles(p.sc, K / 16);
  tiles(p.m, K / 16);
  tiles(p.d, blocks);
  tiles(p.dmin, blocks);
  p.x.dim(0).set_bounds(0, K);
  p.x.dim(1).set_stride(K);
  p.xd.dim(0).set_bounds(0, blocks);
  p.xd.dim(1).set_stride(blocks);
  p.y.output_buffer().dim(0).set_bounds(0, Np);
  p.y.output_buffer().dim(1).set_stride(Np);
  return p;
}

std::vector<uint8_t> pack_for_kquant_matmul(const KQuantWeights& w, int vector_bytes) {
  const int64_t T = dense_matmul_tile_rows(vector_bytes), Np = dense_matmul_padded_rows(w.rows, vector_bytes);
  const int64_t K = w.cols, G = K / KQuantWeights::kGroup, B = K / KQuantWeights::kBlock;
  const rt::KQuantSections at = rt::kquant_sections(Np, K);
  std::vector<uint8_t> out(at.end, 0);
  auto* d = reinterpret_cast<float*>(out.data() + at.d);
  auto* dmin = reinterpret_cast<float*>(out.data() + at.dmin);
  for (int64_t n = 0; n < w.rows; ++n) {
    for (int64_t k = 0; k < K; ++k) out[at.q + rt::head_tile_index(n, k, K, T)] = static_cast<uint8_t>(w.q[n * K + k]);
    for (int64_t g = 0; g < G; ++g) {
      out[at.sc + rt::head_tile_index(n, g, G, T)] = static_cast<uint8_t>(w.sc[n * G + g]);
      out[at.m + rt::head_tile_index(n, g, G, T)] = static_cast<uint8_t>(w.m[n * G + g]);
    }
    for (int64_t b = 0; b < B; ++b) {
      d[rt::head_tile_index(n, b, B, T)] = w.d[n * B + b];
      dmin[rt::head_tile_index(n, b, B, T)] = w.dmin[n * B + b];
    }
  }
  return out;
}

}  // namespace bitnetc::schedules
