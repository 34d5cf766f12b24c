// TL1 with WebAssembly SIMD: NEON's TL1 tile (lut_tiles.cpp) with i8x16.swizzle for tbl.
// A ternary weight costs about half the instructions of the I2_S row lanes there
// (WebAssembly has no byte dot product; bench/RESULTS.md, "WebAssembly SIMD: dot
// products and TL1").
//
// Per 16-byte block of 16 rows: each byte holds two pairs (low and high nibble); per pair
// two swizzles give the low and high bytes of the int16 table values, interleaved into
// int16 and summed. int16 sums are widened every 128 pairs (128 * 254 < 2^15). The
// indices are decoded once for up to four tokens (prefill), as TL2's AVX2 tile does.
#include <wasm_simd128.h>

#include "lut_tile_loop.h"

namespace {

using bitnetc::rt::kLutEntryBytes;
using bitnetc::rt::kTl1TileRows;

template <int kTokens>
void tl1_tile_simd128(const uint8_t* tile, const uint8_t* const* tables, int32_t n_groups,
                      int32_t (*sums)[kTl1TileRows]) {
  v128_t acc32[kTokens][4];
  for (auto& a : acc32)
    for (auto& v : a) v = wasm_i32x4_splat(0);
  const v128_t low_nibble = wasm_i8x16_splat(15);
  for (int32_t p0 = 0; p0 < n_groups; p0 += 128) {
    v128_t a0[kTokens], a1[kTokens];
    for (int i = 0; i < kTokens; ++i) a0[i] = a1[i] = wasm_i16x8_splat(0);
    const int32_t p_end = std::min(n_groups, p0 + 128);
    for (int32_t p = p0; p < p_end; p += 2) {
      const v128_t bytes = wasm_v128_load(tile + (p / 2) * 16);
      const v128_t idx[2] = {wasm_v128_and(bytes, low_nibble), wasm_u8x16_shr(bytes, 4)};
      for (int k = 0; k < 2; ++k)
        for (int i = 0; i < kTokens; ++i) {
          const uint8_t* t = tables[i] + (p + k) * kLutEntryBytes;
          const v128_t lo = wasm_i8x16_swizzle(wasm_v128_load(t), idx[k]);
          const v128_t hi = wasm_i8x16_swizzle(wasm_v128_load(t + 16), idx[k]);
          a0[i] = wasm_i16x8_add(
              a0[i], wasm_i8x16_shuffle(lo, hi, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23));  // rows 0-7
          a1[i] = wasm_i16x8_add(a1[i], wasm_i8x16_shuffle(lo, hi, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30,
                                                           15, 31));  // rows 8-15
        }
    }
    for (int i = 0; i < kTokens; ++i) {
      acc32[i][0] = wasm_i32x4_add(acc32[i][0], wasm_i32x4_extend_low_i16x8(a0[i]));
      acc32[i][1] = wasm_i32x4_add(acc32[i][1], wasm_i32x4_extend_high_i16x8(a0[i]));
      acc32[i][2] = wasm_i32x4_add(acc32[i][2], wasm_i32x4_extend_low_i16x8(a1[i]));
      acc32[i][3] = wasm_i32x4_add(acc32[i][3], wasm_i32x4_extend_high_i16x8(a1[i]));
    }
  }
  for (int i = 0; i < kTokens; ++i)
    for (int j = 0; j < 4; ++j) wasm_v128_store(sums[i] + 4 * j, acc32[i][j]);
}

}  // namespace

extern "C" int bitnetc_tl1_tiles_simd128(halide_buffer_t* packed, halide_buffer_t* lut, int32_t tile_bytes,
                                         int32_t n_tiles, int32_t n_groups, halide_buffer_t* out) {
  return bitnetc::rt::lut_tiles::for_each_tile<kTl1TileRows>(
      packed, lut, tile_bytes, n_tiles, n_groups, out,
      [&](const uint8_t* tile, const uint8_t* const* tables, int n_tokens, int32_t(*sums)[kTl1TileRows]) {
        switch (n_tokens) {  // the token count is a constant of the tile's loops
          case 1: return tl1_tile_simd128<1>(tile, tables, n_groups, sums);
          case 2: return tl1_tile_simd128<2>(tile, tables, n_groups, sums);
          case 3: return tl1_tile_simd128<3>(tile, tables, n_groups, sums);
          default: return tl1_tile_simd128<4>(tile, tables, n_groups, sums);
        }
      });
}
