// Ternary matmul as a Halide pipeline, specialized to one weight shape, SIMD width and
// batch: GEMV for one token (decode, batch 1), small-batch GEMM for a chunk of tokens
// (prefill: every unpacked weight vector meets all tokens of the batch).
//
// Packing (bitnetc's, I2_S-style, chosen for the SIMD width W bytes): each row of K
// weights is padded with zeros to a multiple of 4W and stored in blocks of 4W weights in
// W bytes; byte j of block b holds weights b*4W + s*W + j at bits 6-2s (s = 0..3) as
// code = w + 1. Unpacking one shift gives W consecutive codes, which meet W consecutive
// int8 activations in pmaddubsw (u8 x i8 -> i16 pairs). Rows come in tiles of R
// (ternary_tile_rows) whose blocks are interleaved: block b of rows r..r+R-1 side by
// side, then block b+1. A GEMV reads a tile's rows together, so a tile is one sequential
// run of memory, which the hardware prefetcher follows (separate rows were R streams of
// K/4 bytes each, which it did not: 2560x6912 from memory, 2 threads, 16 -> 33 GB/s in a
// hand-written probe). With code = w + 1:
//   sum_k w_k x_k = sum_k code_k x_k - sum_k x_k.
// The int32 dot products are exact; the float epilogue multiplies each activation
// block's integer sum by (d_a[b] * w_scale) and adds the blocks in order, exactly as the
// reference interpreter does, so results are bit-identical.
//
// Row lanes (MatmulPacking::RowLanes), for activations quantized in blocks (Q8_K: 256)
// on targets with a 4-way dot product (vpdpbusd, sdot), and on AVX2 (pmaddubsw pairs,
// summed in i16 over 256 weights and widened by pmaddwd): the tiles above sum a row's
// lanes across at the end of every block, which made such a GEMV compute-bound. Here
// each i32 lane of a vector is one row instead: L = W/4 rows per group, and W bytes hold
// 16 consecutive weights of each of the group's rows: byte 4*lane + t of chunk c holds
// weights 16c + 4s + t (s = 0..3) of row lane at bits 2s. One shift of one load gives
// each lane four consecutive codes, which meet the same four activations broadcast to
// every lane, so a block's sums land in one vector per group with no horizontal add,
// and its float epilogue is vector arithmetic over the group's rows.
#pragma once

#include <cstdint>
#include <tuple>
#include <vector>

#include "Halide.h"
#include "ternary.h"

