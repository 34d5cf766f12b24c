#include "sampler.h"

#include <algorithm>
#include <cmath>

#include "numerics.h"

namespace bitnetc::rt {

Rng::Rng(uint64_t seed) {
  uint64_t x = seed;
  for (auto& s : s_) {  // splitmix64 fills the state
    uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    s = z ^ (z >> 31);
  }
}

uint64_t Rng::next() {  // xoshiro256**
  const auto rotl = [](uint64_t v, int k) { return (v << k) | (v >> (64 - k)); };
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

int32_t argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
  return best;
}

namespace {

// Softmax over the candidates (sorted, most likely first), in double.
template <typename Candidate>
std::vector<double> probabilities(const std::vector<Candidate>& c) {
  std::vector<double> p(c.size());
  double sum = 0;
  for (size_t i = 0; i < c.size(); ++i) sum += p[i] = std::exp(static_cast<double>(c[i].logit) - c[0].logit);
  for (double& x : p) x /= sum;
  return p;
}

}  // namespace

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  std::vector<Candidate> c(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) c[i] = {static_cast<int32_t>(i), logits[i]};

  const RepeatPenalty penalty = repeat_penalty(history);
  for (int32_t t : penalty.tokens)
    if (t >= 0 && t < static_cast<int32_t>(c.size())) c[t].logit = bitnetc_repeat_penalty(c[t].logit, penalty.penalty);
  if (p_.temperature <= 0) {
    std::vector<float> l(c.size());
    for (size_t i = 0; i < c.size(); ++i) l[i] = c[i].logit;
    return argmax(l);
  }

  // Most likely first; ties by lower id, so the order never depends on the sort. A
  // total order, so sorting only the top_k kept gives the same prefix as sorting all
  // (a full sort of a 128K vocabulary took ~7 ms a token).
  const auto before = [](const Candidate& a, const Candidate& b) { return more_likely(a.id, a.logit, b.id, b.logit); };
  if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < c.size()) {
    std::partial_sort(c.begin(), c.begin() + p_.top_k, c.end(), before);
    c.resize(static_cast<size_t>(p_.top_k));
  } else {
    std::sort(c.begin(), c.end(), before);
  }
  return sample_sorted(c);
}

std::vector<int32_t> top_k_ids(std::span<const float> logits, int k) {
  std::vector<int32_t> ids(logits.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
  const size_t keep = k > 0 ? std::min<size_t>(static_cast<size_t>(k), ids.size()) : ids.size();
  std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(keep), ids.end(),
                    [&](int32_t a, int32_t b) { return more_likely(a, logits[a], b, logits[b]); });
  ids.resize(keep);
  return ids;
}

RepeatPenalty Sampler::repeat_penalty(std::span<const int32_t> history) const {
  RepeatPenalty r;
  if (p_.repeat_penalty == 1.0f || p_.repeat_last_n == 0) return r;
  r.penalty = p_.repeat_penalty;
  const size_t n = p_.repeat_last_n < 0 ? history.size() : std::min<size_t>(history.size(), p_.repeat_last_n);
  r.tokens.assign(history.end() - static_cast<std::ptrdiff_t>(n), history.end());
  std::sort(r.tokens.begin(), r.tokens.end());
  r.tokens.erase(std::unique(r.tokens.begin(), r.tokens.end()), r.tokens.end());
  return r;
}

void apply_repeat_penalty(std::span<float> logits, const RepeatPenalty& p) {
  for (int32_t t : p.tokens)
    if (t >= 0 && static_cast<size_t>(t) < logits.size()) logits[t] = bitnetc_repeat_penalty(logits[t], p.penalty);
}

bool Sampler::samples_from_top_k(int max_k) const { return p_.temperature > 0 && p_.top_k > 0 && p_.top_k <= max_k; }

int32_t Sampler::sample_top_k(std::span<const int32_t> ids, std::span<const float> logits) {
  std::vector<Candidate> c(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) c[i] = {ids[i], logits[i]};
  return sample_sorted(c);
}

int32_t Sampler::sample_sorted(std::vector<Candidate>& c) {
  if (p_.top_p < 1.0f) {
    const auto p = probabilities(c);
    double cum = 0;
    size_t keep = 0;
    while (keep < c.size()) {
      cum += p[keep++];
      if (cum >= p_.top_p) break;
    }
    c.resize(std::max<size_t>(keep, 1));
  }
  if (p_.min_p > 0.0f) {
    const auto p = probabilities(c);
    size_t keep = 1;
    while (keep < c.size() && p[keep] >= p_.min_p * p[0]) ++keep;
    c.resize(keep);
  }
  for (auto& x : c) x.logit /= p_.temperature;
  const auto p = probabilities(c);
  const double u = rng_.uniform();
  double cum = 0;
  for (size_t i = 0; i < c.size(); ++i) {
    cum += p[i];
    if (u < cum) return c[i].id;
  }
  return c.back().id;  // u beyond the rounded total
}

}  // namespace bitnetc::rt
