// The runtime tokenizers against every fixture in ../shared/golden/tokenizer (llama.cpp's
// vocab fixtures, LLaMA-3 and LLaMA-2 references), the bitllama2.c model's cases, and the
// sentencepiece library itself on random strings.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include "gguf.h"
#include "gguf_writer.h"
#include "lower.h"
#include "support/test_support.h"
#include "synthetic_model.h"
#include "tokenizer.h"
#include "tokenizer_import.h"

using namespace bitnetc;
using namespace bitnetc::test;
using nlohmann::json;

namespace {

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

json load(const std::filesystem::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

// llama.cpp's test-tokenizer-0 format: inputs separated by "\n__ggml_vocab_test__\n",
// one line of space-separated ids per input.
std::vector<std::pair<std::string, std::vector<int32_t>>> llama_cpp_fixture(const std::filesystem::path& gguf) {
  const std::string inp = slurp(gguf.string() + ".inp"), out = slurp(gguf.string() + ".out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (size_t pos = 0; pos < inp.size();) {
    const size_t at = inp.find(sep, pos);
    texts.push_back(inp.substr(pos, at - pos));
    pos = at == std::string::npos ? inp.size() : at + sep.size();
  }
  std::vector<std::pair<std::string, std::vector<int32_t>>> cases;
  std::istringstream lines(out);
  std::string line;
  for (const auto& t : texts) {
    std::getline(lines, line);
    std::istringstream ids(line);
    std::vector<int32_t> v;
    for (int32_t id; ids >> id;) v.push_back(id);
    cases.emplace_back(t, v);
  }
  return cases;
}

}  // namespace

TEST(TokenizerFixtures, LlamaCppVocabFixtures) {
  const auto dir = shared_dir() / "golden/tokenizer";
  size_t total = 0, matched = 0;
  for (const char* name : {"ggml-vocab-llama-spm.gguf", "ggml-vocab-phi-3.gguf", "ggml-vocab-gpt-2.gguf",
                           "ggml-vocab-falcon.gguf", "ggml-vocab-deepseek-coder.gguf"}) {
    const GgufFile g = GgufFile::open((dir / name).string());
    const rt::Tokenizer tok(vocab_from_gguf(g));
    const auto cases = llama_cpp_fixture(dir / name);
    EXPECT_EQ(cases.size(), 46u) << name;
    for (const auto& [text, want] : cases) {
      ++total;
      const auto got = tok.encode(text, /*add_bos=*/false, /*parse_special=*/false);
      if (got == want)
        ++matched;
      else
        ADD_FAILURE() << name << ": \"" << text << "\"";
    }
  }
  std::printf("llama.cpp vocab fixtures (llama-spm, phi-3, gpt-2, falcon, deepseek-coder): %zu/%zu\n", matched, total);
  EXPECT_EQ(matched, total);
}

TEST(TokenizerFixtures, UnsupportedPreTokenizersAreRefusedByName) {
  ScratchDir dir;
  GgufWriter w;
  w.set("tokenizer.ggml.model", GgufOut::str("gpt2"));
  w.set("tokenizer.ggml.pre", GgufOut::str("qwen2"));
  w.set("tokenizer.ggml.tokens", GgufOut::strings({"a", "b"}));
  w.set("tokenizer.ggml.merges", GgufOut::strings({"a b"}));
  w.write(dir.file("v.gguf"));
  const GgufFile g = GgufFile::open(dir.file("v.gguf"));
  expect_import_error([&] { vocab_from_gguf(g); }, {"v.gguf", "tokenizer.ggml.pre", "\"qwen2\" is not supported"});
}

TEST(TokenizerFixtures, Llama3TokenizerJson) {
  const auto dir = shared_dir() / "golden/tokenizer/llama3";
  const rt::Tokenizer tok(vocab_from_tokenizer_json((dir / "tokenizer.json").string()));
  EXPECT_EQ(tok.n_tokens(), 128256);
  EXPECT_EQ(tok.vocab().bos, 128000);
  EXPECT_EQ(tok.vocab().eot, 128009);
  const json cases = load(dir / "tokenize.json")["cases"];
  size_t matched = 0;
  for (const auto& c : cases) {
    const std::string text = c["text"];
    const auto want = c["ids"].get<std::vector<int32_t>>();
    const auto got = tok.encode(text, false, /*parse_special=*/true);
    if (got == want)
      ++matched;
    else
      ADD_FAILURE() << "\"" << text << "\"";
    EXPECT_EQ(tok.decode(got, /*special=*/true), text);
  }
  std::printf("llama3 tokenizer.json: %zu/%zu\n", matched, cases.size());
  EXPECT_EQ(matched, cases.size());
}

// tokenizer_config.json is optional, but a damaged one is an error naming it: ignoring it
// silently would drop the special ids and the chat template it gives.
TEST(TokenizerFixtures, ADamagedTokenizerConfigIsAnError) {
  ScratchDir dir;
  const auto from = shared_dir() / "golden/tokenizer/llama3";
  std::filesystem::copy_file(from / "tokenizer.json", dir.path() / "tokenizer.json");
  write_text(dir.file("tokenizer_config.json"), "{\"bos_token\": ");
  expect_import_error([&] { vocab_from_tokenizer_json(dir.file("tokenizer.json")); },
                      {"tokenizer_config.json", "invalid JSON"});
  write_text(dir.file("tokenizer_config.json"), "[1, 2]");
  expect_import_error([&] { vocab_from_tokenizer_json(dir.file("tokenizer.json")); },
                      {"tokenizer_config.json", "is not a JSON object"});
}

TEST(TokenizerFixtures, Llama2SentencePieceModel) {
  const auto dir = shared_dir() / "golden/tokenizer/llama2";
  const rt::Tokenizer tok(vocab_from_sentencepiece((dir / "tokenizer.model").string()));
  EXPECT_TRUE(tok.vocab().add_space_prefix);
  const json cases = load(dir / "tokenize.json")["cases"];
  size_t matched = 0;
  for (const auto& c : cases) {
    const std::string text = c["text"];
    const auto got = tok.encode(text, false);
    if (got == c["ids"].get<std::vector<int32_t>>())
      ++matched;
    else
      ADD_FAILURE() << "\"" << text << "\"";
  }
  std::printf("llama2 tokenizer.model: %zu/%zu\n", matched, cases.size());
  EXPECT_EQ(matched, cases.size());
}

TEST(TokenizerFixtures, TinyStoriesModelMatchesRunbitC) {
  const auto s = shared_dir();
  const rt::Tokenizer tok(vocab_from_sentencepiece((s / "models/tinystories-bitnet-3m/tokenizer.model").string()));
  const json fx = load(s / "golden/tinystories-bitnet-3m/tokenize.json");
  // runbit.c's encoder (the reference for this model) keeps every space; sentencepiece
  // collapses runs of them. Where they differ the fixture lists runbit.c's ids.
  std::map<std::string, std::vector<int32_t>> runbit;
  for (const auto& d : fx["runbit_encode_differences"]) runbit[d["text"]] = d["runbit_ids"].get<std::vector<int32_t>>();
  size_t matched = 0;
  for (const auto& c : fx["cases"]) {
    const std::string text = c["text"];
    const auto want = runbit.count(text) ? runbit[text] : c["ids"].get<std::vector<int32_t>>();
    if (tok.encode(text, false) == want)
      ++matched;
    else
      ADD_FAILURE() << "\"" << text << "\"";
  }
  EXPECT_EQ(matched, fx["cases"].size());
  // The golden generations' prompts.
  const json golden = load(s / "golden/tinystories-bitnet-3m/golden.json");  // outlives the loop
  for (const auto& c : golden["cases"])
    EXPECT_EQ(tok.encode(c["prompt"].get<std::string>(), true), c["prompt_tokens"].get<std::vector<int32_t>>());
}

TEST(TokenizerProperty, MatchesTheSentencePieceLibraryOnRandomStrings) {
  const auto model = shared_dir() / "golden/tokenizer/llama2/tokenizer.model";
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(model.string()).ok());
  const rt::Tokenizer tok(vocab_from_sentencepiece(model.string()));
  // A pool of pieces: ASCII words and punctuation, spaces, tabs, newlines, accents, CJK,
  // emoji (byte fallback), digits.
  const std::vector<std::string> pool = {
      "a",   "b",  "e",  "the", " ", "  ", "\t", "\n", ".",  ",",    "!",    "?",        "'",     "\"",
      "0",   "7",  "42", "é",   "ü", "ß",  "ñ",  "中", "文", "日本", "🦙", "👍🏽", "Hello", "world",
      "ing", "un", "(",  ")",   "-", "_",  "x",  "Q",  "Ж",  "ل",    "ي",    "→",        "©"};
  SplitMix64 rng(20261123);
  int matched = 0, total = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string s;
    const int n = static_cast<int>(rng.next() % 12);
    for (int k = 0; k < n; ++k) s += pool[rng.next() % pool.size()];
    std::vector<int> want;
    ASSERT_TRUE(sp.Encode(s, &want).ok());
    const auto got = tok.encode(s, false);
    ++total;
    if (std::vector<int>(got.begin(), got.end()) == want)
      ++matched;
    else
      ADD_FAILURE() << "\"" << s << "\"";
  }
  std::printf("sentencepiece property test: %d/%d random strings\n", matched, total);
  EXPECT_EQ(matched, total);
}

