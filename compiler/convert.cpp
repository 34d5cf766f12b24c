#include "convert.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "gguf.h"
#include "gguf_writer.h"
#include "tensor_names.h"
#include "tokenizer_import.h"

namespace bitnetc {

namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// runbit.c pairs RoPE dims (2m, 2m+1); llama.cpp's bitnet uses NEOX pairs (m, m+d/2).
// Permuting each head's output rows 2m -> m, 2m+1 -> m + d/2 makes them the same.
TernaryWeights permute_for_neox(const TernaryWeights& w, int64_t head_dim) {
  TernaryWeights out = w;
  for (int64_t r = 0; r < w.rows; ++r) {
    const int64_t h = r / head_dim, i = r % head_dim;
    const int64_t dst = h * head_dim + (i % 2 == 0 ? i / 2 : head_dim / 2 + i / 2);
    std::copy_n(&w.codes[r * w.cols], w.cols, &out.codes[dst * w.cols]);
  }
  return out;
}

class Writer {
 public:
  Writer(const ConvertOptions& o, TensorType type) : o_(o), type_(type) {}

  // Adds one ternary matrix in the target type; returns an error text when the type
  // cannot hold it exactly.
  void matrix(const std::string& name, TernaryWeights w) {
    const std::string base = name.substr(0, name.size() - 7);  // without ".weight"
    std::vector<uint64_t> ne = {static_cast<uint64_t>(w.cols), static_cast<uint64_t>(w.rows)};
    const bool per_tensor = w.scales.size() == 1 ||
                            std::all_of(w.scales.begin(), w.scales.end(), [&](float s) { return s == w.scales[0]; });
    auto need_per_tensor = [&]() {
      if (!per_tensor)
        throw std::invalid_argument(name + ": " + type_name(type_) +
                                    " holds one scale per tensor but this matrix has " +
                                    std::to_string(w.scales.size()) + " different block scales");
      const float s = w.scales[0];
      w.scale_block = static_cast<uint64_t>(w.rows * w.cols);
      w.scales = {s};
    };
    switch (type_) {
      case TensorType::TQ1_0:
      case TensorType::TQ2_0: {
        // fp16 block scales: exact ones are stored as they are; otherwise d = 1 and the
        // f32 scale goes into llama.cpp's optional "<name>.scale" tensor.
        bool exact = true;
        for (float s : w.scales) exact &= fp16_to_f32(f32_to_fp16(s)) == s;
        if (!exact) {
          need_per_tensor();
          out_.add_tensor(base + ".scale", TensorType::F32, {1}, f32_bytes(w.scales));
          w.scales = {1.0f};
        }
        const auto bytes = type_ == TensorType::TQ1_0 ? encode_tq1_0(w) : encode_tq2_0(w);
        out_.add_tensor(name, type_, ne, bytes);
        return;
      }
      case TensorType::I2_S:
        need_per_tensor();
        out_.add_tensor(name, type_, ne, encode_i2_s(w, o_.i2s_layout));
        return;
      case TensorType::F32:
      case TensorType::F16:
      case TensorType::BF16: {
        std::vector<float> v(w.codes.size());
        for (int64_t r = 0; r < w.rows; ++r)
          for (int64_t c = 0; c < w.cols; ++c) v[r * w.cols + c] = w.value(r, c);
        dense(name, type_, ne, v);
        return;
      }
      default:
        throw std::invalid_argument(std::string("cannot convert to ") + type_name(type_) +
                                    " (f32, f16, bf16, tq1_0, tq2_0, i2_s)");
    }
  }

  void dense(const std::string& name, TensorType t, std::vector<uint64_t> ne, const std::vector<float>& v) {
    if (t == TensorType::F32) {
      out_.add_tensor(name, t, std::move(ne), f32_bytes(v));
      return;
    }
    if (t == TensorType::Q8_0) {  // lossy, as llama-quantize's is: asked for by name
      out_.add_tensor(name, t, std::move(ne), encode_q8_0(v));
      return;
    }
    std::vector<uint8_t> b(v.size() * 2);
    for (size_t i = 0; i < v.size(); ++i) {
      const uint16_t h = t == TensorType::F16 ? f32_to_fp16(v[i]) : f32_to_bf16(v[i]);
      if ((t == TensorType::F16 ? fp16_to_f32(h) : bf16_to_f32(h)) != v[i])
        throw std::invalid_argument(name + ": element " + std::to_string(i) + " is not exact in " + type_name(t));
      b[2 * i] = h & 0xFF;
      b[2 * i + 1] = h >> 8;
    }
    out_.add_tensor(name, t, std::move(ne), std::move(b));
  }

  GgufWriter out_;

