// The unified importer: format detection, hyperparameters, and decoding every ternary
// type back to the same codes and scales.
#include <gtest/gtest.h>

#include "gguf_writer.h"
#include "lower.h"
#include "model_import.h"
#include "support/test_support.h"
#include "synthetic_model.h"

using namespace bitnetc;
using namespace bitnetc::test;

namespace {

SyntheticSpec small_spec(const std::string& arch, TensorType t) {
  SyntheticSpec s;
  s.arch = arch;
  s.n_vocab = 300;
  s.n_embd = 256;
  s.n_ff = 512;
  s.n_layer = 2;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.weight_type = t;
  s.seed = 11;
  return s;
}

const char* kMatrices[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

}  // namespace

TEST(Import, EveryWeightTypeDecodesToTheSameTernaryModel) {
  ScratchDir dir;
  for (const std::string arch : {"bitnet", "bitnet-b1.58"}) {
    // The generator draws the same codes and scales whatever the storage type, so every
    // type must decode to what TQ2_0 decodes to.
    make_synthetic_gguf(small_spec(arch, TensorType::TQ2_0)).write(dir.file("ref.gguf"));
    const ImportedModel ref = import_model(dir.file("ref.gguf"));
    EXPECT_EQ(ref.architecture, arch);
    EXPECT_EQ(ref.hparams->ffn_act, arch == "bitnet" ? "silu" : "relu2");
    for (auto t : {TensorType::TQ1_0, TensorType::I2_S, TensorType::TL1, TensorType::TL2, TensorType::Q8_0,
                   TensorType::F16, TensorType::BF16, TensorType::F32}) {
      for (auto layout : {I2SLayout::X86, I2SLayout::Arm}) {
        if (t != TensorType::I2_S && layout == I2SLayout::Arm) continue;
        auto spec = small_spec(arch, t);
        spec.i2s_layout = layout;
        const std::string path = dir.file(std::string(type_name(t)) + ".gguf");
        make_synthetic_gguf(spec).write(path);
        const ImportedModel m = import_model(path);
        ASSERT_TRUE(m.supported);
        for (int l = 0; l < 2; ++l)
          for (const char* mat : kMatrices) {
            const std::string name = "blk." + std::to_string(l) + "." + mat + ".weight";
            const auto a = decode_ternary(ref, *ref.find(name));
            const auto b = decode_ternary(m, *m.find(name));
            ASSERT_EQ(b.codes, a.codes) << type_name(t) << " " << name;
            ASSERT_EQ(b.rows, a.rows);
            ASSERT_EQ(b.cols, a.cols);
            for (int64_t r = 0; r < a.rows; r += 17) ASSERT_EQ(b.scale_of(r, 0), a.scale_of(r, 0)) << name;
          }
      }
    }
  }
}

TEST(Import, ReportsHyperparametersAndTotals) {
  ScratchDir dir;
  make_synthetic_gguf(small_spec("bitnet", TensorType::TQ2_0)).write(dir.file("m.gguf"));
  const ImportedModel m = import_model(dir.file("m.gguf"));
  const Hyperparams& h = *m.hparams;
  EXPECT_EQ(h.n_vocab, 300);
  EXPECT_EQ(h.head_dim, 64);
  EXPECT_EQ(h.n_head_kv, 2);
  EXPECT_TRUE(h.tied_embeddings);
  EXPECT_EQ(m.tokenizer.kind, "llama");
  EXPECT_EQ(m.tokenizer.n_tokens, 300);
  // 2 layers x (q 256x256 + k,v 128x256 + o 256x256 + gate,up 512x256 + down 256x512)
  const uint64_t ternary = 2ull * (2 * 65536 + 2 * 32768 + 3 * 131072);
  EXPECT_EQ(m.ternary_params(), ternary);
  EXPECT_EQ(m.ternary_bytes(), ternary / 256 * 66);
}

TEST(Import, RefusesOtherArchitecturesByName) {
  ScratchDir dir;
  GgufWriter w;
  w.set("general.architecture", GgufOut::str("llama"));
  w.write(dir.file("llama.gguf"));
  expect_import_error([&] { import_model(dir.file("llama.gguf")); },
                      {"llama.gguf", "architecture \"llama\" is not supported", "bitnet, bitnet-b1.58"});
  ImportOptions lenient;
  lenient.require_supported = false;
  EXPECT_FALSE(import_model(dir.file("llama.gguf"), lenient).supported);
}

TEST(Import, ValidatesGgufHyperparameters) {
  ScratchDir dir;
  auto w = make_synthetic_gguf(small_spec("bitnet", TensorType::TQ2_0));
  w.set("bitnet.attention.head_count_kv", GgufOut::u32(3));
  w.write(dir.file("a.gguf"));
  expect_import_error([&] { import_model(dir.file("a.gguf")); }, {"bitnet.attention.head_count_kv", "do not divide"});
  w = make_synthetic_gguf(small_spec("bitnet", TensorType::TQ2_0));
  w.set("bitnet.block_count", GgufOut::str("two"));
  w.write(dir.file("b.gguf"));
  expect_import_error([&] { import_model(dir.file("b.gguf")); },
                      {"bitnet.block_count", "expected an unsigned integer"});
  w = make_synthetic_gguf(small_spec("bitnet", TensorType::TQ2_0));
  w.set("bitnet.vocab_size", GgufOut::u32(301));
  w.write(dir.file("c.gguf"));
  expect_import_error([&] { import_model(dir.file("c.gguf")); },
                      {"bitnet.vocab_size", "token_embd.weight has 300 rows"});
  // A wrong width is named as the width, not as what it would imply (head size, RoPE dims).
  w = make_synthetic_gguf(small_spec("bitnet", TensorType::TQ2_0));
  w.set("bitnet.embedding_length", GgufOut::u32(512));
  w.write(dir.file("d.gguf"));
  expect_import_error([&] { import_model(dir.file("d.gguf")); },
                      {"bitnet.embedding_length", "says 512 but token_embd.weight rows have 256 values"});
}

TEST(Import, TlWeightsWithoutTileConfigAreRefusedClearly) {
  ScratchDir dir;
  auto w = make_synthetic_gguf(small_spec("bitnet-b1.58", TensorType::TL1));
  w.set("bitnetc.tl.tiles", GgufOut::array(GgufValueType::ARRAY, {}));
  w.write(dir.file("tl1.gguf"));
  const ImportedModel m = import_model(dir.file("tl1.gguf"));
  expect_import_error([&] { decode_ternary(m, *m.find("blk.0.attn_q.weight")); },
                      {"blk.0.attn_q.weight", "tile configuration", "256x256"});
}

TEST(Import, DenseWeightsMustBeTernary) {
  ScratchDir dir;
  auto spec = small_spec("bitnet", TensorType::F32);
  spec.n_layer = 1;
  auto bytes = make_synthetic_gguf(spec).serialize();
  const auto g = GgufFile::parse(MappedFile::from_memory("x", bytes));
  const GgufTensor* q = g.tensor("blk.0.attn_q.weight");
  const float odd = 0.0123f;
  std::memcpy(bytes.data() + q->file_offset + 8, &odd, 4);
  write_bytes(dir.file("f32.gguf"), bytes);
  const ImportedModel m = import_model(dir.file("f32.gguf"));
  expect_import_error([&] { decode_ternary(m, *m.find("blk.0.attn_q.weight")); },
                      {"blk.0.attn_q.weight", "element 2", "not ternary"});
}

// A tensor the lowered graph never reads is a part of the model that would be dropped
// silently: lowering refuses the model and names it.
TEST(Import, ATensorTheGraphNeverReadsIsAnError) {
  ScratchDir dir;
  auto w = make_synthetic_gguf(small_spec("bitnet", TensorType::TQ2_0));
  w.write(dir.file("ok.gguf"));
  EXPECT_NO_THROW(lower(import_model(dir.file("ok.gguf"))));  // every tensor read
  w.add_tensor("blk.0.attn_extra_norm.weight", TensorType::F32, {256}, std::vector<uint8_t>(1024, 0));
  w.write(dir.file("extra.gguf"));
  expect_import_error([&] { lower(import_model(dir.file("extra.gguf"))); },
                      {"extra.gguf", "blk.0.attn_extra_norm.weight", "never read"});
}

// Scales that cannot be the model's (non-finite, negative, zero over non-zero codes: what
// bitnet.cpp's quantizer writes with several threads) are refused, naming the tensor.
TEST(Import, ImplausibleWeightScalesAreRefused) {
  ScratchDir dir;
  auto spec = small_spec("bitnet", TensorType::TQ2_0);
  spec.n_layer = 1;
  const auto bytes = make_synthetic_gguf(spec).serialize();
  const auto g = GgufFile::parse(MappedFile::from_memory("x", bytes));
  const uint64_t d_at = g.tensor("blk.0.attn_k.weight")->file_offset + 64;  // block 0's f16 scale
  for (auto [bits, what] : {std::pair<uint16_t, const char*>{0x7E00, "not finite"},
                            {0xBC00, "negative"},
                            {0x0000, "zero while its weights are not"}}) {
    auto bad = bytes;
    std::memcpy(bad.data() + d_at, &bits, 2);
    write_bytes(dir.file("bad.gguf"), bad);
    const ImportedModel m = import_model(dir.file("bad.gguf"));
    expect_import_error([&] { decode_ternary(m, *m.find("blk.0.attn_k.weight")); },
                        {"blk.0.attn_k.weight", "block 0", what, "damaged"});
  }
}

// A scale plausible alone but wildly unlike the same weight's in the other layers (the
// garbage bitnet.cpp's multi-threaded quantizer writes) is refused by the lowering the
// interpreter runs, naming the tensor; the intact model lowers. (test_cli: the compile.)
TEST(Import, ScalesWildlyUnlikeTheOtherLayersAreRefused) {
  ScratchDir dir;
  auto spec = small_spec("bitnet-b1.58", TensorType::I2_S);
  spec.n_layer = 4;
  const auto bytes = make_synthetic_gguf(spec).serialize();
  write_bytes(dir.file("ok.gguf"), bytes);
  EXPECT_NO_THROW(lower(import_model(dir.file("ok.gguf"))));
  const auto g = GgufFile::parse(MappedFile::from_memory("x", bytes));
  const GgufTensor* t = g.tensor("blk.2.ffn_up.weight");
  const uint64_t scale_at = t->file_offset + t->row_len() * t->n_rows() / 4;  // I2_S: the f32 after the codes
  float s;
  std::memcpy(&s, bytes.data() + scale_at, 4);
  auto bad = bytes;
  const float garbage = s * 3.0e6f;
  std::memcpy(bad.data() + scale_at, &garbage, 4);
  write_bytes(dir.file("bad.gguf"), bad);
  const ImportedModel m = import_model(dir.file("bad.gguf"));
  EXPECT_NO_THROW(decode_ternary(m, *m.find("blk.2.ffn_up.weight")));  // alone it is a scale
  expect_import_error([&] { lower(m); }, {"blk.2.ffn_up.weight", "1000x", "other 3 layers", "damaged"});
}

TEST(Import, UnknownFormatsAndMissingPaths) {
  ScratchDir dir;
  write_text(dir.file("notes.txt"), "hello world, not a model");
  expect_import_error([&] { import_model(dir.file("notes.txt")); },
                      {"notes.txt: byte 0: magic", "unrecognised model format"});
  expect_import_error([&] { import_model(dir.file("absent.gguf")); }, {"absent.gguf", "no such file"});
  expect_import_error([&] { import_model(dir.path().string()); }, {"neither model.safetensors"});
}

// ---- bitllama2.c checkpoints --------------------------------------------------------

namespace {

std::vector<uint8_t> llama2c_checkpoint(int dim, int hidden, int layers, int heads, int kv_heads, int vocab) {
  std::vector<uint8_t> b(256, 0);
  put_le<uint32_t>(b, 0, 0x616b3432);
  const int32_t hdr[8] = {1, dim, hidden, layers, heads, kv_heads, vocab, 64};
  std::memcpy(b.data() + 4, hdr, sizeof hdr);
  b.resize(256 + 4 * dim + 4 * static_cast<size_t>(vocab) * dim, 0);
  const int kv = dim * kv_heads / heads;
  const int shapes[7][2] = {{dim, dim}, {kv, dim}, {kv, dim}, {dim, dim}, {hidden, dim}, {dim, hidden}, {hidden, dim}};
  for (auto& s : shapes)
    for (int l = 0; l < layers; ++l) {
      const size_t at = b.size();
      b.resize(at + 4 + static_cast<size_t>(s[0]) * s[1] / 4, 0x55);  // 0x55: every code +1
      const float scale = 0.5f + l;
      std::memcpy(b.data() + at, &scale, 4);
    }
  return b;
}

}  // namespace

TEST(Llama2c, ReadsAValidCheckpoint) {
  const auto bytes = llama2c_checkpoint(32, 64, 2, 4, 2, 300);
  const ImportedModel m = import_llama2c(MappedFile::from_memory("ck.bin", bytes));
  EXPECT_EQ(m.hparams->n_embd, 32);
  EXPECT_EQ(m.hparams->n_head_kv, 2);
  const ModelTensor* wk = m.find("layers.1.attention.wk.weight");
  ASSERT_NE(wk, nullptr);
  EXPECT_EQ(wk->shape, (std::vector<uint64_t>{16, 32}));
  const auto w = decode_ternary(m, *wk);
  EXPECT_EQ(w.scales[0], 1.5f);
  for (int8_t c : w.codes) ASSERT_EQ(c, 1);
}

TEST(Llama2c, CorruptHeadersAndSizes) {
  auto good = llama2c_checkpoint(32, 64, 2, 4, 2, 300);
  auto parse = [](const std::vector<uint8_t>& b) { import_llama2c(MappedFile::from_memory("ck.bin", b)); };
  auto b = good;
  put_le<int32_t>(b, 4, 2);
  expect_import_error([&] { parse(b); }, {"ck.bin: byte 4: version", "unsupported version 2"});
  b = good;
  put_le<int32_t>(b, 8, -5);
  expect_import_error([&] { parse(b); }, {"byte 8: dim", "between 1 and 2^20"});
  b = good;
  put_le<int32_t>(b, 24, 3);
  expect_import_error([&] { parse(b); }, {"n_kv_heads", "does not divide"});
  b = good;
  b.resize(b.size() - 1);
  expect_import_error([&] { parse(b); }, {"layers.1.feed_forward.w3.weight", "truncated"});
  b = good;
  b.push_back(0);
  expect_import_error([&] { parse(b); }, {"1 bytes after the last ternary record"});
  b = good;
  put_le<int32_t>(b, 28, 1 << 19);  // vocab that the file cannot hold
  expect_import_error([&] { parse(b); }, {"tok_embeddings.weight", "truncated"});
  std::vector<uint8_t> tiny(good.begin(), good.begin() + 10);
  expect_import_error([&] { parse(tiny); }, {"byte 8: dim", "truncated"});
}
