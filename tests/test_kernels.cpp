// Generated kernels against the reference interpreter's semantics, on random shapes and
// on the model shapes, including tails (N not a multiple of the row tile, K padded to
// the packing block). Results must be bit-identical.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>

#include "attention.h"
#include "dense_matmul.h"
#include "exact_exp.h"
#include "fp16.h"
#include "interpreter.h"
#include "kernel_objects.h"
#include "kquant_matmul.h"
#include "lut_matmul.h"
#include "lut_tiles.h"
#include "model_blob.h"
#include "norm_quant.h"
#include "rope.h"
#include "synthetic_model.h"
#include "targets.h"
#include "ternary_matmul.h"

using namespace bitnetc;

namespace {

struct Case {
  int64_t K, N, act_block;
};

// Random weights and activations for one case, the activations quantized by the
// interpreter's own quantizer token by token, and what ir::Interpreter's ternary_matmul
// computes for them.
struct CaseData {
  TernaryWeights w;
  float ws = 0;
  std::vector<float> block_scale;  // with block scales: per (row, activation block), [N][n_act]
  int64_t n_act = 0;
  std::vector<int8_t> q;  // [batch][K]
  std::vector<float> d;
  std::vector<int32_t> xsum;
  std::vector<float> want;  // [batch][N]
};

// With `block_scales`, a weight scale per (row, activation block) as llama.cpp's TQ files
// have, each different, and every fifth block all zero with a zero scale.
CaseData make_case(const Case& c, int batch, uint64_t seed, bool block_scales = false) {
  SplitMix64 rng(static_cast<uint64_t>(c.K * 1000003 + c.N * 7 + batch) + seed);
  CaseData t;
  t.w.rows = c.N;
  t.w.cols = c.K;
  t.w.codes.resize(static_cast<size_t>(c.K * c.N));
  for (auto& v : t.w.codes) v = static_cast<int8_t>(static_cast<int>(rng.next() % 3) - 1);
  t.ws = 0.0625f + rng.uniform();
  t.n_act = c.K / c.act_block;
  if (block_scales) {
    t.block_scale.resize(static_cast<size_t>(c.N * t.n_act));
    for (int64_t n = 0; n < c.N; ++n)
      for (int64_t b = 0; b < t.n_act; ++b) {
        float& bs = t.block_scale[n * t.n_act + b];
        bs = 0.0625f + rng.uniform();
        if ((n + b) % 5 == 0) {
          bs = 0;
          std::fill_n(&t.w.codes[n * c.K + b * c.act_block], c.act_block, int8_t{0});
        }
      }
  }
  auto scale = [&](int64_t n, int64_t b) { return block_scales ? t.block_scale[n * t.n_act + b] : t.ws; };
  t.q.assign(c.K * batch, 0);
  t.d.resize(t.n_act * batch);
  t.xsum.assign(t.n_act * batch, 0);
  t.want.resize(c.N * batch);
  for (int m = 0; m < batch; ++m) {
    std::vector<float> xf(c.K);
    for (auto& v : xf) v = rng.normal();
    int8_t* q = &t.q[m * c.K];
    for (int64_t b = 0; b < t.n_act; ++b) {
      ir::quantize_activations(c.act_block == 256 ? ir::ActQuant::PerBlockQ8K : ir::ActQuant::PerTokenHF,
                               &xf[b * c.act_block], c.act_block, &q[b * c.act_block], &t.d[m * t.n_act + b]);
      for (int64_t k = b * c.act_block; k < (b + 1) * c.act_block; ++k) t.xsum[m * t.n_act + b] += q[k];
    }
    for (int64_t n = 0; n < c.N; ++n) {
      float y = 0;
      for (int64_t b = 0; b < t.n_act; ++b) {
        int32_t acc = 0;
        for (int64_t k = b * c.act_block; k < (b + 1) * c.act_block; ++k) acc += t.w.codes[n * c.K + k] * q[k];
        y += static_cast<float>(acc) * (t.d[m * t.n_act + b] * scale(n, b));
      }
      t.want[m * c.N + n] = y;
    }
  }
  return t;
}

// Runs pipeline `p` (the arguments of schedules::MatmulPipeline) on the case with its
// packed weights, the activations zero padded to Kp, and compares bit for bit.
void run_and_compare(schedules::MatmulPipeline& p, const Case& c, const CaseData& t, int batch,
                     std::vector<uint8_t>& packed, int packed_dim0, int packed_dim1, int64_t Kp,
                     const std::string& target, const std::string& what,
                     const std::map<std::string, Halide::JITExtern>& externs = {}, int64_t block_scale_rows = 0) {
  std::vector<int8_t> xp(Kp * batch, 0);
  for (int m = 0; m < batch; ++m) std::copy_n(&t.q[m * c.K], c.K, &xp[m * Kp]);
  std::vector<int32_t> xsum = t.xsum;
  std::vector<float> d = t.d;
  Halide::Buffer<uint8_t> pb(packed.data(), packed_dim0, packed_dim1);
  Halide::Buffer<int8_t> xb(xp.data(), static_cast<int>(Kp), batch);
  Halide::Buffer<int32_t> sb(xsum.data(), static_cast<int>(t.n_act), batch);
  Halide::Buffer<float> db(d.data(), static_cast<int>(t.n_act), batch);
  p.packed.set(pb);
  p.x.set(xb);
  p.x_sum.set(sb);
  p.d_act.set(db);
  p.w_scale.set(t.ws);
  // The kernels' block-scale layout: [block][row], rows padded with zero scales.
  std::vector<float> block_scales(static_cast<size_t>(std::max<int64_t>(1, block_scale_rows * t.n_act)), 0.0f);
  for (int64_t n = 0; n < c.N && block_scale_rows > 0; ++n)
    for (int64_t b = 0; b < t.n_act; ++b) block_scales[b * block_scale_rows + n] = t.block_scale[n * t.n_act + b];
  if (block_scale_rows > 0)
    p.w_block_scales.set(
        Halide::Buffer<float>(block_scales.data(), static_cast<int>(block_scale_rows), static_cast<int>(t.n_act)));
  Halide::Buffer<float> out(static_cast<int>(c.N), batch);
  Halide::Pipeline pipeline(p.y);
  pipeline.set_jit_externs(externs);
  pipeline.realize(out, Halide::Target(target));
  for (int m = 0; m < batch; ++m)
    for (int64_t n = 0; n < c.N; ++n)
      ASSERT_EQ(out(static_cast<int>(n), m), t.want[m * c.N + n])
          << what << " K=" << c.K << " N=" << c.N << " block=" << c.act_block << " batch=" << batch << " token "
          << m << " row " << n;
}

// The I2_S-style kernel for `batch` tokens against ir::Interpreter's ternary_matmul.
void check_ternary_matmul(const Case& c, int vector_bytes, const std::string& target, int batch, schedules::MatmulReduce reduce,
                schedules::MatmulPacking packing, bool block_scales) {
  const CaseData t = make_case(c, batch, static_cast<uint64_t>(vector_bytes), block_scales);
  const bool lanes = packing == schedules::MatmulPacking::RowLanes;
  schedules::TernaryMatmulShape shape{c.K, c.N, c.act_block, vector_bytes, batch, reduce, packing, block_scales};
  const int64_t Kp = schedules::packed_k(shape);
  schedules::MatmulPipeline p = schedules::ternary_matmul(shape);
  auto packed = schedules::pack_ternary(t.w, shape);
  const schedules::PackedDims dims = schedules::packed_dims(shape);
  ASSERT_EQ(packed.size(), static_cast<size_t>(dims.bytes_per_tile) * dims.tiles);
  run_and_compare(p, c, t, batch, packed, dims.bytes_per_tile, dims.tiles, Kp, target,
                  "W=" + std::to_string(vector_bytes) + " reduce=" + std::to_string(static_cast<int>(reduce)) +
                      (lanes ? " row lanes" : " row tiles") + (block_scales ? " block scales" : ""),
                  {}, block_scales ? schedules::block_scale_rows(shape) : 0);
}

const std::vector<Case>& kernel_cases() {
  static const std::vector<Case> cases = {
      {256, 1, 256},    {256, 7, 256},   {256, 64, 256}, {512, 130, 256},  // tails in N
      {768, 33, 256},   {768, 33, 768},                                    // Q8_K blocks and per-token
      {320, 9, 320},    {192, 5, 192},   {96, 3, 96},                      // K padded to the packing block
      {2560, 40, 2560}, {6912, 17, 256},                                   // 2B4T's widths
  };
  return cases;
}

}  // namespace

