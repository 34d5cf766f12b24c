#include "ternary_matmul.h"

#include "numerics.h"  // Q8_K64's groups
#include "huge_pages.h"

#include <algorithm>
#include <functional>
#include <stdexcept>

namespace bitnetc::schedules {

using namespace Halide;

int64_t padded_k(int64_t K, int vector_bytes) {
  const int64_t block = 4 * vector_bytes;
  return (K + block - 1) / block * block;
}

int ternary_tile_rows(int64_t N) { return N % 4 == 0 ? 4 : (N % 2 == 0 ? 2 : 1); }

PackedDims ternary_packed_dims(int64_t K, int64_t N, int vector_bytes) {
  const int R = ternary_tile_rows(N);
  return {static_cast<int>(R * padded_k(K, vector_bytes) / 4), static_cast<int>(N / R)};
}

std::vector<uint8_t> pack_ternary_rows(const TernaryWeights& w, int W) {
  const int64_t Kp = padded_k(w.cols, W), R = ternary_tile_rows(w.rows);
  std::vector<uint8_t> out = huge_page_vector<uint8_t>(static_cast<size_t>(w.rows * Kp / 4), 0);
  for (int64_t n = 0; n < w.rows; ++n) {
    uint8_t* tile = &out[(n / R) * R * Kp / 4];
    const int8_t* row = &w.codes[n * w.cols];
    for (int64_t b = 0; b < Kp / (4 * W); ++b) {  // weights b*4W + s*W + j: byte j, bits 6 - 2s
      uint8_t* dst = &tile[(b * R + n % R) * W];
      for (int s = 0; s < 4; ++s)
        for (int j = 0; j < W; ++j) {
          const int64_t k = b * 4 * W + s * W + j;
          const int code = k < w.cols ? row[k] + 1 : 1;  // padding: weight 0
          dst[j] |= static_cast<uint8_t>(code << (6 - 2 * s));
        }
    }
  }
  return out;
}

PackedDims row_lane_packed_dims(int64_t K, int64_t N, int W) {
  const int64_t L = W / 4;
  return {static_cast<int>(K / 16 * W), static_cast<int>((N + L - 1) / L)};
}

std::vector<uint8_t> pack_ternary_row_lanes(const TernaryWeights& w, int W) {
  if (w.cols % 16 != 0) throw std::invalid_argument("pack_ternary_row_lanes: K must be a multiple of 16");
  const int64_t L = W / 4;
  const PackedDims dims = row_lane_packed_dims(w.cols, w.rows, W);
  // Rows past N: code 1 (weight 0) at every bit pair.
  std::vector<uint8_t> out = huge_page_vector<uint8_t>(static_cast<size_t>(dims.bytes_per_tile) * dims.tiles, 0x55);
  for (int64_t n = 0; n < w.rows; ++n) {
    uint8_t* group = &out[(n / L) * dims.bytes_per_tile];
    const int64_t lane = n % L;
    const int8_t* row = &w.codes[n * w.cols];
    for (int64_t c = 0; c < w.cols / 16; ++c) {  // weights 16c + 4s + t: byte 4*lane + t, bits 2s
      uint8_t* dst = &group[c * W + 4 * lane];
      const int8_t* in = row + 16 * c;
      for (int t = 0; t < 4; ++t)
        dst[t] = static_cast<uint8_t>((in[t] + 1) | (in[4 + t] + 1) << 2 | (in[8 + t] + 1) << 4 | (in[12 + t] + 1) << 6);
    }
  }
  return out;
}

int64_t packed_k(const TernaryMatmulShape& s) {
  return s.packing == MatmulPacking::RowLanes ? s.K : padded_k(s.K, s.vector_bytes);
}

PackedDims packed_dims(const TernaryMatmulShape& s) {
  return s.packing == MatmulPacking::RowLanes ? row_lane_packed_dims(s.K, s.N, s.vector_bytes)
                                            : ternary_packed_dims(s.K, s.N, s.vector_bytes);
}

std::vector<uint8_t> pack_ternary(const TernaryWeights& w, const TernaryMatmulShape& s) {
  return s.packing == MatmulPacking::RowLanes ? pack_ternary_row_lanes(w, s.vector_bytes)
                                            : pack_ternary_rows(w, s.vector_bytes);
}

MatmulPipeline ternary_matmul_params() {
  return {ImageParam(UInt(8), 2, "packed"),
          ImageParam(Int(8), 2, "x"),
          ImageParam(Int(32), 2, "x_sum"),
          ImageParam(Float(32), 2, "d_act"),
          Param<float>("w_scale"),
          ImageParam(Float(32), 2, "w_block_scales"),
          Func("y")};
}

namespace {

// The weight's scale for activation block rb of row n.
Expr weight_scale(const MatmulPipeline& p, const TernaryMatmulShape& shape, Expr n, Expr rb) {
  return shape.block_scales ? Expr(p.w_block_scales(n, rb)) : Expr(p.w_scale);
}

// ik_llama.cpp's epilogue over Q8_K64 activations (ir/numerics.h): code_sum(g) is the
// exact sum of code * x over group g of a row, for one token m.
Expr q8k64_epilogue(const MatmulPipeline& p, const TernaryMatmulShape& shape, const std::function<Expr(int)>& code_sum,
                    Expr n, Expr m) {
  std::vector<Expr> f;
  for (int g = 0; g < kBitnetcQ8K64Groups; ++g) {
    Expr d = p.d_act(g, m);
    Expr minus = d * cast<float>(p.x_sum(g, m));
    f.push_back(cast<float>(cast<double>(d) * cast<double>(cast<float>(code_sum(g))) - cast<double>(minus)));
  }
  return strict_float(weight_scale(p, shape, n, 0) * ((f[0] + f[2]) + (f[1] + f[3])));
}

// The activations' factors per token: one per block, or Q8_K64's four.
int act_factors(const TernaryMatmulShape& shape) {
  return shape.q8k64 ? kBitnetcQ8K64Groups : static_cast<int>(shape.K / shape.act_block);
}

void bound_block_scales(MatmulPipeline& p, const TernaryMatmulShape& shape, int n_act) {
  if (!shape.block_scales) return;
  const int rows = static_cast<int>(block_scale_rows(shape));
  p.w_block_scales.dim(0).set_bounds(0, rows).dim(1).set_bounds(0, n_act).set_stride(rows);
}

// The token rows of a call: exactly one for the GEMV; for the GEMM, as many as the
// caller's buffers have, at most `batch`; a multiple of the kernel's token tile when the
// batch is (token_tail; the forward pass rounds a chunk's rows up to 4, not to the batch).
void bound_token_rows(MatmulPipeline& p, int M) {
  for (Halide::OutputImageParam im : {Halide::OutputImageParam(p.x), Halide::OutputImageParam(p.x_sum),
                                      Halide::OutputImageParam(p.d_act), p.y.output_buffer()}) {
    if (M == 1)
      im.dim(1).set_bounds(0, 1);
    else
      im.dim(1).set_min(0);
  }
}

// Token tiles of `tile` in a kernel of batch M: whole tiles (RoundUp: the caller passes a
// multiple of the tile) where M is a multiple of it, as the outputs' batch is; a guarded
// tail otherwise. (A guarded tail makes the tile's buffers dynamic: a batch-32 GEMM
// called with 8 rows ran 12-18 % slower than a batch-8 one.)
TailStrategy token_tail(int M, int tile) { return M % tile == 0 ? TailStrategy::RoundUp : TailStrategy::GuardWithIf; }

// Decode and prefill tasks: whole tasks of at least 256 KB of weights for one token (at
// most 32), 32 for a batch (see ternary_matmul below).
int ternary_tasks(int64_t weight_bytes, int M) {
  return M > 1 ? 32 : static_cast<int>(std::clamp<int64_t>(weight_bytes / (256 * 1024), 2, 32));
}

MatmulPipeline ternary_matmul_row_lanes(const TernaryMatmulShape& shape) {
  const int W = shape.vector_bytes, L = W / 4, M = shape.batch;
  const bool pairwise = shape.reduce == MatmulReduce::PairwiseI16;
  if (shape.act_block % 16 != 0) throw std::invalid_argument("ternary_matmul: row lanes need 16-weight chunks");
  const int n_act = static_cast<int>(shape.K / shape.act_block);
  const int chunks_per_block = static_cast<int>(shape.act_block / 16);
  const PackedDims dims = row_lane_packed_dims(shape.K, shape.N, W);

  MatmulPipeline p = ternary_matmul_params();
  Var n("n"), m("m"), lane("lane"), blk("blk"), g("g"), s("s");
  // Block blk's integer sums for the L rows of group g, one per lane, in four partial
  // sums by shift s (byte t of the lane's four, chunk c): independent accumulator
  // chains, and integer sums in any order are exact. (One chain per token left a
  // decode step waiting on vpdpbusd's latency: 2B4T tg128 about 10 % slower than row
  // tiles.)
  RDom r(0, 4, 0, chunks_per_block, "r");
  Expr chunk = blk * chunks_per_block + r.y;
  Expr code = (p.packed(chunk * W + 4 * lane + r.x, g) >> cast<uint8_t>(2 * s)) & cast<uint8_t>(3);
  if (shape.reduce == MatmulReduce::DotI8I8) code = cast<int8_t>(code);
  Func part("part"), acc("acc");
  // WidenedPairs: pair(half, lane, ...) sums bytes 2 half and 2 half + 1 of the lane's
  // four, so each vector step is one i16 dot of adjacent pairs (i32x4.dot_i16x8_s); a
  // lane's two halves meet in `part`, once per block. The activations are widened to i16
  // once per call (x16), so a step reads its four as one 8-byte splat; the codes (0..2)
  // are read as int8, so that they widen by extend_{low,high} rather than by shuffles.
  // (i8 operands on both sides made Halide emit i16x8.mul and extadd_pairwise instead.)
  Func pair("pair"), x16("x16");
  Var half("half"), k("k");
  RDom rp(0, 2, 0, chunks_per_block, "rp");
  const bool widened = shape.reduce == MatmulReduce::WidenedPairs;
  if (widened) {
    x16(k, m) = cast<int16_t>(p.x(k, m));
    Expr pchunk = blk * chunks_per_block + rp.y;
    Expr pcode =
        (p.packed(pchunk * W + 4 * lane + 2 * half + rp.x, g) >> cast<uint8_t>(2 * s)) & cast<uint8_t>(3);
    pair(half, lane, s, blk, g, m) = 0;
    pair(half, lane, s, blk, g, m) += cast<int32_t>(cast<int16_t>(cast<int8_t>(pcode))) *
                                      cast<int32_t>(x16(pchunk * 16 + 4 * s + 2 * half + rp.x, m));
    part(lane, s, blk, g, m) = pair(0, lane, s, blk, g, m) + pair(1, lane, s, blk, g, m);
  } else if (!pairwise) {
    part(lane, s, blk, g, m) = 0;
    part(lane, s, blk, g, m) += cast<int32_t>(code) * cast<int32_t>(p.x(chunk * 16 + 4 * s + r.x, m));
  }
  // PairwiseI16 (pmaddubsw, on AVX2): pair16(half, lane, ...) sums bytes 2 half and
  // 2 half + 1 of the lane's four in i16. A run of `run` chunks adds its pair sums in
  // i16 (each |sum| <= 2*2*128 = 512, and a run adds at most 64 of them: within i16),
  // and each run is widened once, a lane's two halves added into its i32 lane (pmaddwd
  // against ones). The shifts are summed together, or kept apart in `sets` for Q8_K64,
  // whose groups they are.
  const int sets = shape.q8k64 ? 4 : 1;
  int run = 1;
  for (int c = 1; c <= 16; ++c)
    if (chunks_per_block % c == 0) run = c;
  const int runs_per_block = chunks_per_block / run;
  Func pair_sum("pair_sum"), q16("q16"), wide("wide");
  Var set("set"), run_i("run_i");
  RDom rq(0, 2, "rq"), rc(0, 4 / sets, 0, run, "rc"), rw(0, 2, 0, runs_per_block, "rw");
  if (pairwise) {
    Var c("c");
    Func pair16("pair16");
    Expr qcode = (p.packed(c * W + 4 * lane + 2 * half + rq, g) >> cast<uint8_t>(2 * s)) & cast<uint8_t>(3);
    pair16(half, lane, s, c, g, m) =
        saturating_sum(rq, cast<int16_t>(qcode) * cast<int16_t>(p.x(c * 16 + 4 * s + 2 * half + rq, m)), pair_sum);
    q16(half, lane, set, run_i, g, m) = cast<int16_t>(0);
    q16(half, lane, set, run_i, g, m) += pair16(half, lane, set * (4 / sets) + rc.x, run_i * run + rc.y, g, m);
    wide(lane, set, blk, g, m) = 0;
    wide(lane, set, blk, g, m) +=
        Internal::widening_mul(q16(rw.x, lane, set, blk * runs_per_block + rw.y, g, m), cast<int16_t>(1));
    if (shape.q8k64)
      part(lane, s, blk, g, m) = wide(lane, s, blk, g, m);
    else
      acc(lane, blk, g, m) = wide(lane, 0, blk, g, m);
  } else {
    acc(lane, blk, g, m) =
        part(lane, 0, blk, g, m) + part(lane, 1, blk, g, m) + part(lane, 2, blk, g, m) + part(lane, 3, blk, g, m);
  }

  // The interpreter's epilogue, lane by lane: blocks in order, strict_float. With Q8_K64
  // (one block) the shift s is the element's group: its partial sums are the group sums.
  RDom rb(0, n_act, "rb");
  Func yf("yf");
  if (shape.q8k64) {
    yf(lane, g, m) = q8k64_epilogue(
        p, shape, [&](int s) { return part(lane, s, 0, g, m); }, g * L + lane, m);
  } else {
    yf(lane, g, m) = 0.0f;
    yf(lane, g, m) = strict_float(yf(lane, g, m) + cast<float>(acc(lane, rb, g, m) - p.x_sum(rb, m)) *
                                                       (p.d_act(rb, m) * weight_scale(p, shape, g * L + lane, rb)));
  }
  p.y(n, m) = yf(n % L, n / L, m);

  // Schedule: tasks of whole groups; in a group, up to 4 tokens share each loaded
  // vector, a block at a time (its sums stay in registers, one vector per token).
  // (Pairwise sums for Q8_K64 keep four i16 and four i32 vectors per token: 2 tokens
  // fit AVX2's 16 registers, and measured 12-17 % faster at prefill than 4.)
  const int kTokens = std::min(M, pairwise && shape.q8k64 ? 2 : 4);
  const int tasks = ternary_tasks(static_cast<int64_t>(dims.bytes_per_tile) * dims.tiles, M);
  const int groups_per_task = std::max(1, (dims.tiles + tasks - 1) / tasks);
  Var go("go"), gt("gt"), ni("ni"), mo("mo"), mi("mi");
  p.y.split(n, go, ni, L, TailStrategy::GuardWithIf);
  if (dims.tiles > groups_per_task)
    p.y.split(go, gt, go, groups_per_task, TailStrategy::ShiftInwards);
  else
    p.y.split(go, gt, go, dims.tiles);
  p.y.split(m, mo, mi, kTokens, token_tail(M, kTokens)).reorder(ni, mi, mo, go, gt).vectorize(ni).parallel(gt);
  yf.compute_at(p.y, mo).vectorize(lane);
  // The integer sums: `part`, or (WidenedPairs) `pair` with `part` inlined into its users.
  Func sums = widened ? pair : part;
  if (pairwise) {
    if (shape.q8k64) {
      yf.reorder(lane, m, g).unroll(m);
      wide.compute_at(yf, g);
    } else {
      yf.update().reorder(lane, m, rb).vectorize(lane).unroll(m);
      wide.compute_at(yf, rb);
    }
    wide.vectorize(lane).unroll(set).unroll(m);
    wide.update().reorder(rw.x, lane, set, m, rw.y).atomic().vectorize(rw.x).vectorize(lane).unroll(set).unroll(m);
    q16.compute_at(wide, rw.y).vectorize(half).vectorize(lane).unroll(set).unroll(m);
    q16.update()
        .reorder(half, lane, set, m, rc.x, rc.y)
        .vectorize(half)
        .vectorize(lane)
        .unroll(set)
        .unroll(m)
        .unroll(rc.x);
    // pmaddubsw's operands: 32 bytes in memory order (rq, half, lane innermost first).
    pair_sum.compute_at(q16, rc.x).reorder_storage(half, lane).reorder(half, lane).vectorize(half).vectorize(lane);
    pair_sum.update().reorder(rq, half, lane).atomic(true).vectorize(rq).vectorize(half).vectorize(lane);
  } else if (shape.q8k64) {  // the group's tokens share each loaded vector, as below
    yf.reorder(lane, m, g).unroll(m);
    sums.compute_at(yf, g);
  } else {
    yf.update().reorder(lane, m, rb).vectorize(lane).unroll(m);
    sums.compute_at(yf, rb);
  }
  if (widened) {
    x16.compute_root().vectorize(k, 8, TailStrategy::GuardWithIf);
    pair.reorder(half, lane, s, m).vectorize(half).vectorize(lane).unroll(s).unroll(m);
    pair.update()
        .reorder(rp.x, half, lane, s, m, rp.y, blk, g)
        .atomic()
        .vectorize(rp.x)
        .vectorize(half)
        .vectorize(lane)
        .unroll(s)
        .unroll(m);
  } else if (!pairwise) {
    part.vectorize(lane).unroll(s).unroll(m);
    part.update().reorder(r.x, lane, s, m, r.y, blk, g).atomic().vectorize(r.x).vectorize(lane).unroll(s).unroll(m);
  }

  p.packed.dim(0).set_bounds(0, dims.bytes_per_tile).dim(1).set_bounds(0, dims.tiles);
  p.packed.dim(1).set_stride(dims.bytes_per_tile);
  p.x.dim(0).set_bounds(0, static_cast<int>(shape.K)).dim(1).set_stride(static_cast<int>(shape.K));
  const int factors = act_factors(shape);
  p.x_sum.dim(0).set_bounds(0, factors).dim(1).set_stride(factors);
  p.d_act.dim(0).set_bounds(0, factors).dim(1).set_stride(factors);
  p.y.output_buffer().dim(0).set_bounds(0, static_cast<int>(shape.N));
  p.y.output_buffer().dim(1).set_stride(static_cast<int>(shape.N));
  bound_token_rows(p, M);
  bound_block_scales(p, shape, n_act);
  return p;
}

}  // namespace

int64_t block_scale_rows(const TernaryMatmulShape& shape) {
  if (shape.packing != MatmulPacking::RowLanes) return shape.N;
  const int64_t L = shape.vector_bytes / 4;
  return (shape.N + L - 1) / L * L;
}

MatmulPipeline ternary_matmul(const TernaryMatmulShape& shape) {
  const int W = shape.vector_bytes;
  if (W != 16 && W != 32 && W != 64) throw std::invalid_argument("ternary_matmul: vector_bytes must be 16, 32 or 64");
  if (shape.act_block <= 0 || shape.K % shape.act_block != 0)
    throw std::invalid_argument("ternary_matmul: the activation block must divide K");
  if (shape.batch < 1) throw std::invalid_argument("ternary_matmul: the batch must be at least 1");
  if (shape.q8k64 && (shape.act_block != shape.K || shape.K % 16 != 0))
    throw std::invalid_argument("ternary_matmul: Q8_K64 activations take whole rows of a multiple of 16");
  if (shape.packing == MatmulPacking::RowLanes) return ternary_matmul_row_lanes(shape);
  const int64_t Kp = padded_k(shape.K, W);
  const int n_act = static_cast<int>(shape.K / shape.act_block);
  const int M = shape.batch;

  MatmulPipeline p = ternary_matmul_params();
  Var n("n"), m("m"), j("j"), s("s"), b("b"), blk("blk");

  // code(j, s, b, n): W consecutive codes per (s, b) come from one W-byte load and a shift.
  Func code("code");
  const int R = ternary_tile_rows(shape.N);
  code(j, s, b, n) = (p.packed((b * R + n % R) * W + j, n / R) >> cast<uint8_t>(6 - 2 * s)) & cast<uint8_t>(3);
  Func xs("xs");
  xs(j, s, b, m) = p.x(b * 4 * W + s * W + j, m);

  const int groups_per_act = n_act == 1 ? static_cast<int>(Kp / (4 * W)) : static_cast<int>(shape.act_block / (4 * W));
  if (n_act > 1 && shape.act_block % (4 * W) != 0)
    throw std::invalid_argument("ternary_matmul: activation blocks must cover whole " + std::to_string(4 * W) +
                                "-weight groups");
  // Integer sums per activation block, kept in vector accumulators per (block, row,
  // token) and summed across lanes once per block. An activation block covers whole
  // 4W-weight byte groups (Q8_K's 256 and per-token blocks of a padded row both do:
  // padding weights meet zero activations).
  const bool dot = shape.reduce != MatmulReduce::PairwiseI16;
  const int lanes = dot ? W / 4 : W / 2;
  Func accv("accv"), pair_sum("pair_sum");
  Var l("l");
  RDom rg(0, groups_per_act, "rg");
  RDom rp(0, 2, "rp");
  RDom rv(0, 4, 0, 4, 0, groups_per_act, "rv");  // VNNI: byte within a lane, shift, group
  accv(l, blk, n, m) = 0;
  if (dot) {
    // Four adjacent products summed into each i32 lane: vpdpbusd takes the codes as u8;
    // ARM's sdot needs both operands signed, and codes 0..2 are the same as int8.
    Expr c = code(4 * l + rv.x, rv.y, blk * groups_per_act + rv.z, n);
    if (shape.reduce == MatmulReduce::DotI8I8) c = cast<int8_t>(c);
    accv(l, blk, n, m) += cast<int32_t>(c) * cast<int32_t>(xs(4 * l + rv.x, rv.y, blk * groups_per_act + rv.z, m));
  } else {
    // Adjacent pairs in a saturating i16 sum (pmaddubsw; |2*2*128| < 2^15 never
    // saturates), the four shifts of one byte group added in i16 (|4*2*2*128| < 2^15),
    // then widened once.
    Func pair("pair");
    pair(l, s, b, n, m) = saturating_sum(
        rp, cast<int16_t>(code(2 * l + rp, s, b, n)) * cast<int16_t>(xs(2 * l + rp, s, b, m)), pair_sum);
    Func quad("quad");
    quad(l, b, n, m) = pair(l, 0, b, n, m) + pair(l, 1, b, n, m) + pair(l, 2, b, n, m) + pair(l, 3, b, n, m);
    accv(l, blk, n, m) += cast<int32_t>(quad(l, blk * groups_per_act + rg, n, m));
  }
  RDom rl(0, lanes, "rl");
  Func acc("acc");
  acc(blk, n, m) = 0;
  Func yf("yf");
  RDom rb(0, n_act, "rb");
  if (shape.q8k64) {
    // Lane l holds bytes 4l..4l+3 (dot) or 2l, 2l+1 (pairwise) of every W-byte run, and
    // W is a multiple of 16: each lane stays in one Q8_K64 group. acc's blk is the group.
    Expr group = dot ? rl % 4 : (rl % 8) / 2;
    acc(blk, n, m) += select(group == blk, accv(rl, 0, n, m), 0);
    yf(n, m) = q8k64_epilogue(
        p, shape, [&](int g) { return acc(g, n, m); }, n, m);
  } else {
    acc(blk, n, m) += accv(rl, blk, n, m);
    yf(n, m) = 0.0f;
    // strict_float: no FMA contraction, so the rounding matches the interpreter's.
    yf(n, m) = strict_float(yf(n, m) + cast<float>(acc(rb, n, m) - p.x_sum(rb, m)) *
                                           (p.d_act(rb, m) * weight_scale(p, shape, n, rb)));
  }
  p.y(n, m) = yf(n, m);

  // Schedule: tiles of kRows rows in parallel; inside a tile the rows (and, for a batch,
  // the tokens) share each loaded vector: rows and tokens innermost and unrolled, each
  // with its own accumulator of W/2 (pairwise) or W/4 (dot) i32 lanes. 4 rows by 4
  // tokens measured fastest (bench/RESULTS.md, "I2_S tiles").
  const int kRows = 4;
  const int kTokens = std::min(M, 4);
  // Threads take whole tasks of at least 256 KB of weights (at most 32 tasks): a task is
  // one sequential run of memory, and longer runs let the hardware prefetcher ramp up;
  // Halide's pool hands out tasks under one lock, so single 4-row tiles (~200 ns each)
  // made two threads no faster than one (bench/RESULTS.md, "I2_S tasks"). A batch
  // (prefill) is compute-bound: there 32 tasks balance the threads best.
  const int64_t weight_bytes = shape.N * Kp / 4;
  const int kTasks = ternary_tasks(weight_bytes, M);
  const int rows_per_task =
      static_cast<int>(std::max<int64_t>(1, (shape.N + kTasks * kRows - 1) / (kTasks * kRows))) * kRows;
  Var nt("nt"), no("no"), ni("ni"), mo("mo"), mi("mi");
  if (shape.N > rows_per_task) {
    // The last task shifts inwards (recomputing a few rows) rather than guarding: Halide
    // 14 does not narrow the producers of a guarded split that is split again.
    p.y.split(n, nt, no, rows_per_task, TailStrategy::ShiftInwards).split(no, no, ni, kRows);
  } else {
    p.y.split(n, nt, no, static_cast<int>(shape.N)).split(no, no, ni, kRows, TailStrategy::GuardWithIf);
  }
  p.y.split(m, mo, mi, kTokens, token_tail(M, kTokens));
  p.y.reorder(ni, mi, mo, no, nt).parallel(nt);

  yf.compute_at(p.y, mo);
  acc.compute_at(p.y, mo);
  // No software prefetch: a tile's rows are interleaved (see the packing), so a task
  // reads one sequential run, which the hardware prefetcher follows (bench/RESULTS.md,
  // "I2_S tiles").
  accv.compute_at(p.y, mo).vectorize(l, lanes);
  if (dot) {
    accv.update()
        .reorder(rv.x, l, m, n, rv.y, rv.z, blk)
        .atomic()
        .vectorize(rv.x)
        .vectorize(l, lanes)
        .unroll(m)
        .unroll(n)
        .unroll(rv.y);
  } else {
    accv.update().reorder(l, m, n, rg, blk).vectorize(l, lanes).unroll(m).unroll(n);
    Var pj = pair_sum.args()[0];
    pair_sum.compute_at(accv, m).vectorize(pj, W / 2);
    pair_sum.update().atomic(true).vectorize(rp).vectorize(pj, W / 2);
  }

  // Shapes are constants of the generated code.
  const PackedDims dims = ternary_packed_dims(shape.K, shape.N, W);
  p.packed.dim(0).set_bounds(0, dims.bytes_per_tile).dim(1).set_bounds(0, dims.tiles);
  p.packed.dim(1).set_stride(dims.bytes_per_tile);
  p.x.dim(0).set_bounds(0, static_cast<int>(Kp)).dim(1).set_stride(static_cast<int>(Kp));
  const int factors = act_factors(shape);
  p.x_sum.dim(0).set_bounds(0, factors).dim(1).set_stride(factors);
  p.d_act.dim(0).set_bounds(0, factors).dim(1).set_stride(factors);
  p.y.output_buffer().dim(0).set_bounds(0, static_cast<int>(shape.N));
  p.y.output_buffer().dim(1).set_stride(static_cast<int>(shape.N));
  bound_token_rows(p, M);
  bound_block_scales(p, shape, n_act);
  return p;
}

}  // namespace bitnetc::schedules
