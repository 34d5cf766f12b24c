// The IR: the verifier catches malformed graphs, and the printed text form of lowered
// models is compared with checked-in golden files (tests/golden_ir/*.ir). After an
// intended change, regenerate them with BITNETC_UPDATE_GOLDEN=1 and review the diff.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "ir.h"
#include "numerics.h"
#include "lower.h"
#include "support/test_support.h"
#include "synthetic_model.h"

using namespace bitnetc;
using namespace bitnetc::test;

namespace {

void expect_golden_ir(const ir::Graph& g, const std::string& name) {
  const std::filesystem::path path = std::filesystem::path(BITNETC_SOURCE_DIR) / "tests/golden_ir" / (name + ".ir");
  const std::string text = ir::print(g);
  if (std::getenv("BITNETC_UPDATE_GOLDEN")) {
    write_text(path.string(), text);
    return;
  }
  std::ifstream in(path, std::ios::binary);
  ASSERT_TRUE(in) << "missing golden file " << path << " (run with BITNETC_UPDATE_GOLDEN=1)";
  const std::string want(std::istreambuf_iterator<char>(in), {});
  EXPECT_EQ(text, want) << "IR text of " << name << " changed; if intended, regenerate with BITNETC_UPDATE_GOLDEN=1";
}

ImportedModel synthetic(ScratchDir& dir, const std::string& arch, TensorType t, const std::string& name) {
  SyntheticSpec s;
  s.arch = arch;
  s.n_vocab = 300;
  s.n_embd = 256;
  s.n_ff = 512;
  s.n_layer = 1;
  s.weight_type = t;
  make_synthetic_gguf(s).write(dir.file(name));
  return import_model(dir.file(name));
}

}  // namespace

TEST(GoldenIr, SyntheticBitnetLlamaCpp) {
  ScratchDir dir;
  expect_golden_ir(lower(synthetic(dir, "bitnet", TensorType::TQ2_0, "a.gguf")), "synthetic-bitnet-tq2_0");
}

TEST(GoldenIr, SyntheticBitnetB158PerBlockOverride) {
  ScratchDir dir;
  LowerOptions o;
  o.act_quant = ActQuantGranularity::PerBlock;
  expect_golden_ir(lower(synthetic(dir, "bitnet-b1.58", TensorType::I2_S, "b.gguf"), o),
                   "synthetic-bitnet-b1.58-i2_s-per-block");
}

TEST(GoldenIr, HfBitnetTinyPacked) {
  expect_golden_ir(lower(import_model((shared_dir() / "golden/hf-bitnet-tiny/packed").string())),
                   "hf-bitnet-tiny-packed");
}

TEST(GoldenIr, TinyStoriesBitllama2c) {
  expect_golden_ir(lower(import_model((shared_dir() / "models/tinystories-bitnet-3m/model.bin").string())),
                   "tinystories-bitnet-3m");
}

TEST(Lower, PerBlockNeedsWidthsOf256) {
  LowerOptions o;
  o.act_quant = ActQuantGranularity::PerBlock;
  const ImportedModel m = import_model((shared_dir() / "golden/hf-bitnet-tiny/packed").string());
  expect_import_error([&] { lower(m, o); }, {"act_quant", "multiples of 256", "has 128"});
}

TEST(Verifier, CatchesMalformedGraphs) {
  ir::Graph g;
  g.n_vocab = 4;
  g.n_embd = 8;
  g.n_layer = 1;
  g.n_ctx = 4;
  const int x = g.add_value("x", ir::DType::F32, 8);
  const int q = g.add_value("q", ir::DType::Q8, 8);
  const int y = g.add_value("y", ir::DType::F32, 8);
  ir::Op use_before{ir::OpKind::Add};
  use_before.inputs = {x, x};
  use_before.output = y;
  g.ops.push_back(use_before);
  ir::Op wrong_dtype{ir::OpKind::TernaryMatmul};
  wrong_dtype.inputs = {y};
  wrong_dtype.output = q;
  g.ops.push_back(wrong_dtype);
  const auto errors = ir::verify(g);
  auto has = [&](const std::string& s) {
    for (const auto& e : errors)
      if (e.find(s) != std::string::npos) return true;
    return false;
  };
  EXPECT_TRUE(has("op 0 (add): uses %0 before it is defined")) << testing::PrintToString(errors);
  EXPECT_TRUE(has("op 1 (ternary_matmul): input 0 must be q8")) << testing::PrintToString(errors);
  EXPECT_TRUE(has("logits value is not defined")) << testing::PrintToString(errors);
}

