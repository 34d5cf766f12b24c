/* The state every kernel of a CUDA output reads: a small device buffer the host writes
 * before each chunk of rows (cuda_forward.cpp), so one captured decode step (a CUDA
 * graph) replays for every position and sequence. Plain C: codegen embeds this text in
 * every generated module (codegen/cuda/kernels.cuh reads it there), and the runtime
 * includes it (cuda_plan.h), so the two agree on every index.
 *
 *   state[0 .. kBitnetcStateRows)      the scalars below
 *   then four arrays of B ints (B = state[kBitnetcStateBatch], the plan's chunk size):
 *     the rows' tokens, positions and sequences, and the rows whose logits the head
 *     computes (indices into the chunk, the first state[kBitnetcStateLogitRows] used).
 */
#pragma once

enum BitnetcCudaState {
  kBitnetcStateCount = 0,         /* rows in this chunk (1 .. B) */
  kBitnetcStateCtx = 1,           /* positions each sequence's KV cache (and the score rows) hold */
  kBitnetcStateTopK = 2,          /* how many of the largest logits to select (0: none) */
  kBitnetcStatePenaltyCount = 3,  /* how many ids of the penalty buffer the repetition penalty takes */
  kBitnetcStatePenalty = 4,       /* the repetition penalty (a float's bits) */
  kBitnetcStateLogitRows = 5,     /* rows whose logits the head computes */
  kBitnetcStateBatch = 6,         /* B: the length of each per-row array */
  kBitnetcStateRows = 8           /* where the per-row arrays start */
};
