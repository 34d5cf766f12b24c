// The plan a CUDA output runs (codegen/cuda_program.cpp writes it into the blob,
// cuda_forward.cpp executes it): the kernels' module (cubin for the target's SM and PTX
// for newer GPUs), the device buffers, and the launches of one forward pass, in order.
// Every shape is a constant of the kernels or of this table; the runtime only binds
// addresses and the number of tokens in the chunk.
//
//   CudaPlanHeader | cubin | PTX | kernel names (NUL separated) | CudaBuffer[]
//   | CudaStep[] | CudaArg[]      (offsets count from the plan header)
//
// Every kernel reads the chunk's state from a small device buffer (cuda_state.h: the
// rows' tokens, positions and sequences), so one captured decode step (a CUDA graph)
// replays for every position and sequence. A chunk holds rows of one or several
// sequences, each sequence with its own KV caches.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cuda_state.h"

namespace bitnetc::rt {

inline constexpr uint32_t kCudaPlanMagic = 0x32445543;  // "CUD2": plans of chunks of several sequences

// The state's length for a plan of chunks of up to `batch` rows (cuda_state.h).
inline constexpr size_t cuda_state_ints(uint32_t batch) { return kBitnetcStateRows + 4 * static_cast<size_t>(batch); }
// Every module also has a read-bandwidth kernel (not a step: benchmarks launch it).
inline constexpr const char* kCudaReadBandwidthKernel = "bitnetc_read_bandwidth";
// The most logits the device selects for sampling (larger top-k: the host sorts them all).
inline constexpr int kCudaTopKMax = 64;

struct CudaPlanHeader {
  uint32_t magic;
  uint32_t batch;  // the most tokens one chunk holds (state has room for them)
  uint64_t cubin_off, cubin_size;
  uint64_t ptx_off, ptx_size;
  uint64_t names_off, names_size, n_kernels;
  uint64_t buffers_off, n_buffers;
  uint64_t steps_off, n_steps;
  uint64_t args_off, n_args;
  uint32_t logits_buffer;      // holds the last token's logits after a forward pass
  uint32_t n_vocab;
  uint32_t argmax_buffer;  // the greedy token (an int) after a forward pass
  uint32_t topk_buffer;  // the state's top-k largest logits: kCudaTopKMax floats, then as many ids
  uint32_t penalty_buffer;  // the ids the repetition penalty applies to (an int per position)
  char sm[16];      // "sm_80": the cubin's architecture
  uint32_t unused;  // explicit padding: every byte of the plan is written
};

// A device buffer, zeroed at load. Per-position buffers (attention scores, the penalty's
// ids) are allocated for the context the output runs with; rope tables are filled at
// load with the interpreter's angles (ir::rope_cos_sin) of graph op `op`. A
// SequenceCaches buffer is a table of one device pointer per sequence the output holds
// (a layer's key or value cache): each sequence's cache, `bytes` per position of the
// context, is allocated when the sequence is first fed and freed when it is released.
enum class CudaBufferKind : uint32_t { Plain = 0, PerPosition = 1, RopeCos = 2, RopeSin = 3, SequenceCaches = 4 };
struct CudaBuffer {
  CudaBufferKind kind;
  uint32_t op;     // RopeCos/RopeSin: the Rope op whose angles it holds
  uint64_t bytes;  // Plain: total; PerPosition, RopeCos/Sin: per position
};

// One kernel argument: a device address or a float.
enum class CudaArgKind : uint32_t {
  State = 0,               // the CudaState words
  Buffer = 1,              // buffer `index`, plus `value` bytes
  TernaryWeight = 2,       // the packed weights of TernaryRecord `index`
  DenseWeight = 3,         // DenseRecord `index`, plus `value` bytes (a k-quant weight's parts)
  F32 = 4,                 // `value` holds the float's bits
  DenseScales = 5,         // DenseRecord `index`'s row scales (--head=q8)
  TernaryBlockScales = 6,  // TernaryRecord `index`'s scales per (row, block)
};
struct CudaArg {
  CudaArgKind kind;
  uint32_t index;
  uint64_t value;
};

// Which chunks a step runs for: every chunk, or only single tokens (decode) or only
// chunks of several (prefill), where an op has a kernel for each (the ternary matmuls:
// dp4a for one token, tensor cores for many).
enum class CudaRunFor : uint32_t { Any = 0, OneToken = 1, SeveralTokens = 2 };

// A launch's grid in y: one, a block row per row of the chunk, or per row whose logits
// the step returns (the head).
enum class CudaGridY : uint32_t { One = 0, ChunkRows = 1, LogitRows = 2 };

// One launch: block_x threads per block, grid_x blocks, times grid_y.
struct CudaStep {
  uint32_t kernel;  // index into the kernel names
  uint32_t grid_x, block_x;
  CudaGridY grid_y;
  uint32_t first_arg, n_args;
  CudaRunFor run_for;
  uint32_t unused;        // explicit padding: every byte of the plan is written
  uint64_t weight_bytes;  // the weights one launch reads per token (for --profile)
};

// The plan is written by bitnetc (x86-64) and read by the output's host side: its
// structs must have the same size and offsets everywhere, with no implicit padding
// (whose bytes would differ from compile to compile).
static_assert(sizeof(CudaPlanHeader) == 152 && offsetof(CudaPlanHeader, cubin_off) == 8 &&
                  offsetof(CudaPlanHeader, n_args) == 104 && offsetof(CudaPlanHeader, logits_buffer) == 112 &&
                  offsetof(CudaPlanHeader, sm) == 132 && offsetof(CudaPlanHeader, unused) == 148,
              "CudaPlanHeader's layout is part of the blob format");
static_assert(sizeof(CudaBuffer) == 16 && offsetof(CudaBuffer, bytes) == 8, "CudaBuffer's layout is part of the blob format");
static_assert(sizeof(CudaArg) == 16 && offsetof(CudaArg, value) == 8, "CudaArg's layout is part of the blob format");
static_assert(sizeof(CudaStep) == 40 && offsetof(CudaStep, run_for) == 24 && offsetof(CudaStep, weight_bytes) == 32,
              "CudaStep's layout is part of the blob format");

}  // namespace bitnetc::rt
