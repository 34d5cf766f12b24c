// The loop every lookup-table tile function shares (lut_tiles.cpp, and for WebAssembly
// SIMD lut_tiles_simd128.cpp, a separate archive): Halide's bounds query, the walk over
// the tiles and token groups that `out` covers, and a table entry read back.
#pragma once

#include <algorithm>
#include <cstdint>

#include "lut_tiles.h"

namespace bitnetc::rt::lut_tiles {

inline bool is_bounds_query(const halide_buffer_t* b) { return b->host == nullptr && b->device == 0; }

// Halide's bounds query: the extern needs every tile its rows touch and the whole table
// of each of its tokens.
inline void answer_bounds_query(halide_buffer_t* packed, halide_buffer_t* lut, int32_t tile_bytes, int32_t n_tiles,
                                int32_t n_groups, const halide_buffer_t* out, int tile_rows) {
  if (is_bounds_query(packed)) {
    const int32_t first = std::min(out->dim[0].min / tile_rows, n_tiles - 1);
    const int32_t last = std::min((out->dim[0].min + out->dim[0].extent - 1) / tile_rows, n_tiles - 1);
    packed->dim[0].min = 0;
    packed->dim[0].extent = tile_bytes;
    packed->dim[1].min = first;
    packed->dim[1].extent = last - first + 1;
  }
  if (is_bounds_query(lut)) {
    lut->dim[0].min = 0;
    lut->dim[0].extent = kLutEntryBytes;
    lut->dim[1].min = 0;
    lut->dim[1].extent = n_groups;
    lut->dim[2].min = out->dim[1].min;
    lut->dim[2].extent = out->dim[1].extent;
  }
}

// Calls tile(tile_data, tables, n_tokens, sums) for every tile and group of up to
// kTokenGroup tokens that `out` covers, and writes the rows it asks for. `tile` fills
// sums[token][0..kRows) in row order; tables[token] is that token's table.
inline constexpr int kTokenGroup = 4;

template <int kRows, typename Tile>
int for_each_tile(halide_buffer_t* packed, halide_buffer_t* lut, int32_t tile_bytes, int32_t n_tiles, int32_t n_groups,
                  halide_buffer_t* out, Tile&& tile) {
  if (is_bounds_query(packed) || is_bounds_query(lut)) {
    answer_bounds_query(packed, lut, tile_bytes, n_tiles, n_groups, out, kRows);
    return 0;
  }
  const int32_t n0 = out->dim[0].min, n_ext = out->dim[0].extent;
  const int32_t m0 = out->dim[1].min, m_ext = out->dim[1].extent;
  const uint8_t* packed_base = packed->host - static_cast<int64_t>(packed->dim[1].min) * packed->dim[1].stride;
  int32_t sums[kTokenGroup][kRows];
  for (int32_t mg = m0; mg < m0 + m_ext; mg += kTokenGroup) {
    const int n_tokens = std::min(kTokenGroup, m0 + m_ext - mg);
    const uint8_t* tables[kTokenGroup];
    for (int i = 0; i < n_tokens; ++i)
      tables[i] = lut->host + static_cast<int64_t>(mg + i - lut->dim[2].min) * lut->dim[2].stride;
    for (int32_t t = n0 / kRows; t * kRows < n0 + n_ext; ++t) {
      if (t < n_tiles)
        tile(packed_base + static_cast<int64_t>(t) * packed->dim[1].stride, tables, n_tokens, sums);
      else
        for (auto& s : sums) std::fill(s, s + kRows, 0);
      for (int i = 0; i < n_tokens; ++i) {
        auto* row_out = reinterpret_cast<int32_t*>(out->host) + static_cast<int64_t>(mg + i - m0) * out->dim[1].stride;
        for (int r = 0; r < kRows; ++r) {
          const int32_t n = t * kRows + r;
          if (n >= n0 && n < n0 + n_ext) row_out[n - n0] = sums[i][r];
        }
      }
    }
  }
  return 0;
}

inline int16_t table_value(const uint8_t* table, int index) {
  return static_cast<int16_t>(table[index] | (table[16 + index] << 8));
}

// for_each_tile with a tile function that takes one token at a time.
template <int kRows>
int per_token(halide_buffer_t* packed, halide_buffer_t* lut, int32_t tile_bytes, int32_t n_tiles, int32_t n_groups,
              halide_buffer_t* out, void (*tile_fn)(const uint8_t*, const uint8_t*, int32_t, int32_t*)) {
  return for_each_tile<kRows>(
      packed, lut, tile_bytes, n_tiles, n_groups, out,
      [&](const uint8_t* tile, const uint8_t* const* tables, int n_tokens, int32_t(*sums)[kRows]) {
        for (int i = 0; i < n_tokens; ++i) tile_fn(tile, tables[i], n_groups, sums[i]);
      });
}

}  // namespace bitnetc::rt::lut_tiles
