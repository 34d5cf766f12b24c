// The forward pass of a compiled output: the graph's steps, in order, over the weights
// where they lie in the blob, with the generated kernels for the matmuls, the activation
// quantization (fused with the norm before it), RoPE and attention (step_kernels.h),
// and the reference interpreter's own building blocks (ir/interpreter.h) for the rest.
//
// Tokens come in chunks of up to `batch`: every step runs for the whole chunk before the
// next step, so a ternary matmul of a prompt chunk is one call of the prefill (GEMM)
// kernel, and a single generated token one call of the decode (GEMV) kernel. Token by
// token the results are those of ir::Interpreter: the kernels are bit-exact and every
// other step is the interpreter's code.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "HalideRuntime.h"
#include "ir.h"
#include "model_blob.h"
#include "sampler.h"
#include "step_kernels.h"

namespace bitnetc::rt {

// The generated kernels linked into the output (codegen/emit_executable.cpp).
struct KernelTable {
  using Ternary = int (*)(halide_buffer_t* packed, halide_buffer_t* x, halide_buffer_t* x_sum, halide_buffer_t* d_act,
                          float w_scale, halide_buffer_t* y);
  using Dense = int (*)(halide_buffer_t* w_tiles, halide_buffer_t* x, halide_buffer_t* row_scale, halide_buffer_t* y);
  using NormQuant = int (*)(halide_buffer_t* x, halide_buffer_t* norm_weight, halide_buffer_t* q, halide_buffer_t* d,
                            halide_buffer_t* q_sum);
  const Ternary* gemv = nullptr;
  const Ternary* gemm = nullptr;
  const Dense* dense = nullptr;
  using Attention = int (*)(halide_buffer_t* q, halide_buffer_t* k_cache, halide_buffer_t* v_cache, int32_t pos0,
                            halide_buffer_t* out);
  // In the order of plan_step_kernels (step_kernels.h), with their counts.
  const NormQuant* norm_quant = nullptr;
  uint32_t norm_quant_count = 0;
  const Attention* attention = nullptr;
  uint32_t attention_count = 0;
  using Rope = int (*)(halide_buffer_t* x, halide_buffer_t* cos, halide_buffer_t* sin, int32_t pos0,
                       halide_buffer_t* y);
  const Rope* rope = nullptr;
  uint32_t rope_count = 0;
};

// A compiled model's forward pass, wherever it runs: on the CPU (ForwardPass, below) or
// on a GPU (CudaForwardPass, cuda_forward.h).
// One launch of a decode step as the device timed it (CUDA outputs' --profile).
struct StepProfile {
  std::string kernel;
  double us = 0;              // mean time per decoded token
  uint64_t weight_bytes = 0;  // weights the launch reads (0: activations only)
};

class Forward {
 public:
  virtual ~Forward() = default;
  // Feeds tokens at positions pos, pos+1, ... (pos must continue the sequence or start
  // a new one at 0) and returns the logits after the last token.
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

class ForwardPass : public Forward {
 public:
  // `g` (which must outlive this) is the graph without weight data; `blob` the start of
  // the blob the records' offsets count from.
  ForwardPass(const ir::Graph& g, const uint8_t* blob, std::span<const TernaryRecord> ternary,
              std::span<const DenseRecord> dense, int batch, const KernelTable& kernels);

  std::span<const float> forward(std::span<const int32_t> tokens, int32_t pos) override;
  uint64_t decode_bytes_per_token() const override { return rt::decode_bytes_per_token(g_, ternary_, dense_); }

 private:
  struct Q8Buffers {
    std::vector<int8_t> q;  // [batch][K_padded], zero past K and for unused tokens
    std::vector<float> d;   // [batch][blocks]
    std::vector<int32_t> sum;
    int64_t K = 0, K_padded = 0, block = 0, blocks = 0;
  };
  struct RopeTable {
    const ir::Op* op = nullptr;
    std::vector<float> cos, sin;  // [filled positions][head_dim / 2]
    int32_t filled = 0;
  };

  void run_chunk(const int32_t* tokens, int count, int32_t pos0, bool last_chunk);
  void embed(const ir::Op& op, const int32_t* tokens, int count, float* out) const;
  void quantize(size_t op_index, int count);
  void attend(size_t op_index, int count, int32_t pos0, float* out);
  void ternary_matmul(const ir::Op& op, int count, float* out);
  void dense_matmul(const ir::Op& op, const float* x, float* out);
  const RopeTable& rope_table(const ir::Op& op, int32_t last_pos);

  const ir::Graph& g_;
  const uint8_t* blob_;
  std::span<const TernaryRecord> ternary_;
  std::span<const DenseRecord> dense_;
  int batch_;
  KernelTable kernels_;
  StepKernels steps_;
  std::vector<std::vector<float>> f32_;  // per value: [batch][size]
  std::vector<Q8Buffers> q8_;            // per value
  std::vector<RopeTable> ropes_;         // one per distinct angle formula
  struct FreeDeleter {
    void operator()(float* p) const { std::free(p); }
  };
  // Per layer. Keys transposed, [kv_dim][k_positions_] (n_ctx rounded up to the
  // attention kernel's position blocks); values [n_ctx][kv_dim].
  std::vector<std::unique_ptr<float, FreeDeleter>> k_cache_, v_cache_;
  int k_positions_ = 0;
  std::vector<float> head_out_, logits_;
  int32_t next_pos_ = 0;
};

}  // namespace bitnetc::rt