 private:
  const ConvertOptions& o_;
  TensorType type_;
};

void put_vocab(GgufWriter& w, const rt::Vocab& v) {
  w.set("tokenizer.ggml.model", GgufOut::str(v.kind == rt::VocabKind::Spm ? "llama" : "gpt2"));
  w.set("tokenizer.ggml.pre", GgufOut::str(v.kind == rt::VocabKind::Spm        ? "default"
                                           : v.pre == rt::PreTokenizer::Llama3 ? "llama-bpe"
                                                                               : "gpt-2"));
  w.set("tokenizer.ggml.tokens", GgufOut::strings(v.tokens));
  if (v.kind == rt::VocabKind::Spm) w.set("tokenizer.ggml.scores", GgufOut::f32s(v.scores));
  std::vector<int32_t> types;
  for (auto t : v.types) types.push_back(static_cast<int32_t>(t));
  w.set("tokenizer.ggml.token_type", GgufOut::i32s(types));
  if (v.kind == rt::VocabKind::Bpe) w.set("tokenizer.ggml.merges", GgufOut::strings(v.merges));
  auto id = [&](const char* key, int32_t t) {
    if (t >= 0) w.set(key, GgufOut::u32(static_cast<uint32_t>(t)));
  };
  id("tokenizer.ggml.bos_token_id", v.bos);
  id("tokenizer.ggml.eos_token_id", v.eos);
  id("tokenizer.ggml.eot_token_id", v.eot);
  id("tokenizer.ggml.unknown_token_id", v.unk);
  w.set("tokenizer.ggml.add_bos_token", GgufOut::boolean(v.add_bos));
  w.set("tokenizer.ggml.add_eos_token", GgufOut::boolean(false));
  if (v.kind == rt::VocabKind::Spm) w.set("tokenizer.ggml.add_space_prefix", GgufOut::boolean(v.add_space_prefix));
}

rt::Vocab vocab_for(const ImportedModel& m, const std::string& path) {
  if (path.empty()) return load_vocab(m);
  if (path.size() > 5 && path.substr(path.size() - 5) == ".json") return vocab_from_tokenizer_json(path);
  if (path.size() > 5 && path.substr(path.size() - 5) == ".gguf") return vocab_from_gguf(GgufFile::open(path));
  return vocab_from_sentencepiece(path);
}

}  // namespace

