// Lowering: an imported model (model_import.h) to the ternary IR (ir/ir.h).
//
// One recipe per source family picks the numerics of the engine that defines that
// format, so that the reference interpreter reproduces it:
//   GGUF `bitnet`        llama.cpp build_bitnet: ggml RMSNorm, NEOX RoPE, SiLU, Q8_K
//                        activations per 256-block (TQ1_0/TQ2_0's vec_dot type)
//   GGUF `bitnet-b1.58`  bitnet.cpp (2B4T): as above with relu2 and per-token int8
//   HF BitNetForCausalLM transformers' modeling_bitnet + AutoBitLinear: f32 RMSNorm,
//                        per-token absmax int8 (ActQuant), absmean ternary weights
//   bitllama2.c          runbit.c: weightless bitnorm before every BitLinear,
//                        interleaved RoPE, final RMSNorm with weight
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "ir.h"
#include "model_import.h"
#include "ternary.h"

namespace bitnetc {

enum class ActQuantGranularity { PerToken, PerBlock };

// Whose arithmetic a model is computed with (`--numerics`): the whole recipe of that
// engine (norm accumulation, activation quantizer, RoPE angles, softmax, SiLU), while
// the model's structure (its norms, sub-norms, pairing of RoPE dimensions, activation
// function) stays the file's. Auto: by what the file is (the weight type's home engine,
// or bitnetc's own numerics key).
enum class Numerics { Auto, LlamaCpp, BitnetCpp, IkLlamaCpp, Transformers, Bitllama2c };
// "llama.cpp", "bitnet.cpp", "ik_llama.cpp", "transformers", "bitllama2c" or "auto"; nullopt otherwise.
std::optional<Numerics> numerics_from_name(std::string_view name);

struct LowerOptions {
  // Overrides the recipe's activation quantization (`--act-quant=per-token|per-block`).
  std::optional<ActQuantGranularity> act_quant;
  Numerics numerics = Numerics::Auto;
  // Context length of the KV cache; 0 takes the model's.
  int64_t n_ctx = 0;
  DecodeOptions decode;
  // false: the graph carries every weight's shape and scales but not its codes or floats
  // (empty vectors); the caller decodes each weight when it needs it (codegen packs one
  // tensor at a time this way, instead of holding a decoded copy of the whole model).
  bool weight_data = true;
};

// The data lower() leaves out with weight_data = false, decoded from the model.
void load_weight_data(const ImportedModel& m, const DecodeOptions& decode, ir::NamedTernary& w);
void load_weight_data(const ImportedModel& m, ir::DenseWeights& w);
// A dense matrix a row at a time: from its data when loaded, else straight from the model
// file, with no float copy of the whole (vectors: load them).
std::function<void(int64_t row, float* out)> weight_rows(const ImportedModel& m, const ir::DenseWeights& w);

// Every check compile makes on weight values, without compiling (`bitnetc inspect`):
// each weight of a graph lowered with weight_data = false decoded in turn (ternary
// scales finite, positive and alike across layers; dense values finite) and dropped.
// Throws ImportError naming the tensor.
void check_weight_values(const ImportedModel& m, const DecodeOptions& decode, const ir::Graph& g);

// The numerics a model lowers with (its family's recipe, after overrides): what
// `bitnetc inspect` shows.
struct Semantics {
  std::string family;
  ir::ActQuant act_quant;
  ir::Activation ffn_act;
  ir::NormKind norm;
  ir::RopeStyle rope_style;
  ir::RopeFreq rope_freq;
  bool sub_norms;
  bool bitnorm;
  std::string why;  // whose numerics these are, and what in the model says so
};
Semantics semantics(const ImportedModel& m, const LowerOptions& options = {});

// Why ik_llama.cpp's Q8_K64 arithmetic cannot take w's scales (it multiplies by one per
// row, at the end), or "" when it can.
std::string q8k64_scale_problem(const TernaryWeights& w);

// Builds and verifies the graph. Throws ImportError for missing or mis-shaped tensors.
ir::Graph lower(const ImportedModel& m, const LowerOptions& options = {});

}  // namespace bitnetc
