#include "q8_0_matmul.h"

#include <cstring>

#include "dense_matmul.h"
#include "model_blob.h"
#include "numerics.h"

namespace bitnetc::schedules {

using namespace Halide;

Expr exact_fma_f32(Expr a, Expr b, Expr c) {
  // LLVM's fma intrinsic by name: Halide 14 scalarizes the call and LLVM vectorizes it
  // again (vfmadd on x86, fmla on ARM); where there is no fused instruction (wasm) it is
  // libm's fmaf, correctly rounded too.
  return Internal::Call::make(Float(32), "llvm.fma.f32", {a, b, c}, Internal::Call::PureExtern);
}

Q8_0MatmulPipeline q8_0_matmul(const Q8_0MatmulShape& s) {
  Q8_0MatmulPipeline p{ImageParam(Int(8), 3, "q"), ImageParam(Float(32), 3, "d"), ImageParam(Int(8), 2, "x"),
                       ImageParam(Float(32), 2, "xd"), Func("y")};
  constexpr int B = Q8_0Weights::kBlock, L = kBitnetcQ8_0Lanes;
  const int T = dense_matmul_tile_rows(s.vector_bytes);
  const int K = static_cast<int>(s.K), blocks = K / B;
  const int Np = static_cast<int>(dense_matmul_padded_rows(s.N, s.vector_bytes));
  Var v("v"), j("j"), b("b"), t("t");

  // Exact integer sums per (row, lane, block, activation row): elements 4j..4j+3.
  RDom e(0, 4, "e");
  Expr k = B * b + 4 * j + e;
  Func lane_sum("lane_sum");
  lane_sum(v, j, b, t) = 0;
  lane_sum(v, j, b, t) += cast<int32_t>(p.q(v % T, k, v / T)) * cast<int32_t>(p.x(k, t));

  // The float part, block after block in each lane: acc_j = fma(d * xd, S_j, acc_j).
  RDom rb(0, blocks, "rb");
  Func acc("acc");
  acc(v, j, t) = 0.0f;
  Expr dd = strict_float(p.d(v % T, rb, v / T) * p.xd(rb, t));
  acc(v, j, t) = exact_fma_f32(dd, cast<float>(lane_sum(v, j, rb, t)), acc(v, j, t));
  // hsum_float_8: ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)).
  auto a = [&](int lane) { return acc(v, lane, t); };
  p.y(v, t) = strict_float(((a(0) + a(4)) + (a(2) + a(6))) + ((a(1) + a(5)) + (a(3) + a(7))));
  static_assert(L == 8, "hsum_float_8 adds eight lanes");

  // A tile of rows at a time, on the pool; inside it every sum vectorized over its rows.
  const int lanes = s.vector_bytes / 4;
  Var vo("vo"), vi("vi");
  p.y.split(v, vo, vi, T).reorder(vi, t, vo).parallel(vo).vectorize(vi, lanes);
  acc.compute_at(p.y, vo).vectorize(v, lanes);
  acc.update().reorder(v, j, rb, t).vectorize(v, lanes);
  lane_sum.compute_at(p.y, vo).vectorize(v, lanes);
  lane_sum.update().reorder(v, e, j, b, t).unroll(e).vectorize(v, lanes);

  auto tiles = [&](ImageParam& im, int cols) {
    im.dim(0).set_bounds(0, T).dim(1).set_bounds(0, cols).set_stride(T);
    im.dim(2).set_bounds(0, Np / T).set_stride(T * cols);
  };
  tiles(p.q, K);
  tiles(p.d, blocks);
  p.x.dim(0).set_bounds(0, K);
  p.x.dim(1).set_stride(K);
  p.xd.dim(0).set_bounds(0, blocks);
  p.xd.dim(1).set_stride(blocks);
  p.y.output_buffer().dim(0).set_bounds(0, Np);
  p.y.output_buffer().dim(1).set_stride(Np);
  return p;
}

std::vector<uint8_t> pack_for_q8_0_matmul(const Q8_0Weights& w, int vector_bytes) {
  const int64_t T = dense_matmul_tile_rows(vector_bytes), Np = dense_matmul_padded_rows(w.rows, vector_bytes);
  const int64_t K = w.cols, B = K / Q8_0Weights::kBlock;
  const rt::Q8_0Sections at = rt::q8_0_sections(Np, K);
  std::vector<uint8_t> out(at.end, 0);
  auto* d = reinterpret_cast<float*>(out.data() + at.d);
  for (int64_t n = 0; n < w.rows; ++n) {
    for (int64_t k = 0; k < K; ++k) out[at.q + rt::head_tile_index(n, k, K, T)] = static_cast<uint8_t>(w.q[n * K + k]);
    for (int64_t b = 0; b < B; ++b) d[rt::head_tile_index(n, b, B, T)] = w.d[n * B + b];
  }
  return out;
}

}  // namespace bitnetc::schedules
