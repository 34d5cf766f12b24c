#include "lut_tiles.h"

#include <algorithm>
#include <cstring>

#include "lut_tile_loop.h"

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace {

using bitnetc::rt::kLutEntryBytes;
using bitnetc::rt::lut_tiles::for_each_tile;
using bitnetc::rt::lut_tiles::table_value;

// --- scalar references -----------------------------------------------------------

void tl1_tile_scalar(const uint8_t* tile, const uint8_t* lut, int32_t n_groups, int32_t* sums) {
  for (int r = 0; r < bitnetc::rt::kTl1TileRows; ++r) {
    int32_t s = 0;
    for (int32_t p = 0; p < n_groups; ++p) {
      const uint8_t byte = tile[(p / 2) * 16 + r];
      s += table_value(lut + p * kLutEntryBytes, p % 2 ? byte >> 4 : byte & 15);
    }
    sums[r] = s;
  }
}

void tl2_tile_scalar(const uint8_t* tile, const uint8_t* lut, int32_t n_groups, int32_t* sums) {
  for (int r = 0; r < bitnetc::rt::kTl2TileRows; ++r) {
    int32_t s = 0;
    for (int32_t g = 0; g < n_groups; ++g) {
      const uint8_t* octet = tile + (g / 8) * 160;
      const int h = (g % 8) / 2;
      const uint8_t byte = octet[h * 32 + r];
      const int v = table_value(lut + g * kLutEntryBytes, g % 2 ? byte >> 4 : byte & 15);
      s += (octet[128 + r] >> (g % 8)) & 1 ? -v : v;
    }
    sums[r] = s;
  }
}

#if defined(__aarch64__)
// TL1 with NEON: per byte of 16 rows, two tbl lookups (low and high bytes) per pair,
// zipped into int16 and summed; int16 sums are widened every 128 pairs
// (128 * 254 < 2^15).
void tl1_tile_neon(const uint8_t* tile, const uint8_t* lut, int32_t n_groups, int32_t* sums) {
  int32x4_t acc[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
  const uint8x16_t low_nibble = vdupq_n_u8(15);
  for (int32_t p0 = 0; p0 < n_groups; p0 += 128) {
    int16x8_t a0 = vdupq_n_s16(0), a1 = vdupq_n_s16(0);
    const int32_t p_end = std::min(n_groups, p0 + 128);
    for (int32_t p = p0; p < p_end; p += 2) {
      const uint8x16_t bytes = vld1q_u8(tile + (p / 2) * 16);
      const uint8x16_t idx[2] = {vandq_u8(bytes, low_nibble), vshrq_n_u8(bytes, 4)};
      for (int k = 0; k < 2; ++k) {
        const uint8_t* t = lut + (p + k) * kLutEntryBytes;
        const uint8x16_t lo = vqtbl1q_u8(vld1q_u8(t), idx[k]), hi = vqtbl1q_u8(vld1q_u8(t + 16), idx[k]);
        a0 = vaddq_s16(a0, vreinterpretq_s16_u8(vzip1q_u8(lo, hi)));  // rows 0-7
        a1 = vaddq_s16(a1, vreinterpretq_s16_u8(vzip2q_u8(lo, hi)));  // rows 8-15
      }
    }
    acc[0] = vaddw_s16(acc[0], vget_low_s16(a0));
    acc[1] = vaddw_high_s16(acc[1], a0);
    acc[2] = vaddw_s16(acc[2], vget_low_s16(a1));
    acc[3] = vaddw_high_s16(acc[3], a1);
  }
  for (int i = 0; i < 4; ++i) vst1q_s32(sums + 4 * i, acc[i]);
}
#endif

#if defined(__x86_64__)
// TL2 with AVX2: per index block of 32 rows, two pshufb lookups (low and high bytes) per
// triple and token. A negative triple gets its bytes inverted (~v) and one added back
// through a per-row count (cnt, shared by the tokens); unpacking interleaves low and high
// bytes into int16 within each 128-bit lane, so acc0 holds rows 0-7 and 16-23, acc1 rows
// 8-15 and 24-31. int16 sums are widened every 64 triples (64 * 382 < 2^15). The
// indices and signs are decoded once for all kTokens tokens (prefill).
template <int kTokens>
__attribute__((target("avx2"))) void tl2_tile_avx2(const uint8_t* tile, const uint8_t* const* tables,
                                                    int32_t n_groups, int32_t (*sums)[bitnetc::rt::kTl2TileRows]) {
  __m256i acc32[kTokens][4];
  for (auto& a : acc32)
    for (auto& v : a) v = _mm256_setzero_si256();
  const __m256i low_nibble = _mm256_set1_epi8(15), zero = _mm256_setzero_si256();
  for (int32_t g0 = 0; g0 < n_groups; g0 += 64) {
    __m256i acc0[kTokens], acc1[kTokens], cnt = zero;
    for (int i = 0; i < kTokens; ++i) acc0[i] = acc1[i] = zero;
    const int32_t g_end = std::min(n_groups, g0 + 64);
    for (int32_t q = g0 / 8; q < g_end / 8; ++q) {
      const uint8_t* octet = tile + q * 160;
      const __m256i signs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(octet + 128));
      for (int h = 0; h < 4; ++h) {
        const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(octet + 32 * h));
        const __m256i idx[2] = {_mm256_and_si256(bytes, low_nibble),
                                _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low_nibble)};
        for (int k = 0; k < 2; ++k) {
          const int s = 2 * h + k;
          // Bit s of each sign byte moved to its top bit: 0xFF where the triple is negative.
          const __m256i neg = _mm256_cmpgt_epi8(zero, _mm256_slli_epi16(signs, 7 - s));
          cnt = _mm256_sub_epi8(cnt, neg);
          for (int i = 0; i < kTokens; ++i) {
            const uint8_t* t = tables[i] + (8 * q + s) * kLutEntryBytes;
            const __m256i t_lo = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t)));
            const __m256i t_hi =
                _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t + 16)));
            const __m256i lo = _mm256_xor_si256(_mm256_shuffle_epi8(t_lo, idx[k]), neg);
            const __m256i hi = _mm256_xor_si256(_mm256_shuffle_epi8(t_hi, idx[k]), neg);
            acc0[i] = _mm256_add_epi16(acc0[i], _mm256_unpacklo_epi8(lo, hi));
            acc1[i] = _mm256_add_epi16(acc1[i], _mm256_unpackhi_epi8(lo, hi));
          }
        }
      }
    }
    const __m256i cnt0 = _mm256_unpacklo_epi8(cnt, zero), cnt1 = _mm256_unpackhi_epi8(cnt, zero);
    for (int i = 0; i < kTokens; ++i) {
      const __m256i a0 = _mm256_add_epi16(acc0[i], cnt0), a1 = _mm256_add_epi16(acc1[i], cnt1);
      // a0 = [rows 0-7 | rows 16-23], a1 = [rows 8-15 | rows 24-31]
      acc32[i][0] = _mm256_add_epi32(acc32[i][0], _mm256_cvtepi16_epi32(_mm256_castsi256_si128(a0)));
      acc32[i][1] = _mm256_add_epi32(acc32[i][1], _mm256_cvtepi16_epi32(_mm256_castsi256_si128(a1)));
      acc32[i][2] = _mm256_add_epi32(acc32[i][2], _mm256_cvtepi16_epi32(_mm256_extracti128_si256(a0, 1)));
      acc32[i][3] = _mm256_add_epi32(acc32[i][3], _mm256_cvtepi16_epi32(_mm256_extracti128_si256(a1, 1)));
    }
  }
  for (int i = 0; i < kTokens; ++i)
    for (int j = 0; j < 4; ++j) _mm256_storeu_si256(reinterpret_cast<__m256i*>(sums[i] + 8 * j), acc32[i][j]);
}
#endif

}  // namespace

