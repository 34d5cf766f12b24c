// Token sampling, specified exactly so that the same seed gives the same tokens on every
// target and compiler: a xoshiro256** generator seeded through splitmix64 (no std::
// distributions, whose output differs between standard libraries), and a fixed filter
// order: repetition penalty, top-k, top-p, min-p, temperature, then one draw.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace bitnetc::rt {

struct SamplerParams {
  float temperature = 0.8f;     // <= 0: greedy (argmax, lowest id on ties)
  int32_t top_k = 40;           // <= 0 or >= vocabulary: no limit
  float top_p = 0.95f;          // >= 1: no limit; 0 keeps only the most likely token
  float min_p = 0.05f;          // <= 0: no limit; keeps p >= min_p * p_max
  float repeat_penalty = 1.0f;  // 1: off; divides positive / multiplies negative logits
  int32_t repeat_last_n = 64;   // how many recent tokens the penalty looks at
  uint64_t seed = 0;
};

// A repetition penalty to apply to logits before sampling: `penalty` on the logits of
// `tokens` (distinct ids, ascending; empty when the penalty is off).
struct RepeatPenalty {
  float penalty = 1.0f;
  std::vector<int32_t> tokens;
};
// Applies it in place (ids outside the logits are skipped).
void apply_repeat_penalty(std::span<float> logits, const RepeatPenalty& p);

class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  double uniform();  // [0, 1), 53 random bits
 private:
  uint64_t s_[4];
};

class Sampler {
 public:
  explicit Sampler(const SamplerParams& p) : p_(p), rng_(p.seed) {}
  // `history`: tokens so far (prompt and generated), for the repetition penalty.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);
  // The penalty sample() applies to the logits given this history (empty when off).
  RepeatPenalty repeat_penalty(std::span<const int32_t> history) const;
  // The same draw from only the top_k largest logits after repeat_penalty(history)
  // (ids and logits, largest first, lower ids first among equals): what sample() keeps
  // after its top-k cut, so the token is the one sample() would give.
  int32_t sample_top_k(std::span<const int32_t> ids, std::span<const float> logits);
  // Whether sample_top_k can stand in for sample(): a top-k of at most `max_k`.
  bool samples_from_top_k(int max_k) const;

 private:
  struct Candidate {
    int32_t id;
    float logit;
  };
  int32_t sample_sorted(std::vector<Candidate>& c);  // after the top-k cut
  SamplerParams p_;
  Rng rng_;
};

int32_t argmax(std::span<const float> logits);  // lowest id on ties
// Whether (id a, logit la) comes before (id b, logit lb) in the sampler's order: larger
// logits first, lower ids first among equals (a total order, so sorting only a prefix
// never depends on the sort).
inline bool more_likely(int32_t a, float la, int32_t b, float lb) { return la != lb ? la > lb : a < b; }
// The ids of the k largest logits in that order (all of them when k covers the
// vocabulary): what the sampler keeps after its top-k cut, and what a GPU selects.
std::vector<int32_t> top_k_ids(std::span<const float> logits, int k);

}  // namespace bitnetc::rt
