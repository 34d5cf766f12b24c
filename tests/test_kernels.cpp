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
#include "lut_matmul.h"
#include "numerics.h"
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

// A head is stored in half precision only when every value is exactly a finite half:
// infinities are halves too, but the kernel's conversion does not keep them.
TEST(DenseMatmul, HalfStorageOnlyWhenEveryValueIsAFiniteHalf) {
  EXPECT_FALSE(schedules::exactly_finite_f16(std::vector<float>{1.0f, std::numeric_limits<float>::infinity()}));
  EXPECT_FALSE(schedules::exactly_finite_f16(std::vector<float>{1.0f, 0.1f}));
  EXPECT_TRUE(schedules::exactly_finite_f16(std::vector<float>{1.0f, -0.0f, 65504.0f, std::ldexp(1.0f, -24)}));
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
