// Tensor element types as they appear in model files, their storage sizes, and a
// scalar reference codec for each (ggml's `_ref` style: plain loops, no SIMD), used by
// the importers, the synthetic-model writer and the converters.
//
// Ternary types decode to TernaryWeights: one int8 code in {-1, 0, +1} per element and
// the scale(s) that multiply them. Nothing here knows about targets or kernels.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fp16.h"  // fp16_to_f32, f32_to_fp16
#include "kquant.h"
#include "ternary.h"

namespace bitnetc {

// bitnetc's own enumeration. File type ids are mapped onto it by each importer
// (GGUF ids collide between bitnet.cpp's fork and upstream ggml; see gguf.cpp).
enum class TensorType : uint8_t {
  F32,
  F16,
  BF16,
  F64,
  I8,
  I16,
  I32,
  I64,
  U8,
  Q4_0,
  Q4_1,
  Q5_0,
  Q5_1,
  Q8_0,
  Q8_1,
  Q2_K,
  Q3_K,
  Q4_K,
  Q5_K,
  Q6_K,
  Q8_K,
  IQ2_XXS,
  IQ2_XS,
  IQ3_XXS,
  IQ1_S,
  IQ4_NL,
  IQ3_S,
  IQ2_S,
  IQ4_XS,
  IQ1_M,
  MXFP4,
  TQ1_0,
  TQ2_0,  // llama.cpp's ternary types (block scale fp16 per 256)
  I2_S,
  TL1,
  TL2,     // bitnet.cpp's ternary types (one f32 scale per tensor)
  I2_L2C,  // bitllama2.c checkpoints: 2 bits, first element in the low bits
  IQ1_BN,  // ik_llama.cpp's ternary types (GGUF ids 134, 135): a scale per row (fp16 /
  IQ2_BN,  //   f32) at the row's start, then blocks of 64 (13 / 16 bytes)
};

struct TypeTraits {
  TensorType type;
  const char* name;      // as ggml prints it ("TQ2_0", "F32", ...)
  uint32_t block_size;   // elements per block along a row
  uint32_t block_bytes;  // bytes per block (0 for the special-size bitnet.cpp types)
  bool ternary;          // decodes to {-1,0,+1} codes + scale
  bool readable;         // bitnetc can decode its values
};

const TypeTraits& type_traits(TensorType t);
const char* type_name(TensorType t);
std::optional<TensorType> type_from_name(std::string_view name);  // case-insensitive

// Bytes of a tensor with `row_len` elements per row and `n_rows` rows (ggml ne[0] and
// the product of the other dims). Returns nullopt when the row length is not a
// multiple of the block size or the size overflows 64 bits.
std::optional<uint64_t> tensor_nbytes(TensorType t, uint64_t row_len, uint64_t n_rows);
// The bytes a file must hold for the tensor: tensor_nbytes, except for TL1/TL2, whose
// ggml size includes allocation slack (rounding, a 32-byte tail) that bitnet.cpp's
// converter does not write: it stores the packed bytes alone, with the `<name>_scale`
// tensor right after them (checked against utils/convert-hf-to-gguf-bitnet.py's output).
std::optional<uint64_t> tensor_file_bytes(TensorType t, uint64_t row_len, uint64_t n_rows);

// ---- scalar conversions -------------------------------------------------------------
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);  // round to nearest even, NaN kept quiet

// ---- dense decode -------------------------------------------------------------------
// Decodes `n` elements of a dense or block type (F32, F16, BF16, Q8_0, Q4_K, Q5_K, Q6_K
// (in ggml's arithmetic, bit for bit), and the ternary
// types except TL1/TL2, which need their tile layout) to float. Throws
// std::invalid_argument for types it cannot decode.
void dequantize_row_ref(TensorType t, const uint8_t* src, float* dst, uint64_t n);

