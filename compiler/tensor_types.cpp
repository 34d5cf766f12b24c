#include "tensor_types.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "diagnostics.h"
#include "huge_pages.h"

namespace bitnetc {

namespace {

// Block sizes and bytes per block as ggml defines them (ggml-common.h).
constexpr TypeTraits kTraits[] = {
    {TensorType::F32, "F32", 1, 4, false, true},
    {TensorType::F16, "F16", 1, 2, false, true},
    {TensorType::BF16, "BF16", 1, 2, false, true},
    {TensorType::F64, "F64", 1, 8, false, false},
    {TensorType::I8, "I8", 1, 1, false, false},
    {TensorType::I16, "I16", 1, 2, false, false},
    {TensorType::I32, "I32", 1, 4, false, false},
    {TensorType::I64, "I64", 1, 8, false, false},
    {TensorType::U8, "U8", 1, 1, false, false},
    {TensorType::Q4_0, "Q4_0", 32, 18, false, false},
    {TensorType::Q4_1, "Q4_1", 32, 20, false, false},
    {TensorType::Q5_0, "Q5_0", 32, 22, false, false},
    {TensorType::Q5_1, "Q5_1", 32, 24, false, false},
    {TensorType::Q8_0, "Q8_0", 32, 34, false, true},
    {TensorType::Q8_1, "Q8_1", 32, 36, false, false},
    {TensorType::Q2_K, "Q2_K", 256, 84, false, false},
    {TensorType::Q3_K, "Q3_K", 256, 110, false, false},
    {TensorType::Q4_K, "Q4_K", 256, 144, false, true},
    {TensorType::Q5_K, "Q5_K", 256, 176, false, true},
    {TensorType::Q6_K, "Q6_K", 256, 210, false, true},
    {TensorType::Q8_K, "Q8_K", 256, 292, false, false},
    {TensorType::IQ2_XXS, "IQ2_XXS", 256, 66, false, false},
    {TensorType::IQ2_XS, "IQ2_XS", 256, 74, false, false},
    {TensorType::IQ3_XXS, "IQ3_XXS", 256, 98, false, false},
    {TensorType::IQ1_S, "IQ1_S", 256, 50, false, false},
    {TensorType::IQ4_NL, "IQ4_NL", 32, 18, false, false},
    {TensorType::IQ3_S, "IQ3_S", 256, 110, false, false},
    {TensorType::IQ2_S, "IQ2_S", 256, 82, false, false},
    {TensorType::IQ4_XS, "IQ4_XS", 256, 136, false, false},
    {TensorType::IQ1_M, "IQ1_M", 256, 56, false, false},
    {TensorType::MXFP4, "MXFP4", 32, 17, false, false},
    {TensorType::TQ1_0, "TQ1_0", 256, 54, true, true},
    {TensorType::TQ2_0, "TQ2_0", 256, 66, true, true},
    // bitnet.cpp's types have blck_size 1 in its ggml and a size formula of their own
    // (ggml_nbytes): see tensor_nbytes below.
    {TensorType::I2_S, "I2_S", 1, 0, true, true},
    {TensorType::TL1, "TL1", 1, 0, true, true},
    {TensorType::TL2, "TL2", 1, 0, true, true},
    {TensorType::I2_L2C, "I2_L2C", 4, 1, true, true},
    // ik_llama.cpp's: blocks of 64 after a per-row scale (row_meta_size 2 / 4), see tensor_nbytes.
    {TensorType::IQ1_BN, "IQ1_BN", 64, 13, true, true},
    {TensorType::IQ2_BN, "IQ2_BN", 64, 16, true, true},
};

constexpr int kQK = 256;  // QK_K: block length of TQ1_0 / TQ2_0

}  // namespace

const TypeTraits& type_traits(TensorType t) {
  for (const auto& tr : kTraits)
    if (tr.type == t) return tr;
  throw std::logic_error("type_traits: unknown TensorType");
}

const char* type_name(TensorType t) { return type_traits(t).name; }

std::optional<TensorType> type_from_name(std::string_view name) {
  for (const auto& tr : kTraits) {
    std::string_view n = tr.name;
    if (n.size() == name.size() &&
        std::equal(n.begin(), n.end(), name.begin(), [](char a, char b) { return std::tolower(a) == std::tolower(b); }))
      return tr.type;
  }
  return std::nullopt;
}

std::optional<uint64_t> tensor_nbytes(TensorType t, uint64_t row_len, uint64_t n_rows) {
  uint64_t n;
  if (checked_mul(row_len, n_rows, &n)) return std::nullopt;
  switch (t) {
    case TensorType::I2_S:
    case TensorType::TL1:
      // bitnet.cpp: n/4 packed bytes, then 32 bytes (I2_S keeps its f32 scale there).
      if (n % 4 != 0) return std::nullopt;
      return n / 4 + 32;
    case TensorType::TL2: {
      // bitnet.cpp's ggml_nbytes: three-weight groups (5 bits per 3) for all but 256
      // columns, two-weight groups (4 bits per 2) for the rest, rounded up to 32, +32.
      if (row_len < 256) return std::nullopt;
      if (n / row_len != n_rows) return std::nullopt;
      uint64_t b = (row_len - 256) * n_rows / 3 * 5 / 8 + 256 * n_rows / 2 * 4 / 8;
      if (b % 32 != 0) b += 32 - b % 32;
      return b + 32;
    }
    case TensorType::IQ1_BN:
    case TensorType::IQ2_BN: {  // per row: the scale, then the blocks
      const uint64_t meta = t == TensorType::IQ1_BN ? 2 : 4, block = t == TensorType::IQ1_BN ? 13 : 16;
      if (row_len % 64 != 0) return std::nullopt;
      uint64_t bytes;
      if (checked_mul(meta + row_len / 64 * block, n_rows, &bytes)) return std::nullopt;
      return bytes;
    }
    default: {
      const auto& tr = type_traits(t);
      if (row_len % tr.block_size != 0) return std::nullopt;
      uint64_t bytes;
      if (checked_mul(n / tr.block_size, tr.block_bytes, &bytes)) return std::nullopt;
      return bytes;
    }
  }
}

std::optional<uint64_t> tensor_file_bytes(TensorType t, uint64_t row_len, uint64_t n_rows) {
  const auto nbytes = tensor_nbytes(t, row_len, n_rows);
  if (!nbytes) return nbytes;
  if (t == TensorType::TL1) return *nbytes - 32;
  if (t == TensorType::TL2) return (row_len - 256) * n_rows / 3 * 5 / 8 + 256 * n_rows / 2 * 4 / 8;
  return nbytes;
}

// ---- scalar conversions -------------------------------------------------------------

float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

uint16_t f32_to_bf16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7FFFFFFF) > 0x7F800000u) return static_cast<uint16_t>((x >> 16) | 0x40);
  x += 0x7FFF + ((x >> 16) & 1);
  return static_cast<uint16_t>(x >> 16);
}

