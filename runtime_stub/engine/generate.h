// The generation loop shared by `bitnetc run` (over the reference interpreter) and the
// compiled outputs (over their plan): tokenize, feed the prompt, sample, stream text.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
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
  // A prompt longer than the context: an error, or (when set) cut to its BOS and last
  // tokens, leaving room for min(n_predict, n_ctx / 2) generated ones.
  bool truncate_prompt = false;
  // Called with the logits before each token is sampled (verify compares them).
  std::function<void(std::span<const float>)> on_logits;
  // Like `forward` but returning the greedy token only, after the repetition penalty
  // (a GPU picks it on the device). Used when set, sampling is greedy, and on_logits is
  // unset.
  std::function<int32_t(std::span<const int32_t> tokens, int32_t pos, const RepeatPenalty& penalty)> forward_argmax;
  // Like `forward` but returning only the k largest logits after the repetition penalty
  // and their ids (a GPU selects them on the device), or false to say "use forward".
  // Used when set, the sampler draws from at most top_k_max of them, and on_logits is
  // unset.
  std::function<bool(std::span<const int32_t> tokens, int32_t pos, int k, const RepeatPenalty& penalty,
                     std::vector<int32_t>& ids, std::vector<float>& logits)>
      forward_top_k;
  int top_k_max = 0;
  // Lookup (prompt n-gram) drafting: up to `lookup` tokens that followed an earlier
  // occurrence of the context's last tokens (lookup_draft) are fed with the sampled token
  // in one step, `forward_all` giving the logits after each; each position is sampled in
  // order from its logits with the same sampler, and drafts are kept while they equal the
  // sampled token. The tokens are the same as without it, as is the random stream: the
  // logits of a step are those of feeding its tokens one at a time (the batched executor).
  int32_t lookup = 0;
  std::function<std::span<const float>(std::span<const int32_t> tokens, int32_t pos)> forward_all;
};

// The most drafts `lookup` takes (--lookup, the server's and the C API's field): one
// step's rows, past which a draft is rarely all kept.
constexpr int32_t kMaxLookup = 64;

// The draft lookup decoding feeds after the sampled token: the tokens that followed the
// latest earlier occurrence of the longest (3, then 2 token) n-gram ending `history`, at
// most `max` of them; empty when none recurs.
std::vector<int32_t> lookup_draft(std::span<const int32_t> history, int32_t max);

struct Generation {
  std::vector<int32_t> prompt_tokens;  // with BOS
  std::vector<int32_t> tokens;         // generated (stop token excluded)
  std::string text;                    // generated text only
  bool stopped = false;                // a stop token ended it
  int32_t stop_token = -1;             // which one
  size_t prompt_tokens_dropped = 0;    // by truncate_prompt
  double prompt_seconds = 0;           // feeding the prompt (prefill)
  double decode_seconds = 0;           // generating (sampling included)
  int32_t drafted = 0, accepted = 0;   // lookup decoding: draft tokens fed, and kept
};

// The tokens a prompt is fed as (BOS first when the vocabulary adds one, cut to fit the
// context when options.truncate_prompt allows): a Generation holding only prompt_tokens
// (and prompt_tokens_dropped). Throws GenerateError for a prompt longer than the context
// or an empty one without BOS, TokenizerError for invalid UTF-8.
Generation start_generation(const Tokenizer& tok, std::string_view prompt, const GenerateOptions& options);
// The same for a prompt already tokenized (a rendered chat, say).
Generation start_generation(const Tokenizer& tok, std::vector<int32_t> prompt_tokens, const GenerateOptions& options);

