#include "engine.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>

namespace bitnetc::rt {

namespace {

using clock = std::chrono::steady_clock;

double seconds(clock::time_point a, clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// A request in a slot: its generation, the prompt tokens fed so far, and its sampler.
struct Active {
  size_t index;
  int32_t slot;      // index into the slots
  int32_t sequence;  // the forward pass's sequence id (EngineOptions::sequences)
  Generation* g;
  std::unique_ptr<SequenceGeneration> seq;
  std::unique_ptr<Sampler> sampler;
  size_t prompt_fed = 0;
  int32_t pending = -1;  // a kept token still to be fed (-1: none)
  clock::time_point started, prompt_done;
};

}  // namespace

std::vector<Generation> generate_all(Forward& forward, const Tokenizer& tok,
                                     const std::vector<SequenceRequest>& requests, const EngineOptions& o) {
  if (o.slots < 1 || o.slots > forward.max_sequences())
    throw std::invalid_argument("the engine was asked for " + std::to_string(o.slots) +
                                " slots; this forward pass holds " + std::to_string(forward.max_sequences()) +
                                " sequences");
  if (!o.sequences.empty() && o.sequences.size() != static_cast<size_t>(o.slots))
    throw std::invalid_argument("the engine was given " + std::to_string(o.sequences.size()) + " sequences for " +
                                std::to_string(o.slots) + " slots");
  if (o.step_rows < o.slots)
    throw std::invalid_argument("a step of " + std::to_string(o.step_rows) + " rows cannot hold a token of each of " +
                                std::to_string(o.slots) + " slots");
  std::vector<Generation> out;
  out.reserve(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    try {
      out.push_back(start_generation(tok, requests[i].prompt, requests[i].options));
    } catch (const std::exception& e) {
      throw GenerateError("prompt " + std::to_string(i) + ": " + e.what());
    }
  }

  std::vector<std::optional<Active>> slots(static_cast<size_t>(o.slots));
  size_t next_request = 0, finished = 0;
  std::vector<BatchRow> rows;
  std::vector<Active*> logit_owner;  // per row with logits: the sequence that samples from them
  auto finish = [&](Active& a) {
    a.seq->finish();
    a.g->decode_seconds = seconds(a.prompt_done, clock::now());
    if (o.on_finished) o.on_finished(a.index, *a.g);
    ++finished;
  };
  while (finished < requests.size()) {
    // Admit waiting requests into free slots.
    for (size_t s = 0; s < slots.size() && next_request < requests.size(); ++s) {
      if (slots[s]) continue;
      const size_t i = next_request++;
      Active a{i,
               static_cast<int32_t>(s),
               o.sequences.empty() ? static_cast<int32_t>(s) : o.sequences[s],
               &out[i],
               nullptr,
               nullptr};
      a.seq = std::make_unique<SequenceGeneration>(tok, requests[i].options, out[i], requests[i].on_text);
      a.sampler = std::make_unique<Sampler>(requests[i].options.sampling);
      a.started = clock::now();
      if (!a.seq->wants_token()) {  // -n 0: nothing to generate, nothing to feed
        a.prompt_done = a.started;
        finish(a);
        continue;
      }
      slots[s] = std::move(a);
    }
    // Decode rows first (one per sequence past its prompt), then prompt rows in slot order.
    rows.clear();
    logit_owner.clear();
    for (auto& slot : slots)
      if (slot && slot->pending >= 0) {
        rows.push_back({slot->sequence, slot->seq->next_pos() - 1, slot->pending, true});
        logit_owner.push_back(&*slot);
      }
    for (auto& slot : slots) {
      if (!slot || slot->pending >= 0) continue;
      const std::vector<int32_t>& prompt = slot->g->prompt_tokens;
      while (slot->prompt_fed < prompt.size() && static_cast<int>(rows.size()) < o.step_rows) {
        const bool last = slot->prompt_fed + 1 == prompt.size();
        rows.push_back({slot->sequence, static_cast<int32_t>(slot->prompt_fed), prompt[slot->prompt_fed], last});
        if (last) logit_owner.push_back(&*slot);
        ++slot->prompt_fed;
      }
    }
    if (rows.empty()) break;  // every admitted sequence ended while being admitted
    const std::span<const float> logits = forward.step(rows);
    if (logit_owner.empty()) continue;  // only prompt rows, none a prompt's last
    const auto now = clock::now();
    const size_t n_vocab = logits.size() / logit_owner.size();
    for (size_t i = 0; i < logit_owner.size(); ++i) {
      Active& a = *logit_owner[i];
      if (a.pending < 0) {  // the prompt's last row
        a.prompt_done = now;
        a.g->prompt_seconds = seconds(a.started, now);
      }
      const std::span<const float> row = logits.subspan(i * n_vocab, n_vocab);
      const GenerateOptions& ro = requests[a.index].options;
      if (ro.on_logits) ro.on_logits(row);
      const int32_t next = a.sampler->sample(row, a.seq->history());
      a.pending = a.seq->take(next) ? next : -1;
      if (a.pending < 0) {
        finish(a);
        slots[static_cast<size_t>(a.slot)].reset();
      }
    }
  }
  return out;
}

}  // namespace bitnetc::rt
