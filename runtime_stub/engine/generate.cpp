#include "generate.h"

#include <algorithm>
#include <chrono>

namespace bitnetc::rt {

std::vector<std::pair<int32_t, float>> top_logits(std::span<const float> logits, int k) {
  std::vector<int32_t> ids(logits.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
  const size_t n = std::min(ids.size(), static_cast<size_t>(std::max(k, 0)));
  std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(n), ids.end(),
                    [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  std::vector<std::pair<int32_t, float>> top;
  for (size_t i = 0; i < n; ++i) top.emplace_back(ids[i], logits[ids[i]]);
  return top;
}

Generation start_generation(const Tokenizer& tok, std::string_view prompt, const GenerateOptions& o) {
  return start_generation(tok, tok.encode(prompt, tok.vocab().add_bos, o.parse_special), o);
}

Generation start_generation(const Tokenizer& tok, std::vector<int32_t> prompt_tokens, const GenerateOptions& o) {
  Generation g;
  g.prompt_tokens = std::move(prompt_tokens);
  for (int32_t t : g.prompt_tokens)
    if (t < 0 || t >= static_cast<int32_t>(tok.vocab().tokens.size()))
      throw GenerateError("token id " + std::to_string(t) + " is not in the vocabulary");
  if (g.prompt_tokens.empty()) throw GenerateError("the prompt is empty and the vocabulary has no BOS token");
  if (o.truncate_prompt && static_cast<int64_t>(g.prompt_tokens.size()) > o.n_ctx) {
    const int64_t room = std::min<int64_t>(o.n_predict, o.n_ctx / 2);
    const int64_t keep_bos = g.prompt_tokens[0] == tok.vocab().bos ? 1 : 0;
    const int64_t keep_tail = std::max<int64_t>(1, o.n_ctx - room - keep_bos);
    const auto first_kept = g.prompt_tokens.end() - keep_tail;
    g.prompt_tokens_dropped = static_cast<size_t>(first_kept - g.prompt_tokens.begin() - keep_bos);
    g.prompt_tokens.erase(g.prompt_tokens.begin() + keep_bos, first_kept);
  }
  const auto n_prompt = static_cast<int64_t>(g.prompt_tokens.size());
  if (n_prompt > o.n_ctx)
    throw GenerateError("the prompt is " + std::to_string(n_prompt) + " tokens long but the context holds " +
                        std::to_string(o.n_ctx));
  return g;
}

SequenceGeneration::SequenceGeneration(const Tokenizer& tok, const GenerateOptions& o, Generation& g,
                                       const std::function<bool(std::string_view)>& on_text)
    : tok_(tok),
      o_(o),
      g_(g),
      on_text_(on_text),
      history_(g.prompt_tokens),
      prev_(g.prompt_tokens.back()),
      done_(o.n_predict <= 0) {}

bool SequenceGeneration::take(int32_t next) {
  if (std::find(o_.stop_tokens.begin(), o_.stop_tokens.end(), next) != o_.stop_tokens.end()) {
    g_.stopped = true;
    g_.stop_token = next;
    return !(done_ = true);
  }
  g_.tokens.push_back(next);
  history_.push_back(next);
  std::string bytes = tok_.token_bytes(next);
  // SentencePiece's dummy prefix: the first word after BOS loses its leading space.
  if (tok_.vocab().kind == VocabKind::Spm && tok_.vocab().add_space_prefix && prev_ == tok_.vocab().bos &&
      !bytes.empty() && bytes[0] == ' ')
    bytes.erase(0, 1);
  const std::string text = stream_.push(bytes);
  g_.text += text;
  prev_ = next;
  if (on_text_ && !text.empty() && !on_text_(text)) done_ = true;  // the caller asked to stop
  if (next_pos() > o_.n_ctx) done_ = true;                         // the context is full
  if (static_cast<int64_t>(g_.tokens.size()) >= o_.n_predict) done_ = true;
  return !done_;
}

std::vector<int32_t> SequenceGeneration::draft(int64_t cap) const {
  const int32_t pos = next_pos() - 1;  // where the last kept token is fed
  const int64_t room = std::min<int64_t>(o_.n_ctx - 1 - pos, o_.n_predict - static_cast<int64_t>(g_.tokens.size()));
  return lookup_draft(history_, static_cast<int32_t>(std::clamp<int64_t>(std::min<int64_t>(o_.lookup, room), 0, cap)));
}

void SequenceGeneration::finish() {
  done_ = true;
  const std::string rest = stream_.flush();
  g_.text += rest;
  if (on_text_ && !rest.empty()) on_text_(rest);
}

// A lone token recurs too often to draft from: on TinyStories' greedy stories drafts after
// 1-grams too kept 21 % (373 of 1791), after 3- and 2-grams only 38 % (310 of 807).
constexpr int64_t kMinNgram = 2;

std::vector<int32_t> lookup_draft(std::span<const int32_t> history, int32_t max) {
  const auto len = static_cast<int64_t>(history.size());
  for (int64_t n = std::min<int64_t>(3, len - 1); n >= kMinNgram && max > 0; --n) {
    const auto suffix = history.subspan(static_cast<size_t>(len - n));
    for (int64_t i = len - n - 1; i >= 0; --i)  // the latest earlier occurrence
      if (std::equal(suffix.begin(), suffix.end(), history.begin() + i)) {
        const int64_t from = i + n, to = std::min<int64_t>(len, from + max);
        return {history.begin() + from, history.begin() + to};
      }
  }
  return {};
}

namespace {

// generate()'s loop with lookup drafting (GenerateOptions::lookup): `logits` are those
// after the prompt.
void generate_with_lookup(const GenerateOptions& o, Generation& g, SequenceGeneration& seq, Sampler& sampler,
                          std::span<const float> logits) {
  std::vector<float> kept;  // a step's logits, kept while its positions are sampled
  int32_t next = 0;
  auto sample = [&](std::span<const float> l) {
    if (o.on_logits) o.on_logits(l);
    return sampler.sample(l, seq.history());
  };
  next = sample(logits);
  while (seq.take(next)) {
    const int32_t pos = seq.next_pos() - 1;  // where `next` is fed
    std::vector<int32_t> step{next};
    const std::vector<int32_t> draft = seq.draft();
    step.insert(step.end(), draft.begin(), draft.end());
    const std::span<const float> all = o.forward_all(step, pos);
    kept.assign(all.begin(), all.end());
    g.drafted += static_cast<int32_t>(draft.size());
    const size_t n_vocab = kept.size() / step.size();
    size_t i = 0;
    next = sample(std::span<const float>(kept).subspan(0, n_vocab));
    // Each draft that equals the token sampled before it is that token: keep it, and
    // sample the next position from the logits after it.
    while (i < draft.size() && next == draft[i]) {
      if (!seq.take(next)) return;
      ++g.accepted;
      ++i;
      next = sample(std::span<const float>(kept).subspan(i * n_vocab, n_vocab));
    }
  }
}

}  // namespace

Generation generate(const Tokenizer& tok, const ForwardFn& forward, std::string_view prompt, const GenerateOptions& o,
                    const std::function<bool(std::string_view)>& on_text) {
  Generation g = start_generation(tok, prompt, o);
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  // Greedy sampling needs only the chosen token; the forward pass may pick it itself.
  const bool argmax_only = o.forward_argmax && o.sampling.temperature <= 0 && !o.on_logits;
  // Top-k sampling needs only the k largest logits; the forward pass may select them.
  Sampler sampler(o.sampling);
  const bool top_k_only = !argmax_only && o.forward_top_k && !o.on_logits && sampler.samples_from_top_k(o.top_k_max);
  SequenceGeneration seq(tok, o, g, on_text);
  // Both apply the repetition penalty of the tokens so far themselves.
  std::span<const float> logits;
  int32_t greedy = 0;
  std::vector<int32_t> top_ids;
  std::vector<float> top_logits;
  bool have_top = false;
  auto feed = [&](std::span<const int32_t> tokens, int32_t at) {
    if (argmax_only) {
      greedy = o.forward_argmax(tokens, at, sampler.repeat_penalty(seq.history()));
      return;
    }
    have_top = top_k_only && o.forward_top_k(tokens, at, o.sampling.top_k, sampler.repeat_penalty(seq.history()),
                                             top_ids, top_logits);
    if (!have_top) logits = forward(tokens, at);
  };
  if (o.lookup > 0 && o.forward_all) {  // every position's logits: no device-side selection
    logits = forward(g.prompt_tokens, 0);
    const auto t1 = clock::now();
    g.prompt_seconds = std::chrono::duration<double>(t1 - t0).count();
    if (seq.wants_token()) generate_with_lookup(o, g, seq, sampler, logits);
    g.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
    seq.finish();
    return g;
  }
  feed(g.prompt_tokens, 0);
  const auto t1 = clock::now();
  g.prompt_seconds = std::chrono::duration<double>(t1 - t0).count();
  while (seq.wants_token()) {
    if (o.on_logits) o.on_logits(logits);
    const int32_t next = argmax_only ? greedy
                         : have_top  ? sampler.sample_top_k(top_ids, top_logits)
                                     : sampler.sample(logits, seq.history());
    if (seq.take(next)) feed(std::span<const int32_t>(&next, 1), seq.next_pos() - 1);
  }
  g.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  seq.finish();
  return g;
}

PulledGeneration::PulledGeneration(const Tokenizer& tok, ForwardFn forward, std::string_view prompt,
                                   GenerateOptions options)
    : tok_(tok),
      forward_(std::move(forward)),
      o_(std::move(options)),
      g_(start_generation(tok, prompt, o_)),
      sampler_(o_.sampling),
      on_text_([this](std::string_view t) {
        pieces_.emplace_back(t);
        return true;
      }),
      seq_(std::make_unique<SequenceGeneration>(tok_, o_, g_, on_text_)) {}

PulledGeneration::PulledGeneration(const Tokenizer& tok, ForwardFn forward, std::vector<int32_t> history, int32_t fed,
                                   GenerateOptions options)
    : tok_(tok),
      forward_(std::move(forward)),
      o_(std::move(options)),
      sampler_(o_.sampling),
      on_text_([this](std::string_view t) {
        pieces_.emplace_back(t);
        return true;
      }),
      fed_(fed) {
  if (fed < 0 || static_cast<size_t>(fed) >= history.size())
    throw std::logic_error("a continued generation needs a token still to feed");
  if (static_cast<int64_t>(history.size()) > o_.n_ctx)
    throw GenerateError("the sequence is " + std::to_string(history.size()) + " tokens long but the context holds " +
                        std::to_string(o_.n_ctx));
  g_.prompt_tokens = std::move(history);
  seq_ = std::make_unique<SequenceGeneration>(tok_, o_, g_, on_text_);
}

bool PulledGeneration::next(std::string& piece) {
  while (pieces_.empty() && !finished_) {
    if (stopped_ || !seq_->wants_token()) {
      seq_->finish();
      finished_ = true;
      break;
    }
    // The logits are copied: the forward pass's own are valid only until its next call,
    // and other generations may call it between two pieces of this one.
    auto keep = [&](std::span<const float> l) { logits_.assign(l.begin(), l.end()); };
    if (!fed_prompt_) {
      keep(forward_(std::span<const int32_t>(g_.prompt_tokens).subspan(static_cast<size_t>(fed_)), fed_));
      fed_prompt_ = true;
      continue;
    }
    const size_t n_vocab = logits_.size() / (1 + draft_.size());
    const int32_t next =
        sampler_.sample(std::span<const float>(logits_).subspan(row_ * n_vocab, n_vocab), seq_->history());
    if (row_ < draft_.size() && next == draft_[row_]) {  // a kept draft: the logits after it are at hand
      if (seq_->take(next)) {
        ++g_.accepted;
        ++row_;
      }
      continue;
    }
    draft_.clear();
    row_ = 0;
    if (!seq_->take(next)) continue;
    const int32_t pos = seq_->next_pos() - 1;  // where `next` is fed
    if (o_.lookup > 0 && o_.forward_all) {
      draft_ = seq_->draft();
      g_.drafted += static_cast<int32_t>(draft_.size());
      std::vector<int32_t> step{next};
      step.insert(step.end(), draft_.begin(), draft_.end());
      keep(o_.forward_all(step, pos));
    } else {
      keep(forward_(std::span<const int32_t>(&next, 1), pos));
    }
  }
  if (pieces_.empty()) return false;
  piece = std::move(pieces_.front());
  pieces_.erase(pieces_.begin());
  return true;
}

}  // namespace bitnetc::rt
