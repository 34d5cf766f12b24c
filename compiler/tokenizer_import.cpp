#include "tokenizer_import.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "gguf.h"

namespace bitnetc {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

[[noreturn]] void fail(const std::string& file, const std::string& field, const std::string& msg) {
  throw ImportError(file, ImportError::kNoOffset, field, msg);
}

// llama.cpp's tokenizer.ggml.pre names and the regexes each stands for (llama-vocab.cpp).
void bpe_pre_from_name(const std::string& file, const std::string& pre, rt::Vocab& v) {
  if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3") {
    v.ignore_merges = true;
    v.pre = rt::PreTokenizer::Llama3;
    return;
  }
  if (pre == "gpt-2" || pre == "default" || pre.empty()) {
    v.pre = rt::PreTokenizer::Gpt2;
    return;
  }
  const std::string gpt2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
  if (pre == "falcon") {
    v.pre_regexes = {"[\\p{P}\\$\\+<=>\\^~\\|`]+", gpt2, "[0-9][0-9][0-9]"};
  } else if (pre == "deepseek-coder") {  // the CJK class is [一-龥ࠀ-一가-퟿]
    v.pre_regexes = {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+",
                     "[\xE4\xB8\x80-\xE9\xBE\xA5\xE0\xA0\x80-\xE4\xB8\x80\xEA\xB0\x80-\xED\x9F\xBF]+", "\\p{N}"};
  } else if (pre == "starcoder" || pre == "refact" || pre == "command-r" || pre == "smollm" || pre == "codeshell") {
    v.pre_regexes = {"\\p{N}", gpt2};
  } else {
    fail(file, "tokenizer.ggml.pre",
         "pre-tokenizer \"" + pre + "\" is not supported (gpt-2, llama-bpe, falcon, deepseek-coder, starcoder)");
  }
  v.pre = rt::PreTokenizer::Regexes;
}

}  // namespace

rt::Vocab vocab_from_gguf(const GgufFile& g) {
  rt::Vocab v;
  const auto model = g.get_string("tokenizer.ggml.model");
  if (!model) fail(g.path(), "tokenizer.ggml.model", "missing: the file has no tokenizer");
  const GgufValue* toks = g.get_array("tokenizer.ggml.tokens", GgufValueType::STRING);
  if (!toks) fail(g.path(), "tokenizer.ggml.tokens", "missing");
  for (auto t : toks->strings) v.tokens.emplace_back(t);
  const size_t n = v.tokens.size();
  if (const GgufValue* s = g.get_array("tokenizer.ggml.scores", GgufValueType::FLOAT32)) {
    if (s->count != n)
      g.fail(s->offset, "tokenizer.ggml.scores",
             "has " + std::to_string(s->count) + " entries for " + std::to_string(n) + " tokens");
    for (uint64_t i = 0; i < n; ++i) v.scores.push_back(static_cast<float>(s->array_f64(i)));
  }
  if (const GgufValue* t = g.get_array("tokenizer.ggml.token_type", GgufValueType::INT32)) {
    if (t->count != n)
      g.fail(t->offset, "tokenizer.ggml.token_type",
             "has " + std::to_string(t->count) + " entries for " + std::to_string(n) + " tokens");
    for (uint64_t i = 0; i < n; ++i) {
      const int64_t ty = t->array_i64(i);
      if (ty < 0 || ty > 6) g.fail(t->offset, "tokenizer.ggml.token_type", "unknown token type " + std::to_string(ty));
      v.types.push_back(static_cast<rt::TokenType>(ty));
    }
  }
  auto id = [&](const char* key) -> int32_t {
    const auto x = g.get_uint(key);
    if (!x) return -1;
    if (*x >= n)
      g.fail(g.find(key)->value.offset, key, "token id " + std::to_string(*x) + " is not below " + std::to_string(n));
    return static_cast<int32_t>(*x);
  };
  v.bos = id("tokenizer.ggml.bos_token_id");
  v.eos = id("tokenizer.ggml.eos_token_id");
  v.eot = id("tokenizer.ggml.eot_token_id");
  v.unk = id("tokenizer.ggml.unknown_token_id");
  if (auto tmpl = g.get_string("tokenizer.chat_template"))
    v.chat_template = rt::detect_chat_template(std::string(*tmpl));
  if (*model == "llama") {
    v.kind = rt::VocabKind::Spm;
    v.add_bos = g.get_bool("tokenizer.ggml.add_bos_token").value_or(true);
    v.add_space_prefix = g.get_bool("tokenizer.ggml.add_space_prefix").value_or(true);
  } else if (*model == "gpt2") {
    v.kind = rt::VocabKind::Bpe;
    v.add_bos = g.get_bool("tokenizer.ggml.add_bos_token").value_or(false);
    bpe_pre_from_name(g.path(), std::string(g.get_string("tokenizer.ggml.pre").value_or("")), v);
    const GgufValue* m = g.get_array("tokenizer.ggml.merges", GgufValueType::STRING);
    if (!m) fail(g.path(), "tokenizer.ggml.merges", "missing (a gpt2 tokenizer needs its merges)");
    for (auto s : m->strings) v.merges.emplace_back(s);
  } else {
    fail(g.path(), "tokenizer.ggml.model", "tokenizer \"" + std::string(*model) + "\" is not supported (llama, gpt2)");
  }
  return v;
}