namespace {

uint16_t load_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
float load_f32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, 4);
  return v;
}
void store_u16(uint8_t* p, uint16_t v) {
  p[0] = v & 0xFF;
  p[1] = v >> 8;
}

void require_whole_blocks(int64_t rows, int64_t cols, const char* type) {
  if (rows <= 0 || cols <= 0 || cols % kQK != 0)
    throw std::invalid_argument(std::string(type) + " needs rows of a multiple of 256 elements (got " +
                                std::to_string(cols) + ")");
}

TernaryWeights make_weights(int64_t rows, int64_t cols) {
  TernaryWeights w;
  w.rows = rows;
  w.cols = cols;
  w.codes = huge_page_vector<int8_t>(static_cast<size_t>(rows * cols), 0);
  return w;
}

void set_tensor_scale(TernaryWeights& w, float s) {
  w.scale_block = static_cast<uint64_t>(w.rows * w.cols);
  w.scales.assign(1, s);
}

// The scale that covers elements [i, i + 256): per-block or per-tensor.
float block_scale(const TernaryWeights& w, uint64_t first_element) { return w.scales[first_element / w.scale_block]; }

void require_per_tensor_scale(const TernaryWeights& w, const char* what) {
  if (w.scales.size() != 1) throw std::invalid_argument(std::string(what) + " stores one scale per tensor");
}

}  // namespace