// Every (target, group width, instructions) this machine runs. The VNNI kernels are
// JIT-compiled here as codegen::with_reduce_features says: with 64-byte groups they use
// only EVEX zmm forms, which this test proves on the CPU it runs on (outputs go through
// llc with the target's exact CPU instead; compile_tests run those). The NEON kernels'
// algorithm (16-byte groups, signed codes for sdot) is run here as x86 code; the ARM
// instructions themselves run under qemu in compile_tests.
void for_each_kernel_case(int batch, bool block_scales = false) {
  using schedules::MatmulPacking;
  using schedules::MatmulReduce;
  struct Variant {
    std::string target;
    int W;
    MatmulReduce reduce;
    MatmulPacking packing = MatmulPacking::RowTiles;
  };
  const std::string avx2 = find_target("x86-64-avx2")->halide;
  std::vector<Variant> variants = {{avx2, 32, MatmulReduce::PairwiseI16},
                                   {avx2, 16, MatmulReduce::PairwiseI16},                      // aarch64-neon's groups
                                   {avx2, 16, MatmulReduce::DotI8I8},                          // aarch64-neon-dotprod's
                                   {avx2, 16, MatmulReduce::DotI8I8, MatmulPacking::RowLanes}};  // its Q8_K blocks
  if (runs_on_this_cpu(*find_target("x86-64-avx512"))) {  // AVX-512 code runs only where the CPU has it
    const std::string avx512 = find_target("x86-64-avx512")->halide;
    const std::string vnni = codegen::with_reduce_features(Halide::Target(avx512), MatmulReduce::DotU8I8).to_string();
    variants.push_back({avx512, 32, MatmulReduce::PairwiseI16});
    variants.push_back({avx512, 64, MatmulReduce::PairwiseI16});
    variants.push_back({vnni, 64, MatmulReduce::DotU8I8});
    variants.push_back({vnni, 64, MatmulReduce::DotU8I8, MatmulPacking::RowLanes});
  }
  for (const auto& v : variants)
    for (const auto& c : kernel_cases()) {
      const bool fits = v.packing == MatmulPacking::RowLanes ? c.K % 16 == 0 && c.act_block % 16 == 0
                                                           : c.act_block == c.K || c.act_block % (4 * v.W) == 0;
      // Block scales meet activation blocks of their size (llama.cpp's 256).
      if (fits && (!block_scales || c.act_block == 256))
        check_ternary_matmul(c, v.W, v.target, batch, v.reduce, v.packing, block_scales);
    }
}

