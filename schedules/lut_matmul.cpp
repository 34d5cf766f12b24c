#include "lut_matmul.h"

#include <algorithm>
#include <stdexcept>

#include "lut_tiles.h"

namespace bitnetc::schedules {

using namespace Halide;

const char* layout_name(LutLayout l) { return l == LutLayout::TL1 ? "TL1" : "TL2"; }

int64_t lut_padded_k(int64_t K, LutLayout l) {
  const int64_t m = l == LutLayout::TL1 ? rt::kTl1KMultiple : rt::kTl2KMultiple;
  return (K + m - 1) / m * m;
}
int lut_tile_rows(LutLayout l) { return l == LutLayout::TL1 ? rt::kTl1TileRows : rt::kTl2TileRows; }
int64_t lut_tile_bytes(int64_t K, LutLayout l) {
  const int64_t Kp = lut_padded_k(K, l);
  return l == LutLayout::TL1 ? rt::tl1_tile_bytes(Kp) : rt::tl2_tile_bytes(Kp);
}
int64_t lut_tiles(int64_t N, LutLayout l) { return (N + lut_tile_rows(l) - 1) / lut_tile_rows(l); }

namespace {

// The byte holding group `grp` of row `n` (and which nibble), and for TL2 the sign byte.
struct GroupPos {
  uint64_t index_byte;
  bool high;
  uint64_t sign_byte;  // TL2
  int sign_bit;
};

GroupPos group_pos(int64_t n, int64_t grp, int64_t K, LutLayout l) {
  const int rows = lut_tile_rows(l);
  const uint64_t tile = static_cast<uint64_t>((n / rows) * lut_tile_bytes(K, l));
  const int64_t r = n % rows;
  if (l == LutLayout::TL1) return {tile + static_cast<uint64_t>((grp / 2) * 16 + r), grp % 2 == 1, 0, 0};
  const uint64_t octet = tile + static_cast<uint64_t>((grp / 8) * 160);
  const int64_t h = (grp % 8) / 2;
  return {octet + static_cast<uint64_t>(h * 32 + r), grp % 2 == 1, octet + 128 + static_cast<uint64_t>(r),
          static_cast<int>(grp % 8)};
}

}  // namespace

std::vector<uint8_t> pack_lut(const TernaryWeights& w, LutLayout l) {
  const int64_t K = w.cols, Kp = lut_padded_k(K, l), rows_padded = lut_tiles(w.rows, l) * lut_tile_rows(l);
  const int per_group = l == LutLayout::TL1 ? 2 : 3;
  std::vector<uint8_t> out(static_cast<size_t>(lut_tiles(w.rows, l) * lut_tile_bytes(K, l)), 0);
  auto code = [&](int64_t n, int64_t k) { return n < w.rows && k < K ? w.codes[n * K + k] : 0; };
  for (int64_t n = 0; n < rows_padded; ++n)
    for (int64_t grp = 0; grp < Kp / per_group; ++grp) {
      const int64_t k = grp * per_group;
      int index = 0;
      bool negative = false;
      if (l == LutLayout::TL1) {
        index = rt::tl1_index(code(n, k), code(n, k + 1));  // zero weights: index 4
      } else {
        const int v = rt::tl2_value(code(n, k), code(n, k + 1), code(n, k + 2));
        index = std::abs(v);
        negative = v < 0;
      }
      const GroupPos pos = group_pos(n, grp, K, l);
      out[pos.index_byte] |= static_cast<uint8_t>(pos.high ? index << 4 : index);
      if (negative) out[pos.sign_byte] |= static_cast<uint8_t>(1u << pos.sign_bit);
    }
  return out;
}

std::vector<int8_t> unpack_lut(const std::vector<uint8_t>& packed, int64_t N, int64_t K, LutLayout l) {
  const int per_group = l == LutLayout::TL1 ? 2 : 3;
  std::vector<int8_t> codes(static_cast<size_t>(N * K));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t grp = 0; grp < lut_padded_k(K, l) / per_group; ++grp) {
      const GroupPos pos = group_pos(n, grp, K, l);
      const int index = pos.high ? packed[pos.index_byte] >> 4 : packed[pos.index_byte] & 15;
      int d[3] = {index / 3 - 1, index % 3 - 1, 0};
      if (l == LutLayout::TL2) {
        rt::tl2_digits(index, d[0], d[1], d[2]);
        if ((packed[pos.sign_byte] >> pos.sign_bit) & 1)
          for (int& v : d) v = -v;
      }
      for (int i = 0; i < per_group; ++i)
        if (grp * per_group + i < K) codes[n * K + grp * per_group + i] = static_cast<int8_t>(d[i]);
    }
  return codes;
}

