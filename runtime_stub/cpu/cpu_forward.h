// The CPU executor of a compiled output: the graph's steps, in order, over the weights
// where they lie in the blob, with the generated kernels for the matmuls, the activation
// quantization (fused with the norm before it), RoPE and attention (the plan's steps,
// cpu_plan.h),
// and the reference interpreter's own building blocks (ir/interpreter.h) for the rest.
//
// A forward step takes rows of (sequence, position, token), as llama.cpp's llama_batch
// does: tokens of one or several sequences, each sequence with its own KV cache. Rows go
// through the graph in chunks of up to `batch`: every op runs for the whole chunk before
// the next op, so a ternary matmul of a chunk is one call of the prefill (GEMM) kernel
// whichever sequences its rows belong to, and a single row one call of the decode (GEMV)
// kernel; attention and RoPE run each sequence's rows against its own cache and
// positions. Row by row the results are those of ir::Interpreter running that sequence
// alone: the kernels are bit-exact and every other step is the interpreter's code, and
// no kernel mixes rows.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <vector>

#include "HalideRuntime.h"
#include "cpu_plan.h"
#include "forward.h"
#include "kernel_abi.h"

namespace bitnetc::rt {

class ForwardPass : public Forward {
 public:
  // `g` (which must outlive this) is the graph without weight data; `blob` the start of
  // the blob the records' offsets count from. `max_sequences` KV caches, each allocated
  // when its sequence is first fed.
  // `steps`: the plan codegen wrote, one per op.
  ForwardPass(const ir::Graph& g, const uint8_t* blob, std::span<const TernaryRecord> ternary,
              std::span<const DenseRecord> dense, std::span<const CpuStep> steps, int batch, const KernelTable& kernels,
              int max_sequences = 1);

  int max_sequences() const override { return static_cast<int>(caches_.size()); }
  void release_sequence(int32_t seq) override;
  std::span<const float> step(std::span<const BatchRow> rows) override;
  std::span<const float> forward(std::span<const int32_t> tokens, int32_t pos) override;
  uint64_t decode_bytes_per_token() const override { return rt::decode_bytes_per_token(g_, ternary_, dense_); }

 private:
  struct Q8Buffers {
    std::vector<int8_t> q;  // [batch][K_padded], zero past K and for unused tokens
    std::vector<float> d;   // [batch][blocks]
    std::vector<int32_t> sum;
    int64_t K = 0, K_padded = 0, block = 0, blocks = 0;  // blocks: factors per token (act_factor_count)
  };
  struct RopeTable {
    const ir::Op* op = nullptr;
    std::vector<float> cos, sin;  // [filled positions][head_dim / 2]
    int32_t filled = 0;
  };

  struct FreeDeleter {
    void operator()(float* p) const { std::free(p); }
  };
  // One sequence's KV cache, per layer. Keys transposed in blocks
  // ([blocks][kv_dim][kAttentionPositionBlock], n_ctx rounded up to whole blocks),
  // values [n_ctx][kv_dim].
  struct SequenceCache {
    std::vector<std::unique_ptr<float, FreeDeleter>> k, v;
  };
  // A chunk's rows of one sequence: rows [first, first + count) at positions pos0, ...
  struct Run {
    int32_t seq, pos0, first, count;
  };
  // A chunk of up to batch_ rows, in the executor's order (each sequence's rows
  // together); `logit_rows` are the chunk rows whose logits go to out_logit[i].
  struct Chunk {
    std::vector<int32_t> tokens;
    std::vector<Run> runs;
    std::vector<int32_t> logit_rows, out_logit;
  };

  void assign_f32_slots();
  void run_chunk(const Chunk& chunk);
  void embed(const ir::Op& op, const int32_t* tokens, int count, float* out) const;
  void quantize(size_t op_index, int count);
  void attend(size_t op_index, const Chunk& chunk, float* out);
  void ternary_matmul(const ir::Op& op, int count, float* out);
  // y[r] = W x[r] for `rows` rows of x (K floats apart), into out (row r at out + r * stride).
  void dense_matmul(const ir::Op& op, const float* x, int rows, float* out, int64_t out_stride);
  // The head of a k-quant weight for the chunk's logit rows, into the step's logits.
  void kquant_head(size_t op_index, const Chunk& chunk);
  void q8_0_head(size_t op_index, const Chunk& chunk);
  void gather_head_rows(const Q8Buffers& q, const DenseRecord& r, const Chunk& chunk);
  void store_head_logits(const ir::Op& op, const DenseRecord& r, const Chunk& chunk);
  const RopeTable& rope_table(const ir::Op& op, int32_t last_pos);
  SequenceCache& cache(int32_t seq);

  const ir::Graph& g_;
  const uint8_t* blob_;
  std::span<const TernaryRecord> ternary_;
  std::span<const DenseRecord> dense_;
  int batch_;
  KernelTable kernels_;
  std::span<const CpuStep> steps_;       // per op
  std::vector<float*> f32_;              // per value: [batch][size], in one of f32_slots_
  std::vector<std::vector<float>> f32_slots_;  // shared by values whose lives in a chunk do not overlap
  std::vector<Q8Buffers> q8_;            // per value
  std::vector<RopeTable> ropes_;         // one per distinct angle formula
  std::vector<SequenceCache> caches_;    // per sequence
  int k_positions_ = 0;
  std::vector<float> head_in_, head_out_;  // the head's rows, [rows][K] and [rows][padded N]
  std::vector<int8_t> head_q_;             // a quantized head's rows of codes, [rows][K]
  std::vector<float> head_qd_;             // and of block factors, [rows][K / block]
  std::vector<float> logits_;              // the step's logit rows
  std::vector<int32_t> next_pos_;          // per sequence, for check_step_rows
};

}  // namespace bitnetc::rt
