#include "model_import.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "gguf.h"
#include "gguf_writer.h"
#include "safetensors.h"

namespace bitnetc {

namespace fs = std::filesystem;
using nlohmann::json;

const char* source_format_name(SourceFormat f) {
  switch (f) {
    case SourceFormat::Gguf: return "gguf";
    case SourceFormat::SafeTensors: return "safetensors";
    case SourceFormat::Llama2c: return "llama2c";
  }
  return "?";
}

ImportedModel::ImportedModel() = default;
ImportedModel::~ImportedModel() = default;
ImportedModel::ImportedModel(ImportedModel&&) noexcept = default;
ImportedModel& ImportedModel::operator=(ImportedModel&&) noexcept = default;

void ImportedModel::drop_pages(const ModelTensor& t, uint64_t offset, uint64_t n) const {
  if (offset > t.nbytes || n > t.nbytes - offset) return;
  if (gguf_) gguf_->mapped().drop_pages(t.data + offset, n);
  if (raw_) raw_->drop_pages(t.data + offset, n);
  if (st_)
    for (const auto& f : st_->files()) f->mapped().drop_pages(t.data + offset, n);
}

const ModelTensor* ImportedModel::find(std::string_view name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

uint64_t ImportedModel::n_params() const {
  uint64_t n = 0;
  for (const auto& t : tensors) n += t.n_params;
  return n;
}

uint64_t ImportedModel::ternary_params() const {
  uint64_t n = 0;
  for (const auto& t : tensors)
    if (t.ternary) n += t.n_params;
  return n;
}

uint64_t ImportedModel::ternary_bytes() const {
  uint64_t n = 0;
  for (const auto& t : tensors)
    if (t.ternary) n += t.nbytes;
  return n;
}

namespace {
bool is_embedding(std::string_view name) {
  return name == "token_embd.weight" || name == "model.embed_tokens.weight" || name == "tok_embeddings.weight";
}
}  // namespace

uint64_t ImportedModel::bytes_per_token() const {
  // Every weight is read once per decoded token, except the embedding table, of which
  // one row is read, unless it doubles as the (tied) output head.
  uint64_t n = 0;
  const bool tied = hparams && hparams->tied_embeddings;
  for (const auto& t : tensors) {
    if (is_embedding(t.name) && !tied) {
      n += t.shape.empty() ? t.nbytes : t.nbytes / t.shape[0];
    } else {
      n += t.nbytes;
    }
  }
  return n;
}

// ---------------------------------------------------------------------------------------
// GGUF

namespace {

json gguf_value_json(const GgufValue& v, size_t max_array) {
  switch (v.type) {
    case GgufValueType::BOOL: return v.b;
    case GgufValueType::STRING: return std::string(v.str);
    case GgufValueType::FLOAT32:
    case GgufValueType::FLOAT64: return v.f;
    case GgufValueType::UINT8:
    case GgufValueType::UINT16:
    case GgufValueType::UINT32:
    case GgufValueType::UINT64: return v.u;
    case GgufValueType::INT8:
    case GgufValueType::INT16:
    case GgufValueType::INT32:
    case GgufValueType::INT64: return v.i;
    case GgufValueType::ARRAY: break;
  }
  const bool full = max_array == 0 || v.count <= max_array;
  const uint64_t shown = full ? v.count : 8;
  json items = json::array();
  for (uint64_t k = 0; k < shown; ++k) {
    if (v.elem_type == GgufValueType::STRING)
      items.push_back(std::string(v.strings[k]));
    else if (v.elem_type == GgufValueType::ARRAY)
      items.push_back(gguf_value_json(v.arrays[k], max_array));
    else if (v.elem_type == GgufValueType::FLOAT32 || v.elem_type == GgufValueType::FLOAT64)
      items.push_back(v.array_f64(k));
    else if (v.elem_type == GgufValueType::BOOL)
      items.push_back(v.array_i64(k) != 0);
    else
      items.push_back(v.array_i64(k));
  }
  if (full) return items;
  return json{{"type", "array"}, {"elem_type", gguf_value_type_name(v.elem_type)}, {"count", v.count}, {"head", items}};
}

// Reads one hyperparameter; `required` ones must be present.
int64_t hp_int(const GgufFile& g, const std::string& arch, const char* name, std::optional<int64_t> fallback) {
  const std::string key = arch + "." + name;
  const auto v = g.get_uint(key);
  if (!v) {
    if (fallback) return *fallback;
    throw ImportError(g.path(), ImportError::kNoOffset, key, "missing (required for architecture " + arch + ")");
  }
  if (*v == 0 || *v > (uint64_t{1} << 31))
    g.fail(g.find(key)->value.offset, key, "must be between 1 and 2^31, found " + std::to_string(*v));
  return static_cast<int64_t>(*v);
}

double hp_float(const GgufFile& g, const std::string& arch, const char* name, std::optional<double> fallback) {
  const std::string key = arch + "." + name;
  const auto v = g.get_float(key);
  if (!v) {
    if (fallback) return *fallback;
    throw ImportError(g.path(), ImportError::kNoOffset, key, "missing (required for architecture " + arch + ")");
  }
  if (!(*v > 0) || !std::isfinite(*v))
    g.fail(g.find(key)->value.offset, key, "must be a positive finite number, found " + std::to_string(*v));
  return *v;
}

Hyperparams gguf_hparams(const GgufFile& g, const std::string& arch) {
  Hyperparams h;
  h.n_ctx = hp_int(g, arch, "context_length", std::nullopt);
  h.n_embd = hp_int(g, arch, "embedding_length", std::nullopt);
  h.n_layer = hp_int(g, arch, "block_count", std::nullopt);
  h.n_ff = hp_int(g, arch, "feed_forward_length", std::nullopt);
  h.n_head = hp_int(g, arch, "attention.head_count", std::nullopt);
  h.n_head_kv = hp_int(g, arch, "attention.head_count_kv", h.n_head);
  h.rope_theta = hp_float(g, arch, "rope.freq_base", 10000.0);
  h.rms_eps = hp_float(g, arch, "attention.layer_norm_rms_epsilon", std::nullopt);
  auto field_fail = [&](const std::string& key, const std::string& msg) {
    const GgufKV* kv = g.find(key);
    throw ImportError(g.path(), kv ? kv->value.offset : ImportError::kNoOffset, key, msg);
  };
  // The embedding's shape is the ground truth for the width: check it before anything derived
  // from embedding_length (head_dim, RoPE dims) so a wrong width is reported as what it is.
  const GgufTensor* embd = g.tensor("token_embd.weight");
  if (!embd) throw ImportError(g.path(), ImportError::kNoOffset, "token_embd.weight", "missing tensor");
  if (embd->ne.size() != 2)
    g.fail(embd->info_offset, "token_embd.weight", "has " + std::to_string(embd->ne.size()) + " dimensions, expected 2");
  if (static_cast<int64_t>(embd->ne[0]) != h.n_embd)
    field_fail(arch + ".embedding_length", "says " + std::to_string(h.n_embd) + " but token_embd.weight rows have " +
                                               std::to_string(embd->ne[0]) + " values");
  if (h.n_embd % h.n_head != 0)
    field_fail(arch + ".attention.head_count",
               std::to_string(h.n_head) + " heads do not divide embedding_length " + std::to_string(h.n_embd));
  if (h.n_head % h.n_head_kv != 0)
    field_fail(arch + ".attention.head_count_kv",
               std::to_string(h.n_head_kv) + " KV heads do not divide head_count " + std::to_string(h.n_head));
  h.head_dim = h.n_embd / h.n_head;
  const int64_t n_rot = hp_int(g, arch, "rope.dimension_count", h.head_dim);
  if (n_rot != h.head_dim)
    field_fail(arch + ".rope.dimension_count", "partial RoPE (" + std::to_string(n_rot) + " of " +
                                                   std::to_string(h.head_dim) + " dims) is not supported");
  // llama.cpp's `bitnet` hard-codes SiLU unless `<arch>.hidden_activation` says otherwise;
  // bitnet.cpp's `bitnet-b1.58` (2B4T) uses squared ReLU.
  h.ffn_act = arch == "bitnet-b1.58" ? "relu2" : "silu";
  if (auto act = g.get_string(arch + ".hidden_activation")) {
    if (*act == "relu2" || *act == "relu_sqr" || *act == "relu_squared")
      h.ffn_act = "relu2";
    else if (*act == "silu" || *act == "swish")
      h.ffn_act = "silu";
    else
      field_fail(arch + ".hidden_activation", "unsupported activation \"" + std::string(*act) + "\"");
  }
  h.n_vocab = static_cast<int64_t>(embd->ne[1]);
  if (auto nv = g.get_uint(arch + ".vocab_size"); nv && static_cast<int64_t>(*nv) != h.n_vocab)
    field_fail(arch + ".vocab_size",
               "says " + std::to_string(*nv) + " but token_embd.weight has " + std::to_string(h.n_vocab) + " rows");
  h.tied_embeddings = g.tensor("output.weight") == nullptr;
  return h;
}

}  // namespace

void set_gguf_hyperparameters(GgufWriter& w, const std::string& arch, const Hyperparams& h) {
  const auto u32 = [](int64_t v) { return GgufOut::u32(static_cast<uint32_t>(v)); };
  w.set("general.architecture", GgufOut::str(arch));
  w.set(arch + ".context_length", u32(h.n_ctx));
  w.set(arch + ".embedding_length", u32(h.n_embd));
  w.set(arch + ".block_count", u32(h.n_layer));
  w.set(arch + ".feed_forward_length", u32(h.n_ff));
  w.set(arch + ".attention.head_count", u32(h.n_head));
  w.set(arch + ".attention.head_count_kv", u32(h.n_head_kv));
  w.set(arch + ".rope.dimension_count", u32(h.head_dim));
  w.set(arch + ".rope.freq_base", GgufOut::f32(static_cast<float>(h.rope_theta)));
  w.set(arch + ".attention.layer_norm_rms_epsilon", GgufOut::f32(static_cast<float>(h.rms_eps)));
  w.set(arch + ".vocab_size", u32(h.n_vocab));
}

namespace {

void import_gguf(ImportedModel& m, const std::string& path, const ImportOptions& opt, std::shared_ptr<GgufFile>& keep) {
  keep = std::make_shared<GgufFile>(GgufFile::open(path));
  const GgufFile& g = *keep;
  m.format = SourceFormat::Gguf;
  m.architecture = std::string(g.architecture());
  for (const auto& t : g.tensors()) {
    ModelTensor mt;
    mt.name = std::string(t.name);
    mt.type = t.type;
    mt.shape.assign(t.ne.rbegin(), t.ne.rend());
    mt.file_offset = t.file_offset;
    mt.nbytes = t.nbytes;
    mt.n_params = t.n_elements();
    mt.ternary = type_traits(t.type).ternary;
    mt.data = t.data;
    mt.file = path;
    m.tensors.push_back(std::move(mt));
  }
  if (m.architecture == "bitnet" || m.architecture == "bitnet-b1.58") {
    m.hparams = gguf_hparams(g, m.architecture);
    m.supported = true;
  } else {
    m.unsupported_reason = m.architecture.empty() ? "the file has no general.architecture"
                                                  : "architecture \"" + m.architecture +
                                                        "\" is not supported (bitnetc compiles bitnet, bitnet-b1.58)";
  }
  if (auto model = g.get_string("tokenizer.ggml.model")) {
    m.tokenizer.kind = std::string(*model);
    m.tokenizer.source = "GGUF tokenizer.ggml.*";
    if (const GgufValue* toks = g.get_array("tokenizer.ggml.tokens", GgufValueType::STRING))
      m.tokenizer.n_tokens = static_cast<int64_t>(toks->count);
    if (auto b = g.get_uint("tokenizer.ggml.bos_token_id")) m.tokenizer.bos = static_cast<int64_t>(*b);
    if (auto e = g.get_uint("tokenizer.ggml.eos_token_id")) m.tokenizer.eos = static_cast<int64_t>(*e);
  }
  (void)opt;
}

// ---------------------------------------------------------------------------------------
// bitllama2.c checkpoint (see ../shared/models/tinystories-bitnet-3m/README.md)

constexpr uint32_t kLlama2cMagic = 0x616b3432;
constexpr uint64_t kLlama2cHeader = 256;

void import_llama2c_into(ImportedModel& m, std::shared_ptr<MappedFile>& keep) {
  const std::string path = keep->path();
  ByteCursor cur(path, keep->bytes());
  if (cur.read<uint32_t>("magic") != kLlama2cMagic) cur.fail_at(0, "magic", "not a bitllama2.c checkpoint");
  const int32_t version = cur.read<int32_t>("version");
  if (version != 1) cur.fail_at(4, "version", "unsupported version " + std::to_string(version) + " (expected 1)");
  const char* names[] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
  int64_t v[7];
  for (int k = 0; k < 7; ++k) {
    const uint64_t at = cur.offset();
    v[k] = cur.read<int32_t>(names[k]);
    // vocab_size may be negative in llama2.c (untied classifier); this format ties it.
    if (v[k] <= 0 || v[k] > (1 << 20))
      cur.fail_at(at, names[k], "must be between 1 and 2^20, found " + std::to_string(v[k]));
  }
  Hyperparams h;
  h.n_embd = v[0];
  h.n_ff = v[1];
  h.n_layer = v[2];
  h.n_head = v[3];
  h.n_head_kv = v[4];
  h.n_vocab = v[5];
  h.n_ctx = v[6];
  if (h.n_embd % h.n_head != 0) cur.fail_at(20, "n_heads", "does not divide dim");
  if (h.n_head % h.n_head_kv != 0) cur.fail_at(24, "n_kv_heads", "does not divide n_heads");
  h.head_dim = h.n_embd / h.n_head;
  h.rope_theta = 10000.0;
  h.rms_eps = 1e-5;
  h.ffn_act = "silu";
  h.tied_embeddings = true;
  const int64_t kv_dim = h.n_embd * h.n_head_kv / h.n_head;

  uint64_t at = kLlama2cHeader;
  auto add = [&](std::string name, TensorType type, std::vector<uint64_t> shape, uint64_t nbytes, bool ternary) {
    ModelTensor t;
    t.name = std::move(name);
    t.type = type;
    t.shape = std::move(shape);
    t.file_offset = at;
    t.nbytes = nbytes;
    t.n_params = 1;
    for (auto d : t.shape) t.n_params *= d;
    t.ternary = ternary;
    t.file = path;
    if (at + nbytes > keep->size())
      throw ImportError(path, at, t.name,
                        "needs " + std::to_string(nbytes) + " bytes but the file ends at " +
                            std::to_string(keep->size()) + " (truncated?)");
    t.data = keep->data() + at;
    at += nbytes;
    m.tensors.push_back(std::move(t));
  };
  const auto E = static_cast<uint64_t>(h.n_embd), F = static_cast<uint64_t>(h.n_ff),
             V = static_cast<uint64_t>(h.n_vocab);
  add("norm.weight", TensorType::F32, {E}, E * 4, false);
  add("tok_embeddings.weight", TensorType::F32, {V, E}, V * E * 4, false);
  struct Kind {
    const char* name;
    uint64_t out, in;
  };
  const Kind kinds[] = {{"attention.wq", E, E},
                        {"attention.wk", static_cast<uint64_t>(kv_dim), E},
                        {"attention.wv", static_cast<uint64_t>(kv_dim), E},
                        {"attention.wo", E, E},
                        {"feed_forward.w1", F, E},
                        {"feed_forward.w2", E, F},
                        {"feed_forward.w3", F, E}};
  for (const auto& k : kinds) {
    if ((k.out * k.in) % 4 != 0) throw ImportError(path, at, k.name, "matrix size is not a multiple of 4");
    for (int64_t l = 0; l < h.n_layer; ++l) {
      const std::string base = "layers." + std::to_string(l) + "." + k.name;
      add(base + ".scale", TensorType::F32, {1}, 4, false);
      add(base + ".weight", TensorType::I2_L2C, {k.out, k.in}, k.out * k.in / 4, true);
    }
  }
  if (at != keep->size())
    throw ImportError(path, at, "end",
                      "file has " + std::to_string(keep->size() - at) +
                          " bytes after the last ternary record (expected exactly " + std::to_string(at) + " bytes)");
  m.format = SourceFormat::Llama2c;
  m.architecture = "bitllama2c";
  m.hparams = h;
  m.supported = true;
  const fs::path dir = fs::path(path).parent_path();
  m.tokenizer.n_tokens = h.n_vocab;
  m.tokenizer.bos = 1;
  m.tokenizer.eos = 2;
  if (fs::exists(dir / "tokenizer.model")) {
    m.tokenizer.kind = "llama";
    m.tokenizer.source = (dir / "tokenizer.model").string() + " (SentencePiece)";
  } else {
    m.tokenizer.kind = "none";
    m.tokenizer.source = "no tokenizer.model beside the checkpoint";
  }
}

// ---------------------------------------------------------------------------------------
// HF SafeTensors checkpoint

bool is_hf_linear(const std::string& name) {
  static const char* suffixes[] = {"q_proj.weight",    "k_proj.weight",  "v_proj.weight",   "o_proj.weight",
                                   "gate_proj.weight", "up_proj.weight", "down_proj.weight"};
  for (const char* s : suffixes) {
    const size_t n = std::strlen(s);
    if (name.size() >= n && name.compare(name.size() - n, n, s) == 0) return true;
  }
  return false;
}

void hf_tokenizer_summary(ImportedModel& m, const fs::path& dir) {
  const fs::path tj = dir / "tokenizer.json";
  if (fs::exists(tj)) {
    const json j = read_json_file(tj.string());
    const std::string type =
        j.contains("model") && j["model"].is_object() && j["model"].contains("type") && j["model"]["type"].is_string()
            ? j["model"]["type"].get<std::string>()
            : "";
    m.tokenizer.kind = type == "BPE" ? "gpt2" : type;
    m.tokenizer.source = tj.string();
    int64_t n = 0;
    if (j.contains("model") && j["model"].contains("vocab") && j["model"]["vocab"].is_object())
      for (auto& [k, id] : j["model"]["vocab"].items())
        if (id.is_number_integer()) n = std::max<int64_t>(n, id.get<int64_t>() + 1);
    if (j.contains("added_tokens") && j["added_tokens"].is_array())
      for (const auto& t : j["added_tokens"])
        if (t.contains("id") && t["id"].is_number_integer()) n = std::max<int64_t>(n, t["id"].get<int64_t>() + 1);
    m.tokenizer.n_tokens = n;
  } else if (fs::exists(dir / "tokenizer.model")) {
    m.tokenizer.kind = "llama";
    m.tokenizer.source = (dir / "tokenizer.model").string() + " (SentencePiece)";
  } else {
    m.tokenizer.kind = "none";
    m.tokenizer.source = "no tokenizer.json or tokenizer.model in " + dir.string();
  }
  if (m.hf_config) {
    m.tokenizer.bos = m.hf_config->bos_token_id;
    m.tokenizer.eos = m.hf_config->eos_token_id;
  }
}

void import_safetensors(ImportedModel& m, const std::string& path, std::shared_ptr<SafeTensorsCheckpoint>& keep) {
  keep = std::make_shared<SafeTensorsCheckpoint>(SafeTensorsCheckpoint::open(path));
  m.format = SourceFormat::SafeTensors;
  const fs::path dir = fs::is_directory(path) ? fs::path(path) : fs::path(path).parent_path();
  if (fs::exists(dir / "config.json")) {
    m.hf_config = parse_hf_config((dir / "config.json").string());
    const HfConfig& c = *m.hf_config;
    m.architecture = c.architecture;
    Hyperparams h;
    h.n_vocab = c.vocab_size;
    h.n_embd = c.hidden_size;
    h.n_ff = c.intermediate_size;
    h.n_layer = c.num_hidden_layers;
    h.n_head = c.num_attention_heads;
    h.n_head_kv = c.num_key_value_heads;
    h.head_dim = c.head_dim;
    h.n_ctx = c.max_position_embeddings;
    h.rope_theta = c.rope_theta;
    h.rms_eps = c.rms_norm_eps;
    h.ffn_act = c.hidden_act;
    h.tied_embeddings = c.tie_word_embeddings;
    m.hparams = h;
    m.supported = true;
  } else {
    m.architecture = "";
    m.unsupported_reason = "no config.json beside the SafeTensors file (" + dir.string() + ")";
  }
  const bool packed = m.hf_config && m.hf_config->quant_mode == HfQuantMode::Offline;
  for (const StTensor* t : keep->tensors()) {
    ModelTensor mt;
    mt.name = t->name;
    mt.type = t->type;
    mt.shape = t->shape;
    mt.file_offset = t->file_offset;
    mt.nbytes = t->nbytes;
    mt.n_params = t->n_elements();
    mt.ternary = m.hf_config && is_hf_linear(t->name);
    // The packed variant stores four output rows per uint8 (see hf_config.h).
    if (mt.ternary && packed && t->type == TensorType::U8) mt.n_params *= 4;
    mt.data = t->data;
    mt.file = t->file;
    m.tensors.push_back(std::move(mt));
  }
  if (m.hf_config) {
    const auto* embd = keep->find("model.embed_tokens.weight");
    if (!embd) throw ImportError(path, ImportError::kNoOffset, "model.embed_tokens.weight", "missing tensor");
    if (embd->shape.size() != 2 || static_cast<int64_t>(embd->shape[0]) != m.hparams->n_vocab ||
        static_cast<int64_t>(embd->shape[1]) != m.hparams->n_embd)
      throw ImportError(embd->file, embd->file_offset, "model.embed_tokens.weight",
                        "shape [" + std::to_string(embd->shape.empty() ? 0 : embd->shape[0]) + ", " +
                            std::to_string(embd->shape.size() < 2 ? 0 : embd->shape[1]) +
                            "] does not match config.json's vocab_size x hidden_size [" +
                            std::to_string(m.hparams->n_vocab) + ", " + std::to_string(m.hparams->n_embd) + "]");
  }
  hf_tokenizer_summary(m, dir);
}

}  // namespace

ImportedModel import_model(const std::string& path, const ImportOptions& options) {
  ImportedModel m;
  m.path = path;
  // A FIFO or device would block or never end: only regular files and folders are read.
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st))
    throw ImportError(path, ImportError::kNoOffset, "",
                      !ec || ec == std::errc::no_such_file_or_directory ? "no such file or folder" : ec.message());
  if (!fs::is_directory(st) && !fs::is_regular_file(st))
    throw ImportError(path, ImportError::kNoOffset, "",
                      "not a regular file or a checkpoint folder (a FIFO, socket or device)");
  if (fs::is_directory(st)) {
    import_safetensors(m, path, m.st_);
  } else {
    uint8_t head[8] = {};
    {
      std::ifstream in(path, std::ios::binary);
      if (!in) throw ImportError(path, ImportError::kNoOffset, "", std::string("cannot open: ") + std::strerror(errno));
      in.read(reinterpret_cast<char*>(head), 8);
    }
    uint32_t magic;
    std::memcpy(&magic, head, 4);
    if (magic == GgufFile::kMagic) {
      import_gguf(m, path, options, m.gguf_);
    } else if (magic == kLlama2cMagic) {
      m.raw_ = std::make_shared<MappedFile>(path);
      import_llama2c_into(m, m.raw_);
    } else if (path.size() > 12 && path.substr(path.size() - 12) == ".safetensors") {
      import_safetensors(m, path, m.st_);
    } else {
      throw ImportError(path, 0, "magic",
                        "unrecognised model format (expected GGUF, a .safetensors file or checkpoint folder, "
                        "or a bitllama2.c checkpoint)");
    }
  }
  if (options.require_supported && !m.supported)
    throw ImportError(path, ImportError::kNoOffset, "general.architecture", m.unsupported_reason);
  return m;
}