// The oracle's expf (ir/numerics.h, shared with the CUDA kernels): within 0.51 ulp of
// e^x everywhere (checked on every 9973rd float) and the special cases right.
TEST(Numerics, ExpfIsCorrectlyRoundedAlmostEverywhere) {
  long checked = 0;
  for (uint64_t u = 0; u < 0x100000000ull; u += 9973) {
    const uint32_t bits = static_cast<uint32_t>(u);
    float x;
    std::memcpy(&x, &bits, 4);
    const float got = bitnetc_expf(x);
    if (std::isnan(x)) {
      EXPECT_TRUE(std::isnan(got));
      continue;
    }
    const double want = std::exp(static_cast<double>(x));
    if (want > 3.4028234663852886e38) {
      EXPECT_TRUE(std::isinf(got)) << x;
      continue;
    }
    if (want < 1.1754943508222875e-38) {  // subnormal results: absolute error within half the smallest step
      EXPECT_LE(std::fabs(got - want), 0x1p-149) << x;
      continue;
    }
    const float rounded = static_cast<float>(want);
    const double ulp = std::nextafter(rounded, INFINITY) - rounded;
    ASSERT_LE(std::fabs(got - want), 0.51 * ulp) << std::hexfloat << x;
    ++checked;
  }
  EXPECT_GT(checked, 100000);
  EXPECT_EQ(bitnetc_expf(-INFINITY), 0.0f);
  EXPECT_TRUE(std::isinf(bitnetc_expf(INFINITY)));
  EXPECT_EQ(bitnetc_expf(0.0f), 1.0f);
}

// bitnetc_attend_head computes eight scores at a time and sixteen outputs at a time for
// speed; every number must still be the plain definition's: each score summed over the
// head in index order, softmax, each output summed over positions in order from 0.0f.
TEST(Numerics, AttentionBlocksGiveThePlainDefinitionsBits) {
  SplitMix64 rng(11);
  for (int head_dim : {4, 20, 32, 64}) {
    const int n_head = 4, n_head_kv = 2, kv_dim = n_head_kv * head_dim, n_ctx = 40;
    std::vector<float> q(n_head * head_dim), kc(n_ctx * kv_dim), vc(n_ctx * kv_dim);
    for (auto* v : {&q, &kc, &vc})
      for (float& x : *v) x = 3 * rng.normal();
    for (int pos : {0, 6, 7, 8, 9, 15, 16, 23, 39})
      for (int scale : {kBitnetcDivideSqrt, kBitnetcMultiplyInvSqrt})
        for (int sum : {kBitnetcF32Divide, kBitnetcF64MulInverse})
          for (int h = 0; h < n_head; ++h) {
            std::vector<float> scores(n_ctx), out(n_head * head_dim, -1.0f);
            bitnetc_attend_head(scale, sum, head_dim, n_head, n_head_kv, h, q.data(), kc.data(), vc.data(), kv_dim, pos,
                                scores.data(), out.data());
            const int kvh = h / (n_head / n_head_kv);
            std::vector<float> p(pos + 1);
            float mx = 0;
            for (int t = 0; t <= pos; ++t) {
              float s = 0;
              for (int i = 0; i < head_dim; ++i) s += q[h * head_dim + i] * kc[t * kv_dim + kvh * head_dim + i];
              const float sqrt_d = std::sqrt(static_cast<float>(head_dim));
              p[t] = scale == kBitnetcDivideSqrt ? s / sqrt_d : s * (1.0f / sqrt_d);
              if (t == 0 || p[t] > mx) mx = p[t];
            }
            if (sum == kBitnetcF32Divide) {
              float total = 0;
              for (float& x : p) total += (x = bitnetc_expf(x - mx));
              for (float& x : p) x /= total;
            } else {
              double total = 0;
              for (float& x : p) total += (x = bitnetc_expf(x - mx));
              const float inv = static_cast<float>(1.0 / total);
              for (float& x : p) x *= inv;
            }
            for (int i = 0; i < head_dim; ++i) {
              float o = 0.0f;
              for (int t = 0; t <= pos; ++t) o += p[t] * vc[t * kv_dim + kvh * head_dim + i];
              ASSERT_EQ(out[h * head_dim + i], o) << "head_dim " << head_dim << " pos " << pos << " i " << i;
            }
          }
  }
}

// The quantizers' inline rounding (ir/numerics.h) is libm's round and nearbyint, sign of
// zero included, on every 997th float and on every float in [-300, 300] near a half.
TEST(Numerics, InlineRoundingIsLibmsForEveryFloat) {
  auto same = [](float a, float b) { return std::memcmp(&a, &b, 4) == 0 || (std::isnan(a) && std::isnan(b)); };
  auto check = [&](float x) {
    ASSERT_TRUE(same(bitnetc_round(x), std::round(x))) << std::hexfloat << x;
    ASSERT_TRUE(same(bitnetc_round_even(x), std::nearbyint(x))) << std::hexfloat << x;
  };
  for (uint64_t u = 0; u < 0x100000000ull; u += 997) {
    const uint32_t bits = static_cast<uint32_t>(u);
    float x;
    std::memcpy(&x, &bits, 4);
    check(x);
  }
  for (int i = -600; i <= 600; ++i)
    for (float x = std::nextafter(i * 0.5f, -INFINITY), n = 0; n < 3; ++n, x = std::nextafter(x, INFINITY)) check(x);
  for (float x : {0.0f, -0.0f, 0.5f, -0.5f, 1.5f, 2.5f, -2.5f, 8388607.5f, 4194303.5f, 4194304.5f, INFINITY, -INFINITY})
    check(x);
}
