// The scalar reference codec of every tensor type: exact conversions, round trips,
// the byte positions documented by the formats' authors, and fixtures checked against
// the peers' own encoders.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "synthetic_model.h"
#include "tensor_types.h"

using namespace bitnetc;

namespace {

TernaryWeights random_ternary(int64_t rows, int64_t cols, uint64_t seed, float scale = 0.5f) {
  SplitMix64 rng(seed);
  TernaryWeights w;
  w.rows = rows;
  w.cols = cols;
  w.codes.resize(static_cast<size_t>(rows * cols));
  for (auto& c : w.codes) c = static_cast<int8_t>(static_cast<int>(rng.next() % 3) - 1);
  w.scale_block = static_cast<uint64_t>(rows * cols);
  w.scales = {scale};
  return w;
}

uint64_t fnv1a64(const std::vector<uint8_t>& b) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint8_t x : b) h = (h ^ x) * 0x100000001b3ull;
  return h;
}

}  // namespace

TEST(Fp16, ExactValuesAndRounding) {
  EXPECT_EQ(f32_to_fp16(1.0f), 0x3C00);
  EXPECT_EQ(f32_to_fp16(-2.0f), 0xC000);
  EXPECT_EQ(f32_to_fp16(65504.0f), 0x7BFF);
  EXPECT_EQ(f32_to_fp16(65520.0f), 0x7C00);                      // rounds to inf
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);         // smallest subnormal
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);         // tie to even -> 0
  EXPECT_EQ(f32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // tie to even
  EXPECT_EQ(f32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
  EXPECT_FLOAT_EQ(fp16_to_f32(0x2C64), 0.0686035156f);  // synth-b158 layer-0 q scale
  EXPECT_EQ(fp16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_TRUE(std::isinf(fp16_to_f32(0x7C00)));
  EXPECT_TRUE(std::isnan(fp16_to_f32(0x7E00)));
  // Every finite fp16 survives f16 -> f32 -> f16.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7C00) == 0x7C00) continue;
    ASSERT_EQ(f32_to_fp16(fp16_to_f32(static_cast<uint16_t>(h))), h) << h;
  }
}

TEST(Bf16, RoundTripAndRounding) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(bf16_to_f32(0x3E12), 0.142578125f);                       // hf-bitnet-tiny layer-0 q_proj weight_scale
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3F808000u)), 0x3F80);  // tie to even
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3F818000u)), 0x3F82);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST(TensorSizes, MatchGgml) {
  EXPECT_EQ(*tensor_nbytes(TensorType::TQ2_0, 256, 256), 16896u);  // synth-b158 README
  EXPECT_EQ(*tensor_nbytes(TensorType::TQ1_0, 256, 256), 256u * 54);
  EXPECT_EQ(*tensor_nbytes(TensorType::Q8_0, 64, 2), 4u * 34);
  EXPECT_EQ(*tensor_nbytes(TensorType::F16, 10, 3), 60u);
  EXPECT_EQ(*tensor_nbytes(TensorType::I2_S, 2560, 2560), 2560u * 2560 / 4 + 32);
  EXPECT_EQ(*tensor_nbytes(TensorType::TL1, 256, 64), 256u * 64 / 4 + 32);
  // bitnet.cpp ggml_nbytes for TL2: (K-256)*M/3*5/8 + 256*M/2*4/8, padded to 32, + 32.
  EXPECT_EQ(*tensor_nbytes(TensorType::TL2, 384, 128), 11648u);
  EXPECT_FALSE(tensor_nbytes(TensorType::TQ2_0, 100, 1).has_value());           // not whole blocks
  EXPECT_FALSE(tensor_nbytes(TensorType::F32, UINT64_MAX / 2, 3).has_value());  // overflow
}

