// llama.cpp's k-quant matrices (Q4_K, Q5_K, Q6_K: what llama-quantize writes for token
// embeddings and heads by default), unpacked into one form the interpreter and the
// generated head kernels read. Rows are split into super-blocks of 256 and those into
// groups of 16 (Q4_K/Q5_K's groups of 32 become two groups with the same scale and min):
//
//   value(r, c) = (d * sc) * q - dmin * m      (ggml's dequantize_row_q*_K, in its order)
//
// with q the element's integer code, sc and m its group's integer scale and min, d and
// dmin its super-block's float factors (dmin and m are 0 for Q6_K). A dot with Q8_K
// activations (codes x8, factor dx per super-block) is then, per super-block,
// isum = sum sc*q*x8 and imin = sum m*x8 in exact integers, as ggml's
// vec_dot_q*_K_q8_K form them (ir::kquant_dot has the float part).
#pragma once

#include <cstdint>
#include <vector>

namespace bitnetc {

struct KQuantWeights {
  static constexpr int kBlock = 256, kGroup = 16;
  int64_t rows = 0, cols = 0;  // cols: a multiple of kBlock
  std::vector<int8_t> q;       // [rows][cols]
  std::vector<int8_t> sc, m;   // [rows][cols / kGroup]
  std::vector<float> d, dmin;  // [rows][cols / kBlock]

  float value(int64_t r, int64_t c) const {
    const int64_t g = r * (cols / kGroup) + c / kGroup, b = r * (cols / kBlock) + c / kBlock;
    return d[b] * static_cast<float>(sc[g]) * static_cast<float>(q[r * cols + c]) - dmin[b] * static_cast<float>(m[g]);
  }
};

// llama.cpp's Q8_0 (what convert_hf_to_gguf --outtype q8_0 and llama-quantize Q8_0 write
// for embeddings and heads): a half factor per block of 32 codes, value = d * q
// (dequantize_row_q8_0). A head computes with Q8_0 activations in ggml's eight float
// lanes (bitnetc_q8_0_lane_step in numerics.h; ir::q8_0_dot).
struct Q8_0Weights {
  static constexpr int kBlock = 32;
  int64_t rows = 0, cols = 0;  // cols: a multiple of kBlock
  std::vector<int8_t> q;       // [rows][cols]
  std::vector<float> d;        // [rows][cols / kBlock], each a half's value

  float value(int64_t r, int64_t c) const {
    return static_cast<float>(q[r * cols + c]) * d[r * (cols / kBlock) + c / kBlock];
  }
};

}  // namespace bitnetc