// ---------------------------------------------------------------------------------------
// Decoding weights

namespace {

[[noreturn]] void tensor_fail(const ModelTensor& t, const std::string& msg) {
  throw ImportError(t.file, t.file_offset, t.name, msg);
}

std::pair<int64_t, int64_t> matrix_dims(const ModelTensor& t) {
  if (t.shape.size() != 2) tensor_fail(t, "is not a matrix (" + std::to_string(t.shape.size()) + " dimensions)");
  return {static_cast<int64_t>(t.shape[0]), static_cast<int64_t>(t.shape[1])};
}

float scalar_of(const ImportedModel& m, const std::string& name, const ModelTensor& owner) {
  const ModelTensor* s = m.find(name);
  if (!s) tensor_fail(owner, "its scale tensor \"" + name + "\" is missing");
  if (s->n_params != 1 || (s->type != TensorType::F32 && s->type != TensorType::BF16 && s->type != TensorType::F16))
    tensor_fail(*s, "a scale must be one F32/F16/BF16 value");
  return decode_dense(*s)[0];
}

std::optional<TLTileConfig> recorded_tiles(const GgufFile& g, int64_t rows, int64_t cols) {
  const GgufValue* v = g.get_array("bitnetc.tl.tiles", GgufValueType::ARRAY);
  if (!v) return std::nullopt;
  for (const auto& row : v->arrays) {
    if (row.elem_type != GgufValueType::UINT32 || row.count != 5)
      g.fail(row.offset, "bitnetc.tl.tiles", "each entry must be 5 uint32 [rows, cols, BM, BK, bm]");
    if (row.array_i64(0) == rows && row.array_i64(1) == cols)
      return TLTileConfig{row.array_i64(2), row.array_i64(3), row.array_i64(4)};
  }
  return std::nullopt;
}

// Dense weights that already hold s * {-1, 0, +1} (llama.cpp's F32 `bitnet` files):
// recover s as max|w| and check every element is exactly one of -s, 0, +s.
TernaryWeights ternary_from_exact_values(const ModelTensor& t, const std::vector<float>& v, int64_t rows,
                                         int64_t cols) {
  float s = 0;
  for (float x : v) s = std::max(s, std::fabs(x));
  TernaryWeights w;
  w.rows = rows;
  w.cols = cols;
  w.codes.resize(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == 0)
      w.codes[i] = 0;
    else if (v[i] == s)
      w.codes[i] = 1;
    else if (v[i] == -s)
      w.codes[i] = -1;
    else
      tensor_fail(t, "element " + std::to_string(i) + " (" + std::to_string(v[i]) + ") is not one of 0 and +-" +
                         std::to_string(s) + ": the tensor is not ternary");
  }
  w.scale_block = v.size();
  w.scales = {s};
  return w;
}