// One sequence's generation after its prompt, token by token: the one home of when a
// generation ends (a stop token, n_predict, a full context, on_text asking to stop) and
// of how tokens become streamed text. generate() and the engine (engine.h) both drive it.
class SequenceGeneration {
 public:
  // `g` holds the prompt (start_generation); `g`, `tok` and `on_text` must outlive this.
  SequenceGeneration(const Tokenizer& tok, const GenerateOptions& options, Generation& g,
                     const std::function<bool(std::string_view)>& on_text);
  // Whether another token is to be sampled.
  bool wants_token() const { return !done_; }
  // Takes the sampled token: a stop token ends the generation (not kept); else it is
  // kept, its text streamed. Returns true when it is to be fed (at next_pos() - 1) to
  // sample another; false when the generation ended with it.
  bool take(int32_t token);
  // The position the last kept token is fed at, plus one.
  int32_t next_pos() const { return static_cast<int32_t>(g_.prompt_tokens.size() + g_.tokens.size()); }
  // Tokens so far, prompt and generated (the repetition penalty's window).
  std::span<const int32_t> history() const { return history_; }
  // Lookup decoding's draft to feed after the last kept token (GenerateOptions::lookup):
  // at most `cap` tokens, none that could never be kept (past the context or n_predict).
  std::vector<int32_t> draft(int64_t cap = kMaxLookup) const;
  // Streams what the text decoder still holds (a split character at the end).
  void finish();

 private:
  const Tokenizer& tok_;
  const GenerateOptions& o_;
  Generation& g_;
  const std::function<bool(std::string_view)>& on_text_;
  std::vector<int32_t> history_;
  StreamDecoder stream_;
  int32_t prev_;
  bool done_;
};

// The k largest logits as (token id, logit), largest first (ties: lower id first).
std::vector<std::pair<int32_t, float>> top_logits(std::span<const float> logits, int k);

// `forward(tokens, pos)` feeds tokens at positions pos, pos+1, ... and returns the
// logits after the last one (the prompt comes in one call, each generated token in one). `on_text` receives
// text as it becomes printable (never a split UTF-8 character) and returns false to stop
// generating. Throws GenerateError for a prompt longer than the context, TokenizerError
// for invalid UTF-8.
using ForwardFn = std::function<std::span<const float>(std::span<const int32_t> tokens, int32_t pos)>;
Generation generate(const Tokenizer& tok, const ForwardFn& forward, std::string_view prompt,
                    const GenerateOptions& options, const std::function<bool(std::string_view)>& on_text = {});

// generate() a piece at a time, for callers that pull text (the C API's
// bitnet_stream_next): the same tokens and text as generate() with the same options
// (lookup drafting too, when options.lookup and options.forward_all are set).
class PulledGeneration {
 public:
  // Tokenizes the prompt (throws as start_generation does); feeds it on the first next().
  PulledGeneration(const Tokenizer& tok, ForwardFn forward, std::string_view prompt, GenerateOptions options);
  // Continues a sequence whose KV cache holds the first `fed` of `history` already (a
  // session): feeds the rest of it, then generates (history must be longer than fed).
  PulledGeneration(const Tokenizer& tok, ForwardFn forward, std::vector<int32_t> history, int32_t fed,
                   GenerateOptions options);
  // The next printable piece of text, or false when the generation has ended and every
  // piece was given. Runs the forward pass until a piece is printable.
  bool next(std::string& piece);
  // Ends the generation now: the next next() gives what the decoder still holds, then false.
  void stop() { stopped_ = true; }
  const Generation& generation() const { return g_; }

 private:
  const Tokenizer& tok_;
  ForwardFn forward_;
  GenerateOptions o_;
  Generation g_;
  Sampler sampler_;
  std::vector<std::string> pieces_;  // printable, not yet given
  std::function<bool(std::string_view)> on_text_;
  std::unique_ptr<SequenceGeneration> seq_;
  std::vector<float> logits_;   // after each token of the last step fed
  std::vector<int32_t> draft_;  // lookup drafts fed in the last step, after its first token
  size_t row_ = 0;              // the row of logits_ the next token is sampled from
  int32_t fed_ = 0;             // prompt tokens already in the KV cache
  bool fed_prompt_ = false, finished_ = false, stopped_ = false;
};

}  // namespace bitnetc::rt