namespace bitnetc::schedules {

int64_t padded_k(int64_t K, int vector_bytes);

// Rows per tile of the packing: 4, or the largest of 2 and 1 that divides N.
int ternary_tile_rows(int64_t N);

// The packed buffer's dimensions: [tile_rows * padded_k / 4 bytes, N / tile_rows tiles].
struct PackedDims {
  int bytes_per_tile, tiles;
};
PackedDims ternary_packed_dims(int64_t K, int64_t N, int vector_bytes);

// Packs a ternary matrix (codes only) for `vector_bytes`, in tiles (ternary_packed_dims).
std::vector<uint8_t> pack_ternary_rows(const TernaryWeights& w, int vector_bytes);

// How the 2-bit codes meet the int8 activations in the inner reduction.
enum class MatmulReduce {
  PairwiseI16,  // u8 x i8 products of adjacent pairs in saturating i16 (pmaddubsw; NEON smull/sadalp)
  DotU8I8,      // four u8 x i8 products into each i32 lane (AVX512-VNNI vpdpbusd)
  DotI8I8,      // four i8 x i8 products into each i32 lane, codes read as int8 (ARM sdot)
  // The same sums without a dot instruction (WebAssembly SIMD): row lanes keep adjacent
  // pairs in their own i32 lanes (i16x8.extmul, i32x4.extadd_pairwise), and add each
  // lane's two pairs once per activation block instead of once per 16 weights.
  WidenedPairs,
};

enum class MatmulPacking {
  RowTiles,  // pack_ternary_rows: tiles of interleaved rows, a row across the lanes
  RowLanes,  // pack_ternary_row_lanes: one row per i32 lane
};

struct TernaryMatmulShape {
  int64_t K = 0, N = 0;   // weights are N x K
  int64_t act_block = 0;  // activation quantization block (K for per-token, 256 for Q8_K)
  int vector_bytes = 32;  // 16 (NEON), 32 (AVX2) or 64 (AVX-512)
  int batch = 1;          // tokens per call: 1 (GEMV), or (GEMM) up to this many (see ternary_matmul.cpp)
  MatmulReduce reduce = MatmulReduce::PairwiseI16;
  MatmulPacking packing = MatmulPacking::RowTiles;
  // A weight scale per (row, activation block) instead of one per tensor: llama.cpp's
  // TQ1_0/TQ2_0 files store one per 256 weights of a row (its `d`), which meet Q8_K's
  // activation blocks of 256 one to one.
  bool block_scales = false;
  // ik_llama.cpp's Q8_K64 activations (act_block = K): x_sum and d_act hold four entries
  // per token, for the groups of elements k with (k % 16) / 4 = 0..3, and the epilogue is
  // ik's (bitnetc_q8k64_group_term, bitnetc_q8k64_combine in ir/numerics.h).
  bool q8k64 = false;
  // Every field, for the kernel cache's key (codegen/kernel_cache.h): a new field goes here too.
  auto fields() const { return std::tie(K, N, act_block, vector_bytes, batch, reduce, packing, block_scales, q8k64); }
};

// The rows of the block-scale buffer (N rounded up to whole row-lane groups: the last
// group's padding rows read zero scales).
int64_t block_scale_rows(const TernaryMatmulShape& shape);

// Row lanes: [K/16 * vector_bytes bytes per group, ceil(N / (vector_bytes/4)) groups];
// K must be a multiple of 16, and rows past N pad the last group with zero weights.
PackedDims row_lane_packed_dims(int64_t K, int64_t N, int vector_bytes);
std::vector<uint8_t> pack_ternary_row_lanes(const TernaryWeights& w, int vector_bytes);

// The packing `shape` names: the activations' zero-padded length, the packed buffer's
// dimensions, and the packed bytes of `w` (N x K as in shape).
int64_t packed_k(const TernaryMatmulShape& shape);
PackedDims packed_dims(const TernaryMatmulShape& shape);
std::vector<uint8_t> pack_ternary(const TernaryWeights& w, const TernaryMatmulShape& shape);

// Inputs, in order: packed (uint8, ternary_packed_dims or row_lane_packed_dims), x
// (int8, [padded_k, M] for row tiles, [K, M] for row lanes, zero padded), x_sum (int32,
// [K/act_block, M] (Q8_K64: [4, M]), sum of x per block), d_act (float, likewise), w_scale (float
// scalar), w_block_scales (float, [block_scale_rows, K/act_block]: block b of row n at
// (n, b); read only with block_scales, else any 2-D stand-in). Output: y (float, [N, M]).
// Dimension 0 is innermost and every buffer is dense. Each block's integer sum is
// multiplied by (d_act * w_scale), or (d_act * w_block_scales) per block, as the
// interpreter does.
struct MatmulPipeline {
  Halide::ImageParam packed, x, x_sum, d_act;
  Halide::Param<float> w_scale;
  Halide::ImageParam w_block_scales;
  Halide::Func y;
  std::vector<Halide::Argument> arguments() const { return {packed, x, x_sum, d_act, w_scale, w_block_scales}; }
};

MatmulPipeline ternary_matmul(const TernaryMatmulShape& shape);

// The pipeline's parameters, unscheduled and undefined: every ternary matmul pipeline
// (this one and the lookup-table ones, lut_matmul.h) takes the same arguments.
MatmulPipeline ternary_matmul_params();

}  // namespace bitnetc::schedules