extern "C" {

int bitnetc_tl1_tiles_scalar(halide_buffer_t* packed, halide_buffer_t* lut, int32_t tile_bytes, int32_t n_tiles,
                             int32_t n_groups, halide_buffer_t* out) {
  return bitnetc::rt::lut_tiles::per_token<bitnetc::rt::kTl1TileRows>(packed, lut, tile_bytes, n_tiles, n_groups, out,
                                                                      tl1_tile_scalar);
}

int bitnetc_tl2_tiles_scalar(halide_buffer_t* packed, halide_buffer_t* lut, int32_t tile_bytes, int32_t n_tiles,
                             int32_t n_groups, halide_buffer_t* out) {
  return bitnetc::rt::lut_tiles::per_token<bitnetc::rt::kTl2TileRows>(packed, lut, tile_bytes, n_tiles, n_groups, out,
                                                                      tl2_tile_scalar);
}

int bitnetc_tl1_tiles(halide_buffer_t* packed, halide_buffer_t* lut, int32_t tile_bytes, int32_t n_tiles,
                      int32_t n_groups, halide_buffer_t* out) {
#if defined(__aarch64__)
  return bitnetc::rt::lut_tiles::per_token<bitnetc::rt::kTl1TileRows>(packed, lut, tile_bytes, n_tiles, n_groups, out,
                                                                      tl1_tile_neon);
#else
  return bitnetc_tl1_tiles_scalar(packed, lut, tile_bytes, n_tiles, n_groups, out);
#endif
}

int bitnetc_tl2_tiles(halide_buffer_t* packed, halide_buffer_t* lut, int32_t tile_bytes, int32_t n_tiles,
                      int32_t n_groups, halide_buffer_t* out) {
#if defined(__x86_64__)
  return for_each_tile<bitnetc::rt::kTl2TileRows>(
      packed, lut, tile_bytes, n_tiles, n_groups, out,
      [&](const uint8_t* tile, const uint8_t* const* tables, int n_tokens, int32_t (*sums)[bitnetc::rt::kTl2TileRows]) {
        switch (n_tokens) {  // the token count is a constant of the tile's loops
          case 1: return tl2_tile_avx2<1>(tile, tables, n_groups, sums);
          case 2: return tl2_tile_avx2<2>(tile, tables, n_groups, sums);
          case 3: return tl2_tile_avx2<3>(tile, tables, n_groups, sums);
          default: return tl2_tile_avx2<4>(tile, tables, n_groups, sums);
        }
      });
#else
  return bitnetc_tl2_tiles_scalar(packed, lut, tile_bytes, n_tiles, n_groups, out);
#endif
}

}  // extern "C"
