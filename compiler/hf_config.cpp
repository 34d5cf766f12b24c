#include "hf_config.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "diagnostics.h"
#include "mapped_file.h"

namespace bitnetc {

using nlohmann::json;

namespace {

struct Reader {
  const std::string& file;
  const json& j;

  [[noreturn]] void fail(const std::string& field, const std::string& msg) const {
    throw ImportError(file, ImportError::kNoOffset, field, msg);
  }
  const json* get(const std::string& key) const {
    auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  }
  int64_t positive_int(const std::string& key) const {
    const json* v = get(key);
    if (!v) fail(key, "missing (required)");
    if (!v->is_number_integer()) fail(key, "must be an integer, found " + v->dump());
    const int64_t x = v->get<int64_t>();
    if (x <= 0 || x > (int64_t{1} << 32))
      fail(key, "must be a positive integer below 2^32, found " + std::to_string(x));
    return x;
  }
  double positive_number(const std::string& key, std::optional<double> fallback) const {
    const json* v = get(key);
    if (!v) {
      if (fallback) return *fallback;
      fail(key, "missing (required)");
    }
    if (!v->is_number()) fail(key, "must be a number, found " + v->dump());
    const double x = v->get<double>();
    if (!std::isfinite(x) || x <= 0) fail(key, "must be a positive finite number, found " + v->dump());
    return x;
  }
  std::string string(const std::string& key, const std::string& fallback) const {
    const json* v = get(key);
    if (!v) return fallback;
    if (!v->is_string()) fail(key, "must be a string, found " + v->dump());
    return v->get<std::string>();
  }
  bool boolean(const std::string& key, bool fallback) const {
    const json* v = get(key);
    if (!v) return fallback;
    if (!v->is_boolean()) fail(key, "must be true or false, found " + v->dump());
    return v->get<bool>();
  }
  int64_t token_id(const std::string& key) const {
    const json* v = get(key);
    if (!v) return -1;
    if (v->is_array() && !v->empty()) v = &(*v)[0];  // some configs list several eos ids
    if (!v->is_number_integer() || v->get<int64_t>() < 0) fail(key, "must be a non-negative token id");
    return v->get<int64_t>();
  }
};

}  // namespace

namespace {
HfConfig config_from_json(const std::string& name, const json& j);
}

HfConfig parse_hf_config(const std::string& path) { return parse_hf_config_text(path, read_text_file(path)); }

HfConfig parse_hf_config_text(const std::string& name, const std::string& text) {
  const json j = parse_json_text(name, text);
  if (!j.is_object()) throw ImportError(name, 0, "", "config is not a JSON object");
  try {
    return config_from_json(name, j);
  } catch (const json::exception& e) {  // a value of an unexpected JSON type deep inside
    throw ImportError(name, ImportError::kNoOffset, "", std::string("unexpected value: ") + e.what());
  }
}

namespace {

HfConfig config_from_json(const std::string& name, const json& j) {
  const Reader r{name, j};
  HfConfig c;
  c.path = name;

  const json* archs = r.get("architectures");
  if (!archs || !archs->is_array() || archs->empty() || !(*archs)[0].is_string())
    r.fail("architectures", "missing or not a list of names");
  c.architecture = (*archs)[0].get<std::string>();
  c.model_type = r.string("model_type", "");
  if (c.architecture == "BitNetForCausalLM" && c.model_type == "bitnet") {
    c.family = HfFamily::BitNetB158;
  } else if ((c.architecture == "BitnetForCausalLM" || c.architecture == "LlamaForCausalLM") &&
             c.model_type == "llama") {
    c.family = HfFamily::OneBitLlama;
  } else {
    r.fail("architectures", "unsupported architecture \"" + c.architecture + "\" with model_type \"" + c.model_type +
                                "\" (bitnetc reads BitNetForCausalLM/bitnet and the LLaMA-style "
                                "BitnetForCausalLM/llama 1bitLLM checkpoints)");
  }

  c.hidden_size = r.positive_int("hidden_size");
  c.intermediate_size = r.positive_int("intermediate_size");
  c.num_hidden_layers = r.positive_int("num_hidden_layers");
  c.num_attention_heads = r.positive_int("num_attention_heads");
  c.num_key_value_heads = r.get("num_key_value_heads") ? r.positive_int("num_key_value_heads") : c.num_attention_heads;
  c.vocab_size = r.positive_int("vocab_size");
  c.max_position_embeddings = r.positive_int("max_position_embeddings");
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    r.fail("num_key_value_heads", std::to_string(c.num_key_value_heads) + " does not divide num_attention_heads " +
                                      std::to_string(c.num_attention_heads));
  if (r.get("head_dim")) {
    c.head_dim = r.positive_int("head_dim");
  } else {
    if (c.hidden_size % c.num_attention_heads != 0)
      r.fail("num_attention_heads",
             std::to_string(c.num_attention_heads) + " does not divide hidden_size " + std::to_string(c.hidden_size));
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.head_dim % 2 != 0) r.fail("head_dim", "RoPE needs an even head dimension, found " + std::to_string(c.head_dim));
  c.rms_norm_eps = r.positive_number("rms_norm_eps", std::nullopt);
  c.rope_theta = r.positive_number("rope_theta", 10000.0);
  // Only the no-op scaling some converters write (linear, factor 1) is accepted.
  if (const json* rs = r.get("rope_scaling")) {
    const bool noop = rs->is_object() && rs->contains("type") && (*rs)["type"] == "linear" &&
                      (!rs->contains("factor") || (*rs)["factor"] == 1.0);
    if (!noop) r.fail("rope_scaling", "RoPE scaling " + rs->dump() + " is not supported");
  }

  c.hidden_act = r.string("hidden_act", "");
  if (c.hidden_act != "relu2" && c.hidden_act != "silu")
    r.fail("hidden_act", "unsupported activation \"" + c.hidden_act + "\" (relu2 or silu)");
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", c.family == HfFamily::BitNetB158);
  if (r.boolean("attention_bias", false)) r.fail("attention_bias", "attention biases are not supported");
  c.bos_token_id = r.token_id("bos_token_id");
  c.eos_token_id = r.token_id("eos_token_id");
  // A token id past the vocabulary: the id, or vocab_size, is wrong (the importer then
  // compares vocab_size with the embedding's rows).
  for (const auto& [key, id] : {std::pair{"bos_token_id", c.bos_token_id}, std::pair{"eos_token_id", c.eos_token_id}})
    if (id >= c.vocab_size)
      r.fail(key, std::to_string(id) + " is not below vocab_size " + std::to_string(c.vocab_size) +
                      " (one of the two is wrong)");
  c.torch_dtype = r.string("torch_dtype", "float32");

  if (const json* q = r.get("quantization_config")) {
    if (!q->is_object()) r.fail("quantization_config", "must be an object");
    const Reader qr{name, *q};
    const std::string method = qr.string("quant_method", "");
    if (method != "bitnet") r.fail("quantization_config.quant_method", "\"" + method + "\" is not \"bitnet\"");
    const std::string mode = qr.string("quantization_mode", "offline");
    if (mode == "online")
      c.quant_mode = HfQuantMode::Online;
    else if (mode == "offline")
      c.quant_mode = HfQuantMode::Offline;
    else
      r.fail("quantization_config.quantization_mode", "\"" + mode + "\" is neither online nor offline");
    c.linear_class = qr.string("linear_class", "bitlinear");
    if (c.linear_class != "autobitlinear" && c.linear_class != "bitlinear")
      r.fail("quantization_config.linear_class", "unknown linear class \"" + c.linear_class + "\"");
  } else {
    c.quant_mode = HfQuantMode::Online;  // full-precision masters, ternarised at import
    c.linear_class = "autobitlinear";
  }
  return c;
}

}  // namespace

}  // namespace bitnetc
