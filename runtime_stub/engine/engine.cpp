#include "engine.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>

namespace bitnetc::rt {

namespace {

using clock = std::chrono::steady_clock;

double seconds(clock::time_point a, clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

bool contains(const std::vector<uint64_t>& ids, uint64_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

}  // namespace

// A submitted request: its prompt already tokenized (g), waiting in the queue.
struct Scheduler::Pending {
  uint64_t id = 0;
  SequenceRequest request;
  Generation g;
  Done done;
};

// A request in a slot: the prompt tokens fed so far, its generation and sampler.
struct Scheduler::Active {
  std::unique_ptr<Pending> p;
  int32_t sequence;  // the forward pass's sequence id (EngineOptions::sequences)
  std::unique_ptr<SequenceGeneration> seq;
  std::unique_ptr<Sampler> sampler;
  size_t prompt_fed = 0;
  int32_t pending = -1;        // a kept token still to be fed (-1: none)
  std::vector<int32_t> draft;  // lookup drafts fed after `pending` in this step
  clock::time_point started, prompt_done;
};

Scheduler::Scheduler(Forward& forward, const Tokenizer& tok, EngineOptions o)
    : forward_(forward), tok_(tok), o_(std::move(o)) {
  if (o_.slots < 1 || o_.slots > forward.max_sequences())
    throw std::invalid_argument("the engine was asked for " + std::to_string(o_.slots) +
                                " slots; this forward pass holds " + std::to_string(forward.max_sequences()) +
                                " sequences");
  if (!o_.sequences.empty() && o_.sequences.size() != static_cast<size_t>(o_.slots))
    throw std::invalid_argument("the engine was given " + std::to_string(o_.sequences.size()) + " sequences for " +
                                std::to_string(o_.slots) + " slots");
  if (o_.step_rows < o_.slots)
    throw std::invalid_argument("a step of " + std::to_string(o_.step_rows) + " rows cannot hold a token of each of " +
                                std::to_string(o_.slots) + " slots");
  slots_.resize(static_cast<size_t>(o_.slots));
}

Scheduler::~Scheduler() = default;

uint64_t Scheduler::submit(SequenceRequest request, Done done) {
  auto p = std::make_unique<Pending>();
  if (request.prompt_tokens.empty()) {
    p->g = start_generation(tok_, request.prompt, request.options);
  } else {
    p->g = start_generation(tok_, std::move(request.prompt_tokens), request.options);
    request.prompt_tokens.clear();
  }
  p->request = std::move(request);
  p->done = std::move(done);
  LockGuard<Mutex> lock(mutex_);
  const uint64_t id = p->id = next_id_++;
  ++stats_.submitted;
  queue_.push_back(std::move(p));
  stats_.queued = queue_.size();
  wake_.notify_all();
  return id;
}

void Scheduler::cancel(uint64_t id) {
  LockGuard<Mutex> lock(mutex_);
  cancelled_.push_back(id);
  wake_.notify_all();
}

void Scheduler::stop() {
  LockGuard<Mutex> lock(mutex_);
  stopping_ = true;
  wake_.notify_all();
}

Scheduler::Stats Scheduler::stats() const {
  LockGuard<Mutex> lock(mutex_);
  return stats_;
}

void Scheduler::end(Active& a, bool cancelled) {
  a.seq->finish();
  a.p->g.decode_seconds = seconds(a.prompt_done, clock::now());
  {
    LockGuard<Mutex> lock(mutex_);
    ++(cancelled ? stats_.cancelled : stats_.finished);
    stats_.generated_tokens += a.p->g.tokens.size();
    --stats_.active;
  }
  a.p->done(a.p->g, cancelled);
}

// Takes the cancellations, then queued requests into free slots (first free slot first,
// requests in the order they came). Callbacks run outside the lock.
void Scheduler::admit() {
  std::vector<uint64_t> cancelled;
  std::vector<std::unique_ptr<Pending>> dropped;
  std::vector<std::pair<size_t, std::unique_ptr<Pending>>> admitted;
  {
    LockGuard<Mutex> lock(mutex_);
    cancelled.swap(cancelled_);
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (contains(cancelled, (*it)->id)) {
        dropped.push_back(std::move(*it));
        it = queue_.erase(it);
        ++stats_.cancelled;
      } else {
        ++it;
      }
    }
    for (size_t s = 0; s < slots_.size(); ++s) {
      const bool free = !slots_[s] || contains(cancelled, slots_[s]->p->id);
      if (!free || queue_.empty()) continue;
      admitted.emplace_back(s, std::move(queue_.front()));
      queue_.pop_front();
      ++stats_.active;
    }
    stats_.queued = queue_.size();
  }
  for (auto& p : dropped) p->done(p->g, true);
  for (auto& slot : slots_)
    if (slot && contains(cancelled, slot->p->id)) {
      end(*slot, true);
      slot.reset();
    }
  for (auto& [s, p] : admitted) {
    auto a = std::make_unique<Active>();
    a->sequence = o_.sequences.empty() ? static_cast<int32_t>(s) : o_.sequences[s];
    a->p = std::move(p);
    a->seq = std::make_unique<SequenceGeneration>(tok_, a->p->request.options, a->p->g, a->p->request.on_text);
    a->sampler = std::make_unique<Sampler>(a->p->request.options.sampling);
    a->started = clock::now();
    if (!a->seq->wants_token()) {  // -n 0: nothing to generate, nothing to feed
      a->prompt_done = a->started;
      end(*a, false);
      continue;
    }
    slots_[s] = std::move(a);
  }
}

// Samples a sequence's logits rows of a step, in order: the one after its prompt or its
// pending token, then one after each draft while the drafts equal what was sampled (as
// generate()'s lookup loop does). Returns false when the sequence ended.
bool Scheduler::sample_rows(Active& a, std::span<const float> logits, size_t n_vocab) {
  const GenerateOptions& ro = a.p->request.options;
  auto sample = [&](size_t row) {
    const std::span<const float> l = logits.subspan(row * n_vocab, n_vocab);
    if (ro.on_logits) ro.on_logits(l);
    return a.sampler->sample(l, a.seq->history());
  };
  int32_t next = sample(0);
  size_t i = 0;
  while (i < a.draft.size() && next == a.draft[i]) {
    if (!a.seq->take(next)) return false;
    ++a.p->g.accepted;
    ++i;
    next = sample(i);
  }
  a.draft.clear();
  a.pending = a.seq->take(next) ? next : -1;
  return a.pending >= 0;
}

bool Scheduler::step() {
  admit();
  // Decode rows first (a sequence past its prompt: its pending token, then its lookup
  // drafts, as many as the step has room for), then prompt rows in slot order.
  rows_.clear();
  logit_owner_.clear();
  int64_t draft_budget = o_.step_rows;
  for (auto& slot : slots_)
    if (slot && slot->pending >= 0) --draft_budget;
  uint64_t drafted = 0;
  for (auto& slot : slots_)
    if (slot && slot->pending >= 0) {
      const int32_t pos = slot->seq->next_pos() - 1;
      slot->draft = slot->seq->draft(draft_budget);  // GenerateOptions::lookup
      draft_budget -= static_cast<int64_t>(slot->draft.size());
      drafted += slot->draft.size();
      slot->p->g.drafted += static_cast<int32_t>(slot->draft.size());
      rows_.push_back({slot->sequence, pos, slot->pending, true});
      for (size_t i = 0; i < slot->draft.size(); ++i)
        rows_.push_back({slot->sequence, pos + 1 + static_cast<int32_t>(i), slot->draft[i], true});
      logit_owner_.push_back(slot.get());
    }
  size_t prompt_rows = 0;
  for (auto& slot : slots_) {
    if (!slot || slot->pending >= 0) continue;
    const std::vector<int32_t>& prompt = slot->p->g.prompt_tokens;
    while (slot->prompt_fed < prompt.size() && static_cast<int>(rows_.size()) < o_.step_rows) {
      const bool last = slot->prompt_fed + 1 == prompt.size();
      rows_.push_back({slot->sequence, static_cast<int32_t>(slot->prompt_fed), prompt[slot->prompt_fed], last});
      if (last) logit_owner_.push_back(slot.get());
      ++slot->prompt_fed;
      ++prompt_rows;
    }
  }
  if (rows_.empty()) return false;
  std::optional<LockGuard<Mutex>> forward_held;
  if (o_.forward_lock) forward_held.emplace(*o_.forward_lock);
  const std::span<const float> logits = forward_.step(rows_);
  {
    LockGuard<Mutex> lock(mutex_);
    ++stats_.steps;
    stats_.prompt_tokens += prompt_rows;
    stats_.drafted += drafted;
  }
  if (logit_owner_.empty()) return true;  // only prompt rows, none a prompt's last
  const auto now = clock::now();
  size_t logit_rows = 0;
  for (const Active* a : logit_owner_) logit_rows += 1 + a->draft.size();
  const size_t n_vocab = logits.size() / logit_rows;
  size_t row = 0;
  for (Active* owner : logit_owner_) {
    Active& a = *owner;
    if (a.pending < 0) {  // the prompt's last row
      a.prompt_done = now;
      a.p->g.prompt_seconds = seconds(a.started, now);
    }
    const size_t n_rows = 1 + a.draft.size();
    const int32_t accepted_before = a.p->g.accepted;
    const bool going = sample_rows(a, logits.subspan(row * n_vocab, n_rows * n_vocab), n_vocab);
    row += n_rows;
    if (a.p->g.accepted != accepted_before) {
      LockGuard<Mutex> lock(mutex_);
      stats_.accepted += static_cast<uint64_t>(a.p->g.accepted - accepted_before);
    }
    if (!going) {
      const auto slot = std::find_if(slots_.begin(), slots_.end(), [&](const auto& s) { return s.get() == &a; });
      end(a, false);
      slot->reset();
    }
  }
  return true;
}

void Scheduler::run_until_idle() {
  for (;;) {
    if (step()) continue;
    LockGuard<Mutex> lock(mutex_);
    if (queue_.empty()) return;  // every slot is free too: step() found no rows
  }
}

void Scheduler::run_until_stopped() {
  for (;;) {
    bool ran = false;
    try {
      ran = step();
    } catch (const std::exception& e) {
      // A step that failed (out of memory for a KV cache, say) ends the requests in it;
      // the scheduler goes on serving the others.
      std::fprintf(stderr, "engine: a forward step failed (%s); its requests end\n", e.what());
      for (auto& slot : slots_)
        if (slot) {
          end(*slot, true);
          slot.reset();
        }
      ran = true;
    }
    UniqueLock<Mutex> lock(mutex_);
    if (stopping_) break;
    if (!ran) wake_.wait(lock, [&] { return stopping_ || !queue_.empty() || !cancelled_.empty(); });
    if (stopping_) break;
  }
  // Stopped: everything still queued or running ends where it is.
  std::deque<std::unique_ptr<Pending>> queued;
  {
    LockGuard<Mutex> lock(mutex_);
    queued.swap(queue_);
    stats_.cancelled += queued.size();
    stats_.queued = 0;
  }
  for (auto& p : queued) p->done(p->g, true);
  for (auto& slot : slots_)
    if (slot) {
      end(*slot, true);
      slot.reset();
    }
}

std::vector<Generation> generate_all(Forward& forward, const Tokenizer& tok,
                                     const std::vector<SequenceRequest>& requests, const EngineOptions& o) {
  Scheduler scheduler(forward, tok, o);
  std::vector<Generation> out(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    try {
      scheduler.submit(requests[i], [&out, &o, i](Generation& g, bool) {
        out[i] = std::move(g);
        if (o.on_finished) o.on_finished(i, out[i]);
      });
    } catch (const std::exception& e) {
      throw GenerateError("prompt " + std::to_string(i) + ": " + e.what());
    }
  }
  scheduler.run_until_idle();
  return out;
}

}  // namespace bitnetc::rt
