#include "dense_matmul.h"

#include <algorithm>
#include <cmath>

#include "fp16.h"
#include "huge_pages.h"

namespace bitnetc::schedules {

using namespace Halide;

int dense_matmul_tile_rows(int vector_bytes) { return vector_bytes / 4 * 4; }  // four vectors of row sums

int64_t dense_matmul_padded_rows(int64_t N, int vector_bytes) {
  const int64_t t = dense_matmul_tile_rows(vector_bytes);
  return (N + t - 1) / t * t;
}

RowSource rows_of(const std::vector<float>& w, int64_t K) {
  return [&w, K](int64_t n, float* out) { std::copy_n(w.begin() + n * K, K, out); };
}

std::vector<uint8_t> transpose_for_dense_matmul(const RowSource& w, int64_t N, int64_t K, int vector_bytes, bool f16) {
  const int64_t Np = dense_matmul_padded_rows(N, vector_bytes), T = dense_matmul_tile_rows(vector_bytes);
  std::vector<uint8_t> t = huge_page_vector<uint8_t>(static_cast<size_t>(K * Np) * (f16 ? 2 : 4), 0);
  auto* h = reinterpret_cast<uint16_t*>(t.data());
  auto* f = reinterpret_cast<float*>(t.data());
  std::vector<float> row(static_cast<size_t>(K));
  for (int64_t n = 0; n < N; ++n) {
    w(n, row.data());
    for (int64_t k = 0; k < K; ++k) {
      const int64_t at = (n / T) * K * T + k * T + n % T;
      if (f16)
        h[at] = f32_to_fp16(row[k]);
      else
        f[at] = row[k];
    }
  }
  return t;
}

void put_half_rows_for_dense_matmul(const uint16_t* w, int64_t n0, int64_t n1, int64_t K, int vector_bytes,
                                    uint16_t* tiles) {
  const int64_t T = dense_matmul_tile_rows(vector_bytes);
  for (int64_t tile0 = n0 / T * T; tile0 < n1; tile0 += T) {  // rows of one tile together: sequential writes
    const int64_t lo = std::max(tile0, n0), hi = std::min(tile0 + T, n1);
    uint16_t* out = tiles + tile0 * K;
    for (int64_t k = 0; k < K; ++k)
      for (int64_t n = lo; n < hi; ++n) out[k * T + n - tile0] = w[n * K + k];
  }
}

bool exactly_finite_f16(const RowSource& w, int64_t N, int64_t K) {
  std::vector<float> row(static_cast<size_t>(K));
  for (int64_t n = 0; n < N; ++n) {
    w(n, row.data());
    for (float v : row)
      if (!std::isfinite(v) || fp16_to_f32(f32_to_fp16(v)) != v) return false;
  }
  return true;
}

float quantize_row_q8(const float* row, int64_t K, int8_t* codes) {
  float amax = 0;
  for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(row[k]));
  const float scale = amax / 127.0f;
  for (int64_t k = 0; k < K; ++k) {
    const float q = scale > 0 ? std::nearbyint(row[k] / scale) : 0.0f;
    codes[k] = static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f));
  }
  return scale;
}

std::vector<uint8_t> quantize_for_dense_matmul_q8(const RowSource& w, int64_t N, int64_t K, int vector_bytes,
                                                std::vector<float>& scales) {
  const int64_t Np = dense_matmul_padded_rows(N, vector_bytes), T = dense_matmul_tile_rows(vector_bytes);
  std::vector<uint8_t> t(static_cast<size_t>(K * Np), 0);
  scales.assign(static_cast<size_t>(Np), 0.0f);
  std::vector<float> row(static_cast<size_t>(K));
  std::vector<int8_t> codes(static_cast<size_t>(K));
  for (int64_t n = 0; n < N; ++n) {
    w(n, row.data());
    scales[n] = quantize_row_q8(row.data(), K, codes.data());
    for (int64_t k = 0; k < K; ++k) t[(n / T) * K * T + k * T + n % T] = static_cast<uint8_t>(codes[k]);
  }
  return t;
}

// IEEE half bits (uint16) to float, exactly, for every finite half. Halide 14 lowers a
// float16 cast on x86 to ~14 integer operations per vector (it never emits vcvtph2ps),
// which made the F16 head compute-bound (2B4T's head, 2 threads: 25 GB/s, below the
// memory's 33); this is three. Sign-extending puts the sign in bits 28-31 after the
// shift; clearing 28-30 leaves sign | exponent | mantissa with the exponent biased by 15
// instead of 127, which the exact multiplication by 2^112 fixes (denormal halves become
// float denormals first, and the product is again exact). Infinities and NaNs would come
// out finite: codegen stores a head holding one as float instead
// (exactly_finite_f16).
Expr half_bits_to_float(Expr bits) {
  Expr widened = cast<uint32_t>(cast<int32_t>(reinterpret<int16_t>(bits)));
  Expr rebased = reinterpret<float>((widened << 13) & Halide::Internal::make_const(UInt(32), 0x8FFFFFFF));
  return strict_float(rebased * std::ldexp(1.0f, 112));
}

DenseMatmulPipeline dense_matmul(const DenseMatmulShape& s) {
  const Type wtype = s.q8 ? Int(8) : (s.f16 ? UInt(16) : Float(32));
  DenseMatmulPipeline p{ImageParam(wtype, 3, "wt"), ImageParam(Float(32), 2, "x"), ImageParam(Float(32), 1, "row_scale"),
                      Func("y")};
  const int tile = dense_matmul_tile_rows(s.vector_bytes);
  Var v("v"), t("t");
  RDom j(0, static_cast<int>(s.K), "j");
  Func acc("acc");
  acc(v, t) = 0.0f;
  Expr w = p.wt(v % tile, j, v / tile);
  acc(v, t) = strict_float(acc(v, t) + (s.f16 ? half_bits_to_float(w) : cast<float>(w)) * p.x(j, t));
  p.y(v, t) = s.q8 ? strict_float(acc(v, t) * p.row_scale(v)) : acc(v, t);

  // Tiles of rows: each tile keeps its sums in registers while j runs over K, one row
  // of x after another; the tile (K x T weights, 320 KB for 2B4T's f16 head) is read
  // from memory for the first row and from the cache for the others.
  const int lanes = s.vector_bytes / 4;
  const int Np = static_cast<int>(dense_matmul_padded_rows(s.N, s.vector_bytes));
  Var vo("vo"), vi("vi");
  p.y.split(v, vo, vi, tile).reorder(vi, t, vo).parallel(vo);
  acc.compute_at(p.y, vo).vectorize(v, lanes);
  acc.update().reorder(v, j, t).vectorize(v, lanes).unroll(v, 4);

  p.wt.dim(0).set_bounds(0, tile).dim(1).set_bounds(0, static_cast<int>(s.K)).set_stride(tile);
  p.wt.dim(2).set_bounds(0, Np / tile).set_stride(tile * static_cast<int>(s.K));
  p.x.dim(0).set_bounds(0, static_cast<int>(s.K));
  p.x.dim(1).set_stride(static_cast<int>(s.K));
  p.y.output_buffer().dim(0).set_bounds(0, Np);
  p.y.output_buffer().dim(1).set_stride(Np);
  if (s.q8) p.row_scale.dim(0).set_bounds(0, Np);
  return p;
}

}  // namespace bitnetc::schedules
