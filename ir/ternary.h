// Ternary weights: codes in {-1, 0, +1} and the scales that multiply them. The one
// representation every weight format decodes to and every layout packs from.
#pragma once

#include <cstdint>
#include <vector>

namespace bitnetc {

// A rows x cols ternary matrix, row-major (row = output feature), with its scales:
// element (r, c) is codes[r*cols + c] * scales[(r*cols + c) / scale_block].
// A per-tensor scale has scale_block == rows*cols and one entry; llama.cpp's TQ types
// have one scale per 256 consecutive elements of a row.
struct TernaryWeights {
  int64_t rows = 0, cols = 0;
  std::vector<int8_t> codes;
  uint64_t scale_block = 0;
  std::vector<float> scales;

  float scale_of(int64_t r, int64_t c) const {
    return scales[static_cast<size_t>((static_cast<uint64_t>(r) * cols + c) / scale_block)];
  }
  float value(int64_t r, int64_t c) const { return codes[r * cols + c] * scale_of(r, c); }
};

}  // namespace bitnetc