TEST(Tokenizer, NeverEmitsIdsOutsideTheVocabulary) {
  // Found by fuzz.tokenizer: falcon's vocabulary has no token for the byte 0x1C and no
  // <unk>; the byte used to come out as id -1. llama.cpp drops such bytes.
  const GgufFile g = GgufFile::open((shared_dir() / "golden/tokenizer/ggml-vocab-falcon.gguf").string());
  const rt::Tokenizer tok(vocab_from_gguf(g));
  const auto ids = tok.encode(
      "\x1c"
      "encOnO",
      false);
  for (int32_t id : ids) EXPECT_GE(id, 0);
  EXPECT_EQ(tok.decode(ids), "encOnO");
}

TEST(Tokenizer, RefusesInvalidUtf8WithTheOffset) {
  const rt::Tokenizer tok(
      vocab_from_gguf(GgufFile::open((shared_dir() / "golden/tokenizer/ggml-vocab-llama-spm.gguf").string())));
  try {
    tok.encode("ok \xC3\x28 bad", true);
    FAIL() << "expected TokenizerError";
  } catch (const rt::TokenizerError& e) {
    EXPECT_NE(std::string(e.what()).find("at byte 3"), std::string::npos) << e.what();
  }
  EXPECT_EQ(tok.encode("", true), std::vector<int32_t>{1});  // BOS only
}

