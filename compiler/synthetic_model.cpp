#include "synthetic_model.h"

#include <cstdio>
#include <cstring>
#include <map>
#include <stdexcept>

#include "model_import.h"

namespace bitnetc {

namespace {

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

std::vector<uint8_t> dense_bytes(const std::vector<float>& v, TensorType t) {
  if (t == TensorType::F32) return f32_bytes(v);
  if (t == TensorType::Q8_0) return encode_q8_0(v);
  std::vector<uint8_t> b(v.size() * 2);
  for (size_t i = 0; i < v.size(); ++i) {
    const uint16_t h = t == TensorType::F16 ? f32_to_fp16(v[i]) : f32_to_bf16(v[i]);
    b[2 * i] = h & 0xFF;
    b[2 * i + 1] = h >> 8;
  }
  return b;
}

// The encoded bytes of a ternary matrix in `type`, lossless for codes and scale.
std::vector<uint8_t> encode_weights(const TernaryWeights& w, TensorType type, I2SLayout layout,
                                    const TLTileConfig* tiles) {
  switch (type) {
    case TensorType::TQ1_0: return encode_tq1_0(w);
    case TensorType::TQ2_0: return encode_tq2_0(w);
    case TensorType::I2_S: return encode_i2_s(w, layout);
    case TensorType::TL1: return encode_tl1(w, *tiles);
    case TensorType::TL2: return encode_tl2(w, *tiles);
    case TensorType::Q8_0: {  // d = scale, qs = codes: exact
      std::vector<uint8_t> out(w.codes.size() / 32 * 34);
      const uint16_t d = f32_to_fp16(w.scales[0]);
      for (size_t b = 0; b < w.codes.size() / 32; ++b) {
        out[b * 34] = d & 0xFF;
        out[b * 34 + 1] = d >> 8;
        for (int j = 0; j < 32; ++j) out[b * 34 + 2 + j] = static_cast<uint8_t>(w.codes[b * 32 + j]);
      }
      return out;
    }
    case TensorType::F32:
    case TensorType::F16:
    case TensorType::BF16: {
      std::vector<float> v(w.codes.size());
      for (size_t i = 0; i < v.size(); ++i) v[i] = w.codes[i] * w.scales[0];
      return dense_bytes(v, type);
    }
    default: throw std::invalid_argument(std::string("synthetic models cannot use ") + type_name(type) + " weights");
  }
}

std::vector<std::string> synthetic_vocab(int64_t n_vocab, std::vector<float>& scores, std::vector<int32_t>& types) {
  if (n_vocab < 300) throw std::invalid_argument("synthetic vocabularies need at least 300 tokens");
  std::vector<std::string> toks = {"<unk>", "<s>", "</s>"};
  types = {2, 3, 3};
  scores = {0, 0, 0};
  char buf[16];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    toks.push_back(buf);
    types.push_back(6);
    scores.push_back(0);
  }
  const std::string space = "\xE2\x96\x81";  // U+2581, SentencePiece's word boundary
  toks.push_back(space);
  types.push_back(1);
  scores.push_back(-1);
  for (char c = 'a'; c <= 'z' && static_cast<int64_t>(toks.size()) < n_vocab; ++c) {
    toks.push_back(std::string(1, c));
    types.push_back(1);
    scores.push_back(-2 - static_cast<float>(c - 'a'));
  }
  for (int64_t k = 0; static_cast<int64_t>(toks.size()) < n_vocab; ++k) {
    std::string piece = space;
    for (int64_t x = k;; x = x / 26 - 1) {
      piece += static_cast<char>('a' + x % 26);
      if (x < 26) break;
    }
    toks.push_back(piece);
    types.push_back(1);
    scores.push_back(-30 - static_cast<float>(k));
  }
  return toks;
}

}  // namespace