void convert_to_gguf(const ImportedModel& m, const ConvertOptions& o) {
  if (!m.supported || !m.hparams) throw ImportError(m.path, ImportError::kNoOffset, "", m.unsupported_reason);
  const Hyperparams& h = *m.hparams;
  auto say = [&](const std::string& s) {
    if (o.progress) o.progress(s);
  };

  TensorType type = o.type.value_or(TensorType::TQ2_0);
  if (!o.type && (h.n_embd % 256 != 0 || h.n_ff % 256 != 0)) type = TensorType::I2_S;

  const std::string arch = h.ffn_act == "relu2" ? "bitnet-b1.58" : "bitnet";
  Writer w(o, type);
  GgufWriter& out = w.out_;
  set_gguf_hyperparameters(out, arch, h);
  out.set("general.name", GgufOut::str(fs::path(m.path).filename().string()));
  if (type == TensorType::I2_S) out.set("bitnetc.i2_s.layout", GgufOut::str(i2s_layout_name(o.i2s_layout)));
  // The engine whose numerics the source defines (see lower.cpp).
  if (m.format == SourceFormat::Llama2c) {
    out.set("bitnetc.numerics", GgufOut::str("bitllama2c"));
    // The peers apply the one epsilon of the file to every norm. This model's norms
    // inside each block (BitLinear's) have none, and the inner norms decide everything: with
    // 1e-5 there llama.cpp, bitnet.cpp and ik_llama.cpp repeat the last prompt token
    // forever. So the file carries the inner norms' (none: 1e-30, which guards a zero
    // vector), and the final norm's own epsilon in a key bitnetc reads back.
    out.set(arch + ".attention.layer_norm_rms_epsilon", GgufOut::f32(1e-30f));
    out.set("bitnetc.final_norm_epsilon", GgufOut::f32(static_cast<float>(h.rms_eps)));
    say("note: the peers read one norm epsilon (1e-30: this model's inner norms have none); its final norm's " +
        std::to_string(h.rms_eps) + " is kept in bitnetc.final_norm_epsilon, which only bitnetc reads");
  }
  if (m.format == SourceFormat::SafeTensors) out.set("bitnetc.numerics", GgufOut::str("transformers"));
  if (m.gguf())
    if (auto n = m.gguf()->get_string("bitnetc.numerics")) out.set("bitnetc.numerics", GgufOut::str(std::string(*n)));

  say("tokenizer");
  rt::Vocab vocab = vocab_for(m, o.tokenizer);
  if (static_cast<int64_t>(vocab.tokens.size()) > h.n_vocab)
    throw ImportError(
        m.path, ImportError::kNoOffset, "tokenizer",
        "has " + std::to_string(vocab.tokens.size()) + " tokens, more than the model's " + std::to_string(h.n_vocab));
  put_vocab(out, vocab);
  // The chat template travels as the Jinja text peers expect.
  if (m.gguf()) {
    if (auto t = m.gguf()->get_string("tokenizer.chat_template"))
      out.set("tokenizer.chat_template", GgufOut::str(std::string(*t)));
  } else {
    const fs::path dir = fs::is_directory(m.path) ? fs::path(m.path) : fs::path(m.path).parent_path();
    const fs::path config = dir / "tokenizer_config.json";
    if (fs::exists(config)) {  // the tokenizer import already refused a damaged one
      const auto cfg = read_json_file(config.string());
      if (cfg.is_object() && cfg.contains("chat_template") && cfg["chat_template"].is_string())
        out.set("tokenizer.chat_template", GgufOut::str(cfg["chat_template"].get<std::string>()));
    }
  }

  // Embedding (kept in its source precision when GGUF can hold it exactly).
  const std::string embd_name = embedding_name(m.format);
  const ModelTensor* embd = m.find(embd_name);
  if (!embd) throw ImportError(m.path, ImportError::kNoOffset, embd_name, "missing tensor");
  auto table_type = [&](const ModelTensor& t) {
    return o.embedding_type                                              ? *o.embedding_type
           : t.type == TensorType::F16 || t.type == TensorType::BF16 ? t.type
                                                                         : TensorType::F32;
  };
  const TensorType embd_type = table_type(*embd);
  if (embd_type == TensorType::Q8_0 && h.n_embd % 32 != 0)
    throw std::invalid_argument("--token-embedding-type q8_0 needs an embedding width of whole 32-blocks, not " +
                                std::to_string(h.n_embd));
  say("token_embd.weight");
  w.dense("token_embd.weight", embd_type, {static_cast<uint64_t>(h.n_embd), static_cast<uint64_t>(h.n_vocab)},
          decode_dense(*embd));
  if (!h.tied_embeddings) {
    const std::string head = output_head_name(m.format);
    const ModelTensor* t = m.find(head);
    if (!t) throw ImportError(m.path, ImportError::kNoOffset, head, "missing tensor");
    w.dense("output.weight", table_type(*t), {static_cast<uint64_t>(h.n_embd), static_cast<uint64_t>(h.n_vocab)},
            decode_dense(*t));
  }
  const std::string out_norm = output_norm_name(m.format);
  const ModelTensor* on = m.find(out_norm);
  if (!on) throw ImportError(m.path, ImportError::kNoOffset, out_norm, "missing tensor");
  w.dense("output_norm.weight", TensorType::F32, {static_cast<uint64_t>(h.n_embd)}, decode_dense(*on));

  for (int l = 0; l < h.n_layer; ++l) {
    say("layer " + std::to_string(l + 1) + "/" + std::to_string(h.n_layer));
    for (Role r : kLayerRoles) {
      const HfFamily family = m.hf_config ? m.hf_config->family : HfFamily::BitNetB158;
      const std::string src = layer_tensor_name(m.format, l, r, family),
                        dst = layer_tensor_name(SourceFormat::Gguf, l, r);
      auto source = [&]() -> const ModelTensor& {
        const ModelTensor* t = m.find(src);
        if (!t) throw ImportError(m.path, ImportError::kNoOffset, src, "missing tensor");
        return *t;
      };
      if (is_matrix(r)) {
        TernaryWeights tw = decode_ternary(m, source());
        if (m.format == SourceFormat::Llama2c && (r == Role::Q || r == Role::K)) tw = permute_for_neox(tw, h.head_dim);
        w.matrix(dst, std::move(tw));
        continue;
      }
      // Norm weights. bitllama2.c has none: its bitnorm is an RMSNorm with weights 1/n
      // (and no epsilon), which is what llama.cpp gets here.
      const int64_t n = r == Role::FfnSubNorm ? h.n_ff : h.n_embd;
      const std::vector<float> v = m.format == SourceFormat::Llama2c
                                       ? std::vector<float>(n, 1.0f / static_cast<float>(n))
                                       : decode_dense(source());
      w.dense(dst, TensorType::F32, {static_cast<uint64_t>(n)}, v);
    }
  }
  say("writing " + o.output);
  out.write(o.output);
}

}  // namespace bitnetc
