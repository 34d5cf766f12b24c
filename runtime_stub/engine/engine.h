// The engine: several sequences generated at once over one forward pass, each in a slot
// of its own (a KV cache), with the prompt chunks and next tokens of every active
// sequence packed into each forward step (continuous batching, as llama-server's slots
// do). A sequence's tokens and logits are those of generating it alone: the forward
// step computes every row exactly as a solo run does (forward.h), and each sequence
// samples with its own seeded sampler.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "forward.h"
#include "generate.h"
#include "tokenizer.h"

namespace bitnetc::rt {

struct SequenceRequest {
  std::string prompt;
  // n_predict, n_ctx, sampling, stop tokens, parse_special, truncate_prompt, on_logits;
  // the single-sequence fast paths (forward_argmax, forward_top_k) are not used.
  GenerateOptions options;
  std::function<bool(std::string_view)> on_text;  // this sequence's text as it comes
};

struct EngineOptions {
  int slots = 4;       // sequences at once (at most the forward pass's max_sequences())
  int step_rows = 64;  // rows per forward step at most: every decoding sequence's next
                       // token, then prompt tokens of sequences still reading theirs
  // The sequence ids the slots use (empty: 0 .. slots - 1): a caller holding other
  // sequences' caches (the C API's streams and sessions) keeps them out.
  std::vector<int32_t> sequences;
  // Called as each sequence ends, with its index in the requests (optional).
  std::function<void(size_t index, const Generation& g)> on_finished;
};

// Generates every request, `slots` at a time, admitting the next request into a slot as
// soon as one frees up. Returns the generations in request order. A request whose
// prompt cannot be fed (too long, invalid UTF-8) throws before anything runs; the error
// names the request's index.
std::vector<Generation> generate_all(Forward& forward, const Tokenizer& tok,
                                     const std::vector<SequenceRequest>& requests, const EngineOptions& options);

}  // namespace bitnetc::rt