// transformers' WeightQuant (integrations/bitnet.py), in float32:
// mean = max(mean|W|, 1e-5); s_w = 1/mean; T = clamp(round_half_even(W*s_w), -1, 1);
// the dequantised weight is T / s_w, i.e. one scale 1/s_w (not exactly `mean`).
TernaryWeights ternary_absmean(const std::vector<float>& v, int64_t rows, int64_t cols) {
  float sum = 0;
  for (float x : v) sum += std::fabs(x);
  const float mean = std::max(sum / static_cast<float>(v.size()), 1e-5f);
  const float s_w = 1.0f / mean;
  TernaryWeights w;
  w.rows = rows;
  w.cols = cols;
  w.codes.resize(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    w.codes[i] = static_cast<int8_t>(std::clamp(std::nearbyint(v[i] * s_w), -1.0f, 1.0f));
  w.scale_block = v.size();
  w.scales = {1.0f / s_w};
  return w;
}

}  // namespace

// Dense values that cannot be the model's (a NaN norm weight, an infinite embedding
// value): compiled, they print token 0 forever. `first` is the index of v[0] in the tensor.
static void check_finite(const ModelTensor& t, const float* v, uint64_t n, uint64_t first) {
  const float* bad = std::find_if(v, v + n, [](float x) { return !std::isfinite(x); });
  if (bad == v + n) return;
  const uint64_t i = first + static_cast<uint64_t>(bad - v);
  const std::string where = t.shape.size() == 2
                                ? "row " + std::to_string(i / t.shape[1]) + ", column " + std::to_string(i % t.shape[1])
                                : "element " + std::to_string(i);
  tensor_fail(t, "value at " + where + " is " + (std::isnan(*bad) ? "NaN" : "infinite") +
                     ": the tensor is damaged (every weight of a model is a finite number)");
}