// ---- TQ2_0: uint8 qs[64]; fp16 d (ggml-common.h block_tq2_0) ------------------------
// qs[32*h + m] holds elements 128*h + m + 32*n at bits 2n..2n+1; trit t means t - 1.

TernaryWeights decode_tq2_0(const uint8_t* src, int64_t rows, int64_t cols) {
  require_whole_blocks(rows, cols, "TQ2_0");
  TernaryWeights w = make_weights(rows, cols);
  const uint64_t n = static_cast<uint64_t>(rows * cols);
  w.scale_block = kQK;
  w.scales.resize(n / kQK);
  for (uint64_t b = 0; b < n / kQK; ++b) {
    const uint8_t* blk = src + b * 66;
    int8_t* out = w.codes.data() + b * kQK;
    for (int h = 0; h < 2; ++h)
      for (int m = 0; m < 32; ++m)
        for (int k = 0; k < 4; ++k)
          out[128 * h + m + 32 * k] = static_cast<int8_t>(((blk[32 * h + m] >> (2 * k)) & 3) - 1);
    w.scales[b] = fp16_to_f32(load_u16(blk + 64));
  }
  return w;
}

std::vector<uint8_t> encode_tq2_0(const TernaryWeights& w) {
  require_whole_blocks(w.rows, w.cols, "TQ2_0");
  const uint64_t n = static_cast<uint64_t>(w.rows * w.cols);
  std::vector<uint8_t> out(n / kQK * 66, 0);
  for (uint64_t b = 0; b < n / kQK; ++b) {
    uint8_t* blk = out.data() + b * 66;
    const int8_t* in = w.codes.data() + b * kQK;
    for (int h = 0; h < 2; ++h)
      for (int m = 0; m < 32; ++m) {
        uint8_t q = 0;
        for (int k = 0; k < 4; ++k) q |= static_cast<uint8_t>((in[128 * h + m + 32 * k] + 1) << (2 * k));
        blk[32 * h + m] = q;
      }
    store_u16(blk + 64, f32_to_fp16(block_scale(w, b * kQK)));
  }
  return out;
}

// ---- TQ1_0: uint8 qs[48]; uint8 qh[4]; fp16 d -----------------------------------------
// Five trits per byte as a fixed-point fraction: byte = ceil(v * 256 / 243) with
// v = sum trit_k * 3^(4-k); trit n of byte b is ((uint8)(b * 3^n) * 3) >> 8.

namespace {
constexpr uint8_t kPow3[6] = {1, 3, 9, 27, 81, 243};

int8_t tq1_trit(uint8_t byte, int n) {
  const uint8_t q = static_cast<uint8_t>(byte * kPow3[n]);
  return static_cast<int8_t>(((static_cast<uint16_t>(q) * 3) >> 8) - 1);
}

uint8_t tq1_pack(const int8_t* trits, int count) {  // count <= 5, first is most significant
  uint32_t v = 0;
  for (int k = 0; k < 5; ++k) v = v * 3 + (k < count ? static_cast<uint32_t>(trits[k] + 1) : 0);
  return static_cast<uint8_t>((v * 256 + 242) / 243);
}
}  // namespace

TernaryWeights decode_tq1_0(const uint8_t* src, int64_t rows, int64_t cols) {
  require_whole_blocks(rows, cols, "TQ1_0");
  TernaryWeights w = make_weights(rows, cols);
  const uint64_t n = static_cast<uint64_t>(rows * cols);
  w.scale_block = kQK;
  w.scales.resize(n / kQK);
  for (uint64_t b = 0; b < n / kQK; ++b) {
    const uint8_t* blk = src + b * 54;
    int8_t* out = w.codes.data() + b * kQK;
    for (int m = 0; m < 32; ++m)
      for (int k = 0; k < 5; ++k) out[m + 32 * k] = tq1_trit(blk[m], k);
    for (int m = 0; m < 16; ++m)
      for (int k = 0; k < 5; ++k) out[160 + m + 16 * k] = tq1_trit(blk[32 + m], k);
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 4; ++k) out[240 + j + 4 * k] = tq1_trit(blk[48 + j], k);
    w.scales[b] = fp16_to_f32(load_u16(blk + 52));
  }
  return w;
}

