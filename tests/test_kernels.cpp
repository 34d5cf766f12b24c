// Kernel building blocks that are not ops of their own: the packings' round trips, the
// head's storage choice, --head=q8's distance from the float head, and the exact e^x
// that attention uses. Every op's kernels are checked against the reference, on every
// back end, by the op harness (test_ops.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "dense_matmul.h"
#include "exact_exp.h"
#include "fp16.h"
#include "kquant_matmul.h"
#include "lut_matmul.h"
#include "model_blob.h"
#include "norm_quant.h"
#include "numerics.h"
#include "q8_0_matmul.h"
#include "synthetic_model.h"
#include "targets.h"

using namespace bitnetc;

// TL1 and TL2: the packing reads back to the codes, on shapes with tails in N and K
// padded to the tiles.
TEST(LutLayouts, PackingReadsBackToTheCodes) {
  using schedules::LutLayout;
  for (auto [K, N] : {std::pair<int64_t, int64_t>{256, 7}, {320, 9}, {192, 5}, {96, 3}, {2560, 40}, {768, 33}})
    for (LutLayout layout : {LutLayout::TL1, LutLayout::TL2}) {
      SplitMix64 rng(static_cast<uint64_t>(K * 31 + N));
      TernaryWeights w;
      w.rows = N;
      w.cols = K;
      w.codes.resize(static_cast<size_t>(K * N));
      for (auto& v : w.codes) v = static_cast<int8_t>(static_cast<int>(rng.next() % 3) - 1);
      const std::vector<uint8_t> packed = schedules::pack_lut(w, layout);
      EXPECT_EQ(packed.size(), static_cast<size_t>(schedules::lut_tile_bytes(K, layout) * schedules::lut_tiles(N, layout)));
      EXPECT_EQ(schedules::unpack_lut(packed, N, K, layout), w.codes)
          << schedules::layout_name(layout) << " K=" << K << " N=" << N;
    }
}

// The k-quant head's 6-bit code planes read back to every code (-32..31: Q6_K's range,
// Q4_K/Q5_K's 0..31 within it) through rt::kquant_lane_code, as a tied embedding reads
// them, for each lane width and with rows padded to the tiles; a code past the range is
// an error, not a wrapped value.
TEST(KQuantHead, CodePlanesReadBackToEveryCode) {
  for (int vector_bytes : {16, 32})
    for (auto [N, K] : {std::pair<int64_t, int64_t>{45, 768}, {8, 256}, {70, 512}}) {
      SplitMix64 rng(static_cast<uint64_t>(K + N + vector_bytes));
      KQuantWeights w;
      w.rows = N, w.cols = K;
      w.q.resize(static_cast<size_t>(N * K));
      for (auto& q : w.q) q = static_cast<int8_t>(static_cast<int>(rng.next() % 64) - 32);
      w.sc.assign(static_cast<size_t>(N * K / 16), 1);
      w.m.assign(w.sc.size(), 0);
      w.d.assign(static_cast<size_t>(N * K / 256), 1.0f);
      w.dmin.assign(w.d.size(), 0.0f);
      const std::vector<uint8_t> packed = schedules::pack_for_kquant_matmul(w, vector_bytes);
      const int64_t Np = schedules::dense_matmul_padded_rows(N, vector_bytes);
      const rt::KQuantLaneSections at = rt::kquant_lane_sections(Np, K);
      ASSERT_EQ(packed.size(), at.end);
      const int64_t L = schedules::kquant_lanes(vector_bytes);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k)
          ASSERT_EQ(rt::kquant_lane_code(packed.data(), at, n, k, K, L), w.q[n * K + k])
              << "row " << n << " column " << k << " W" << vector_bytes;
      w.q[5] = 32;
      EXPECT_THROW(schedules::pack_for_kquant_matmul(w, vector_bytes), std::invalid_argument);
    }
}

// A head is stored in half precision only when every value is exactly a finite half:
// infinities are halves too, but the kernel's conversion does not keep them.
TEST(DenseMatmul, HalfStorageOnlyWhenEveryValueIsAFiniteHalf) {
  EXPECT_FALSE(schedules::exactly_finite_f16(std::vector<float>{1.0f, std::numeric_limits<float>::infinity()}));
  EXPECT_FALSE(schedules::exactly_finite_f16(std::vector<float>{1.0f, 0.1f}));
  EXPECT_TRUE(schedules::exactly_finite_f16(std::vector<float>{1.0f, -0.0f, 65504.0f, std::ldexp(1.0f, -24)}));
}

// --head=q8: the kernel computes (sum_k float(q) * x) * row_scale, sequentially; and the
// quantized head stays close to the float one (the numerics change it announces).
// The f16 head tiles copied from halves in chunks of rows (an F16 source, packed on every
// core) are the bytes the float path writes, for every width, with chunks that start and
// end inside tiles and rows past N left zero.
TEST(DenseMatmul, HalfRowsCopiedInChunksAreTheFloatPathsTiles) {
  const int64_t N = 37, K = 24;
  std::vector<uint16_t> halves(static_cast<size_t>(N * K));
  std::vector<float> values(halves.size());
  for (size_t i = 0; i < halves.size(); ++i) {
    halves[i] = static_cast<uint16_t>((i * 2654435761u) & 0x7bff) | static_cast<uint16_t>(i % 3 == 0 ? 0x8000 : 0);
    values[i] = fp16_to_f32(halves[i]);
  }
  for (int V : {16, 32, 64}) {
    const std::vector<uint8_t> want = schedules::transpose_for_dense_matmul(values, N, K, V, /*f16=*/true);
    std::vector<uint8_t> got(want.size(), 0);
    for (int64_t n0 : {int64_t{0}, int64_t{5}, int64_t{19}})
      schedules::put_half_rows_for_dense_matmul(halves.data(), n0, n0 == 0 ? 5 : n0 == 5 ? 19 : N, K, V,
                                                reinterpret_cast<uint16_t*>(got.data()));
    EXPECT_EQ(got, want) << "vector bytes " << V;
  }
}

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