std::string lut_tile_function(const LutMatmulShape& s) {
  if (s.tile == LutTile::Simd128 && s.layout != LutLayout::TL1)
    throw std::invalid_argument("lut_matmul: WebAssembly SIMD has a TL1 tile only");
  return std::string(s.layout == LutLayout::TL1 ? "bitnetc_tl1_tiles" : "bitnetc_tl2_tiles") +
         (s.tile == LutTile::Scalar    ? "_scalar"
          : s.tile == LutTile::Simd128 ? "_simd128"
                                       : "");
}

MatmulPipeline lut_matmul(const LutMatmulShape& s) {
  if (s.batch < 1) throw std::invalid_argument("lut_matmul: the batch must be at least 1");
  const bool tl1 = s.layout == LutLayout::TL1;
  const int64_t Kp = lut_padded_k(s.K, s.layout);
  const int n_groups = static_cast<int>(tl1 ? Kp / 2 : Kp / 3);
  const int tile_bytes = static_cast<int>(lut_tile_bytes(s.K, s.layout));
  const int n_tiles = static_cast<int>(lut_tiles(s.N, s.layout));
  const int M = s.batch, rows = lut_tile_rows(s.layout);

  // w_block_scales is never read: the lookup tables take per-tensor scales only.
  MatmulPipeline p = ternary_matmul_params();
  Var i("i"), g("g"), m("m"), n("n");

  // Each group's table: byte i < 16 is the low byte of the value of index i, byte
  // 16 + i its high byte; the value is the group's weights (decoded from the index)
  // times its activations, exact in int16. The weights of each index are a constant
  // table (digits(j, d): weight d of index j, 0 past the last index), so a table is a few
  // multiplies of broadcast activations; unrolling the two halves folds away the
  // choice of byte. (Selects on the index cost the TL1 tables 2.9 ms a token in wasm,
  // a sixth of a decode step.)
  const int per_group = tl1 ? 2 : 3;
  Halide::Buffer<int16_t> digits(16, per_group, "lut_digits");
  for (int j = 0; j < 16; ++j) {
    int d[3] = {0, 0, 0};
    if (tl1 && j < 9) {
      d[0] = j / 3 - 1;
      d[1] = j % 3 - 1;
    } else if (!tl1 && j < 14) {
      rt::tl2_digits(j, d[0], d[1], d[2]);
    }
    for (int k = 0; k < per_group; ++k) digits(j, k) = static_cast<int16_t>(d[k]);
  }
  Expr j = i % 16;
  Expr value = cast<int16_t>(0);
  for (int k = 0; k < per_group; ++k) value = value + digits(j, k) * cast<int16_t>(p.x(per_group * g + k, m));
  Func lut("lut");
  lut(i, g, m) = cast<uint8_t>(select(i < 16, value, value >> 8) & cast<int16_t>(255));

  Func acc("acc");
  acc.define_extern(lut_tile_function(s), {p.packed, lut, Expr(tile_bytes), Expr(n_tiles), Expr(n_groups)}, Int(32),
                    {n, m});
  // strict_float: the interpreter's rounding (0 + sum * (d_a * w_scale), no FMA).
  p.y(n, m) = strict_float(0.0f + cast<float>(acc(n, m)) * (p.d_act(0, m) * p.w_scale));

  // N/32-row tasks of whole tiles (see ternary_matmul.cpp for why 32); the tables are
  // built once per call before them, 64 groups per task.
  const int kTasks = 32;
  const int rows_per_task = static_cast<int>(std::max<int64_t>(1, (n_tiles + kTasks - 1) / kTasks)) * rows;
  Var nt("nt"), ni("ni");
  p.y.split(n, nt, ni, rows_per_task, TailStrategy::GuardWithIf).parallel(nt);
  acc.compute_at(p.y, nt);
  Var go("go"), gi("gi");
  Var io("io"), ii("ii");
  lut.bound(i, 0, rt::kLutEntryBytes)
      .compute_root()
      .split(g, go, gi, 64, TailStrategy::GuardWithIf)
      .split(i, io, ii, 16)
      .reorder(ii, io, gi, m, go)
      .vectorize(ii)
      .unroll(io)
      .parallel(go);

  p.packed.dim(0).set_bounds(0, tile_bytes).dim(1).set_bounds(0, n_tiles).set_stride(tile_bytes);
  p.x.dim(0).set_bounds(0, static_cast<int>(Kp)).dim(1).set_bounds(0, M).set_stride(static_cast<int>(Kp));
  p.x_sum.dim(0).set_bounds(0, 1).dim(1).set_bounds(0, M).set_stride(1);
  p.d_act.dim(0).set_bounds(0, 1).dim(1).set_bounds(0, M).set_stride(1);
  p.y.output_buffer().dim(0).set_bounds(0, static_cast<int>(s.N));
  p.y.output_buffer().dim(1).set_bounds(0, M).set_stride(static_cast<int>(s.N));
  return p;
}

}  // namespace bitnetc::schedules