std::vector<uint8_t> encode_tq1_0(const TernaryWeights& w) {
  require_whole_blocks(w.rows, w.cols, "TQ1_0");
  const uint64_t n = static_cast<uint64_t>(w.rows * w.cols);
  std::vector<uint8_t> out(n / kQK * 54, 0);
  int8_t t[5];
  for (uint64_t b = 0; b < n / kQK; ++b) {
    uint8_t* blk = out.data() + b * 54;
    const int8_t* in = w.codes.data() + b * kQK;
    for (int m = 0; m < 32; ++m) {
      for (int k = 0; k < 5; ++k) t[k] = in[m + 32 * k];
      blk[m] = tq1_pack(t, 5);
    }
    for (int m = 0; m < 16; ++m) {
      for (int k = 0; k < 5; ++k) t[k] = in[160 + m + 16 * k];
      blk[32 + m] = tq1_pack(t, 5);
    }
    for (int j = 0; j < 4; ++j) {
      for (int k = 0; k < 4; ++k) t[k] = in[240 + j + 4 * k];
      blk[48 + j] = tq1_pack(t, 4);
    }
    store_u16(blk + 52, f32_to_fp16(block_scale(w, b * kQK)));
  }
  return out;
}

// ---- I2_S (bitnet.cpp src/ggml-bitnet-mad.cpp, quantize_i2_s with ACT_PARALLEL) ------
// Codes 0,1,2 mean -1,0,+1. Blocks of QK elements (128 on x86, 64 on ARM) fill QK/4
// bytes: element j of a block sits in byte j % (QK/4) at bits 6 - 2*(j / (QK/4)).
// The f32 scale follows the n/4 packed bytes; the tensor then ends 32 bytes later.

const char* i2s_layout_name(I2SLayout l) { return l == I2SLayout::X86 ? "x86" : "arm"; }

namespace {
int i2s_block(I2SLayout l) { return l == I2SLayout::X86 ? 128 : 64; }
}  // namespace

TernaryWeights decode_i2_s(const uint8_t* src, int64_t rows, int64_t cols, I2SLayout layout) {
  TernaryWeights w = make_weights(rows, cols);
  const uint64_t n = static_cast<uint64_t>(rows * cols);
  const int qk = i2s_block(layout), group = qk / 4;
  if (n % qk != 0) throw std::invalid_argument("I2_S needs a multiple of " + std::to_string(qk) + " elements");
  // Element s * group + j of a block sits in byte j at bits 6 - 2s (loops in that order:
  // a division per element made this a third of a 2B4T compile).
  static constexpr int8_t kWeight[4] = {-1, 0, 1, 0};  // code 3 is never written; read as 0
  for (uint64_t blk = 0; blk < n / qk; ++blk) {
    const uint8_t* bytes = src + blk * group;
    int8_t* out = w.codes.data() + blk * qk;
    for (int s = 0; s < 4; ++s)
      for (int j = 0; j < group; ++j) out[s * group + j] = kWeight[(bytes[j] >> (6 - 2 * s)) & 3];
  }
  set_tensor_scale(w, load_f32(src + n / 4));
  return w;
}

std::vector<uint8_t> encode_i2_s(const TernaryWeights& w, I2SLayout layout) {
  require_per_tensor_scale(w, "I2_S");
  const uint64_t n = static_cast<uint64_t>(w.rows * w.cols);
  const int qk = i2s_block(layout), group = qk / 4;
  if (n % qk != 0) throw std::invalid_argument("I2_S needs a multiple of " + std::to_string(qk) + " elements");
  std::vector<uint8_t> out(n / 4 + 32, 0);
  for (uint64_t blk = 0; blk < n / qk; ++blk) {
    uint8_t* bytes = out.data() + blk * group;
    const int8_t* in = w.codes.data() + blk * qk;
    for (int s = 0; s < 4; ++s)
      for (int j = 0; j < group; ++j) bytes[j] |= static_cast<uint8_t>((in[s * group + j] + 1) << (6 - 2 * s));
  }
  std::memcpy(out.data() + n / 4, &w.scales[0], 4);
  return out;
}