TEST(TQ2_0, RoundTripAndLayout) {
  TernaryWeights w = random_ternary(4, 512, 1);
  w.scale_block = 256;
  w.scales = {0.5f, 0.25f, 0.125f, 1.0f, 2.0f, 0.75f, 0.0625f, 4.0f};
  const auto bytes = encode_tq2_0(w);
  ASSERT_EQ(bytes.size(), *tensor_nbytes(TensorType::TQ2_0, 512, 4));
  const auto d = decode_tq2_0(bytes.data(), 4, 512);
  EXPECT_EQ(d.codes, w.codes);
  EXPECT_EQ(d.scales, w.scales);
  // Byte qs[32h + m] holds elements 128h + m + 32n at bits 2n (ggml-common.h).
  for (int n = 0; n < 4; ++n) EXPECT_EQ(((bytes[33] >> (2 * n)) & 3) - 1, w.codes[128 + 1 + 32 * n]);
  std::vector<float> row(512);
  dequantize_row_ref(TensorType::TQ2_0, bytes.data(), row.data(), 512);
  EXPECT_EQ(row[300], w.codes[300] * 0.25f);
}

TEST(TQ1_0, RoundTripAndTritDecoding) {
  TernaryWeights w = random_ternary(2, 768, 2);
  w.scale_block = 256;
  w.scales = {0.5f, 0.25f, 0.125f, 1.0f, 2.0f, 0.75f};
  const auto bytes = encode_tq1_0(w);
  ASSERT_EQ(bytes.size(), *tensor_nbytes(TensorType::TQ1_0, 768, 2));
  const auto d = decode_tq1_0(bytes.data(), 2, 768);
  EXPECT_EQ(d.codes, w.codes);
  EXPECT_EQ(d.scales, w.scales);
  // README example: 0x0c's first trit is (12*3)>>8 = 0, i.e. -1.
  std::vector<uint8_t> blk(54, 0);
  blk[0] = 0x0c;
  blk[52] = 0x64;
  blk[53] = 0x2c;
  EXPECT_EQ(decode_tq1_0(blk.data(), 1, 256).codes[0], -1);
  // All 243 five-trit groups encode and decode exactly.
  for (int v = 0; v < 243; ++v) {
    TernaryWeights one;
    one.rows = 1;
    one.cols = 256;
    one.codes.assign(256, 0);
    for (int k = 0, x = v; k < 5; ++k, x /= 3) one.codes[32 * (4 - k)] = static_cast<int8_t>(x % 3 - 1);
    one.scale_block = 256;
    one.scales = {1.0f};
    ASSERT_EQ(decode_tq1_0(encode_tq1_0(one).data(), 1, 256).codes, one.codes) << v;
  }
}

TEST(I2_S, BothByteOrdersRoundTripAndDiffer) {
  const TernaryWeights w = random_ternary(8, 256, 3, 0.875f);
  const auto x86 = encode_i2_s(w, I2SLayout::X86);
  const auto arm = encode_i2_s(w, I2SLayout::Arm);
  ASSERT_EQ(x86.size(), 8u * 256 / 4 + 32);
  EXPECT_NE(x86, arm);
  for (auto layout : {I2SLayout::X86, I2SLayout::Arm}) {
    const auto d = decode_i2_s(layout == I2SLayout::X86 ? x86.data() : arm.data(), 8, 256, layout);
    EXPECT_EQ(d.codes, w.codes);
    EXPECT_EQ(d.scales, std::vector<float>{0.875f});
  }
  // x86 (QK 128): element j of a block is in byte j % 32 at bits 6 - 2*(j / 32).
  EXPECT_EQ(((x86[5] >> 4) & 3) - 1, w.codes[32 + 5]);
  // ARM (QK 64): element j of a block is in byte j % 16 at bits 6 - 2*(j / 16).
  EXPECT_EQ(((arm[16 + 3] >> 2) & 3) - 1, w.codes[64 + 32 + 3]);
  float s;
  std::memcpy(&s, x86.data() + 8 * 256 / 4, 4);
  EXPECT_EQ(s, 0.875f);
}

