// The real files in ../shared: llama.cpp's TQ1_0/TQ2_0 GGUFs, the HF 2B4T-style
// checkpoints (bf16 masters and packed uint8), the trained bitllama2.c model, and
// llama.cpp's vocab-only GGUFs. Values are checked against the numbers their READMEs
// document.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "fp16.h"
#include "gguf.h"
#include "model_import.h"
#include "support/test_support.h"

using namespace bitnetc;
using namespace bitnetc::test;

namespace {
const char* kMatrices[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
}

TEST(GoldenSynthB158, Tq1AndTq2DecodeToTheDocumentedTernaryWeights) {
  const auto dir = shared_dir() / "golden/gguf/synth-b158";
  const ImportedModel tq2 = import_model((dir / "synth-b158-tq2_0.gguf").string());
  const ImportedModel tq1 = import_model((dir / "synth-b158-tq1_0.gguf").string());
  EXPECT_EQ(tq2.gguf()->data_offset(), 726720u);
  EXPECT_EQ(tq1.gguf()->data_offset(), 726720u);
  EXPECT_EQ(tq2.hparams->n_vocab, 32000);
  EXPECT_EQ(tq2.hparams->ffn_act, "silu");
  EXPECT_EQ(tq2.find("blk.0.attn_q.weight")->nbytes, 16896u);

  // README: layer-0 scales, one per tensor (every block's fp16 d equals it).
  const std::map<std::string, float> layer0 = {{"attn_q", 0.068603515625f},    {"attn_k", 0.08758544921875f},
                                               {"attn_v", 0.07427978515625f},  {"attn_output", 0.039825439453125f},
                                               {"ffn_gate", 0.0618896484375f}, {"ffn_up", 0.09161376953125f},
                                               {"ffn_down", 0.0787353515625f}};
  size_t checked = 0;
  for (int l = 0; l < 4; ++l)
    for (const char* mat : kMatrices) {
      const std::string name = "blk." + std::to_string(l) + "." + mat + ".weight";
      const auto a = decode_ternary(tq2, *tq2.find(name));
      const auto b = decode_ternary(tq1, *tq1.find(name));
      ASSERT_EQ(a.codes, b.codes) << name;
      ASSERT_EQ(a.scales, b.scales) << name;
      for (float s : a.scales) ASSERT_EQ(s, a.scales[0]) << name << ": blocks disagree on the scale";
      if (l == 0) EXPECT_EQ(a.scales[0], layer0.at(mat)) << name;
      // Uniform over {-1, 0, +1}: each code is a third, give or take.
      int64_t counts[3] = {};
      for (int8_t c : a.codes) counts[c + 1]++;
      for (auto c : counts) EXPECT_NEAR(static_cast<double>(c) / a.codes.size(), 1.0 / 3, 0.03) << name;
      ++checked;
    }
  EXPECT_EQ(checked, 28u);

  // README's byte-level example: the first block of blk.0.attn_q.weight.
  const ModelTensor* q = tq2.find("blk.0.attn_q.weight");
  EXPECT_EQ(q->data[0], 0x10);
  EXPECT_EQ(q->data[64], 0x64);
  EXPECT_EQ(q->data[65], 0x2c);
  const auto w = decode_ternary(tq2, *q);
  EXPECT_EQ(std::vector<int8_t>({w.codes[0], w.codes[32], w.codes[64], w.codes[96]}),
            std::vector<int8_t>({-1, -1, 0, -1}));
  EXPECT_EQ(tq1.find("blk.0.attn_q.weight")->data[0], 0x0c);
}

TEST(GoldenHfBitnetTiny, PackedUnpacksToTheTernarisedBf16Masters) {
  const auto dir = shared_dir() / "golden/hf-bitnet-tiny";
  const ImportedModel bf16 = import_model((dir / "bf16").string());
  const ImportedModel packed = import_model((dir / "packed").string());
  EXPECT_EQ(bf16.hf_config->quant_mode, HfQuantMode::Online);
  EXPECT_EQ(packed.hf_config->quant_mode, HfQuantMode::Offline);
  EXPECT_EQ(packed.hparams->head_dim, 64);
  EXPECT_EQ(packed.tokenizer.kind, "gpt2");
  EXPECT_EQ(packed.tokenizer.n_tokens, 128256);
  const char* mats[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                        "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
  for (int l = 0; l < 3; ++l)
    for (const char* mat : mats) {
      const std::string name = "model.layers." + std::to_string(l) + "." + mat + ".weight";
      const auto online = decode_ternary(bf16, *bf16.find(name));
      const auto offline = decode_ternary(packed, *packed.find(name));
      ASSERT_EQ(online.rows, offline.rows) << name;
      ASSERT_EQ(online.codes, offline.codes) << name;
      // weight_scale is mean|W| exactly; the online path's scale is 1/(1/mean).
      EXPECT_NEAR(online.scales[0], offline.scales[0], offline.scales[0] * 1.2e-7) << name;
    }
  // README's worked example: layer 0 q_proj, P[0,2] = 148 -> T[0,2]=-1, T[32,2]=0, T[64,2]=0, T[96,2]=+1.
  const ModelTensor* q = packed.find("model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(q->data[2], 148);
  const auto w = decode_ternary(packed, *q);
  EXPECT_EQ(w.value(0, 2), -0.142578125f);
  EXPECT_EQ(w.codes[32 * 128 + 2], 0);
  EXPECT_EQ(w.codes[64 * 128 + 2], 0);
  EXPECT_EQ(w.codes[96 * 128 + 2], 1);
}

TEST(GoldenTinyStories, ReadsTheTrainedBitllama2cCheckpoint) {
  const auto path = shared_dir() / "models/tinystories-bitnet-3m/model.bin";
  const ImportedModel m = import_model(path.string());
  const Hyperparams& h = *m.hparams;
  EXPECT_EQ(h.n_embd, 256);
  EXPECT_EQ(h.n_ff, 256);
  EXPECT_EQ(h.n_layer, 8);
  EXPECT_EQ(h.n_head, 8);
  EXPECT_EQ(h.n_head_kv, 4);
  EXPECT_EQ(h.n_vocab, 512);
  EXPECT_EQ(h.n_ctx, 512);
  EXPECT_EQ(m.find("layers.0.attention.wq.scale")->file_offset, 525568u);
  EXPECT_EQ(m.find("layers.0.feed_forward.w3.scale")->file_offset, 1181120u);
  int records = 0;
  for (const auto& t : m.tensors) {
    if (t.type != TensorType::I2_L2C) continue;
    const auto w = decode_ternary(m, t);
    // README: all 56 scales positive, between about 0.066 and 3.2; code 0b10 never occurs.
    EXPECT_GT(w.scales[0], 0.06f) << t.name;
    EXPECT_LT(w.scales[0], 3.3f) << t.name;
    for (uint64_t k = 0; k < t.nbytes; ++k)
      for (int i = 0; i < 4; ++i) ASSERT_NE((t.data[k] >> (2 * i)) & 3, 2) << t.name;
    ++records;
  }
  EXPECT_EQ(records, 56);
}

TEST(GoldenVocabFiles, VocabOnlyGgufsOpen) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(shared_dir() / "golden/tokenizer")) {
    if (e.path().extension() != ".gguf") continue;
    const GgufFile g = GgufFile::open(e.path().string());
    EXPECT_TRUE(g.tensors().empty()) << e.path();
    ASSERT_TRUE(g.get_string("tokenizer.ggml.model").has_value()) << e.path();
    EXPECT_GT(g.get_array("tokenizer.ggml.tokens", GgufValueType::STRING)->count, 30000u) << e.path();
    ++n;
  }
  EXPECT_EQ(n, 5);
}

// llama.cpp's default embedding type (Q6_K, tied head) as its quantizer wrote it for the
// TinyStories model, against the F32 table of the same source in its TQ2_0 file: every
// value within two quantization steps of its group (llama.cpp fits each group's scale by
// least squares and clamps codes to [-32, 31], so not always within half) and the table as a whole within 5 % RMS (6
// bits give 2.5 %; a misread block layout is off by the values' own size), and dequantize_row_ref giving exactly the
// unpacked form's values.
TEST(GoldenPeerFiles, Q6KEmbeddingDecodesToTheSourceTable) {
  const auto dir = shared_dir() / "golden/peer-files";
  const ImportedModel q6 = import_model((dir / "llamacpp-tq2_0-q6k-embd.gguf").string());
  const ImportedModel f32 = import_model((dir / "llamacpp-tq2_0.gguf").string());
  const ModelTensor* tq = q6.find("token_embd.weight");
  const ModelTensor* tf = f32.find("token_embd.weight");
  ASSERT_TRUE(tq && tf);
  ASSERT_EQ(tq->type, TensorType::Q6_K);
  ASSERT_EQ(tf->type, TensorType::F32);
  const int64_t rows = static_cast<int64_t>(tq->shape[0]), cols = static_cast<int64_t>(tq->shape[1]);
  const KQuantWeights w = decode_kquant(tq->type, tq->data, rows, cols);
  const std::vector<float> source = decode_dense(*tf), dense = decode_dense(*tq);
  ASSERT_EQ(source.size(), static_cast<size_t>(rows * cols));
  int64_t checked = 0;
  double err2 = 0, norm2 = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t g = r * (cols / 16) + c / 16, b = r * (cols / 256) + c / 256;
      const float step = std::fabs(w.d[b] * static_cast<float>(w.sc[g]));
      ASSERT_EQ(w.m[g], 0);  // Q6_K has no mins
      ASSERT_GE(w.q[r * cols + c], -32);
      ASSERT_LE(w.q[r * cols + c], 31);
      const double e = w.value(r, c) - source[r * cols + c];
      ASSERT_LE(std::fabs(e), 2 * step + 1e-6f) << r << "," << c;
      ASSERT_EQ(dense[r * cols + c], w.value(r, c));
      err2 += e * e, norm2 += static_cast<double>(source[r * cols + c]) * source[r * cols + c];
      ++checked;
    }
  EXPECT_EQ(checked, 512 * 256);
  EXPECT_LT(std::sqrt(err2 / norm2), 0.05);
  std::printf("Q6_K embedding: relative RMS error %.3g against the F32 source\n", std::sqrt(err2 / norm2));
}