// exact_expf against bitnetc_expf (ir/numerics.h) on every 61st float from -110 to 95
// (past both cut-offs), and on the special values.
// The Halide fma that Q8_0 heads accumulate with (schedules/q8_0_matmul.h) against libm's
// fmaf: cases where a product and a sum rounded apart, or a sum rounded in double and
// again in float, would be wrong (the exact sum just off a float tie), the kernel's own
// operands (half products times lane sums), and random floats of every scale.
TEST(ExactFma, MatchesFmafBitForBit) {
  std::vector<float> a, b, c;
  auto add = [&](float x, float y, float z) { a.push_back(x), b.push_back(y), c.push_back(z); };
  const float up = 1.0f + 0x1.0p-23f, down = 1.0f - 0x1.0p-23f;
  add(64.0f * up, down, 1073741952.0f);    // 64 - 2^-40 onto an odd float: a double sum ties, fma rounds down
  add(-64.0f * up, down, -1073741952.0f);  // the same, negative
  add(64.0f * up, up, 1073741824.0f);      // above the tie by 2^-40
  add(0.0f, 5.0f, -0.0f);
  add(1e-30f, 1e-30f, 0.0f);  // a product below float's range
  add(3.0f, 1.0f / 3.0f, -1.0f);
  SplitMix64 rng(7);
  for (int i = 0; i < 2000000; ++i) {
    const float dd = fp16_to_f32(static_cast<uint16_t>(rng.next() & 0x7BFF)) *
                     fp16_to_f32(static_cast<uint16_t>(rng.next() & 0x7BFF));
    const float s = static_cast<float>(static_cast<int>(rng.next() % 129025) - 64512);
    add(dd, s, (rng.uniform() - 0.5f) * std::ldexp(1.0f, static_cast<int>(rng.next() % 40) - 20));
    add(rng.normal() * std::ldexp(1.0f, static_cast<int>(rng.next() % 60) - 30),
        rng.normal() * std::ldexp(1.0f, static_cast<int>(rng.next() % 60) - 30),
        rng.normal() * std::ldexp(1.0f, static_cast<int>(rng.next() % 60) - 30));
  }
  const int n = static_cast<int>(a.size());
  for (const char* name : {"x86-64-avx2", "x86-64-avx512"}) {
    const TargetInfo& target = *find_target(name);
    if (!runs_on_this_cpu(target)) continue;
    Halide::ImageParam ia(Halide::Float(32), 1), ib(Halide::Float(32), 1), ic(Halide::Float(32), 1);
    Halide::Var x;
    Halide::Func f;
    f(x) = schedules::exact_fma_f32(ia(x), ib(x), ic(x));
    f.vectorize(x, target.vector_bytes / 4, Halide::TailStrategy::GuardWithIf);
    ia.set(Halide::Buffer<float>(a.data(), n));
    ib.set(Halide::Buffer<float>(b.data(), n));
    ic.set(Halide::Buffer<float>(c.data(), n));
    Halide::Buffer<float> out = f.realize({n}, Halide::Target(target.halide));
    for (int i = 0; i < n; ++i) {
      const float want = std::fmaf(a[i], b[i], c[i]);
      ASSERT_EQ(std::memcmp(&out(i), &want, 4), 0) << name << " fma(" << std::hexfloat << a[i] << ", " << b[i]
                                                   << ", " << c[i] << "): " << out(i) << " vs " << want;
    }
    // The first case is one a double sum rounded again gets wrong.
    EXPECT_NE(static_cast<float>(static_cast<double>(a[0]) * b[0] + c[0]), out(0));
  }
}

// Q8_0's block factors in the Halide quantizer against numerics.h's, on every 61st
// non-negative float and the edges of half's range.
TEST(HalfRounding, HalideMatchesBitnetcFloatToHalf) {
  std::vector<float> xs = {0.0f, 0x1.0p-25f, 0x1.8p-25f, 0x1.0p-24f, 0x1.0p-14f, std::nextafter(0x1.0p-14f, 0.0f),
                           65504.0f, 65519.99f, 65520.0f, std::numeric_limits<float>::infinity()};
  for (uint32_t bits = 0; bits < 0x7F800000u; bits += 61) {
    float v;
    std::memcpy(&v, &bits, 4);
    xs.push_back(v);
  }
  const int n = static_cast<int>(xs.size());
  Halide::ImageParam in(Halide::Float(32), 1);
  Halide::Var x;
  Halide::Func f;
  f(x) = schedules::rounded_to_half(in(x));
  f.vectorize(x, 8, Halide::TailStrategy::GuardWithIf);
  in.set(Halide::Buffer<float>(xs.data(), n));
  Halide::Buffer<float> out = f.realize({n}, Halide::Target(find_target("x86-64-avx2")->halide));
  for (int i = 0; i < n; ++i) {
    const float want = bitnetc_half_to_float(bitnetc_float_to_half(xs[i]));
    ASSERT_EQ(std::memcmp(&out(i), &want, 4), 0) << std::hexfloat << xs[i] << ": " << out(i) << " vs " << want;
  }
}

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