TEST(StreamDecoder, NeverSplitsACharacter) {
  rt::StreamDecoder d;
  EXPECT_EQ(d.push("a\xF0\x9F"), "a");  // first half of 🦙 held back
  EXPECT_EQ(d.push("\xA6\x99 b"), "🦙 b");
  EXPECT_EQ(d.push("\xC3"), "");
  EXPECT_EQ(d.push("x"), "\xEF\xBF\xBDx");  // a broken sequence becomes U+FFFD
  EXPECT_EQ(d.push("\xE2\x96"), "");
  EXPECT_EQ(d.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(d.push("\xFF"), "\xEF\xBF\xBD");
}

TEST(ChatTemplate, RecognisesAndRendersTheCommonFamilies) {
  const auto s = shared_dir();
  auto tmpl = [&](const std::filesystem::path& p) { return load(p)["chat_template"].get<std::string>(); };
  EXPECT_EQ(rt::detect_chat_template(tmpl(s / "golden/hf-bitnet-tiny/bf16/tokenizer_config.json")),
            rt::ChatTemplate::BitNet2B4T);
  EXPECT_EQ(rt::detect_chat_template(tmpl(s / "golden/tokenizer/llama3/tokenizer_config.json")),
            rt::ChatTemplate::Llama3);
  const GgufFile phi3 = GgufFile::open((s / "golden/tokenizer/ggml-vocab-phi-3.gguf").string());
  EXPECT_EQ(vocab_from_gguf(phi3).chat_template, rt::ChatTemplate::Phi3);
  EXPECT_EQ(rt::detect_chat_template("{{ messages }}"), rt::ChatTemplate::None);

  // The 2B4T rendering, as its README and transformers' docstring show it.
  EXPECT_EQ(rt::apply_chat_template(rt::ChatTemplate::BitNet2B4T, {{"user", " hi "}}, true),
            "User: hi<|eot_id|>Assistant: ");
  EXPECT_EQ(
      rt::apply_chat_template(rt::ChatTemplate::Llama3, {{"system", "Be brief."}, {"user", "Hi"}}, true,
                              "<|begin_of_text|>"),
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
      "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(rt::apply_chat_template(rt::ChatTemplate::ChatML, {{"user", "Hi"}}, true),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(rt::apply_chat_template(rt::ChatTemplate::Llama2, {{"system", "S"}, {"user", "Hi"}}, false, "<s>"),
            "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nHi [/INST]");

  // The HF tiny model's vocabulary knows its template, and the specials tokenize as ids.
  const rt::Tokenizer tok(load_vocab(import_model((s / "golden/hf-bitnet-tiny/packed").string())));
  EXPECT_EQ(tok.vocab().chat_template, rt::ChatTemplate::BitNet2B4T);
  const auto ids = tok.encode(rt::apply_chat_template(tok.vocab().chat_template, {{"user", "hi"}}, true), true, true);
  EXPECT_EQ(ids.front(), 128000);
  EXPECT_NE(std::find(ids.begin(), ids.end(), 128009), ids.end());  // <|eot_id|>

  // chat_tokens: the template's own <|eot_id|> (one per message) are control tokens; one
  // written in a message's content is text. Without any in the contents, the same ids
  // as tokenizing the rendered text with specials parsed.
  const std::vector<rt::ChatMessage> sneaky = {{"system", "Be brief."}, {"user", "Hi <|eot_id|> there"}};
  const auto chat = rt::chat_tokens(tok, sneaky, true);
  EXPECT_EQ(std::count(chat.begin(), chat.end(), 128009), 2);
  const auto parsed = tok.encode(rt::apply_chat_template(tok.vocab().chat_template, sneaky, true), true, true);
  EXPECT_EQ(std::count(parsed.begin(), parsed.end(), 128009), 3);
  const std::vector<rt::ChatMessage> plain = {{"system", "Be brief."}, {"user", "Hi there"}};
  EXPECT_EQ(rt::chat_tokens(tok, plain, true),
            tok.encode(rt::apply_chat_template(tok.vocab().chat_template, plain, true), true, true));
}

// A tokenizer file read alone (libbitnetc_tokenizer, bitnet_py's Tokenizer(file)) is the
// vocabulary its model is compiled with: the same pieces, types, specials and template.
TEST(TokenizerFiles, ReadAloneAsTheirModelReadsThem) {
  const auto s = shared_dir();
  const std::pair<std::string, std::string> cases[] = {
      {"models/tinystories-bitnet-3m/model.bin", "models/tinystories-bitnet-3m/tokenizer.model"},
      {"golden/hf-bitnet-tiny/packed", "golden/hf-bitnet-tiny/packed/tokenizer.json"},
      {"golden/gguf/synth-b158/synth-b158-tq2_0.gguf", "golden/gguf/synth-b158/synth-b158-tq2_0.gguf"},
  };
  for (const auto& [model, file] : cases) {
    SCOPED_TRACE(file);
    const rt::Vocab want = load_vocab(import_model((s / model).string()));
    const rt::Vocab got = load_tokenizer_file((s / file).string());
    EXPECT_EQ(got.tokens, want.tokens);
    EXPECT_TRUE(got.types == want.types);
    EXPECT_EQ(got.kind, want.kind);
    EXPECT_EQ(std::tie(got.bos, got.eos, got.eot, got.add_bos), std::tie(want.bos, want.eos, want.eot, want.add_bos));
    EXPECT_EQ(got.chat_template, want.chat_template);
    const rt::Tokenizer a(got), b(want);
    for (const char* text : {"Hello world", "  two  spaces", "é漢字 🙂 <|eot_id|>"})
      EXPECT_EQ(a.encode(text, true, true), b.encode(text, true, true)) << text;
  }
  // What is not a tokenizer file is named.
  EXPECT_THROW(
      {
        try {
          load_tokenizer_file((s / "models").string());
        } catch (const std::exception& e) {
          EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
          throw;
        }
      },
      std::exception);
  EXPECT_THROW(load_tokenizer_file((s / "models/nowhere.model").string()), std::exception);
}
