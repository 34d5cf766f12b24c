// Attention over the fp32 KV cache as a Halide pipeline for one head shape: every head
// of every token of a chunk, each token at its own position (token t of a chunk that
// starts at pos0 attends to positions 0..pos0+t, its own k and v already in the cache).
//
// The numerics are ir/numerics.h's bitnetc_attend_head, bit for bit: each score sums
// q . k in index order (strict_float; the vector lanes are positions, so every lane is
// one reference chain), the maximum and the softmax sum run in position order, e^x is
// the reference's bitnetc_expf vectorized over positions (exact_exp.h), and each output
// adds its terms in position order from zero with the outputs in vector lanes.
//
// A task (one per thread-pool job) is a kv head's group of heads and one token, or a
// block of tokens (tokens_per_task): each key and value vector it loads serves all of
// them, with their sums in registers. Prefill at depth read the whole cache once per
// (head, token) before (bench/RESULTS.md, "Attention by blocks of tokens").
#pragma once

#include <cstdint>
#include <tuple>
#include <vector>

#include "Halide.h"
#include "cpu_plan.h"
#include "ir.h"

namespace bitnetc::schedules {

struct AttentionShape {
  int head_dim = 0, n_head = 0, n_head_kv = 0;
  ir::ScoreScale score_scale = ir::ScoreScale::DivideSqrt;
  ir::SoftmaxSum softmax_sum = ir::SoftmaxSum::F32Divide;
  int vector_bytes = 32;
  // Tokens a task attends together (at most; fewer where the heads of a group already
  // fill the registers): 1 for decode, rt::kAttentionBlockTokens for longer runs.
  int tokens_per_task = 1;
  // Every field, for the kernel cache's key (codegen/kernel_cache.h): a new field goes here too.
  auto fields() const {
    return std::tie(head_dim, n_head, n_head_kv, score_scale, softmax_sum, vector_bytes, tokens_per_task);
  }
};

// The keys are cached in blocks of kAttentionPositionBlock positions, each block
// transposed (a row of the block's positions per channel), so that a vector of scores
// loads a vector of keys and a head's keys for the first positions are one contiguous
// run (rows of a whole-context transpose lay a page apart: a TLB miss per channel).
using rt::kAttentionPositionBlock;

// Inputs: q (float, [n_head * head_dim, tokens]), k_cache (float,
// [kAttentionPositionBlock, n_head_kv * head_dim, blocks]: key c of position p at
// (p % block, c, p / block)), v_cache (float, [n_head_kv * head_dim,
// cache positions]), pos0 (int: the first token's position). The caches hold at least
// pos0 + tokens positions, the keys' rounded up to kAttentionPositionBlock (the
// runtime's context may be shorter than the model's). Output: out (float, [n_head *
// head_dim, tokens]).
struct AttentionPipeline {
  Halide::ImageParam q, k_cache, v_cache;
  Halide::Param<int> pos0;
  Halide::Func out;
  std::vector<Halide::Argument> arguments() const { return {q, k_cache, v_cache, pos0}; }
};

AttentionPipeline attention(const AttentionShape& shape);

}  // namespace bitnetc::schedules
