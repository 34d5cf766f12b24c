#include "dense_gemv.h"

namespace bitnetc::schedules {

using namespace Halide;

namespace {
int tile_rows(int vector_bytes) { return vector_bytes / 4 * 4; }  // four vectors of row sums
}  // namespace

int64_t dense_gemv_padded_rows(int64_t N, int vector_bytes) {
  const int64_t t = tile_rows(vector_bytes);
  return (N + t - 1) / t * t;
}

std::vector<float> transpose_for_dense_gemv(const std::vector<float>& w, int64_t N, int64_t K, int vector_bytes) {
  const int64_t Np = dense_gemv_padded_rows(N, vector_bytes);
  std::vector<float> t(static_cast<size_t>(K * Np), 0.0f);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) t[k * Np + n] = w[n * K + k];
  return t;
}

DenseGemvPipeline dense_gemv(const DenseGemvShape& s) {
  DenseGemvPipeline p{ImageParam(Float(32), 2, "wt"), ImageParam(Float(32), 1, "x"), Func("y")};
  Var v("v");
  RDom j(0, static_cast<int>(s.K), "j");
  Func acc("acc");
  acc(v) = 0.0f;
  acc(v) = strict_float(acc(v) + p.wt(v, j) * p.x(j));
  p.y(v) = acc(v);

  // Tiles of rows: each tile keeps its sums in registers while j runs over K.
  const int lanes = s.vector_bytes / 4;
  const int tile = tile_rows(s.vector_bytes);
  const int Np = static_cast<int>(dense_gemv_padded_rows(s.N, s.vector_bytes));
  Var vo("vo"), vi("vi");
  p.y.split(v, vo, vi, tile).parallel(vo);
  acc.compute_at(p.y, vo).vectorize(v, lanes);
  acc.update().reorder(v, j).vectorize(v, lanes).unroll(v, 4);

  p.wt.dim(0).set_bounds(0, Np).dim(1).set_bounds(0, static_cast<int>(s.K));
  p.wt.dim(1).set_stride(Np);
  p.x.dim(0).set_bounds(0, static_cast<int>(s.K));
  p.y.output_buffer().dim(0).set_bounds(0, Np);
  return p;
}

}  // namespace bitnetc::schedules