TEST(TernaryMatmul, MatchesTheInterpreterBitForBit) { for_each_kernel_case(1); }

// The prefill kernel: batches that fill the token tile, and batches with a tail.
TEST(TernaryGemm, MatchesTheInterpreterTokenByToken) {
  for (int batch : {8, 6, 3}) for_each_kernel_case(batch);
}

// A weight scale per (row, block of 256), as llama.cpp's TQ1_0/TQ2_0 files hold them
// (all different, some blocks all zero with a zero scale), decode and prefill batches.
TEST(TernaryMatmul, PerBlockWeightScalesMatchTheInterpreterBitForBit) {
  for (int batch : {1, 8, 3}) for_each_kernel_case(batch, true);
}

// TL1 and TL2: the packing reads back to the codes, and the lookup-table pipelines (with
// the scalar reference tiles, and with the SIMD tile this CPU runs: AVX2 TL2) give the
// interpreter's results bit for bit, per-token activations, GEMV and GEMM batches.
TEST(LutMatmul, LayoutsRoundTripAndMatchTheInterpreterBitForBit) {
  using schedules::LutLayout;
  const std::map<std::string, Halide::JITExtern> externs = {
      {"bitnetc_tl1_tiles", Halide::JITExtern(bitnetc_tl1_tiles)},
      {"bitnetc_tl2_tiles", Halide::JITExtern(bitnetc_tl2_tiles)},
      {"bitnetc_tl1_tiles_scalar", Halide::JITExtern(bitnetc_tl1_tiles_scalar)},
      {"bitnetc_tl2_tiles_scalar", Halide::JITExtern(bitnetc_tl2_tiles_scalar)}};
  const std::string avx2 = find_target("x86-64-avx2")->halide;
  for (const auto& c : kernel_cases()) {
    if (c.act_block != c.K) continue;  // the lookup-table layouts take per-token activations
    for (LutLayout layout : {LutLayout::TL1, LutLayout::TL2}) {
      const CaseData t = make_case(c, 1, 99);
      auto packed = schedules::pack_lut(t.w, layout);
      ASSERT_EQ(schedules::unpack_lut(packed, c.N, c.K, layout), t.w.codes)
          << schedules::layout_name(layout) << " K=" << c.K << " N=" << c.N;
      for (int batch : {1, 8, 3})
        for (bool scalar : {true, false}) {
          const CaseData tb = make_case(c, batch, 7);
          auto pk = schedules::pack_lut(tb.w, layout);
          schedules::LutMatmulShape shape{c.K, c.N, layout, batch, scalar};
          schedules::MatmulPipeline p = schedules::lut_matmul(shape);
          run_and_compare(p, c, tb, batch, pk, static_cast<int>(schedules::lut_tile_bytes(c.K, layout)),
                          static_cast<int>(schedules::lut_tiles(c.N, layout)), schedules::lut_padded_k(c.K, layout),
                          avx2, schedules::lut_tile_function(shape), externs);
        }
    }
  }
}