// ik_llama.cpp's IQ2_BN and IQ1_BN files of the TinyStories model hold the same ternary
// codes as llama.cpp's TQ2_0 file of the same source, and one scale per row where TQ2_0
// has one per 256-block: the same value up to TQ2_0's fp16 rounding (IQ1_BN stores fp16
// too: exactly TQ2_0's), zero for the all-zero rows.
TEST(GoldenPeerFiles, IkBitnetTypesDecodeToTheTq2Codes) {
  const auto dir = shared_dir() / "golden/peer-files";
  const ImportedModel tq2 = import_model((dir / "llamacpp-tq2_0.gguf").string());
  int tensors = 0;
  for (const char* file : {"ikllama-iq2_bn.gguf", "ikllama-iq1_bn.gguf"}) {
    const ImportedModel ik = import_model((dir / file).string());
    for (const ModelTensor& t : ik.tensors) {
      if (!t.ternary) continue;
      ASSERT_TRUE(t.type == TensorType::IQ2_BN || t.type == TensorType::IQ1_BN) << file << " " << t.name;
      const ModelTensor* ref = tq2.find(t.name);
      ASSERT_TRUE(ref) << t.name;
      const TernaryWeights a = decode_ternary(ik, t, {}), b = decode_ternary(tq2, *ref, {});
      ASSERT_EQ(a.rows, b.rows);
      ASSERT_EQ(a.cols, b.cols);
      EXPECT_EQ(a.codes, b.codes) << file << " " << t.name;
      ASSERT_EQ(a.scale_block % static_cast<uint64_t>(a.cols), 0u) << "one scale per row (or per tensor)";
      for (int64_t r = 0; r < a.rows; ++r)
        for (int64_t c = 0; c < a.cols; c += 256) {
          const float per_block = b.scale_of(r, c), per_row = a.scale_of(r, c);
          if (std::all_of(&b.codes[r * b.cols + c], &b.codes[r * b.cols + c + 256], [](int8_t v) { return v == 0; }))
            continue;  // an all-zero block: TQ2_0's scale is 0, the row's is the tensor's
          ASSERT_EQ(fp16_to_f32(f32_to_fp16(per_row)), per_block) << file << " " << t.name << " row " << r;
          if (t.type == TensorType::IQ1_BN) ASSERT_EQ(per_row, per_block);
        }
      ++tensors;
    }
  }
  EXPECT_EQ(tensors, 2 * 7 * 8);
}
