// The data a compiled output carries: one read-only blob linked into the executable
// (codegen/blob_writer.cpp writes it, engine/compiled_model.cpp reads it in place).
//
//   BlobHeader | graph (ir/serialize.h; shapes and attributes, no weight data)
//   | vocabulary (vocab_io.h) | stop tokens (int32) | TernaryRecord per graph.ternary
//   | DenseRecord per graph.dense | CpuStep per graph op (CPU targets: cpu_plan.h)
//   | weights (page aligned; each tensor 64-byte aligned)
//
// The weights are used where they lie: the kernels read the packed ternary groups and
// the dense tiles directly from the mapped blob; nothing is copied at start-up. A CUDA
// output also carries its module and plan (cuda_plan.h) at cuda_plan_off; its runtime
// copies the weights to the GPU once.
//
// With --weights=external the side file OUTPUT.weights holds the whole blob and the
// output embeds it only up to weights_off; offsets count from the side file's start.
// The two headers must be equal (weights_hash ties them to one compile).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>

namespace bitnetc::rt {

inline constexpr uint32_t kBlobMagic = 0x4F544E42;  // "BNTO"
inline constexpr uint32_t kBlobVersion = 9;         // 9: Q8_K64 activations (TernaryRecord::act_groups)

struct BlobHeader {
  uint32_t magic, version;
  uint64_t graph_off, graph_size;
  uint64_t vocab_off, vocab_size;
  uint64_t stop_off, n_stop;
  uint64_t records_off, n_records;              // TernaryRecord per graph.ternary entry
  uint64_t dense_records_off, n_dense_records;  // DenseRecord per graph.dense entry
  uint64_t weights_off, weights_size;
  uint64_t source_fingerprint;  // model_fingerprint.h's of the model file compiled (model.safetensors for folders)
  uint32_t batch;               // tokens per call of the prefill (GEMM) kernels
  uint32_t external_weights;    // 1: the weights are in a side file (--weights=external)
  uint64_t weights_hash;        // FNV-1a 64 of the weights (external only): the side file must match
  uint64_t cuda_plan_off, cuda_plan_size;  // CUDA targets: the module and plan (cuda_plan.h), else 0
  uint64_t cpu_steps_off, n_cpu_steps;     // CPU targets: a CpuStep per graph op (cpu_plan.h), else 0
};

// A ternary weight: its packed bytes in one of the layouts and the kernels for it.
enum class TernaryLayout : uint32_t {
  I2S = 0,  // 2-bit codes in groups of group_bytes (schedules/ternary_matmul.h)
  TL1 = 1,  // lookup-table layouts (lut_tiles.h)
  TL2 = 2,
  Cuda = 3,  // 16-weight words, chunk-major (codegen/cuda_kernels.h)
};
struct TernaryRecord {
  uint32_t gemv_kernel;  // index into bitnetc_gemv_kernels[] (one token)
  uint32_t gemm_kernel;  // index into bitnetc_gemm_kernels[] (BlobHeader::batch tokens)
  int64_t K, K_padded, N, act_block;  // activations are zero padded to K_padded
  uint64_t off;   // from the start of the blob
  float w_scale;         // per-tensor weight scale
  uint32_t group_bytes;  // I2S: packing group width W
  TernaryLayout layout;
  int32_t packed_dim0, packed_dim1;  // the kernels' packed buffer: [tile bytes, tiles]
  // From how many rows of a step on one call of the GEMM kernel (padded to
  // BlobHeader::batch rows) costs less than a GEMV call per row: codegen derives it from
  // the target's measured figures (TargetInfo::layout_figures).
  uint32_t gemm_min_rows;
  // With block_scales = 1, a scale per (row, activation block) (llama.cpp's TQ files) at
  // block_scales_off (from the start of the blob): floats [K / act_block][block_scale_rows]
  // (schedules/ternary_matmul.h). 0: w_scale for every weight.
  uint64_t block_scales_off;
  int64_t block_scale_rows;
  uint32_t block_scales;
  // 0: the activations' factors are per act_block (K / act_block of them); 4: ik_llama.cpp's
  // Q8_K64, four factors for groups that interleave across the row (ir::ActQuant::PerRowQ8K64).
  uint32_t act_groups;
};
// The dequantization factors (and code sums) per token of a record's activations.
inline int64_t act_factor_count(const TernaryRecord& r) { return r.act_groups ? r.act_groups : r.K / r.act_block; }

// A dense weight. Vectors (norm weights) and embedding tables are row-major; the head is
// stored in the tiles of schedules/dense_matmul.h (a tied embedding reads its rows from
// there). Values are float32, or IEEE half when every value is exactly one, or (head
// only, --head=q8) int8 codes with a float scale per row at scales_off, or llama.cpp's
// k-quant codes and scales (ir/kquant.h), as kquant_lane_sections (CPU) and
// kquant_sections (CUDA) lay them out,
// or llama.cpp's Q8_0 codes and half factors (as floats), as q8_0_sections lays them out.
enum class DenseStorage : uint32_t { F32 = 0, F16 = 1, Q8 = 2, KQuant = 3, Q8_0 = 4 };
enum class DenseLayout : uint32_t {
  RowMajor = 0,
  HeadTiles = 1,
  KMajor = 2,  // CUDA heads: element (row, col) at col * rows + row
};
inline constexpr uint32_t kNoKernel = 0xFFFFFFFFu;
struct DenseRecord {
  uint32_t kernel;  // index into bitnetc_dense_kernels[] (HeadTiles), else kNoKernel
  DenseStorage storage;
  DenseLayout layout;
  uint32_t tile;       // rows per tile (HeadTiles; KQuant: rows per lane group)
  int64_t rows, cols;  // N x K
  int64_t rows_padded;
  uint64_t off;         // from the start of the blob
  uint64_t scales_off;  // Q8: rows_padded floats
};

// The blob is written by bitnetc (x86-64) and read by every target's runtime: its
// structs must have the same size and offsets everywhere.
static_assert(sizeof(BlobHeader) == 160 && offsetof(BlobHeader, batch) == 112 &&
                  offsetof(BlobHeader, weights_hash) == 120 && offsetof(BlobHeader, cuda_plan_off) == 128 &&
                  offsetof(BlobHeader, cpu_steps_off) == 144,
              "BlobHeader's layout is part of the blob format");
static_assert(sizeof(TernaryRecord) == 96 && offsetof(TernaryRecord, block_scales_off) == 72 &&
                  offsetof(TernaryRecord, block_scales) == 88 && offsetof(TernaryRecord, K) == 8 &&
                  offsetof(TernaryRecord, off) == 40 && offsetof(TernaryRecord, w_scale) == 48 &&
                  offsetof(TernaryRecord, packed_dim0) == 60 && offsetof(TernaryRecord, gemm_min_rows) == 68,
              "TernaryRecord's layout is part of the blob format");
static_assert(sizeof(DenseRecord) == 56 && offsetof(DenseRecord, rows) == 16 && offsetof(DenseRecord, off) == 40 &&
                  offsetof(DenseRecord, scales_off) == 48,
              "DenseRecord's layout is part of the blob format");

// The bytes of a ternary weight's packed buffer, and of one element of a dense weight.
inline uint64_t packed_bytes(const TernaryRecord& r) {
  return static_cast<uint64_t>(r.packed_dim0) * static_cast<uint64_t>(r.packed_dim1);
}
// A KQuant weight on CUDA (layout KMajor), from its record's `off`: the codes q (int8,
// cols columns), the group scales sc and mins m (int8, cols / 16 columns), the block
// factors d and dmin (float, cols / 256 columns), each part k-major. Every part starts
// 4-byte aligned (cols is a multiple of 256). The CPU's layout is kquant_lane_sections.
struct KQuantSections {
  uint64_t q, sc, m, d, dmin, end;  // byte offsets from `off`
};
inline KQuantSections kquant_sections(int64_t rows_padded, int64_t cols) {
  const uint64_t n = static_cast<uint64_t>(rows_padded), k = static_cast<uint64_t>(cols);
  KQuantSections s{};
  s.q = 0;
  s.sc = n * k;
  s.m = s.sc + n * (k / 16);
  s.d = s.m + n * (k / 16);
  s.dmin = s.d + 4 * n * (k / 256);
  s.end = s.dmin + 4 * n * (k / 256);
  return s;
}
// A KQuant head on the CPU (layout HeadTiles; schedules/kquant_matmul.h), from its
// record's `off`: rows in groups of `tile` = L rows (the kernel's lanes), each part
// [rows_padded / L][columns][L] in a group. The codes u = q + 32 (6 bits) in two planes,
// four adjacent columns of a row in its four bytes (kquant_lo_index, kquant_hi_index):
// lo, the low nibbles (cols / 2 bytes a row), hi, the high two bits (cols / 4 bytes a
// row); then the group scales sc and mins m (int8, cols / 16 columns), the block
// factors d and dmin (float, cols / 256 columns) in head_tile_index order.
struct KQuantLaneSections {
  uint64_t lo, hi, sc, m, d, dmin, end;  // byte offsets from `off`
};
inline KQuantLaneSections kquant_lane_sections(int64_t rows_padded, int64_t cols) {
  const uint64_t n = static_cast<uint64_t>(rows_padded), k = static_cast<uint64_t>(cols);
  KQuantLaneSections s{};
  s.lo = 0;
  s.hi = n * k / 2;
  s.sc = s.hi + n * k / 4;
  s.m = s.sc + n * (k / 16);
  s.d = s.m + n * (k / 16);
  s.dmin = s.d + 4 * n * (k / 256);
  s.end = s.dmin + 4 * n * (k / 256);
  return s;
}
// Element (row, col)'s low nibble: byte kquant_lo_index, shifted by 4 * ((col / 4) % 2)
// (columns 8j..8j+3 low, 8j+4..8j+7 high); its high bits: byte kquant_hi_index, shifted
// by 2 * ((col / 4) % 4) (the four column quads of a 16-group).
inline uint64_t kquant_lo_index(int64_t row, int64_t col, int64_t cols, int64_t lanes) {
  return static_cast<uint64_t>((row / lanes) * (cols / 2) * lanes + (col / 8) * 4 * lanes + 4 * (row % lanes) +
                               col % 4);
}
inline uint64_t kquant_hi_index(int64_t row, int64_t col, int64_t cols, int64_t lanes) {
  return static_cast<uint64_t>((row / lanes) * (cols / 4) * lanes + (col / 16) * 4 * lanes + 4 * (row % lanes) +
                               col % 4);
}
// The shifts of column `col`'s bits within those bytes (the packer and the reader share them).
inline int kquant_lo_shift(int64_t col) { return static_cast<int>(4 * ((col / 4) % 2)); }
inline int kquant_hi_shift(int64_t col) { return static_cast<int>(2 * ((col / 4) % 4)); }
// The code q of element (row, col), from the planes at `w` (the record's bytes).
inline int kquant_lane_code(const uint8_t* w, const KQuantLaneSections& at, int64_t row, int64_t col, int64_t cols,
                            int64_t lanes) {
  const int lo = (w[at.lo + kquant_lo_index(row, col, cols, lanes)] >> kquant_lo_shift(col)) & 15;
  const int hi = (w[at.hi + kquant_hi_index(row, col, cols, lanes)] >> kquant_hi_shift(col)) & 3;
  return (lo | hi << 4) - 32;
}
// All of a KQuant weight's bytes, in its layout.
inline uint64_t kquant_bytes(const DenseRecord& r) {
  return r.layout == DenseLayout::HeadTiles ? kquant_lane_sections(r.rows_padded, r.cols).end
                                            : kquant_sections(r.rows_padded, r.cols).end;
}
// A Q8_0 weight from its record's `off`, each part in head tiles (CPU) or k-major (CUDA):
// the codes q (int8, cols columns), then the block factors d (float, cols / 32 columns).
struct Q8_0Sections {
  uint64_t q, d, end;  // byte offsets from `off`
};
inline Q8_0Sections q8_0_sections(int64_t rows_padded, int64_t cols) {
  const uint64_t n = static_cast<uint64_t>(rows_padded), k = static_cast<uint64_t>(cols);
  return {0, n * k, n * k + 4 * n * (k / 32)};
}
// Where element (row, col) of a part with `cols` columns lies in head tiles of `tile` rows.
inline uint64_t head_tile_index(int64_t row, int64_t col, int64_t cols, int64_t tile) {
  return static_cast<uint64_t>((row / tile) * cols * tile + col * tile + row % tile);
}

inline uint64_t element_bytes(DenseStorage s) { return s == DenseStorage::F32 ? 4 : s == DenseStorage::F16 ? 2 : 1; }

// A typed view of `n` records at `off` in `bytes`, checked against its end and the
// type's alignment; `what` names the part in the error ("the embedded model", ...).
template <typename T>
std::span<const T> records_at(std::span<const uint8_t> bytes, uint64_t off, uint64_t n, const char* what) {
  if (off % alignof(T) != 0 || off > bytes.size() || n > (bytes.size() - off) / sizeof(T))
    throw std::runtime_error(std::string(what) + " is damaged");
  return {reinterpret_cast<const T*>(bytes.data() + off), static_cast<size_t>(n)};
}

// FNV-1a 64 over a byte range (chainable through `h`): the hash of an external side
// file's weights, kernel cache entries, outputs' build IDs.
inline uint64_t fnv1a64(const uint8_t* p, size_t n, uint64_t h = 0xcbf29ce484222325ull) {
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

}  // namespace bitnetc::rt