// The head kernel, with float and with half weights (values that are exactly halves, so
// both storages give the interpreter's float result). One half weight in eight is any
// finite half bit pattern (zeros of both signs, denormals, 65504): the kernel converts
// half bits with integer operations of its own. Several rows of activations at once (a
// batched step's logit rows) each give the one-row sums.
TEST(DenseMatmul, MatchesTheInterpretersSequentialSumsBitForBit) {
  // Infinities are halves too, but the kernel's conversion does not keep them: such a
  // head is stored as float.
  EXPECT_FALSE(schedules::exactly_finite_f16(std::vector<float>{1.0f, std::numeric_limits<float>::infinity()}));
  EXPECT_TRUE(schedules::exactly_finite_f16(std::vector<float>{1.0f, -0.0f, 65504.0f, std::ldexp(1.0f, -24)}));
  for (bool f16 : {false, true})
    for (auto [K, N] : {std::pair<int64_t, int64_t>{256, 512}, {128, 1000}, {256, 37}, {2560, 300}}) {
      SplitMix64 rng(static_cast<uint64_t>(K * 31 + N));
      const int M = 3;  // rows of activations
      std::vector<float> w(K * N), x(K * M);
      for (auto& v : w) {
        v = f16 ? fp16_to_f32(f32_to_fp16(rng.normal())) : rng.normal();
        const auto bits = static_cast<uint16_t>(rng.next() >> 48);
        if (f16 && rng.next() % 8 == 0 && (bits & 0x7c00) != 0x7c00) v = fp16_to_f32(bits);
      }
      for (auto& v : x) v = rng.normal();
      ASSERT_EQ(schedules::exactly_finite_f16(w), f16);
      std::vector<float> want(N * M);
      for (int m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
          float y = 0;
          for (int64_t k = 0; k < K; ++k) y += w[n * K + k] * x[m * K + k];  // ir::Interpreter's DenseMatmul
          want[m * N + n] = y;
        }
      for (const char* name : {"x86-64-avx2", "x86-64-avx512"}) {
        const TargetInfo& t = *find_target(name);
        if (!runs_on_this_cpu(t)) continue;  // AVX-512 code needs an AVX-512 CPU
        auto p = schedules::dense_matmul({K, N, t.vector_bytes, f16});
        const int64_t Np = schedules::dense_matmul_padded_rows(N, t.vector_bytes);
        auto wt = schedules::transpose_for_dense_matmul(w, N, K, t.vector_bytes, f16);
        const int T = schedules::dense_matmul_tile_rows(t.vector_bytes);
        const int k = static_cast<int>(K), tiles = static_cast<int>(Np / T);
        Halide::Buffer<float> wf(reinterpret_cast<float*>(wt.data()), T, k, tiles);
        Halide::Buffer<uint16_t> wh(reinterpret_cast<uint16_t*>(wt.data()), T, k, tiles);
        if (f16)
          p.wt.set(wh);
        else
          p.wt.set(wf);
        for (int rows : {1, M}) {
          Halide::Buffer<float> xb(x.data(), static_cast<int>(K), rows);
          p.x.set(xb);
          Halide::Buffer<float> out(static_cast<int>(Np), rows);
          p.y.realize(out, Halide::Target(t.halide));
          for (int m = 0; m < rows; ++m)
            for (int64_t n = 0; n < N; ++n)
              ASSERT_EQ(out(static_cast<int>(n), m), want[m * N + n])
                  << name << " K=" << K << " N=" << N << " f16=" << f16 << " row " << m << " of " << rows;
        }
      }
    }
}

// --head=q8: the kernel computes (sum_k float(q) * x) * row_scale, sequentially; and the
// quantized head stays close to the float one (the numerics change it announces).
TEST(DenseMatmul, Q8HeadMatchesItsDefinitionAndStaysNearTheFloatHead) {
  const int64_t K = 256, N = 300;
  SplitMix64 rng(11);
  std::vector<float> w(K * N), x(K);
  for (auto& v : w) v = rng.normal();
  for (auto& v : x) v = rng.normal();
  for (const char* name : {"x86-64-avx2", "x86-64-avx512"}) {
    const TargetInfo& t = *find_target(name);
    if (!runs_on_this_cpu(t)) continue;
    std::vector<float> scales;
    auto q = schedules::quantize_for_dense_matmul_q8(w, N, K, t.vector_bytes, scales);
    const int T = schedules::dense_matmul_tile_rows(t.vector_bytes);
    const int64_t Np = schedules::dense_matmul_padded_rows(N, t.vector_bytes);
    auto p = schedules::dense_matmul({K, N, t.vector_bytes, false, true});
    p.wt.set(Halide::Buffer<int8_t>(reinterpret_cast<int8_t*>(q.data()), T, static_cast<int>(K), static_cast<int>(Np / T)));
    p.x.set(Halide::Buffer<float>(x.data(), static_cast<int>(K), 1));
    p.row_scale.set(Halide::Buffer<float>(scales.data(), static_cast<int>(Np)));
    Halide::Buffer<float> out(static_cast<int>(Np), 1);
    p.y.realize(out, Halide::Target(t.halide));
    for (int64_t n = 0; n < N; ++n) {
      float acc = 0, exact = 0;
      for (int64_t k = 0; k < K; ++k) {
        const auto code = static_cast<int8_t>(q[(n / T) * K * T + k * T + n % T]);
        EXPECT_LE(std::fabs(code * scales[n] - w[n * K + k]), scales[n] * 0.5f + 1e-6f);
        acc += static_cast<float>(code) * x[k];
        exact += w[n * K + k] * x[k];
      }
      ASSERT_EQ(out(static_cast<int>(n), 0), acc * scales[n]) << name << " row " << n;
      EXPECT_NEAR(out(static_cast<int>(n), 0), exact, 0.05 * std::sqrt(static_cast<double>(K))) << name << " row " << n;
    }
  }
}

