// The lookup-table ternary layouts TL1 and TL2 (after bitnet.cpp's): how their bytes are
// laid out, and the hand-written inner tiles that Halide pipelines (schedules/lut_matmul.h)
// call as extern stages, because Halide 14 cannot express a byte-table lookup (NEON tbl,
// x86 pshufb).
//
// Both layouts group the weights of a row and store one 4-bit table index per group. A
// table per group of activations holds every possible partial dot product, built once
// per token; a tile of rows then turns its indices into products with one lookup per
// vector of rows. The tables hold exact int16 sums of int8 activations, split into a low
// and a high byte table, so results are bit-identical to the interpreter's
// sum_k w_k x_k (bitnet.cpp quantizes its tables to int8 instead, which changes numerics).
//
// TL1 (ARM, WebAssembly SIMD): pairs of weights (a, b), index 3(a+1) + (b+1) in 0..8. Tiles of 16 rows;
//   K padded with zero weights to a multiple of 4. Byte (tile, j, r), at
//   tile * tile_bytes + 16 j + r, holds row r's pair 2j (low nibble) and 2j+1 (high).
//   Table of pair p: 16 low bytes then 16 high bytes of the int16 value of each index.
// TL2 (x86): triples (a, b, c), value i = 9a + 3b + c in -13..13, stored as |i| (4 bits)
//   plus a sign bit. Tiles of 32 rows; K padded with zero weights to a multiple of 24
//   (bitnet.cpp stores a remainder of K not divisible by 3 as TL1 pairs; padding is the
//   same arithmetic with one layout). Per octet q of triples, at tile * tile_bytes +
//   160 q: four 32-byte index blocks (block h, byte r: triples 8q+2h low nibble, 8q+2h+1
//   high nibble), then 32 sign bytes (byte r bit s: triple 8q+s is negative).
//   Table of triple g: 16 low then 16 high bytes of the value of |i| (entries 14, 15: 0).
#pragma once

#include <cstdint>

#include "HalideRuntime.h"

namespace bitnetc::rt {

inline constexpr int kTl1TileRows = 16;
inline constexpr int kTl2TileRows = 32;
inline constexpr int kTl1KMultiple = 4;
inline constexpr int kTl2KMultiple = 24;
inline constexpr int kLutEntryBytes = 32;  // one table: 16 low bytes, 16 high bytes

inline int64_t tl1_tile_bytes(int64_t K_padded) { return kTl1TileRows * K_padded / 4; }
inline int64_t tl2_tile_bytes(int64_t K_padded) { return K_padded / 24 * 160; }

// TL1 index of the pair (a, b) and its weights back.
inline int tl1_index(int a, int b) { return 3 * (a + 1) + (b + 1); }
// TL2: the signed triple value 9a + 3b + c, and the canonical (a, b, c) of |value| 0..13.
inline int tl2_value(int a, int b, int c) { return 9 * a + 3 * b + c; }
inline void tl2_digits(int j, int& a, int& b, int& c) {
  c = (j + 1) % 3 - 1;
  const int r = (j - c) / 3;
  b = (r + 1) % 3 - 1;
  a = (r - b) / 3;
}

}  // namespace bitnetc::rt

// The extern stages. Each computes the int32 dot products of the rows [min, min+extent)
// of `out` (dimension 0; rows past the last tile give 0) with the tokens of dimension 1,
// from `packed` ([tile_bytes, n_tiles] uint8) and `lut` ([32, n_groups, tokens] uint8,
// the tables above). Called with null hosts they answer Halide's bounds query.
extern "C" {
// NEON tbl on aarch64; the scalar tile elsewhere.
int bitnetc_tl1_tiles(halide_buffer_t* packed, halide_buffer_t* lut, int32_t tile_bytes, int32_t n_tiles,
                      int32_t n_groups, halide_buffer_t* out);
// AVX2 pshufb on x86-64; the scalar tile elsewhere.
int bitnetc_tl2_tiles(halide_buffer_t* packed, halide_buffer_t* lut, int32_t tile_bytes, int32_t n_tiles,
                      int32_t n_groups, halide_buffer_t* out);
// TL1 with WebAssembly SIMD (i8x16.swizzle), for wasm32-simd outputs only: it lives in
// its own archive, built with -msimd128 (lut_tiles_simd128.cpp), so that the scalar
// wasm32 runtime holds no SIMD instruction.
int bitnetc_tl1_tiles_simd128(halide_buffer_t* packed, halide_buffer_t* lut, int32_t tile_bytes, int32_t n_tiles,
                              int32_t n_groups, halide_buffer_t* out);
// The scalar references: the layouts read back weight by weight.
int bitnetc_tl1_tiles_scalar(halide_buffer_t* packed, halide_buffer_t* lut, int32_t tile_bytes, int32_t n_tiles,
                             int32_t n_groups, halide_buffer_t* out);
int bitnetc_tl2_tiles_scalar(halide_buffer_t* packed, halide_buffer_t* lut, int32_t tile_bytes, int32_t n_tiles,
                             int32_t n_groups, halide_buffer_t* out);
}
