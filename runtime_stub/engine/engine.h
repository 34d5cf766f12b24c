// The engine: several sequences generated at once over one forward pass, each in a slot
// of its own (a KV cache), with the prompt chunks and next tokens of every active
// sequence packed into each forward step (continuous batching, as llama-server's slots
// do). A sequence's tokens and logits are those of generating it alone: the forward
// step computes every row exactly as a solo run does (forward.h), and each sequence
// samples with its own seeded sampler.
//
// The Scheduler owns the forward pass while it runs: requests are submitted from any
// thread, join a free slot between two steps (or wait in a queue), and leave when they
// end or are cancelled (a client that went away frees its slot at the next step). Its
// callbacks (a request's streamed text, its end) run on the thread that runs it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "forward.h"
#include "generate.h"
#include "platform.h"
#include "tokenizer.h"

namespace bitnetc::rt {

struct SequenceRequest {
  std::string prompt;
  // The prompt as tokens instead (BOS included as wanted; a chat rendered with its
  // control tokens): used when not empty.
  std::vector<int32_t> prompt_tokens;
  // n_predict, n_ctx, sampling, stop tokens, parse_special, truncate_prompt, on_logits,
  // lookup (drafts fed in the step's rows: forward_all is not used); the single-sequence
  // fast paths (forward_argmax, forward_top_k) are not used.
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
  // Held from each step's forward call until its logits are sampled, when the forward
  // pass is shared with callers outside the scheduler (the C API's streams and sessions
  // take it for theirs); null: the scheduler's alone.
  Mutex* forward_lock = nullptr;
  // Called as each sequence ends, with its index in the requests (generate_all).
  std::function<void(size_t index, const Generation& g)> on_finished;
};

// Generates every request, `slots` at a time, admitting the next request into a slot as
// soon as one frees up. Returns the generations in request order. A request whose
// prompt cannot be fed (too long, invalid UTF-8) throws before anything runs; the error
// names the request's index.
std::vector<Generation> generate_all(Forward& forward, const Tokenizer& tok,
                                     const std::vector<SequenceRequest>& requests, const EngineOptions& options);

class Scheduler {
 public:
  // How a request ended: its generation, and whether it was cancelled (or the scheduler
  // stopped) before it ended by itself.
  using Done = std::function<void(Generation& g, bool cancelled)>;
  struct Stats {
    int active = 0;     // requests in slots
    size_t queued = 0;  // requests waiting for one
    uint64_t submitted = 0, finished = 0, cancelled = 0;
    uint64_t prompt_tokens = 0;     // fed, over every request so far
    uint64_t generated_tokens = 0;  // sampled and kept
    uint64_t steps = 0;             // forward steps
    uint64_t drafted = 0, accepted = 0;  // lookup decoding: draft tokens fed, and kept
  };

  // Checks the options against the forward pass (throws std::invalid_argument).
  Scheduler(Forward& forward, const Tokenizer& tok, EngineOptions options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request (any thread) and returns its id. The prompt is tokenized here: a
  // prompt that cannot be fed throws (GenerateError, TokenizerError) and nothing is
  // queued. `done` is called once when the request ends.
  uint64_t submit(SequenceRequest request, Done done);
  // Ends a request (any thread): a queued one leaves the queue, a running one its slot
  // at the next step; its `done` is called with cancelled = true. Unknown ids are ignored.
  void cancel(uint64_t id);

  // Runs forward steps until no request is active or queued.
  void run_until_idle();
  // Runs forward steps, waiting for requests when idle, until stop(); the requests still
  // queued or running then end as cancelled.
  void run_until_stopped();
  void stop();  // any thread

  Stats stats() const;  // any thread

 private:
  struct Pending;
  struct Active;
  // One forward step over the active slots (after admitting queued requests); false when
  // there was nothing to run.
  bool step();
  bool sample_rows(Active& a, std::span<const float> logits, size_t n_vocab);
  void admit();
  void end(Active& a, bool cancelled);

  Forward& forward_;
  const Tokenizer& tok_;
  EngineOptions o_;
  mutable Mutex mutex_;  // guards queue_, cancelled_, stopping_, stats_, next_id_
  CondVar wake_;
  std::deque<std::unique_ptr<Pending>> queue_;
  std::vector<uint64_t> cancelled_;
  bool stopping_ = false;
  uint64_t next_id_ = 1;
  Stats stats_;
  std::vector<std::unique_ptr<Active>> slots_;  // the scheduler thread's own
  std::vector<BatchRow> rows_;
  std::vector<Active*> logit_owner_;
};

}  // namespace bitnetc::rt