// The fused norm + quantize kernel against ir::rms_norm then ir::quantize_activations,
// for every norm (and none) and every quantizer, weighted and not, on widths with and
// without padding, a few tokens at once: one of them all zeros, one with the largest
// magnitude twice with both signs (Q8_K keeps the first's sign), and without a norm
// values that land on rounding ties (x * 1 = k + 0.5).
TEST(NormQuant, MatchesTheInterpretersNormThenQuantizeBitForBit) {
  struct Width {
    int64_t n, K_padded;
    bool per_block;
  };
  const std::vector<Width> widths = {{2560, 2560, false}, {100, 128, false}, {768, 1024, true}};
  const int tokens = 4;
  for (const char* name : {"x86-64-avx2", "x86-64-avx512"}) {
    const TargetInfo& target = *find_target(name);
    if (!runs_on_this_cpu(target)) continue;
    for (const Width& wd : widths)
      for (int quant = 0; quant < 4; ++quant) {
        if ((quant == 3) != wd.per_block) continue;
        const int64_t block = wd.per_block ? 256 : wd.n, blocks = wd.n / block;
        SplitMix64 rng(static_cast<uint64_t>(wd.n * 7 + quant));
        std::vector<float> x(wd.n * tokens), w(wd.n);
        for (auto& v : x) v = 3.0f * rng.normal();
        for (auto& v : w) v = 0.5f + rng.uniform();
        std::fill_n(&x[wd.n], wd.n, 0.0f);  // token 1: all zeros
        x[2 * wd.n + 3] = -40.0f;           // token 2: the largest magnitude, negative first
        x[2 * wd.n + 7] = 40.0f;
        for (int64_t i = 0; i < wd.n; ++i)  // token 3: 127 and ties k + 0.5
          x[3 * wd.n + i] = i % block == 0 ? 127.0f : static_cast<float>(i % 200 - 100) + 0.5f;
        for (int norm = -1; norm < 4; ++norm)
          for (bool weighted : {false, true}) {
            if (weighted && (norm < 0 || norm == 3)) continue;
            const float eps = 1e-5f;
            std::vector<int8_t> want_q(wd.K_padded * tokens, 0);
            std::vector<float> want_d(blocks * tokens);
            std::vector<int32_t> want_sum(blocks * tokens, 0);
            for (int t = 0; t < tokens; ++t) {
              std::vector<float> y(x.begin() + t * wd.n, x.begin() + (t + 1) * wd.n);
              if (norm >= 0)
                ir::rms_norm(static_cast<ir::NormKind>(norm), &x[t * wd.n], wd.n, weighted ? w.data() : nullptr, eps,
                             y.data());
              for (int64_t b = 0; b < blocks; ++b) {
                int8_t* q = &want_q[t * wd.K_padded + b * block];
                ir::quantize_activations(static_cast<ir::ActQuant>(quant), &y[b * block], block, q,
                                         &want_d[t * blocks + b]);
                for (int64_t i = 0; i < block; ++i) want_sum[t * blocks + b] += q[i];
              }
            }
            schedules::NormQuantPipeline p =
                schedules::norm_quant({wd.n, wd.K_padded, block,
                                       norm < 0 ? std::nullopt : std::optional(static_cast<ir::NormKind>(norm)),
                                       weighted, eps, static_cast<ir::ActQuant>(quant), target.vector_bytes});
            p.x.set(Halide::Buffer<float>(x.data(), static_cast<int>(wd.n), tokens));
            p.w.set(Halide::Buffer<float>(w.data(), static_cast<int>(wd.n)));
            Halide::Buffer<int8_t> q(static_cast<int>(wd.K_padded), tokens);
            Halide::Buffer<float> d(static_cast<int>(blocks), tokens);
            Halide::Buffer<int32_t> sum(static_cast<int>(blocks), tokens);
            q.fill(99);  // the padding must be written as zeros
            p.pipeline().realize({q, d, sum}, Halide::Target(target.halide));
            const std::string what = std::string(name) + " n=" + std::to_string(wd.n) +
                                     " norm=" + std::to_string(norm) + " weighted=" + std::to_string(weighted) +
                                     " quant=" + std::to_string(quant);
            for (int t = 0; t < tokens; ++t) {
              // BitNorm makes an all-zero token NaNs (0 * inf); the per-token quantizers
              // with a floor on the scale then round NaN, which C leaves undefined.
              if (t == 1 && norm == 3 && (quant == 1 || quant == 2)) continue;
              for (int64_t i = 0; i < wd.K_padded; ++i)
                ASSERT_EQ(q(static_cast<int>(i), t), want_q[t * wd.K_padded + i])
                    << what << " token " << t << " i " << i;
              for (int64_t b = 0; b < blocks; ++b) {
                const float dk = d(static_cast<int>(b), t), dw = want_d[t * blocks + b];
                ASSERT_EQ(std::memcmp(&dk, &dw, 4), 0)
                    << what << " token " << t << " block " << b << ": " << dk << " != " << dw;
                ASSERT_EQ(sum(static_cast<int>(b), t), want_sum[t * blocks + b]) << what << " token " << t;
              }
            }
          }
      }
  }
}