// ---- k-quants (ir/kquant.h) --------------------------------------------------------
bool is_kquant(TensorType t);  // Q4_K, Q5_K, Q6_K
// `src` holds rows x cols elements of a k-quant type (cols a multiple of 256).
KQuantWeights decode_kquant(TensorType t, const uint8_t* src, int64_t rows, int64_t cols);
// `src` holds rows x cols Q8_0 elements (cols a multiple of 32): codes and half factors.
Q8_0Weights decode_q8_0(const uint8_t* src, int64_t rows, int64_t cols);
// Float values (a multiple of 32 of them) as Q8_0 blocks, as ggml's quantize_row_q8_0_ref
// writes them (what llama-quantize stores): d = amax / 127, q = roundf(x / d), d as a half.
std::vector<uint8_t> encode_q8_0(const std::vector<float>& v);

// ---- ternary weights ----------------------------------------------------------------

// bitnet.cpp packs I2_S differently per CPU family: blocks of 128 elements in 32-byte
// groups on x86, blocks of 64 in 16-byte groups on ARM. The file does not say which;
// bitnetc's own writer records it in `bitnetc.i2_s.layout`, peers' files default to x86.
enum class I2SLayout : uint8_t { X86, Arm };
const char* i2s_layout_name(I2SLayout l);

// Tile parameters that fix TL1/TL2's weight permutation (bitnet.cpp's
// kernel_config.ini: bm, bk, bmm). The packed bytes cannot be read without them.
struct TLTileConfig {
  int64_t BM = 0;  // rows per outer tile
  int64_t BK = 0;  // columns per outer tile
  int64_t bm = 0;  // rows per inner tile ("bmm")
};

// A default tile config for a rows x cols matrix that satisfies every constraint of
// the layout, or nullopt when the shape cannot be packed in it at all.
std::optional<TLTileConfig> default_tl1_config(int64_t rows, int64_t cols);
std::optional<TLTileConfig> default_tl2_config(int64_t rows, int64_t cols);
// Empty string when `cfg` is valid for the shape, else why not.
std::string check_tl1_config(int64_t rows, int64_t cols, const TLTileConfig& cfg);
std::string check_tl2_config(int64_t rows, int64_t cols, const TLTileConfig& cfg);

// Decoders: `src` holds at least tensor_file_bytes(type, cols, rows) bytes.
TernaryWeights decode_tq1_0(const uint8_t* src, int64_t rows, int64_t cols);
TernaryWeights decode_tq2_0(const uint8_t* src, int64_t rows, int64_t cols);
TernaryWeights decode_i2_s(const uint8_t* src, int64_t rows, int64_t cols, I2SLayout layout);
TernaryWeights decode_tl1(const uint8_t* src, int64_t rows, int64_t cols, const TLTileConfig& cfg, float scale);
// bitllama2.c: element k at bits 2(k&3) of byte k>>2; 00 = 0, 01 = +1, 11 = -1 (10 read as 0).
TernaryWeights decode_i2_l2c(const uint8_t* src, int64_t rows, int64_t cols, float scale);
TernaryWeights decode_tl2(const uint8_t* src, int64_t rows, int64_t cols, const TLTileConfig& cfg, float scale);
// ik_llama.cpp's (iqk_quantize.cpp dequantize_row_iq1_bn / _iq2_bn): one scale per row.
TernaryWeights decode_iq1_bn(const uint8_t* src, int64_t rows, int64_t cols);
TernaryWeights decode_iq2_bn(const uint8_t* src, int64_t rows, int64_t cols);

// Encoders (lossless for codes; TQ scales are stored as fp16, I2_S/TL as f32).
// TQ*_0 take one scale per 256-element block (scale_block 256) or per tensor.
std::vector<uint8_t> encode_tq1_0(const TernaryWeights& w);
std::vector<uint8_t> encode_tq2_0(const TernaryWeights& w);
std::vector<uint8_t> encode_i2_s(const TernaryWeights& w, I2SLayout layout);        // per-tensor scale
std::vector<uint8_t> encode_tl1(const TernaryWeights& w, const TLTileConfig& cfg);  // codes only
std::vector<uint8_t> encode_tl2(const TernaryWeights& w, const TLTileConfig& cfg);  // codes only

}  // namespace bitnetc