std::vector<float> decode_dense(const ModelTensor& t) {
  if (!type_traits(t.type).readable || t.type == TensorType::I2_S || t.type == TensorType::TL1 ||
      t.type == TensorType::TL2 || t.type == TensorType::I2_L2C)
    tensor_fail(t, std::string("cannot decode ") + type_name(t.type) + " as dense values");
  std::vector<float> out(t.n_params);
  dequantize_row_ref(t.type, t.data, out.data(), t.n_params);
  check_finite(t, out.data(), out.size(), 0);
  return out;
}

void decode_dense_row(const ModelTensor& t, int64_t r, float* out) {
  if (!type_traits(t.type).readable || t.type == TensorType::I2_S || t.type == TensorType::TL1 ||
      t.type == TensorType::TL2 || t.type == TensorType::I2_L2C || t.shape.size() != 2)
    tensor_fail(t, std::string("cannot decode ") + type_name(t.type) + " rows as dense values");
  const auto cols = t.shape[1];
  const auto row_bytes = tensor_nbytes(t.type, cols, 1);
  if (!row_bytes || r < 0 || static_cast<uint64_t>(r) >= t.shape[0]) tensor_fail(t, "no row " + std::to_string(r));
  dequantize_row_ref(t.type, t.data + static_cast<uint64_t>(r) * *row_bytes, out, cols);
  check_finite(t, out, cols, static_cast<uint64_t>(r) * cols);
}