// The attention kernel against ir::attend_head, token by token: head shapes with whole
// and partial vectors of outputs, grouped and plain heads, chunks that start at 0 and
// further on (each token sees its own prefix), positions around the vector edges, and
// every score scale and softmax sum.
TEST(Attention, MatchesTheInterpretersHeadsBitForBit) {
  struct Heads {
    int d, n_head, n_head_kv;
  };
  const int64_t n_ctx = 80;
  for (const char* name : {"x86-64-avx2", "x86-64-avx512"}) {
    const TargetInfo& target = *find_target(name);
    if (!runs_on_this_cpu(target)) continue;
    for (const Heads& hd : {Heads{64, 20, 5}, Heads{32, 8, 4}, Heads{24, 3, 3}})
      for (int scale = 0; scale < 2; ++scale)
        for (int softmax = 0; softmax < 2; ++softmax) {
          const int kv_dim = hd.n_head_kv * hd.d, q_dim = hd.n_head * hd.d;
          SplitMix64 rng(static_cast<uint64_t>(hd.d * 100 + scale * 10 + softmax));
          std::vector<float> kc(n_ctx * kv_dim), vc(n_ctx * kv_dim);
          for (auto& v : kc) v = rng.normal();
          for (auto& v : vc) v = rng.normal();
          ir::Op op(ir::OpKind::Attention);
          op.head_dim = hd.d;
          op.n_head = hd.n_head;
          op.n_head_kv = hd.n_head_kv;
          op.score_scale = static_cast<ir::ScoreScale>(scale);
          op.softmax_sum = static_cast<ir::SoftmaxSum>(softmax);
          schedules::AttentionPipeline p =
              schedules::attention({hd.d, hd.n_head, hd.n_head_kv, op.score_scale, op.softmax_sum, target.vector_bytes});
          Halide::Pipeline pipeline(p.out);
          // The kernel's keys: in transposed blocks, the last padded (NaN: never read).
          const int padded = static_cast<int>((n_ctx + schedules::kAttentionPositionBlock - 1) /
                                              schedules::kAttentionPositionBlock * schedules::kAttentionPositionBlock);
          std::vector<float> kt(static_cast<size_t>(padded) * kv_dim, std::numeric_limits<float>::quiet_NaN());
          for (int64_t r = 0; r < n_ctx; ++r)
            for (int c = 0; c < kv_dim; ++c) kt[rt::key_cache_index(r, c, kv_dim)] = kc[r * kv_dim + c];
          p.k_cache.set(Halide::Buffer<float>(kt.data(), schedules::kAttentionPositionBlock, kv_dim,
                                              padded / schedules::kAttentionPositionBlock));
          p.v_cache.set(Halide::Buffer<float>(vc.data(), kv_dim, static_cast<int>(n_ctx)));
          for (auto [pos0, tokens] : {std::pair{0, 1}, {0, 8}, {7, 1}, {15, 3}, {70, 10}}) {
            std::vector<float> q(q_dim * tokens);
            for (auto& v : q) v = 2.0f * rng.normal();
            std::vector<float> want(q_dim * tokens), scores(n_ctx);
            for (int t = 0; t < tokens; ++t)
              for (int h = 0; h < hd.n_head; ++h)
                ir::attend_head(op, h, &q[t * q_dim], kc.data(), vc.data(), kv_dim, pos0 + t, scores.data(),
                                &want[t * q_dim]);
            p.q.set(Halide::Buffer<float>(q.data(), q_dim, tokens));
            p.pos0.set(pos0);
            Halide::Buffer<float> out(q_dim, tokens);
            pipeline.realize(out, Halide::Target(target.halide));
            for (int t = 0; t < tokens; ++t)
              for (int i = 0; i < q_dim; ++i)
                ASSERT_EQ(out(i, t), want[t * q_dim + i])
                    << name << " d=" << hd.d << " heads=" << hd.n_head << "/" << hd.n_head_kv << " scale=" << scale
                    << " softmax=" << softmax << " pos0=" << pos0 << " token " << t << " i " << i;
          }
        }
  }
}

