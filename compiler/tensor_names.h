// Where each weight of a BitNet model lives, by source format: the one table the
// lowering and the converter both read.
#pragma once

#include <string>

#include "model_import.h"

namespace bitnetc {

// The per-layer weights, in the order a block uses them.
enum class Role { AttnNorm, Q, K, V, AttnSubNorm, O, FfnNorm, Gate, Up, FfnSubNorm, Down };
inline constexpr Role kLayerRoles[] = {Role::AttnNorm,    Role::Q,          Role::K,       Role::V,
                                       Role::AttnSubNorm, Role::O,          Role::FfnNorm, Role::Gate,
                                       Role::Up,          Role::FfnSubNorm, Role::Down};

inline bool is_matrix(Role r) {
  return r != Role::AttnNorm && r != Role::AttnSubNorm && r != Role::FfnNorm && r != Role::FfnSubNorm;
}

// "" where the format has no such tensor (bitllama2.c has no norm weights). HF
// checkpoints of 1bitLLM's LLaMA-style family name their sub-norms as its code does
// (`self_attn.inner_attn_ln`, `mlp.ffn_layernorm`).
std::string layer_tensor_name(SourceFormat f, int layer, Role r, HfFamily family = HfFamily::BitNetB158);
std::string embedding_name(SourceFormat f);
std::string output_norm_name(SourceFormat f);
std::string output_head_name(SourceFormat f);  // when not tied to the embedding

}  // namespace bitnetc