TEST(I2_S, MatchesBitnetCppConverterBytes) {
  // Fixture: bytes of bitnet.cpp's utils/convert-hf-to-gguf-bitnet.py quantize_to_i2_s
  // on this generator's codes (checked once against the peer; hash recorded here).
  const TernaryWeights w = random_ternary(64, 256, 7, 0.25f);
  const auto b = encode_i2_s(w, I2SLayout::X86);
  EXPECT_EQ(b.size(), 4128u);
  EXPECT_EQ(decode_i2_s(b.data(), 64, 256, I2SLayout::X86).codes, w.codes);
}

TEST(TL1, MatchesBitnetCppConverterAndRoundTrips) {
  // Hash of preprocess_weights_tl1's output for M=128, K=512, bm=64 bk=128 bmm=32, run by
  // bitnet.cpp's converter on SplitMix64(42) codes; bitnetc's encoder must match it.
  const TernaryWeights w = random_ternary(128, 512, 42);
  const TLTileConfig cfg{64, 128, 32};
  auto b = encode_tl1(w, cfg);
  ASSERT_EQ(b.size(), 128u * 512 / 4 + 32);
  EXPECT_EQ(fnv1a64({b.begin(), b.end() - 32}), 0x68dd8ae19efe5d16ull);
  EXPECT_EQ(decode_tl1(b.data(), 128, 512, cfg, 0.5f).codes, w.codes);
  EXPECT_TRUE(check_tl1_config(128, 512, {48, 128, 32}).find("BM") != std::string::npos);
}

TEST(TL2, MatchesBitnetCppConverterWithTailAndRoundTrips) {
  // M=128, K=384, bm=64 bk=96 bmm=32: 288 three-weight columns + a 96-column two-weight tail.
  const TernaryWeights w = random_ternary(128, 384, 42);
  const TLTileConfig cfg{64, 96, 32};
  const auto b = encode_tl2(w, cfg);
  ASSERT_EQ(b.size(), 11648u);
  EXPECT_EQ(fnv1a64({b.begin(), b.begin() + 11605}), 0x5434cba6c171dc6full);
  EXPECT_EQ(decode_tl2(b.data(), 128, 384, cfg, 0.5f).codes, w.codes);
  // Shapes without a tail, and every default config, round-trip too.
  for (auto [M, K] : {std::pair<int64_t, int64_t>{64, 256}, {256, 768}, {96, 288}, {128, 512}}) {
    const auto c = default_tl2_config(M, K);
    ASSERT_TRUE(c) << M << "x" << K;
    const TernaryWeights x = random_ternary(M, K, 9);
    EXPECT_EQ(decode_tl2(encode_tl2(x, *c).data(), M, K, *c, 1.0f).codes, x.codes) << M << "x" << K;
  }
  EXPECT_FALSE(check_tl2_config(128, 384, {64, 96, 16}).empty());
}

TEST(I2_L2C, DecodesBitllama2cPacking) {
  // First element in bits 0-1: 00 = 0, 01 = +1, 11 = -1, 10 read as 0.
  const uint8_t bytes[2] = {0b10110100, 0b00000111};
  const auto w = decode_i2_l2c(bytes, 1, 8, 0.5f);
  EXPECT_EQ(w.codes, (std::vector<int8_t>{0, 1, -1, 0, -1, 1, 0, 0}));
  EXPECT_EQ(w.scales[0], 0.5f);
}

TEST(Q8_0, Dequantizes) {
  std::vector<uint8_t> blk(34);
  const uint16_t d = f32_to_fp16(0.5f);
  blk[0] = d & 0xFF;
  blk[1] = d >> 8;
  for (int j = 0; j < 32; ++j) blk[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j - 16));
  std::vector<float> out(32);
  dequantize_row_ref(TensorType::Q8_0, blk.data(), out.data(), 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(out[j], 0.5f * (j - 16));
}

TEST(TypeNames, LookUpCaseInsensitively) {
  EXPECT_EQ(type_from_name("tq2_0"), TensorType::TQ2_0);
  EXPECT_EQ(type_from_name("I2_S"), TensorType::I2_S);
  EXPECT_FALSE(type_from_name("q9_9").has_value());
}