std::pair<int64_t, int64_t> ternary_dims(const ModelTensor& t) {
  const auto [rows, cols] = matrix_dims(t);
  return {t.type == TensorType::U8 ? 4 * rows : rows, cols};  // HF packed: four rows per byte
}

namespace {

TernaryWeights decode_ternary_codes(const ImportedModel& m, const ModelTensor& t, const DecodeOptions& opt) {
  auto [rows, cols] = matrix_dims(t);
  std::string base = t.name;  // "x.weight" -> "x"
  if (base.size() > 7 && base.compare(base.size() - 7, 7, ".weight") == 0) base.resize(base.size() - 7);
  try {
    switch (t.type) {
      case TensorType::TQ1_0: return decode_tq1_0(t.data, rows, cols);
      case TensorType::TQ2_0: return decode_tq2_0(t.data, rows, cols);
      case TensorType::IQ1_BN: return decode_iq1_bn(t.data, rows, cols);
      case TensorType::IQ2_BN: return decode_iq2_bn(t.data, rows, cols);
      case TensorType::I2_S: {
        I2SLayout layout = I2SLayout::X86;
        if (m.gguf())
          if (auto l = m.gguf()->get_string("bitnetc.i2_s.layout")) {
            if (*l == "arm")
              layout = I2SLayout::Arm;
            else if (*l != "x86")
              m.gguf()->fail(m.gguf()->find("bitnetc.i2_s.layout")->value.offset, "bitnetc.i2_s.layout",
                             "must be \"x86\" or \"arm\"");
          }
        if (opt.i2s_layout) layout = *opt.i2s_layout;
        return decode_i2_s(t.data, rows, cols, layout);
      }
      case TensorType::TL1:
      case TensorType::TL2: {
        const auto tiles = m.gguf() ? recorded_tiles(*m.gguf(), rows, cols) : std::nullopt;
        if (!tiles)
          tensor_fail(t, std::string(type_name(t.type)) +
                             " weights can only be read with their tile configuration, "
                             "and the file records none for a " +
                             std::to_string(rows) + "x" + std::to_string(cols) + " matrix (bitnetc.tl.tiles)");
        const float s = scalar_of(m, t.name + "_scale", t);
        return t.type == TensorType::TL1 ? decode_tl1(t.data, rows, cols, *tiles, s)
                                         : decode_tl2(t.data, rows, cols, *tiles, s);
      }
      case TensorType::I2_L2C: return decode_i2_l2c(t.data, rows, cols, scalar_of(m, base + ".scale", t));
      case TensorType::U8: {
        // HF packed (transformers' pack_weights): [out/4, in]; byte P[r, c] holds rows
        // r + i*R (R = out/4) at bits 2i..2i+1, code - 1 = trit.
        if (m.format != SourceFormat::SafeTensors) break;
        const int64_t R = rows, out_rows = 4 * rows;
        TernaryWeights w;
        w.rows = out_rows;
        w.cols = cols;
        w.codes.resize(static_cast<size_t>(out_rows * cols));
        for (int64_t r = 0; r < R; ++r)
          for (int64_t c = 0; c < cols; ++c) {
            const uint8_t byte = t.data[r * cols + c];
            for (int i = 0; i < 4; ++i) {
              const int code = (byte >> (2 * i)) & 3;
              if (code == 3) tensor_fail(t, "packed code 3 at row " + std::to_string(r) + " (only 0..2 are valid)");
              w.codes[(r + i * R) * cols + c] = static_cast<int8_t>(code - 1);
            }
          }
        w.scale_block = w.codes.size();
        w.scales = {scalar_of(m, base + ".weight_scale", t)};
        return w;
      }
      case TensorType::F32:
      case TensorType::F16:
      case TensorType::BF16:
      case TensorType::Q8_0: {
        const auto v = decode_dense(t);
        if (m.format == SourceFormat::SafeTensors) return ternary_absmean(v, rows, cols);
        return ternary_from_exact_values(t, v, rows, cols);
      }
      default: break;
    }
  } catch (const std::invalid_argument& e) {
    tensor_fail(t, e.what());
  }
  tensor_fail(t, std::string("cannot be read as ternary weights (type ") + type_name(t.type) + ")");
}

}  // namespace

