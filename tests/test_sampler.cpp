// The sampler: exact generator output, each filter, and the edge cases.
#include <gtest/gtest.h>

#include <cmath>

#include "generate.h"
#include "sampler.h"

using namespace bitnetc::rt;

namespace {

SamplerParams plain(float temp = 1.0f) {
  SamplerParams p;
  p.temperature = temp;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = 1234;
  return p;
}

std::vector<int> histogram(const SamplerParams& p, const std::vector<float>& logits, int draws) {
  Sampler s(p);
  std::vector<int> h(logits.size());
  for (int i = 0; i < draws; ++i) h[s.sample(logits, {})]++;
  return h;
}

}  // namespace

TEST(Rng, IsXoshiro256StarStarSeededBySplitMix64) {
  // Pinned outputs: a change here changes every seeded generation on every target.
  Rng r(0);
  const uint64_t first = r.next(), second = r.next();
  Rng again(0);
  EXPECT_EQ(again.next(), first);
  EXPECT_EQ(again.next(), second);
  EXPECT_EQ(first, 0x99EC5F36CB75F2B4ull);
  EXPECT_EQ(second, 0xBF6E1F784956452Aull);
  Rng u(7);
  for (int i = 0; i < 10000; ++i) {
    const double x = u.uniform();
    ASSERT_GE(x, 0.0);
    ASSERT_LT(x, 1.0);
  }
}

TEST(Sampler, TemperatureZeroIsGreedyWithLowestIdOnTies) {
  Sampler s(plain(0.0f));
  EXPECT_EQ(s.sample(std::vector<float>{1, 3, 3, 2}, {}), 1);
  EXPECT_EQ(argmax(std::vector<float>{5, 5, 5}), 0);
}

TEST(Sampler, FollowsTheDistribution) {
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  const auto h = histogram(plain(), logits, 20000);
  EXPECT_NEAR(h[0] / 20000.0, 0.5, 0.02);
  EXPECT_NEAR(h[1] / 20000.0, 0.3, 0.02);
  EXPECT_NEAR(h[2] / 20000.0, 0.2, 0.02);
}

TEST(Sampler, TopKTopPMinP) {
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  auto p = plain();
  p.top_k = 2;
  EXPECT_EQ(histogram(p, logits, 5000)[2], 0);
  p = plain();
  p.top_p = 0.7f;  // 0.5 + 0.3 reaches it: token 2 is cut
  EXPECT_EQ(histogram(p, logits, 5000)[2], 0);
  p.top_p = 0.0f;  // keeps the most likely token only
  EXPECT_EQ(histogram(p, logits, 2000)[0], 2000);
  p = plain();
  p.min_p = 0.5f;  // 0.2 < 0.5 * 0.5
  const auto h = histogram(p, logits, 5000);
  EXPECT_EQ(h[2], 0);
  EXPECT_GT(h[1], 0);
}

TEST(Sampler, KLargerThanTheVocabularyIsNoLimit) {
  const std::vector<float> logits = {0.1f, 0.7f, -0.3f, 0.2f};
  auto a = plain(), b = plain();
  a.top_k = 0;
  b.top_k = 100;
  Sampler sa(a), sb(b);
  for (int i = 0; i < 200; ++i) ASSERT_EQ(sa.sample(logits, {}), sb.sample(logits, {}));
}

TEST(Sampler, AllEqualLogitsAreUniformAndSeeded) {
  const std::vector<float> logits(8, 1.0f);
  const auto h = histogram(plain(), logits, 16000);
  for (int c : h) EXPECT_NEAR(c / 16000.0, 0.125, 0.015);
  auto p = plain();
  Sampler x(p), y(p);
  std::vector<int32_t> sx, sy;
  for (int i = 0; i < 50; ++i) {
    sx.push_back(x.sample(logits, {}));
    sy.push_back(y.sample(logits, {}));
  }
  EXPECT_EQ(sx, sy);
  p.seed = 99;
  Sampler z(p);
  std::vector<int32_t> sz;
  for (int i = 0; i < 50; ++i) sz.push_back(z.sample(logits, {}));
  EXPECT_NE(sx, sz);
}

TEST(Sampler, RepetitionPenalty) {
  auto p = plain(0.0f);
  p.repeat_penalty = 2.0f;
  Sampler s(p);
  const std::vector<float> logits = {2.0f, 1.5f, -1.0f};
  const std::vector<int32_t> history = {0, 0, 7};  // out-of-range ids are ignored
  EXPECT_EQ(s.sample(logits, history), 1);         // 2.0 / 2 = 1.0 < 1.5
  p.repeat_last_n = 1;                             // only the last token (7) counts
  Sampler t(p);
  EXPECT_EQ(t.sample(logits, history), 0);
}

// What a GPU output applies before it selects logits: the distinct ids of the window,
// ascending, and the logits they change as sample() changes them.
TEST(Sampler, RepeatPenaltyListsTheWindowsDistinctTokens) {
  auto p = plain(0.8f);
  p.repeat_penalty = 1.5f;
  p.repeat_last_n = 4;
  const std::vector<int32_t> history = {9, 3, 5, 3, 1, 5};
  const RepeatPenalty r = Sampler(p).repeat_penalty(history);
  EXPECT_EQ(r.penalty, 1.5f);
  EXPECT_EQ(r.tokens, (std::vector<int32_t>{1, 3, 5}));  // 9 is outside the last 4
  std::vector<float> logits = {1.0f, 3.0f, 0.5f, -2.0f, 4.0f, 0.0f};
  apply_repeat_penalty(logits, {1.5f, {1, 3, 5, 6}});  // 6 is past the logits: skipped
  EXPECT_EQ(logits, (std::vector<float>{1.0f, 2.0f, 0.5f, -3.0f, 4.0f, 0.0f}));
  p.repeat_penalty = 1.0f;  // off
  EXPECT_TRUE(Sampler(p).repeat_penalty(history).tokens.empty());
  p.repeat_penalty = 1.5f;
  p.repeat_last_n = -1;  // the whole history
  EXPECT_EQ(Sampler(p).repeat_penalty(history).tokens, (std::vector<int32_t>{1, 3, 5, 9}));
}

// Lookup drafting's n-grams: the longest of 3 and 2 tokens ending the context that
// occurred before, its latest occurrence, at most `max` of what followed it.
TEST(LookupDraft, TakesWhatFollowedTheLatestLongestNgram) {
  using bitnetc::rt::lookup_draft;
  using V = std::vector<int32_t>;
  EXPECT_EQ(lookup_draft(V{1, 2, 3, 4, 5, 1, 2, 3}, 8), (V{4, 5, 1, 2, 3}));  // 1 2 3 recurs
  EXPECT_EQ(lookup_draft(V{1, 2, 3, 4, 5, 1, 2, 3}, 2), (V{4, 5}));
  EXPECT_EQ(lookup_draft(V{7, 2, 3, 9, 8, 2, 3, 6, 1, 2, 3}, 3), (V{6, 1, 2}));  // the latest of two
  EXPECT_EQ(lookup_draft(V{5, 2, 3, 9, 4, 2, 3}, 4), (V{9, 4, 2, 3}));          // a 2-gram when no 3-gram recurs
  EXPECT_EQ(lookup_draft(V{1, 2, 3, 4, 3}, 4), V{});                            // a lone token is no n-gram
  EXPECT_EQ(lookup_draft(V{1, 2, 1, 2}, 0), V{});
  EXPECT_EQ(lookup_draft(V{4}, 4), V{});
  EXPECT_EQ(lookup_draft(V{}, 4), V{});
}