// exact_expf against bitnetc_expf (ir/numerics.h) on every 61st float from -110 to 95
// (past both cut-offs), and on the special values.
TEST(ExactExp, MatchesBitnetcExpfBitForBit) {
  std::vector<float> xs = {0.0f,
                           -0.0f,
                           1e-45f,
                           -1e-45f,
                           1e-30f,
                           std::numeric_limits<float>::infinity(),
                           -std::numeric_limits<float>::infinity(),
                           std::numeric_limits<float>::quiet_NaN(),
                           0x1.62e42ep6f,
                           std::nextafter(0x1.62e42ep6f, 100.0f),
                           -0x1.9fe368p6f,
                           std::nextafter(-0x1.9fe368p6f, -200.0f)};
  for (float v = -110.0f; v < 95.0f;) {
    xs.push_back(v);
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    bits = v < 0 ? (bits <= 0x80000000u + 61 ? 0 : bits - 61) : bits + 61;
    std::memcpy(&v, &bits, 4);
  }
  const int n = static_cast<int>(xs.size());
  ASSERT_GT(n, 36000000);
  for (const char* name : {"x86-64-avx2", "x86-64-avx512"}) {
    const TargetInfo& target = *find_target(name);
    if (!runs_on_this_cpu(target)) continue;
    Halide::ImageParam in(Halide::Float(32), 1);
    Halide::Var x;
    Halide::Func f;
    f(x) = schedules::exact_expf(in(x));
    f.vectorize(x, target.vector_bytes / 4, Halide::TailStrategy::GuardWithIf);
    in.set(Halide::Buffer<float>(xs.data(), n));
    Halide::Buffer<float> out = f.realize({n}, Halide::Target(target.halide));
    for (int i = 0; i < n; ++i) {
      const float want = bitnetc_expf(xs[i]);
      ASSERT_EQ(std::memcmp(&out(i), &want, 4), 0)
          << name << " " << std::hexfloat << xs[i] << ": " << out(i) << " vs " << want;
    }
  }
}

// The RoPE kernel against ir::rope_rotate on the interpreter's tables, token by token:
// both pair styles, head widths with whole and partial vectors, chunks at 0 and further.
TEST(Rope, MatchesTheInterpretersRotationBitForBit) {
  struct Width {
    int64_t n;
    int head_dim;
  };
  const int positions = 40;
  for (const char* name : {"x86-64-avx2", "x86-64-avx512"}) {
    const TargetInfo& target = *find_target(name);
    if (!runs_on_this_cpu(target)) continue;
    for (const Width& wd : {Width{2560, 128}, Width{640, 128}, Width{96, 32}, Width{36, 12}})
      for (int style = 0; style < 2; ++style) {
        ir::Op op(ir::OpKind::Rope);
        op.head_dim = wd.head_dim;
        op.rope_style = static_cast<ir::RopeStyle>(style);
        op.rope_freq = ir::RopeFreq::GgmlIterative;
        op.rope_theta = 500000.0f;
        const int half = wd.head_dim / 2;
        std::vector<float> cos(positions * half), sin(positions * half);
        for (int pos = 0; pos < positions; ++pos) ir::rope_cos_sin(op, pos, &cos[pos * half], &sin[pos * half]);
        schedules::RopePipeline p = schedules::rope({wd.n, wd.head_dim, op.rope_style, target.vector_bytes});
        p.cos.set(Halide::Buffer<float>(cos.data(), half, positions));
        p.sin.set(Halide::Buffer<float>(sin.data(), half, positions));
        SplitMix64 rng(static_cast<uint64_t>(wd.n + style));
        for (auto [pos0, tokens] : {std::pair{0, 1}, {3, 5}, {39, 1}}) {
          std::vector<float> x(wd.n * tokens);
          for (auto& v : x) v = 4.0f * rng.normal();
          std::vector<float> want = x;
          for (int t = 0; t < tokens; ++t)
            ir::rope_rotate(op.rope_style, wd.head_dim, &cos[(pos0 + t) * half], &sin[(pos0 + t) * half],
                            &want[t * wd.n], wd.n);
          p.x.set(Halide::Buffer<float>(x.data(), static_cast<int>(wd.n), tokens));
          p.pos0.set(pos0);
          Halide::Buffer<float> out(static_cast<int>(wd.n), tokens);
          p.y.realize(out, Halide::Target(target.halide));
          for (int t = 0; t < tokens; ++t)
            for (int64_t i = 0; i < wd.n; ++i)
              ASSERT_EQ(out(static_cast<int>(i), t), want[t * wd.n + i])
                  << name << " n=" << wd.n << " d=" << wd.head_dim << " style=" << style << " pos0=" << pos0
                  << " token " << t << " i " << i;
        }
      }
  }
}