rt::Vocab vocab_from_sentencepiece(const std::string& path) {
  sentencepiece::SentencePieceProcessor sp;
  const auto status = sp.Load(path);
  if (!status.ok()) fail(path, "", "cannot load SentencePiece model: " + status.ToString());
  rt::Vocab v;
  v.kind = rt::VocabKind::Spm;
  for (int i = 0; i < sp.GetPieceSize(); ++i) {
    v.tokens.push_back(sp.IdToPiece(i));
    v.scores.push_back(sp.GetScore(i));
    rt::TokenType t = rt::TokenType::Normal;
    if (sp.IsControl(i))
      t = rt::TokenType::Control;
    else if (sp.IsUnknown(i))
      t = rt::TokenType::Unknown;
    else if (sp.IsByte(i))
      t = rt::TokenType::Byte;
    else if (sp.IsUnused(i))
      t = rt::TokenType::Unused;
    v.types.push_back(t);
  }
  v.bos = sp.bos_id();
  v.eos = sp.eos_id();
  v.unk = sp.unk_id();
  // The normalizer spec is not exposed without protobuf headers; its dummy prefix shows
  // in how a single letter encodes.
  std::vector<std::string> pieces;
  sp.Encode("a", &pieces).IgnoreError();
  v.add_space_prefix = !pieces.empty() && pieces[0].rfind("\xE2\x96\x81", 0) == 0;
  return v;
}

rt::Vocab vocab_from_tokenizer_json(const std::string& path) {
  const json j = read_json_file(path);
  try {
    const json& model = j.at("model");
    if (model.value("type", "") != "BPE") fail(path, "model.type", "only BPE tokenizers are supported");
    rt::Vocab v;
    v.kind = rt::VocabKind::Bpe;
    v.add_bos = false;  // the post-processor decides; bitnetc adds BOS itself (see load_vocab)
    v.ignore_merges = model.value("ignore_merges", false);
    int64_t n = 0;
    for (auto& [tok, id] : model.at("vocab").items()) n = std::max<int64_t>(n, id.get<int64_t>() + 1);
    for (const auto& t : j.value("added_tokens", json::array()))
      n = std::max<int64_t>(n, t.at("id").get<int64_t>() + 1);
    if (n <= 0 || n > (1 << 24)) fail(path, "model.vocab", "implausible vocabulary size " + std::to_string(n));
    v.tokens.assign(n, "");
    v.types.assign(n, rt::TokenType::Unused);
    for (auto& [tok, id] : model.at("vocab").items()) {
      v.tokens[id.get<int64_t>()] = tok;
      v.types[id.get<int64_t>()] = rt::TokenType::Normal;
    }
    for (const auto& t : j.value("added_tokens", json::array())) {
      const int64_t id = t.at("id").get<int64_t>();
      v.tokens[id] = t.at("content").get<std::string>();
      v.types[id] = t.value("special", false) ? rt::TokenType::Control : rt::TokenType::UserDefined;
    }
    for (const auto& m : model.at("merges")) {
      if (m.is_string())
        v.merges.push_back(m.get<std::string>());
      else
        v.merges.push_back(m.at(0).get<std::string>() + " " + m.at(1).get<std::string>());
    }
    // Pre-tokenizer: the LLaMA-3 split regex, or GPT-2's ByteLevel regex.
    const std::string pre = j.contains("pre_tokenizer") ? j["pre_tokenizer"].dump() : "";
    if (pre.find("\\\\p{N}{1,3}") != std::string::npos)
      v.pre = rt::PreTokenizer::Llama3;
    else if (pre.find("ByteLevel") != std::string::npos)
      v.pre = rt::PreTokenizer::Gpt2;
    else
      fail(path, "pre_tokenizer", "unsupported pre-tokenizer " + pre.substr(0, 200));
    // Special ids by name, from tokenizer_config.json beside it when present.
    const fs::path cfg = fs::path(path).parent_path() / "tokenizer_config.json";
    auto named = [&](const json& c, const char* key) -> int32_t {
      if (!c.contains(key)) return -1;
      const json& t = c[key];
      const std::string s = t.is_string() ? t.get<std::string>() : t.is_object() ? t.value("content", "") : "";
      for (int32_t i = 0; i < static_cast<int32_t>(v.tokens.size()); ++i)
        if (v.tokens[i] == s && v.types[i] == rt::TokenType::Control) return i;
      return -1;
    };
    if (fs::exists(cfg)) {  // optional, but a damaged one is an error, not silently ignored
      const json c = read_json_file(cfg.string());
      if (!c.is_object()) fail(cfg.string(), "", "is not a JSON object");
      v.bos = named(c, "bos_token");
      v.eos = named(c, "eos_token");
      if (c.contains("chat_template") && c["chat_template"].is_string())
        v.chat_template = rt::detect_chat_template(c["chat_template"].get<std::string>());
    }
    for (int32_t i = 0; i < static_cast<int32_t>(v.tokens.size()); ++i)
      if (v.tokens[i] == "<|eot_id|>") v.eot = i;
    return v;
  } catch (const json::exception& e) {
    fail(path, "", std::string("unexpected content: ") + e.what());
  }
}

