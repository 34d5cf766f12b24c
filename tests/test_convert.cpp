// `bitnetc convert` round trips: converting a model and running the result with the
// reference interpreter gives the source's tokens; re-encoding between weight types
// keeps every code and scale.
#include <gtest/gtest.h>

#include "atomic_file.h"
#include "convert.h"
#include "generate.h"
#include "gguf.h"
#include "interpreter.h"
#include "lower.h"
#include "support/test_support.h"
#include "tokenizer_import.h"

using namespace bitnetc;
using namespace bitnetc::test;
using nlohmann::json;

namespace {

json load(const std::filesystem::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

// Greedy continuation of `prompt_tokens` for `n` steps with the reference interpreter.
std::vector<int32_t> greedy(const ImportedModel& m, const std::vector<int32_t>& prompt_tokens, size_t n) {
  const ir::Graph g = lower(m);
  ir::Interpreter interp(g);
  int32_t pos = 0;
  const std::vector<float>* logits = nullptr;
  for (int32_t t : prompt_tokens) logits = &interp.forward(t, pos++);
  std::vector<int32_t> out;
  while (out.size() < n) {
    out.push_back(rt::argmax(*logits));
    if (out.size() < n) logits = &interp.forward(out.back(), pos++);
  }
  return out;
}

std::string convert(const std::string& in, const std::string& out, std::optional<TensorType> type) {
  ConvertOptions o;
  o.output = out;
  o.type = type;
  convert_to_gguf(import_model(in), o);
  return out;
}

}  // namespace

TEST(Convert, TinyStoriesToGgufKeepsEveryGoldenToken) {
  ScratchDir dir;
  const auto s = shared_dir();
  const json golden = load(s / "golden/tinystories-bitnet-3m/golden.json");
  const std::string src = (s / "models/tinystories-bitnet-3m/model.bin").string();
  for (auto type : {std::optional<TensorType>{}, std::optional{TensorType::TQ1_0}, std::optional{TensorType::I2_S},
                    std::optional{TensorType::F32}}) {
    const std::string name = type ? type_name(*type) : "default";
    const ImportedModel m = import_model(convert(src, dir.file(name + ".gguf"), type));
    EXPECT_EQ(m.architecture, "bitnet");
    if (!type) EXPECT_EQ(m.find("blk.0.attn_q.weight")->type, TensorType::TQ2_0);
    // The peers apply the file's epsilon to every norm: it must be the inner norms' (none),
    // or they loop on the last prompt token; bitnetc reads the final norm's from its own key.
    EXPECT_LE(*m.gguf()->get_float("bitnet.attention.layer_norm_rms_epsilon"), 1e-29) << name;
    EXPECT_FLOAT_EQ(static_cast<float>(*m.gguf()->get_float("bitnetc.final_norm_epsilon")), 1e-5f) << name;
    // The prompt tokenizes the same from the GGUF's vocabulary.
    const rt::Tokenizer tok(load_vocab(m));
    for (const auto& c : golden["cases"]) {
      const auto prompt = c["prompt_tokens"].get<std::vector<int32_t>>();
      EXPECT_EQ(tok.encode(c["prompt"].get<std::string>(), true), prompt) << name;
      EXPECT_EQ(greedy(m, prompt, 64), c["tokens"].get<std::vector<int32_t>>()) << name << " " << c["prompt"];
    }
  }
}

TEST(Convert, HfPackedToGgufKeepsEveryGoldenToken) {
  ScratchDir dir;
  const auto s = shared_dir();
  const json golden = load(s / "golden/hf-bitnet-tiny/golden.json");
  // Rows of 128 cannot be TQ2_0: the default falls back to I2_S.
  const ImportedModel m = import_model(convert((s / "golden/hf-bitnet-tiny/packed").string(), dir.file("hf.gguf"), {}));
  EXPECT_EQ(m.architecture, "bitnet-b1.58");
  EXPECT_EQ(m.find("blk.0.attn_q.weight")->type, TensorType::I2_S);
  EXPECT_EQ(m.hparams->ffn_act, "relu2");
  // Every norm of this family has the config's epsilon: the peers read it as bitnetc does.
  EXPECT_FLOAT_EQ(static_cast<float>(*m.gguf()->get_float("bitnet-b1.58.attention.layer_norm_rms_epsilon")), 1e-5f);
  EXPECT_FALSE(m.gguf()->get_float("bitnetc.final_norm_epsilon"));
  EXPECT_EQ(load_vocab(m).chat_template, rt::ChatTemplate::BitNet2B4T);  // carried as tokenizer.chat_template
  for (const auto& c : golden["cases"]) {
    const auto prompt = c["prompt_tokens"].get<std::vector<int32_t>>();
    EXPECT_EQ(greedy(m, prompt, 32), c["tokens"].get<std::vector<int32_t>>()) << c["prompt"];
  }
  expect_import_error(
      [&] {
        try {
          convert((s / "golden/hf-bitnet-tiny/packed").string(), dir.file("tq.gguf"), TensorType::TQ2_0);
        } catch (const std::invalid_argument& e) {
          throw ImportError("tq.gguf", ImportError::kNoOffset, "", e.what());
        }
      },
      {"TQ2_0 needs rows of a multiple of 256"});
  EXPECT_FALSE(std::filesystem::exists(dir.file("tq.gguf")));
}

TEST(Convert, Tq1ToTq2ReproducesLlamaCppsOwnTq2File) {
  ScratchDir dir;
  const auto d = shared_dir() / "golden/gguf/synth-b158";
  const ImportedModel ref = import_model((d / "synth-b158-tq2_0.gguf").string());
  const ImportedModel out =
      import_model(convert((d / "synth-b158-tq1_0.gguf").string(), dir.file("tq2.gguf"), TensorType::TQ2_0));
  int compared = 0;
  for (const auto& t : ref.tensors) {
    if (t.type != TensorType::TQ2_0) continue;
    const ModelTensor* o = out.find(t.name);
    ASSERT_NE(o, nullptr) << t.name;
    ASSERT_EQ(o->nbytes, t.nbytes);
    EXPECT_EQ(std::memcmp(o->data, t.data, t.nbytes), 0) << t.name;
    ++compared;
  }
  EXPECT_EQ(compared, 28);
}

TEST(Convert, ReencodingBetweenTypesIsLossless) {
  ScratchDir dir;
  const std::string src = (shared_dir() / "models/tinystories-bitnet-3m/model.bin").string();
  const ImportedModel ref = import_model(src);
  std::string prev = src;
  for (auto type : {TensorType::I2_S, TensorType::TQ1_0, TensorType::F32, TensorType::TQ2_0}) {
    prev = convert(prev, dir.file(std::string(type_name(type)) + ".gguf"), type);
    const ImportedModel m = import_model(prev);
    for (int l = 0; l < 8; ++l) {
      const auto a = decode_ternary(ref, *ref.find("layers." + std::to_string(l) + ".attention.wv.weight"));
      const ModelTensor* t = m.find("blk." + std::to_string(l) + ".attn_v.weight");
      const auto b = decode_ternary(m, *t);  // includes llama.cpp's optional .scale
      EXPECT_EQ(a.codes, b.codes) << type_name(type);
      EXPECT_EQ(a.scales[0], b.scale_of(0, 0)) << type_name(type);
    }
  }
}

TEST(Convert, OutputIsCompleteOrAbsent) {
  ScratchDir dir;
  const std::string src = (shared_dir() / "models/tinystories-bitnet-3m/model.bin").string();
  EXPECT_THROW(convert(src, "/nonexistent-dir/out.gguf", {}), OutputError);
  write_text(dir.file("a-file"), "x");  // a parent that is not a folder fails even for root
  try {
    convert(src, dir.file("a-file/out.gguf"), {});
    ADD_FAILURE() << "expected OutputError";
  } catch (const OutputError& e) {
    EXPECT_NE(std::string(e.what()).find("a-file/out.gguf"), std::string::npos) << e.what();
  }
  // Nothing but the file we made: no temporary or partial output left behind.
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) entries += e.path().filename() != "a-file";
  EXPECT_EQ(entries, 0);
}