// The k-quant head kernel (llama.cpp's Q6_K / Q4_K / Q5_K heads) against
// ir::kquant_dot, bit for bit: signed group scales and codes without mins (Q6_K's
// form), unsigned ones with mins (Q4_K/Q5_K's), several 256-blocks, rows that do not
// fill a tile, and several activation rows at once (each summed as it would be alone).
TEST(KQuantMatmul, MatchesTheInterpretersDotBitForBit) {
  const int64_t K = 768, N = 45;
  const int M = 3;
  for (const bool with_mins : {false, true}) {
    SplitMix64 rng(with_mins ? 5 : 4);
    KQuantWeights w;
    w.rows = N;
    w.cols = K;
    w.q.resize(N * K);
    w.sc.resize(N * K / 16);
    w.m.resize(N * K / 16);
    w.d.resize(N * K / 256);
    w.dmin.resize(N * K / 256);
    for (auto& q : w.q) q = static_cast<int8_t>(with_mins ? rng.next() % 32 : static_cast<int>(rng.next() % 64) - 32);
    for (auto& s : w.sc)
      s = static_cast<int8_t>(with_mins ? rng.next() % 64 : static_cast<int>(rng.next() % 256) - 128);
    for (auto& m : w.m) m = with_mins ? static_cast<int8_t>(rng.next() % 64) : 0;
    for (auto& d : w.d) d = fp16_to_f32(f32_to_fp16(rng.uniform() * 0.01f));
    for (auto& d : w.dmin) d = with_mins ? fp16_to_f32(f32_to_fp16(rng.uniform() * 0.01f)) : 0.0f;
    std::vector<int8_t> xq(K * M);
    std::vector<float> xd(K / 256 * M), x(K);
    for (int t = 0; t < M; ++t) {
      for (auto& v : x) v = rng.normal();
      ir::quantize_activations(ir::ActQuant::PerBlockQ8K, x.data(), K, xq.data() + t * K, xd.data() + t * (K / 256));
    }
    for (const char* name : {"x86-64-avx2", "x86-64-avx512"}) {
      const TargetInfo& target = *find_target(name);
      if (!runs_on_this_cpu(target)) continue;
      const int T = schedules::dense_matmul_tile_rows(target.vector_bytes);
      const int Np = static_cast<int>(schedules::dense_matmul_padded_rows(N, target.vector_bytes));
      std::vector<uint8_t> packed = schedules::pack_for_kquant_matmul(w, target.vector_bytes);
      const rt::KQuantSections at = rt::kquant_sections(Np, K);
      auto p = schedules::kquant_matmul({K, N, target.vector_bytes});
      auto i8 = [&](uint64_t off, int cols) {
        return Halide::Buffer<int8_t>(reinterpret_cast<int8_t*>(packed.data() + off), T, cols, Np / T);
      };
      auto f32 = [&](uint64_t off, int cols) {
        return Halide::Buffer<float>(reinterpret_cast<float*>(packed.data() + off), T, cols, Np / T);
      };
      p.q.set(i8(at.q, K));
      p.sc.set(i8(at.sc, K / 16));
      p.m.set(i8(at.m, K / 16));
      p.d.set(f32(at.d, K / 256));
      p.dmin.set(f32(at.dmin, K / 256));
      p.x.set(Halide::Buffer<int8_t>(xq.data(), static_cast<int>(K), M));
      p.xd.set(Halide::Buffer<float>(xd.data(), static_cast<int>(K / 256), M));
      Halide::Buffer<float> out(Np, M);
      p.y.realize(out, Halide::Target(target.halide));
      for (int t = 0; t < M; ++t)
        for (int64_t n = 0; n < N; ++n) {
          const float want = ir::kquant_dot(w, n, xq.data() + t * K, xd.data() + t * (K / 256));
          ASSERT_EQ(std::bit_cast<uint32_t>(out(static_cast<int>(n), t)), std::bit_cast<uint32_t>(want))
              << name << (with_mins ? " with mins" : " without") << " row " << n << " token " << t;
        }
    }
  }
}