GgufWriter make_synthetic_gguf(const SyntheticSpec& s) {
  if (s.arch != "bitnet" && s.arch != "bitnet-b1.58")
    throw std::invalid_argument("synthetic architecture must be bitnet or bitnet-b1.58, not " + s.arch);
  if (s.n_embd % s.n_head != 0 || s.n_head % s.n_head_kv != 0)
    throw std::invalid_argument("heads must divide n_embd and KV heads must divide heads");
  if (s.embd_type != TensorType::F32 && s.embd_type != TensorType::F16 && s.embd_type != TensorType::BF16 &&
      s.embd_type != TensorType::Q8_0)
    throw std::invalid_argument("the embedding must be F32, F16, BF16 or Q8_0");
  if (s.embd_type == TensorType::Q8_0 && s.n_embd % 32 != 0)
    throw std::invalid_argument("a Q8_0 embedding needs a width of whole 32-blocks");

  SplitMix64 rng(s.seed);
  GgufWriter w;
  const std::string a = s.arch;
  Hyperparams h;
  h.n_vocab = s.n_vocab;
  h.n_embd = s.n_embd;
  h.n_ff = s.n_ff;
  h.n_layer = s.n_layer;
  h.n_head = s.n_head;
  h.n_head_kv = s.n_head_kv;
  h.head_dim = s.n_embd / s.n_head;
  h.n_ctx = s.n_ctx;
  h.rope_theta = s.rope_theta;
  h.rms_eps = s.rms_eps;
  set_gguf_hyperparameters(w, a, h);
  w.set("general.name", GgufOut::str("bitnetc-synthetic-" + a + "-" + type_name(s.weight_type)));
  w.set("general.alignment", GgufOut::u32(32));
  if (s.weight_type == TensorType::I2_S) w.set("bitnetc.i2_s.layout", GgufOut::str(i2s_layout_name(s.i2s_layout)));

  std::vector<float> scores;
  std::vector<int32_t> types;
  const auto toks = synthetic_vocab(s.n_vocab, scores, types);
  w.set("tokenizer.ggml.model", GgufOut::str("llama"));
  w.set("tokenizer.ggml.pre", GgufOut::str("default"));
  w.set("tokenizer.ggml.tokens", GgufOut::strings(toks));
  w.set("tokenizer.ggml.scores", GgufOut::f32s(scores));
  w.set("tokenizer.ggml.token_type", GgufOut::i32s(types));
  w.set("tokenizer.ggml.bos_token_id", GgufOut::u32(1));
  w.set("tokenizer.ggml.eos_token_id", GgufOut::u32(2));
  w.set("tokenizer.ggml.unknown_token_id", GgufOut::u32(0));
  w.set("tokenizer.ggml.add_bos_token", GgufOut::boolean(true));
  w.set("tokenizer.ggml.add_eos_token", GgufOut::boolean(false));

  const auto E = static_cast<uint64_t>(s.n_embd), F = static_cast<uint64_t>(s.n_ff),
             V = static_cast<uint64_t>(s.n_vocab), KV = static_cast<uint64_t>(s.n_embd / s.n_head * s.n_head_kv);

  std::vector<float> embd(V * E);
  for (auto& x : embd) x = 0.1f * rng.normal();
  w.add_tensor("token_embd.weight", s.embd_type, {E, V}, dense_bytes(embd, s.embd_type));

  auto norm = [&](const std::string& name, uint64_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = 1.0f + 0.05f * rng.normal();
    w.add_tensor(name, TensorType::F32, {n}, f32_bytes(v));
  };
  // TL layouts need their tile config recorded: one [rows, cols, BM, BK, bm] per shape.
  std::map<std::pair<uint64_t, uint64_t>, TLTileConfig> tiles;
  auto matrix = [&](const std::string& name, uint64_t rows, uint64_t cols) {
    TernaryWeights tw;
    tw.rows = static_cast<int64_t>(rows);
    tw.cols = static_cast<int64_t>(cols);
    tw.codes.resize(rows * cols);
    for (auto& c : tw.codes) c = static_cast<int8_t>(static_cast<int>(rng.next() % 3) - 1);
    tw.scale_block = rows * cols;
    // bf16-exact (hence also fp16-exact in this range), so every storage type keeps it.
    tw.scales = {bf16_to_f32(f32_to_bf16(0.02f + 0.08f * rng.uniform()))};
    if (s.block_scales) {
      if (s.weight_type != TensorType::TQ1_0 && s.weight_type != TensorType::TQ2_0)
        throw std::invalid_argument("a scale per block needs TQ1_0 or TQ2_0 weights");
      tw.scale_block = 256;
      tw.scales.resize(rows * cols / 256);
      for (float& sc : tw.scales) sc = bf16_to_f32(f32_to_bf16(0.02f + 0.08f * rng.uniform()));
    }
    if (!tensor_nbytes(s.weight_type, cols, rows))
      throw std::invalid_argument(name + ": a row of " + std::to_string(cols) + " weights is not a whole number of " +
                                  type_name(s.weight_type) + " blocks (" +
                                  std::to_string(type_traits(s.weight_type).block_size) + ")");
    const TLTileConfig* cfg = nullptr;
    if (s.weight_type == TensorType::TL1 || s.weight_type == TensorType::TL2) {
      const auto c = s.weight_type == TensorType::TL1 ? default_tl1_config(tw.rows, tw.cols)
                                                      : default_tl2_config(tw.rows, tw.cols);
      if (!c)
        throw std::invalid_argument(std::string("no ") + type_name(s.weight_type) + " tiling fits a " +
                                    std::to_string(rows) + "x" + std::to_string(cols) + " matrix");
      cfg = &(tiles[{rows, cols}] = *c);
    }
    w.add_tensor(name, s.weight_type, {cols, rows}, encode_weights(tw, s.weight_type, s.i2s_layout, cfg));
    if (cfg) w.add_tensor(name + "_scale", TensorType::F32, {1}, f32_bytes(tw.scales));
  };

  norm("output_norm.weight", E);
  for (int64_t l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    norm(p + "attn_norm.weight", E);
    matrix(p + "attn_q.weight", E, E);
    matrix(p + "attn_k.weight", KV, E);
    matrix(p + "attn_v.weight", KV, E);
    norm(p + "attn_sub_norm.weight", E);
    matrix(p + "attn_output.weight", E, E);
    norm(p + "ffn_norm.weight", E);
    matrix(p + "ffn_gate.weight", F, E);
    matrix(p + "ffn_up.weight", F, E);
    norm(p + "ffn_sub_norm.weight", F);
    matrix(p + "ffn_down.weight", E, F);
  }
  if (!tiles.empty()) {
    std::vector<GgufOut> rows;
    for (const auto& [shape, c] : tiles)
      rows.push_back(
          GgufOut::array(GgufValueType::UINT32,
                         {GgufOut::u32(static_cast<uint32_t>(shape.first)),
                          GgufOut::u32(static_cast<uint32_t>(shape.second)), GgufOut::u32(static_cast<uint32_t>(c.BM)),
                          GgufOut::u32(static_cast<uint32_t>(c.BK)), GgufOut::u32(static_cast<uint32_t>(c.bm))}));
    w.set("bitnetc.tl.tiles", GgufOut::array(GgufValueType::ARRAY, std::move(rows)));
  }
  return w;
}

}  // namespace bitnetc
