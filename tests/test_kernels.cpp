// Generated kernels against the reference interpreter's semantics, on random shapes and
// on the model shapes, including tails (N not a multiple of the row tile, K padded to
// the packing block). Results must be bit-identical.
#include <gtest/gtest.h>

#include "dense_gemv.h"
#include "interpreter.h"
#include "synthetic_model.h"
#include "targets.h"
#include "ternary_gemv.h"

using namespace bitnetc;

namespace {

struct Case {
  int64_t K, N, act_block;
};

void check_gemv(const Case& c, int vector_bytes, const std::string& target) {
  SplitMix64 rng(static_cast<uint64_t>(c.K * 1000003 + c.N * 7 + vector_bytes));
  TernaryWeights w;
  w.rows = c.N;
  w.cols = c.K;
  w.codes.resize(static_cast<size_t>(c.K * c.N));
  for (auto& v : w.codes) v = static_cast<int8_t>(static_cast<int>(rng.next() % 3) - 1);
  const float ws = 0.0625f + rng.uniform();
  // Activations quantized by the interpreter's own quantizer.
  std::vector<float> xf(c.K);
  for (auto& v : xf) v = rng.normal();
  const int64_t n_act = c.K / c.act_block;
  std::vector<int8_t> q(c.K);
  std::vector<float> d(n_act);
  for (int64_t b = 0; b < n_act; ++b)
    ir::quantize_activations(c.act_block == 256 ? ir::ActQuant::PerBlockQ8K : ir::ActQuant::PerTokenHF,
                             &xf[b * c.act_block], c.act_block, &q[b * c.act_block], &d[b]);

  // Reference: what ir::Interpreter's ternary_matmul computes.
  std::vector<float> want(c.N);
  for (int64_t n = 0; n < c.N; ++n) {
    float y = 0;
    for (int64_t b = 0; b < n_act; ++b) {
      int32_t acc = 0;
      for (int64_t k = b * c.act_block; k < (b + 1) * c.act_block; ++k) acc += w.codes[n * c.K + k] * q[k];
      y += static_cast<float>(acc) * (d[b] * ws);
    }
    want[n] = y;
  }

  const schedules::GemvShape shape{c.K, c.N, c.act_block, vector_bytes};
  schedules::GemvPipeline p = schedules::ternary_gemv(shape);
  const int64_t Kp = schedules::padded_k(c.K, vector_bytes);
  auto packed = schedules::pack_ternary_rows(w, vector_bytes);
  Halide::Buffer<uint8_t> pb(packed.data(), static_cast<int>(Kp / 4), static_cast<int>(c.N));
  std::vector<int8_t> xp(Kp, 0);
  std::copy(q.begin(), q.end(), xp.begin());
  Halide::Buffer<int8_t> xb(xp.data(), static_cast<int>(Kp));
  std::vector<int32_t> xsum(n_act, 0);
  for (int64_t b = 0; b < n_act; ++b)
    for (int64_t k = b * c.act_block; k < (b + 1) * c.act_block; ++k) xsum[b] += q[k];
  Halide::Buffer<int32_t> sb(xsum.data(), static_cast<int>(n_act));
  Halide::Buffer<float> db(d.data(), static_cast<int>(n_act));
  p.packed.set(pb);
  p.x.set(xb);
  p.x_sum.set(sb);
  p.d_act.set(db);
  p.w_scale.set(ws);
  Halide::Buffer<float> out(static_cast<int>(c.N));
  p.y.realize(out, Halide::Target(target));
  for (int64_t n = 0; n < c.N; ++n)
    ASSERT_EQ(out(static_cast<int>(n)), want[n])
        << "K=" << c.K << " N=" << c.N << " block=" << c.act_block << " W=" << vector_bytes << " row " << n;
}

}  // namespace

TEST(TernaryGemv, MatchesTheInterpreterBitForBit) {
  const std::vector<Case> cases = {
      {256, 1, 256},    {256, 7, 256},   {256, 64, 256}, {512, 130, 256},  // tails in N
      {768, 33, 256},   {768, 33, 768},                                    // Q8_K blocks and per-token
      {320, 9, 64},     {192, 5, 64},                                      // K padded to the packing block
      {2560, 40, 2560}, {6912, 17, 256},                                   // 2B4T's widths
  };
  const std::string avx2 = find_target("x86-64-avx2")->halide;
  for (const auto& c : cases) {
    if (c.act_block % 32 == 0) check_gemv(c, 32, avx2);
    // AVX-512 code runs only where the CPU has it; the AVX2 path covers the rest.
    if (c.act_block % 64 == 0 && host_target().vector_bytes == 64) check_gemv(c, 64, host_target().halide);
  }
}

TEST(DenseGemv, MatchesTheInterpretersSequentialSumsBitForBit) {
  for (auto [K, N] : {std::pair<int64_t, int64_t>{256, 512}, {128, 1000}, {256, 37}, {2560, 300}}) {
    SplitMix64 rng(static_cast<uint64_t>(K * 31 + N));
    std::vector<float> w(K * N), x(K);
    for (auto& v : w) v = rng.normal();
    for (auto& v : x) v = rng.normal();
    std::vector<float> want(N);
    for (int64_t n = 0; n < N; ++n) {
      float y = 0;
      for (int64_t k = 0; k < K; ++k) y += w[n * K + k] * x[k];  // ir::Interpreter's DenseMatmul
      want[n] = y;
    }
    for (const char* name : {"x86-64-avx2", "x86-64-avx512"}) {
      const TargetInfo& t = *find_target(name);
      if (t.vector_bytes > host_target().vector_bytes) continue;  // AVX-512 code needs an AVX-512 CPU
      auto p = schedules::dense_gemv({K, N, t.vector_bytes});
      const int64_t Np = schedules::dense_gemv_padded_rows(N, t.vector_bytes);
      auto wt = schedules::transpose_for_dense_gemv(w, N, K, t.vector_bytes);
      Halide::Buffer<float> wb(wt.data(), static_cast<int>(Np), static_cast<int>(K));
      Halide::Buffer<float> xb(x.data(), static_cast<int>(K));
      p.wt.set(wb);
      p.x.set(xb);
      Halide::Buffer<float> out(static_cast<int>(Np));
      p.y.realize(out, Halide::Target(t.halide));
      for (int64_t n = 0; n < N; ++n) ASSERT_EQ(out(static_cast<int>(n)), want[n]) << name << " K=" << K << " N=" << N;
    }
  }
}
