#include "tensor_names.h"

namespace bitnetc {

std::string layer_tensor_name(SourceFormat f, int layer, Role r, HfFamily family) {
  const auto i = static_cast<size_t>(r);
  if (f == SourceFormat::SafeTensors && family == HfFamily::OneBitLlama) {
    if (r == Role::AttnSubNorm) return "model.layers." + std::to_string(layer) + ".self_attn.inner_attn_ln.weight";
    if (r == Role::FfnSubNorm) return "model.layers." + std::to_string(layer) + ".mlp.ffn_layernorm.weight";
  }
  static const char* gguf[] = {"attn_norm", "attn_q",   "attn_k", "attn_v",       "attn_sub_norm", "attn_output",
                               "ffn_norm",  "ffn_gate", "ffn_up", "ffn_sub_norm", "ffn_down"};
  static const char* hf[] = {
      "input_layernorm",  "self_attn.q_proj",         "self_attn.k_proj", "self_attn.v_proj", "self_attn.attn_sub_norm",
      "self_attn.o_proj", "post_attention_layernorm", "mlp.gate_proj",    "mlp.up_proj",      "mlp.ffn_sub_norm",
      "mlp.down_proj"};
  static const char* llama2c[] = {nullptr,           "attention.wq", "attention.wk",   "attention.wv",
                                  nullptr,           "attention.wo", nullptr,          "feed_forward.w1",
                                  "feed_forward.w3", nullptr,        "feed_forward.w2"};
  const std::string L = std::to_string(layer);
  switch (f) {
    case SourceFormat::Gguf: return "blk." + L + "." + gguf[i] + ".weight";
    case SourceFormat::SafeTensors: return "model.layers." + L + "." + hf[i] + ".weight";
    case SourceFormat::Llama2c: return llama2c[i] ? "layers." + L + "." + llama2c[i] + ".weight" : "";
  }
  return "";
}

std::string embedding_name(SourceFormat f) {
  switch (f) {
    case SourceFormat::Gguf: return "token_embd.weight";
    case SourceFormat::SafeTensors: return "model.embed_tokens.weight";
    case SourceFormat::Llama2c: return "tok_embeddings.weight";
  }
  return "";
}

std::string output_norm_name(SourceFormat f) {
  switch (f) {
    case SourceFormat::Gguf: return "output_norm.weight";
    case SourceFormat::SafeTensors: return "model.norm.weight";
    case SourceFormat::Llama2c: return "norm.weight";
  }
  return "";
}

std::string output_head_name(SourceFormat f) {
  switch (f) {
    case SourceFormat::Gguf: return "output.weight";
    case SourceFormat::SafeTensors: return "lm_head.weight";
    case SourceFormat::Llama2c: return "tok_embeddings.weight";  // always tied
  }
  return "";
}

}  // namespace bitnetc
