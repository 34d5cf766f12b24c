// A compiled model's forward pass, as the engine, the generation loop and the C API see
// it, whichever back end runs it: the CPU executor (cpu/cpu_forward.h) or the CUDA one
// (cuda/cuda_forward.h), each executing the plan codegen wrote into the blob.
//
// A forward step takes rows of (sequence, position, token), as llama.cpp's llama_batch
// does: tokens of one or several sequences, each sequence with its own KV cache. Row by
// row the results are those of ir::Interpreter running that sequence alone: the kernels
// are bit-exact and no kernel mixes rows.
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "ir.h"
#include "model_blob.h"
#include "sampler.h"

namespace bitnetc::rt {

// A forward pass could not allocate what a step needs (a sequence's KV cache): callers
// tell it from other failures (a WebAssembly output's loader names its memory cap).
class OutOfMemoryError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One launch of a decode step as the device timed it (CUDA outputs' --profile).
struct StepProfile {
  std::string kernel;
  double us = 0;              // mean time per decoded token
  uint64_t weight_bytes = 0;  // weights the launch reads (0: activations only)
};

// One row of a forward step: `token` of sequence `seq` at position `pos`; `logits`: the
// step returns the logits after this row.
struct BatchRow {
  int32_t seq = 0;
  int32_t pos = 0;
  int32_t token = 0;
  bool logits = false;
};

class Forward {
 public:
  virtual ~Forward() = default;
  // How many sequences (each with its own KV cache) a step may hold rows of: ids
  // 0 .. max_sequences() - 1.
  virtual int max_sequences() const { return 1; }
  // Frees sequence `seq`'s KV cache; it starts afresh (at position 0) when next fed.
  virtual void release_sequence(int32_t seq) {}
  // One forward step over `rows`. Each sequence's rows must have consecutive positions
  // in row order, the first of them at most where that sequence has got to (a position
  // already fed is fed again, as a new turn after a rewind; position 0 starts the
  // sequence afresh); rows of different sequences may interleave in any order. Returns
  // the logits of the rows marked `logits`, in row order, one n_vocab run each (valid
  // until the next call).
  virtual std::span<const float> step(std::span<const BatchRow> rows) = 0;
  // Feeds tokens of sequence 0 at positions pos, pos+1, ... (pos must continue the
  // sequence or start a new one at 0) and returns the logits after the last token.
  virtual std::span<const float> forward(std::span<const int32_t> tokens, int32_t pos) = 0;
  // The same, returning only the greedy token (rt::argmax of the logits after
  // `penalty`): a GPU picks it on the device and sends back one int.
  virtual int32_t forward_argmax(std::span<const int32_t> tokens, int32_t pos, const RepeatPenalty& penalty) {
    const std::span<const float> logits = forward(tokens, pos);
    if (penalty.tokens.empty()) return argmax(logits);
    std::vector<float> penalized(logits.begin(), logits.end());
    apply_repeat_penalty(penalized, penalty);
    return argmax(penalized);
  }
  // The same, returning only the k largest logits after `penalty` and their ids
  // (largest first, lower ids first among equals) when the pass can select them itself
  // (a GPU: k at most kCudaTopKMax); false when the caller should use forward() instead.
  virtual bool forward_top_k(std::span<const int32_t> tokens, int32_t pos, int k, const RepeatPenalty& penalty,
                             std::vector<int32_t>& ids, std::vector<float>& logits) {
    return false;
  }
  // Weight bytes one decode step reads: what bounds decode speed at a given bandwidth.
  virtual uint64_t decode_bytes_per_token() const = 0;
  // Bytes per second the device the pass runs on reads, measured now; 0 for the CPU
  // (benchmarks measure the host themselves).
  virtual double measure_device_read_bandwidth() { return 0; }
  // Each launch of one decode step timed on the device, averaged over `reps` steps,
  // after a first token; empty where the device cannot time its steps (the CPU: perf
  // profiles the output there). Leaves the context holding that one token.
  virtual std::vector<StepProfile> profile_decode_steps(int reps) { return {}; }
};

// Every ternary and dense weight once, an embedding row only.
uint64_t decode_bytes_per_token(const ir::Graph& g, std::span<const TernaryRecord> ternary,
                                std::span<const DenseRecord> dense);

// Checks a forward() call's tokens and positions against the model (ids in the
// vocabulary, positions in order and inside the context); throws with the reason.
void check_forward_args(const ir::Graph& g, std::span<const int32_t> tokens, int32_t pos, int32_t next_pos);

// Checks a step's rows against the model and the sequences' progress (`next_pos`, one
// per sequence: ids below its size), as step() documents; throws with the reason.
void check_step_rows(const ir::Graph& g, std::span<const BatchRow> rows, std::span<const int32_t> next_pos);

// The rows of sequence 0 that forward(tokens, pos) feeds: logits after the last one.
std::vector<BatchRow> rows_of_one_sequence(std::span<const int32_t> tokens, int32_t pos);

}  // namespace bitnetc::rt