// A scale that cannot be the model's: non-finite, negative, or zero over non-zero codes
// (bitnet.cpp's quantizer run with its default threads writes such garbage; compiled,
// it prints token 0 forever).
static void check_ternary_scales(const ModelTensor& t, const TernaryWeights& w) {
  for (size_t b = 0; b < w.scales.size(); ++b) {
    const float s = w.scales[b];
    const char* what = !std::isfinite(s) ? "is not finite" : s < 0 ? "is negative" : nullptr;
    if (!what && s == 0) {
      const size_t first = b * w.scale_block, end = std::min(w.codes.size(), first + w.scale_block);
      if (std::any_of(w.codes.begin() + static_cast<std::ptrdiff_t>(first),
                      w.codes.begin() + static_cast<std::ptrdiff_t>(end), [](int8_t c) { return c != 0; }))
        what = "is zero while its weights are not";
    }
    if (what)
      tensor_fail(t, "weight scale " + (w.scales.size() > 1 ? "of block " + std::to_string(b) + " " : std::string()) +
                         "(" + std::to_string(s) + ") " + what +
                         ": the file's scales are damaged (bitnet.cpp's quantizer writes such scales when run with "
                         "several threads; quantize again with its thread count 1)");
  }
}

// The coarsest form of a weight's scales: one per tensor when every block has the same
// (TQ files store a `d` per 256 weights even when the quantizer wrote one value), else one
// per row when each row's blocks agree. The arithmetic then splits a row's dot only where
// the scale really changes: a per-token dot over a row of equal scales is one integer sum,
// as the kernels (and bitnet.cpp) compute it.
static void coarsen_scales(TernaryWeights& w) {
  if (w.scales.size() <= 1) return;
  if (std::all_of(w.scales.begin(), w.scales.end(), [&](float s) { return s == w.scales[0]; })) {
    w.scales.resize(1);
    w.scale_block = static_cast<uint64_t>(w.rows * w.cols);
    return;
  }
  const uint64_t cols = static_cast<uint64_t>(w.cols);
  if (w.scale_block >= cols || cols % w.scale_block != 0) return;
  const uint64_t per_row = cols / w.scale_block;
  std::vector<float> rows(static_cast<size_t>(w.rows));
  for (int64_t r = 0; r < w.rows; ++r) {
    const float* first = &w.scales[static_cast<size_t>(r) * per_row];
    if (!std::all_of(first, first + per_row, [&](float s) { return s == first[0]; })) return;
    rows[static_cast<size_t>(r)] = first[0];
  }
  w.scales = std::move(rows);
  w.scale_block = cols;
}