// ---- I2_L2C (bitllama2.c runbit.c) ---------------------------------------------------

TernaryWeights decode_i2_l2c(const uint8_t* src, int64_t rows, int64_t cols, float scale) {
  TernaryWeights w = make_weights(rows, cols);
  const uint64_t n = static_cast<uint64_t>(rows * cols);
  for (uint64_t k = 0; k < n; ++k) {
    const int code = (src[k >> 2] >> (2 * (k & 3))) & 3;
    w.codes[k] = static_cast<int8_t>(code == 1 ? 1 : code == 3 ? -1 : 0);
  }
  set_tensor_scale(w, scale);
  return w;
}

// ---- ik_llama.cpp's IQ1_BN / IQ2_BN -------------------------------------------------

namespace {

// ik's quantizer writes an all-zero row as scale 0 with codes +1 (its threshold test
// 0 < 0 fails): the row is zeros, and its codes are made so.
void zero_rows_without_scale(TernaryWeights& w) {
  for (int64_t r = 0; r < w.rows; ++r)
    if (w.scales[r] == 0) std::fill_n(w.codes.begin() + r * w.cols, w.cols, int8_t{0});
}

TernaryWeights per_row_ternary(int64_t rows, int64_t cols) {
  TernaryWeights w;
  w.rows = rows;
  w.cols = cols;
  w.codes.resize(static_cast<size_t>(rows * cols));
  w.scale_block = static_cast<uint64_t>(cols);
  w.scales.resize(static_cast<size_t>(rows));
  return w;
}

}  // namespace

// Row: float d, then per 64 elements 16 bytes; element j + 16i of a block is bits 2i..2i+1
// of byte j, code - 1 the trit (code 3 would dequantize to 2: not ternary).
TernaryWeights decode_iq2_bn(const uint8_t* src, int64_t rows, int64_t cols) {
  if (cols % 64 != 0) throw std::invalid_argument("IQ2_BN rows must be whole 64-element blocks");
  TernaryWeights w = per_row_ternary(rows, cols);
  const int64_t row_bytes = 4 + cols / 64 * 16;
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = src + r * row_bytes;
    std::memcpy(&w.scales[r], row, 4);
    for (int64_t b = 0; b < cols / 64; ++b)
      for (int j = 0; j < 16; ++j)
        for (int i = 0; i < 4; ++i) {
          const int code = (row[4 + 16 * b + j] >> (2 * i)) & 3;
          if (code == 3)
            throw std::invalid_argument("IQ2_BN code 3 (not a trit) at row " + std::to_string(r) + ", column " +
                                        std::to_string(64 * b + 16 * i + j));
          w.codes[r * cols + 64 * b + 16 * i + j] = static_cast<int8_t>(code - 1);
        }
  }
  zero_rows_without_scale(w);
  return w;
}

// Row: fp16 d, then per 64 elements 13 bytes: 12 bytes of five trits each (base 3,
// scaled to a byte: trit k of byte v is ((v * 3^(4-k)) mod 256 * 3) >> 8, as
// dequantize_row_iq1_bn computes it), for elements 16g + 5k .. 16g + 5k + 4 of group g
// (byte 3g + k), and one byte holding the four groups' 16th elements.
TernaryWeights decode_iq1_bn(const uint8_t* src, int64_t rows, int64_t cols) {
  if (cols % 64 != 0) throw std::invalid_argument("IQ1_BN rows must be whole 64-element blocks");
  static constexpr uint8_t kMult[5] = {81, 27, 9, 3, 1};
  auto trit = [](uint8_t byte, int k) {
    const auto v = static_cast<uint8_t>(byte * kMult[k]);
    return static_cast<int8_t>(((v + (v >> 1)) >> 7) - 1);
  };
  TernaryWeights w = per_row_ternary(rows, cols);
  const int64_t row_bytes = 2 + cols / 64 * 13;
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = src + r * row_bytes;
    w.scales[r] = fp16_to_f32(load_u16(row));
    for (int64_t b = 0; b < cols / 64; ++b) {
      const uint8_t* blk = row + 2 + 13 * b;
      int8_t* y = &w.codes[r * cols + 64 * b];
      for (int g = 0; g < 4; ++g) {
        for (int k = 0; k < 3; ++k)
          for (int j = 0; j < 5; ++j) y[16 * g + 5 * k + j] = trit(blk[3 * g + k], j);
        y[16 * g + 15] = trit(blk[12], g);
      }
    }
  }
  zero_rows_without_scale(w);
  return w;
}

