// One CUDA module and the plan that runs a model with it (runtime_stub/cuda/cuda_plan.h):
// a kernel per distinct op shape (codegen/cuda_kernels.h), a device buffer per value
// (for a chunk of up to `batch` tokens), per layer KV caches, rope tables, and one
// launch per op in the graph's order.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "cuda_plan.h"
#include "ir.h"
#include "kernel_cache.h"
#include "model_blob.h"
#include "targets.h"

namespace bitnetc::codegen {

// The most tokens a CUDA output's prefill chunk holds (the tensor-core matmuls take
// them 16 at a time).
inline constexpr int kCudaChunkTokens = 64;

struct CudaProgram {
  std::string source;  // the module: every kernel the plan launches
  std::vector<std::string> kernel_names;
  std::vector<rt::CudaBuffer> buffers;
  std::vector<rt::CudaStep> steps;
  std::vector<rt::CudaArg> args;
  uint32_t logits_buffer = 0;
  uint32_t argmax_buffer = 0;
  uint32_t topk_buffer = 0;     // the sampling candidates (cuda_plan.h)
  uint32_t penalty_buffer = 0;  // the ids the repetition penalty applies to
};

// `ternary` and `dense` are the weights' records as packed for CUDA (layout Cuda, and
// KMajor for the head).
CudaProgram build_cuda_program(const ir::Graph& g, std::span<const rt::TernaryRecord> ternary,
                               std::span<const rt::DenseRecord> dense, int batch);

// The plan section of the blob: header, images, names, tables (cuda_plan.h).
std::vector<uint8_t> serialize_cuda_plan(const CudaProgram& p, const std::vector<uint8_t>& cubin,
                                         const std::string& ptx, const std::string& sm, int batch, int64_t n_vocab);

// The CUDA back end's emission stage: the program of `g` (chunks of kCudaChunkTokens),
// compiled by NVRTC for the target's SM (or taken from the kernel cache, keyed by the
// whole source: kernel_cache.h), as the blob's plan section. `cuda_source`
// (--cuda-source), when not empty, also gets the generated CUDA C++; `work_dir` holds
// the image's file for the cache; `say` one progress line.
std::vector<uint8_t> emit_cuda_plan(const ir::Graph& g, const TargetInfo& target,
                                    std::span<const rt::TernaryRecord> ternary, std::span<const rt::DenseRecord> dense,
                                    const std::string& cuda_source, const KernelCache& cache,
                                    const std::string& work_dir, const std::function<void(const std::string&)>& say);

}  // namespace bitnetc::codegen
