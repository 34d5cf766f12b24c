// `bitnetc convert`: any model bitnetc imports -> a GGUF the peers load.
//
// bitllama2.c and HF BitNet checkpoints become architecture `bitnet` (llama.cpp) or, for
// squared-ReLU 2B4T-style models, `bitnet-b1.58` (bitnet.cpp). GGUF inputs are
// re-encoded to another weight type. Ternary codes and scales are carried over exactly;
// where a type cannot hold a scale exactly (TQ*_0's fp16 block scale) it goes into
// llama.cpp's optional per-tensor "<name>.scale" instead. The source's numerics are
// recorded in `bitnetc.numerics`, so that `bitnetc run` on the result computes what the
// source computed (peers ignore the key).
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "model_import.h"
#include "tensor_types.h"

namespace bitnetc {

struct ConvertOptions {
  std::string output;
  // Weight type for the projection matrices; nullopt: TQ2_0 when every row length is a
  // multiple of 256 (what llama.cpp's `bitnet` reads), else I2_S.
  std::optional<TensorType> type;
  I2SLayout i2s_layout = I2SLayout::X86;
  // The token embedding's (and an untied head's) type, as llama-quantize's
  // --token-embedding-type: F32, F16, BF16 (exact only) or Q8_0; nullopt: the source's
  // precision when GGUF holds it exactly, else F32.
  std::optional<TensorType> embedding_type;
  std::string tokenizer;  // a tokenizer.model / tokenizer.json / GGUF to use instead of the model's
  std::function<void(const std::string&)> progress;  // one line per step
};

void convert_to_gguf(const ImportedModel& m, const ConvertOptions& o);

}  // namespace bitnetc
