// The plan a CPU output runs, as codegen (codegen/cpu_program.h) writes it into the blob:
// one CpuStep per graph op, saying which generated kernel runs it (its index in the
// output's table of that kernel family: norm + quantize, attention, RoPE) and whether a
// norm + quantize kernel does the Norm before it (the Norm's own step is then skipped).
// The runtime binds these and plans nothing (forward.cpp). Also the layout of the key
// cache, which the attention kernels and the runtime share.
#pragma once

#include <cstddef>
#include <cstdint>

namespace bitnetc::rt {

struct CpuStep {
  int32_t kernel;      // index in the kernel table of the op's family; -1: no generated kernel
  int32_t fused_norm;  // a Quantize: the Norm op its kernel computes first, else -1
  uint32_t skipped;    // 1: a Norm another step's kernel computes
  uint32_t unused;     // explicit padding: every byte of a record is written
};
static_assert(sizeof(CpuStep) == 16 && offsetof(CpuStep, skipped) == 8, "CpuStep's layout is part of the blob format");

// The key cache holds blocks of this many positions, each block transposed (a row of
// the block's positions per channel), and the runtime pads it to whole blocks: the
// attention kernels score 8 vectors of positions at a time (128 with AVX-512) and read
// the last of them past the end.
inline constexpr int kAttentionPositionBlock = 128;

// Each attention step's kernel key has two kernels in the output's table: at 2k, one
// task per (kv head, token); at 2k + 1, one per (kv head, kAttentionBlockTokens
// tokens), which loads each key and value once for all of them (prefill at depth reads
// the whole cache per token otherwise). A run of fewer tokens takes the first: the
// block kernel would compute the missing tokens and throw them away.
inline constexpr int kAttentionBlockTokens = 4;
inline constexpr int kAttentionKernelsPerKey = 2;
inline int32_t attention_kernel(int32_t key, int tokens) {
  return key * kAttentionKernelsPerKey + (tokens >= kAttentionBlockTokens ? 1 : 0);
}

// Where the key cache keeps channel c of position pos (schedules/attention.h).
inline int64_t key_cache_index(int64_t pos, int64_t c, int64_t kv_dim) {
  return pos / kAttentionPositionBlock * kAttentionPositionBlock * kv_dim + c * kAttentionPositionBlock +
         pos % kAttentionPositionBlock;
}

}  // namespace bitnetc::rt