// ---- k-quants -----------------------------------------------------------------------

bool is_kquant(TensorType t) { return t == TensorType::Q4_K || t == TensorType::Q5_K || t == TensorType::Q6_K; }

namespace {

// Q4_K/Q5_K's 6-bit scale and min of group j (of 8) from their 12 packed bytes
// (ggml's get_scale_min_k4).
void scale_min_k4(int j, const uint8_t* q, int& sc, int& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

}  // namespace

// Block layouts as ggml-common.h defines them:
//   block_q4_K (144 B): half d, half dmin, uint8 scales[12], uint8 qs[128]
//   block_q5_K (176 B): half d, half dmin, uint8 scales[12], uint8 qh[32], uint8 qs[128]
//   block_q6_K (210 B): uint8 ql[128], uint8 qh[64], int8 scales[16], half d
// and the element order of their dequantize_row_q*_K.
KQuantWeights decode_kquant(TensorType t, const uint8_t* src, int64_t rows, int64_t cols) {
  if (!is_kquant(t)) throw std::invalid_argument(std::string(type_name(t)) + " is not a k-quant type");
  if (cols % kQK != 0) throw std::invalid_argument("row length " + std::to_string(cols) + " is not a multiple of 256");
  KQuantWeights w;
  w.rows = rows;
  w.cols = cols;
  const int64_t blocks = rows * (cols / kQK);
  w.q.resize(static_cast<size_t>(rows * cols));
  w.sc.resize(static_cast<size_t>(blocks * 16));
  w.m.assign(static_cast<size_t>(blocks * 16), 0);
  w.d.resize(static_cast<size_t>(blocks));
  w.dmin.assign(static_cast<size_t>(blocks), 0.0f);
  const uint32_t bytes = type_traits(t).block_bytes;
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* blk = src + b * bytes;
    int8_t* q = &w.q[b * kQK];
    int8_t* sc = &w.sc[b * 16];
    int8_t* m = &w.m[b * 16];
    if (t == TensorType::Q6_K) {
      const uint8_t *ql = blk, *qh = blk + 128;
      w.d[b] = fp16_to_f32(load_u16(blk + 208));
      for (int g = 0; g < 16; ++g) sc[g] = static_cast<int8_t>(blk[192 + g]);
      for (int half = 0; half < 2; ++half, ql += 64, qh += 32)
        for (int l = 0; l < 32; ++l) {
          int8_t* y = q + 128 * half;
          y[l] = static_cast<int8_t>(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
          y[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
          y[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
          y[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
      continue;
    }
    w.d[b] = fp16_to_f32(load_u16(blk));
    w.dmin[b] = fp16_to_f32(load_u16(blk + 2));
    const uint8_t* scales = blk + 4;
    const bool q5 = t == TensorType::Q5_K;
    const uint8_t* qh = blk + 16;
    const uint8_t* qs = blk + (q5 ? 48 : 16);
    for (int j = 0; j < 4; ++j) {  // 64 elements: 32 low nibbles, then 32 high ones
      for (int half = 0; half < 2; ++half) {
        int s, mn;
        scale_min_k4(2 * j + half, scales, s, mn);
        for (int g = 0; g < 2; ++g)
          sc[4 * j + 2 * half + g] = static_cast<int8_t>(s), m[4 * j + 2 * half + g] = static_cast<int8_t>(mn);
        for (int l = 0; l < 32; ++l) {
          int v = half ? qs[32 * j + l] >> 4 : qs[32 * j + l] & 0xF;
          if (q5 && (qh[l] & (1u << (2 * j + half)))) v += 16;
          q[64 * j + 32 * half + l] = static_cast<int8_t>(v);
        }
      }
    }
  }
  return w;
}

// block_q8_0 (34 B): half d, int8 qs[32].
Q8_0Weights decode_q8_0(const uint8_t* src, int64_t rows, int64_t cols) {
  constexpr int B = Q8_0Weights::kBlock;
  if (cols % B != 0) throw std::invalid_argument("row length " + std::to_string(cols) + " is not a multiple of 32");
  Q8_0Weights w;
  w.rows = rows;
  w.cols = cols;
  const int64_t blocks = rows * (cols / B);
  w.q.resize(static_cast<size_t>(rows * cols));
  w.d.resize(static_cast<size_t>(blocks));
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* blk = src + b * (2 + B);
    w.d[b] = fp16_to_f32(load_u16(blk));
    std::memcpy(&w.q[b * B], blk + 2, B);
  }
  return w;
}

std::vector<uint8_t> encode_q8_0(const std::vector<float>& v) {
  constexpr size_t B = Q8_0Weights::kBlock;
  if (v.size() % B != 0) throw std::invalid_argument("Q8_0 needs whole blocks of 32 values");
  std::vector<uint8_t> b(v.size() / B * (2 + B));
  for (size_t k = 0; k < v.size() / B; ++k) {
    float amax = 0;
    for (size_t j = 0; j < B; ++j) amax = std::max(amax, std::fabs(v[B * k + j]));
    const float d = amax / 127, id = d != 0 ? 1 / d : 0;
    const uint16_t h = f32_to_fp16(d);
    uint8_t* blk = &b[k * (2 + B)];
    blk[0] = h & 0xFF;
    blk[1] = h >> 8;
    for (size_t j = 0; j < B; ++j) blk[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::roundf(v[B * k + j] * id)));
  }
  return b;
}

// ---- dense decode -------------------------------------------------------------------

void dequantize_row_ref(TensorType t, const uint8_t* src, float* dst, uint64_t n) {
  switch (t) {
    case TensorType::F32: std::memcpy(dst, src, n * 4); return;
    case TensorType::F16:
      for (uint64_t i = 0; i < n; ++i) dst[i] = fp16_to_f32(load_u16(src + 2 * i));
      return;
    case TensorType::BF16:
      for (uint64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(load_u16(src + 2 * i));
      return;
    case TensorType::Q8_0:  // block_q8_0: fp16 d; int8 qs[32]
      for (uint64_t b = 0; b < n / 32; ++b) {
        const uint8_t* blk = src + b * 34;
        const float d = fp16_to_f32(load_u16(blk));
        for (int j = 0; j < 32; ++j) dst[b * 32 + j] = d * static_cast<int8_t>(blk[2 + j]);
      }
      return;
    case TensorType::Q4_K:
    case TensorType::Q5_K:
    case TensorType::Q6_K: {
      const KQuantWeights w = decode_kquant(t, src, 1, static_cast<int64_t>(n));
      for (uint64_t i = 0; i < n; ++i) dst[i] = w.value(0, static_cast<int64_t>(i));
      return;
    }
    case TensorType::TQ1_0:
    case TensorType::TQ2_0: {
      const auto w = t == TensorType::TQ1_0 ? decode_tq1_0(src, 1, static_cast<int64_t>(n))
                                            : decode_tq2_0(src, 1, static_cast<int64_t>(n));
      for (uint64_t i = 0; i < n; ++i) dst[i] = w.codes[i] * w.scales[i / kQK];
      return;
    }
    default:
      throw std::invalid_argument(std::string("cannot decode ") + type_name(t) +
                                  " as a row (needs its whole tensor or is unsupported)");
  }
}

}  // namespace bitnetc