std::vector<int32_t> stop_tokens(const ImportedModel& m, const rt::Vocab& v) {
  std::vector<int32_t> stop;
  if (m.format == SourceFormat::Llama2c) {
    if (v.bos >= 0) stop.push_back(v.bos);
    return stop;
  }
  for (int32_t t : {v.eos, v.eot})
    if (t >= 0 && std::find(stop.begin(), stop.end(), t) == stop.end()) stop.push_back(t);
  return stop;
}

namespace {

// BitNet b1.58 2B4T's hub tokenizer adds <|begin_of_text|> through its post-processor;
// the config's bos_token_id says which (and eos_token_id the end).
rt::Vocab with_config_ids(rt::Vocab v, const HfConfig* config) {
  if (config && config->bos_token_id >= 0) v.bos = static_cast<int32_t>(config->bos_token_id);
  if (config && config->eos_token_id >= 0) v.eos = static_cast<int32_t>(config->eos_token_id);
  v.add_bos = v.bos >= 0;
  return v;
}

}  // namespace

rt::Vocab load_tokenizer_file(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) fail(path, "", fs::exists(path, ec) ? "is not a regular file" : "does not exist");
  uint32_t magic = 0;
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(path, "", std::string("cannot open: ") + std::strerror(errno));
    in.read(reinterpret_cast<char*>(&magic), sizeof magic);
  }
  if (magic == GgufFile::kMagic) return vocab_from_gguf(GgufFile::open(path));
  if (fs::path(path).extension() == ".json") {
    const fs::path config = fs::path(path).parent_path() / "config.json";
    std::optional<HfConfig> c;
    if (fs::exists(config)) c = parse_hf_config(config.string());
    return with_config_ids(vocab_from_tokenizer_json(path), c ? &*c : nullptr);
  }
  return vocab_from_sentencepiece(path);
}

rt::Vocab load_vocab(const ImportedModel& m) {
  if (m.gguf()) return vocab_from_gguf(*m.gguf());
  const fs::path dir = fs::is_directory(m.path) ? fs::path(m.path) : fs::path(m.path).parent_path();
  if (m.format == SourceFormat::SafeTensors && fs::exists(dir / "tokenizer.json"))
    return with_config_ids(vocab_from_tokenizer_json((dir / "tokenizer.json").string()),
                           m.hf_config ? &*m.hf_config : nullptr);
  if (fs::exists(dir / "tokenizer.model")) {
    rt::Vocab v = vocab_from_sentencepiece((dir / "tokenizer.model").string());
    if (m.hparams && static_cast<int64_t>(v.tokens.size()) != m.hparams->n_vocab)
      fail((dir / "tokenizer.model").string(), "",
           "has " + std::to_string(v.tokens.size()) + " pieces but the model's vocabulary is " +
               std::to_string(m.hparams->n_vocab));
    return v;
  }
  fail(m.path, "tokenizer", "no tokenizer found (GGUF tokenizer.ggml.*, tokenizer.json or tokenizer.model)");
}

}  // namespace bitnetc
