// The generation loop shared by `bitnetc run` (over the reference interpreter) and the
// compiled outputs (over their plan): tokenize, feed the prompt, sample, stream text.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "sampler.h"
#include "tokenizer.h"

namespace bitnetc::rt {

class GenerateError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct GenerateOptions {
  int32_t n_predict = 64;  // tokens to generate at most
  int64_t n_ctx = 0;       // context (KV cache) length
  SamplerParams sampling;
  std::vector<int32_t> stop_tokens;  // generation ends when one is sampled (not printed)
  bool parse_special = false;        // special tokens written in the prompt
};

struct Generation {
  std::vector<int32_t> prompt_tokens;  // with BOS
  std::vector<int32_t> tokens;         // generated (stop token excluded)
  std::string text;                    // generated text only
  bool stopped = false;                // a stop token ended it
  double prompt_seconds = 0;           // feeding the prompt (prefill)
  double decode_seconds = 0;           // generating (sampling included)
};

// `forward(tokens, pos)` feeds tokens at positions pos, pos+1, ... and returns the
// logits after the last one (the prompt comes in one call, each generated token in one). `on_text` receives
// text as it becomes printable (never a split UTF-8 character) and returns false to stop
// generating. Throws GenerateError for a prompt longer than the context, TokenizerError
// for invalid UTF-8.
using ForwardFn = std::function<std::span<const float>(std::span<const int32_t> tokens, int32_t pos)>;
Generation generate(const Tokenizer& tok, const ForwardFn& forward, std::string_view prompt,
                    const GenerateOptions& options, const std::function<bool(std::string_view)>& on_text = {});

}  // namespace bitnetc::rt
