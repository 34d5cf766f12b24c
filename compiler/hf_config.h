// HF `config.json` of a ternary checkpoint, parsed into a typed, validated record.
//
// Two families are recognised:
//  * BitNet b1.58 2B4T style (`BitNetForCausalLM`, model_type "bitnet"): sub-norms,
//    relu2 FFN, GQA, tied head; `quantization_config` says whether linear weights are
//    bf16 masters (online) or packed uint8 + weight_scale (offline).
//  * 1bitLLM's LLaMA-style reproductions (`BitnetForCausalLM`, model_type "llama"):
//    fp16 masters ternarised at import, SiLU FFN, untied head.
#pragma once

#include <cstdint>
#include <string>

namespace bitnetc {

enum class HfFamily { BitNetB158, OneBitLlama };
enum class HfQuantMode { Online, Offline };  // bf16/fp16 masters vs packed uint8

struct HfConfig {
  std::string path;
  std::string architecture;  // architectures[0]
  std::string model_type;
  HfFamily family = HfFamily::BitNetB158;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // hidden_size / heads unless `head_dim` is given
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 0;
  double rope_theta = 10000.0;
  std::string hidden_act;  // "relu2" or "silu"
  bool tie_word_embeddings = false;
  int64_t bos_token_id = -1;
  int64_t eos_token_id = -1;
  std::string torch_dtype;
  HfQuantMode quant_mode = HfQuantMode::Online;
  std::string linear_class;  // "autobitlinear" or "bitlinear" (they scale differently)
};

// Reads and validates `path` (a config.json). Throws ImportError naming the field.
HfConfig parse_hf_config(const std::string& path);
HfConfig parse_hf_config_text(const std::string& name, const std::string& text);

}  // namespace bitnetc