TernaryWeights decode_ternary(const ImportedModel& m, const ModelTensor& t, const DecodeOptions& opt) {
  TernaryWeights w = decode_ternary_codes(m, t, opt);
  // llama.cpp's optional per-tensor "<name>.scale" (an F32 scalar) multiplies the
  // matmul's output: it is part of the weight's scale.
  if (m.format == SourceFormat::Gguf && t.name.size() > 7 && t.name.compare(t.name.size() - 7, 7, ".weight") == 0)
    if (m.find(t.name.substr(0, t.name.size() - 7) + ".scale")) {
      const float f = scalar_of(m, t.name.substr(0, t.name.size() - 7) + ".scale", t);
      for (float& x : w.scales) x *= f;
    }
  check_ternary_scales(t, w);
  coarsen_scales(w);
  return w;
}

float typical_scale(const TernaryWeights& w) {
  std::vector<float> s;
  for (float x : w.scales)
    if (x != 0) s.push_back(x);
  if (s.empty()) return 0;
  std::nth_element(s.begin(), s.begin() + s.size() / 2, s.end());
  return s[s.size() / 2];
}

void check_scales_across_layers(const ImportedModel& m, const std::vector<std::pair<std::string, float>>& typical) {
  // A weight's kind: its name with the layer number taken out ("blk.#.attn_q.weight").
  auto kind_of = [](const std::string& name) {
    std::string k;
    for (size_t i = 0; i < name.size(); ++i) {
      const bool digits_between_dots = std::isdigit(static_cast<unsigned char>(name[i])) && i > 0 && name[i - 1] == '.';
      if (!digits_between_dots) {
        k += name[i];
        continue;
      }
      while (i + 1 < name.size() && std::isdigit(static_cast<unsigned char>(name[i + 1]))) ++i;
      k += '#';
    }
    return k;
  };
  std::map<std::string, std::vector<std::pair<std::string, float>>> by_kind;
  for (const auto& [name, s] : typical)
    if (s > 0) by_kind[kind_of(name)].push_back({name, s});
  for (const auto& [kind, list] : by_kind) {
    if (list.size() < 3) continue;
    std::vector<float> s;
    for (const auto& e : list) s.push_back(e.second);
    std::nth_element(s.begin(), s.begin() + s.size() / 2, s.end());
    const float median = s[s.size() / 2];
    for (const auto& [name, scale] : list)
      if (scale > 1000 * median || scale < median / 1000) {
        const ModelTensor* t = m.find(name);
        tensor_fail(*t, "weight scale " + std::to_string(scale) + " is more than 1000x from the " +
                            std::to_string(median) + " of the same weight in the other " +
                            std::to_string(list.size() - 1) +
                            " layers: the file's scales are damaged (bitnet.cpp's quantizer writes such scales when "
                            "run with several threads; quantize again with its thread count 1)");
      }
  }
}

ImportedModel import_llama2c(MappedFile file) {
  ImportedModel m;
  m.path = file.path();
  m.raw_ = std::make_shared<MappedFile>(std::move(file));
  import_llama2c_into(m, m.raw_);
  return m;
}

json ImportedModel::metadata_json(size_t max_array) const {
  json md = json::object();
  if (gguf_) {
    for (const auto& kv : gguf_->metadata()) md[std::string(kv.key)] = gguf_value_json(kv.value, max_array);
  } else if (hf_config) {
    md = read_json_file(hf_config->path);
  } else if (format == SourceFormat::Llama2c && hparams) {
    md = json{{"dim", hparams->n_embd},     {"hidden_dim", hparams->n_ff},      {"n_layers", hparams->n_layer},
              {"n_heads", hparams->n_head}, {"n_kv_heads", hparams->n_head_kv}, {"vocab_size", hparams->n_vocab},
              {"seq_len", hparams->n_ctx}};
  } else if (st_) {
    for (const auto& f : st_->files())
      for (const auto& [k, v] : f->metadata()) md[k] = v;
  }
  return md;
}

}  // namespace bitnetc
