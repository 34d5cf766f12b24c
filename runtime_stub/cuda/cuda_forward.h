// The forward pass of a CUDA output: the plan of cuda_plan.h run on the GPU through the
// driver API (cuda_driver.h). At load it picks the GPU, loads the module (the cubin, or
// the PTX on a GPU the cubin cannot run on), copies the weights to the device once,
// allocates the buffers and fills the rope tables. A step's rows (of one or several
// sequences, each with its own KV caches, allocated on the device when the sequence is
// first fed) go through the plan in chunks of up to the plan's batch, in the CPU
// executor's order (each sequence's rows together); a chunk of one row replays a CUDA
// graph captured the first time. Only the logits of the rows asked for come back to the
// host, or with forward_argmax (greedy sampling on the device) only the chosen token, or
// with forward_top_k only the top-k logits a sampler keeps.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "cuda_driver.h"
#include "cuda_plan.h"
#include "forward.h"

namespace bitnetc::rt {

class CudaForwardPass : public Forward {
 public:
  // `plan` is the blob's plan section; `weights` the weights region (the records'
  // offsets count from `blob`, whose weights start at weights_off).
  // `max_sequences`: how many sequences (each with its own KV caches) a step may hold rows of.
  CudaForwardPass(const ir::Graph& g, std::span<const uint8_t> plan, const uint8_t* blob, uint64_t weights_off,
                  uint64_t weights_size, std::span<const TernaryRecord> ternary, std::span<const DenseRecord> dense,
                  int max_sequences = 1);
  ~CudaForwardPass() override;
  CudaForwardPass(const CudaForwardPass&) = delete;
  CudaForwardPass& operator=(const CudaForwardPass&) = delete;

  int max_sequences() const override { return static_cast<int>(next_pos_.size()); }
  void release_sequence(int32_t seq) override;
  std::span<const float> step(std::span<const BatchRow> rows) override;
  std::span<const float> forward(std::span<const int32_t> tokens, int32_t pos) override;
  int32_t forward_argmax(std::span<const int32_t> tokens, int32_t pos, const RepeatPenalty& penalty) override;
  bool forward_top_k(std::span<const int32_t> tokens, int32_t pos, int k, const RepeatPenalty& penalty,
                     std::vector<int32_t>& ids, std::vector<float>& logits) override;
  // Reads the device copy of the weights a few times (the module's read-bandwidth kernel).
  double measure_device_read_bandwidth() override;
  std::vector<StepProfile> profile_decode_steps(int reps) override;
  uint64_t decode_bytes_per_token() const override { return rt::decode_bytes_per_token(g_, ternary_, dense_); }

  // The GPU it runs on, e.g. "NVIDIA H100 80GB HBM3 (sm_90)".
  const std::string& device_name() const { return device_name_; }

 private:
  // Feeds `tokens` of sequence 0 from `pos` and leaves the last one's logits (and what
  // the device samples from them) on the device; top_k (0: none) is how many logits to
  // select, after `penalty` (null: none).
  void run_chunks(std::span<const int32_t> tokens, int32_t pos, int top_k = 0, const RepeatPenalty* penalty = nullptr);
  // One chunk of at most the plan's batch rows (in the executor's order), the head run
  // for `logit_rows` (chunk row indices): its logits in the logits buffer's first rows.
  void run_chunk(std::span<const BatchRow> rows, std::span<const int32_t> logit_rows, int top_k);
  // Whether the device can apply `penalty` (its ids fit the penalty buffer).
  bool penalty_fits(const RepeatPenalty& penalty) const;
  void launch_plan(int count, int logit_rows);
  // Allocates sequence `seq`'s KV caches on the device when it has none.
  void ensure_sequence(int32_t seq);
  void release();  // frees what the constructor made, in reverse
  CUdeviceptr alloc(size_t bytes);

  const ir::Graph& g_;
  std::span<const TernaryRecord> ternary_;
  std::span<const DenseRecord> dense_;
  CudaPlanHeader plan_{};
  std::vector<CudaStep> steps_;
  std::vector<CUfunction> kernels_;  // per step
  std::vector<std::string> step_kernel_names_;  // per step
  std::vector<uint64_t> arg_values_;  // one 8-byte slot per argument (addresses, float bits)
  std::vector<void*> arg_pointers_;   // cuLaunchKernel's kernelParams, into arg_values_
  CUdevice device_ = 0;
  CUcontext context_ = nullptr;
  CUmodule module_ = nullptr;
  CUstream stream_ = nullptr;
  CUgraphExec decode_graph_ = nullptr;
  std::vector<CUdeviceptr> allocations_;
  CUdeviceptr state_ = 0, logits_ = 0, argmax_ = 0, topk_ = 0, penalty_ids_ = 0;
  CUdeviceptr weights_ = 0;
  uint64_t weights_size_ = 0;
  std::vector<int32_t> state_host_;
  std::vector<int32_t> penalty_host_;  // the ids being copied to penalty_ids_
  std::vector<float> logits_host_;
  std::string device_name_;
  // The KV cache tables (CudaBufferKind::SequenceCaches): the table's device address and
  // the bytes a sequence's cache holds per position; per sequence, its caches (one per
  // table, none while the sequence is unfed) and the table entries as the device has them.
  struct CacheTable {
    CUdeviceptr table;
    uint64_t bytes_per_position;
  };
  std::vector<CacheTable> cache_tables_;
  std::vector<std::vector<CUdeviceptr>> sequence_caches_;
  std::vector<std::vector<uint64_t>> table_host_;  // per table: [max_sequences] device pointers
  std::vector<int32_t> next_pos_;                  // per sequence, for check_step_rows
};

}  // namespace bitnetc::rt
