// The data a compiled output carries: one read-only blob linked into the executable
// (codegen writes it, output_main reads it in place).
//
//   BlobHeader | graph (ir/serialize.h) | vocabulary (vocab_io.h) | stop tokens (int32)
//   | TernaryRecord per ternary weight | packed weights, each 64-byte aligned
#pragma once

#include <cstddef>
#include <cstdint>

namespace bitnetc::rt {

inline constexpr uint32_t kBlobMagic = 0x4F544E42;  // "BNTO"
inline constexpr uint32_t kBlobVersion = 1;

struct BlobHeader {
  uint32_t magic, version;
  uint64_t graph_off, graph_size;
  uint64_t vocab_off, vocab_size;
  uint64_t stop_off, n_stop;
  uint64_t records_off, n_records;
  uint64_t weights_off, weights_size;
  uint64_t source_fingerprint;                  // FNV-1a 64 of the model file compiled (model.safetensors for folders)
  uint64_t dense_records_off, n_dense_records;  // one DenseRecord per graph.dense entry
};

// How op weights of the graph map to generated kernels and packed bytes. Record i
// belongs to graph.ternary[i].
struct TernaryRecord {
  uint32_t kernel;  // index into bitnetc_kernels[]
  uint32_t vector_bytes;
  int64_t K, K_padded, N, act_block;
  uint64_t packed_off;  // from the start of the blob
  float w_scale;        // per-tensor weight scale
  uint32_t pad;
};

// A dense weight with a generated kernel (the head): transposed and row-padded floats.
// Record i belongs to graph.dense[i]; kernel == kNoKernel for the others.
inline constexpr uint32_t kNoKernel = 0xFFFFFFFFu;
struct DenseRecord {
  uint32_t kernel;
  uint32_t pad;
  int64_t K, N, N_padded;
  uint64_t off;  // from the start of the blob
};

// FNV-1a 64 over a byte range: the fingerprint of the model a blob was compiled from
// (chainable through `h`).
inline uint64_t fnv1a64(const uint8_t* p, size_t n, uint64_t h = 0xcbf29ce484222325ull) {
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

}  // namespace bitnetc::rt
