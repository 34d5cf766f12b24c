// IEEE half precision <-> float, exact and portable (no F16C needed): used by the
// importers (fp16 tensors, TQ block scales) and by compiled outputs (fp16 weights).
#pragma once

#include <bit>
#include <cstdint>

#include "numerics.h"

namespace bitnetc {

inline float fp16_to_f32(uint16_t h) { return bitnetc_half_to_float(h); }

// Round to nearest even, as ggml's reference does.
inline uint16_t f32_to_fp16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (x >> 16) & 0x8000;
  const uint32_t absx = x & 0x7FFFFFFF;
  if (absx >= 0x7F800000u) return static_cast<uint16_t>(sign | 0x7C00 | (absx > 0x7F800000u ? 0x200 : 0));
  if (absx >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00);  // rounds to inf
  if (absx < 0x38800000u) {                                              // fp16 subnormal or zero
    if (absx < 0x33000000u) return static_cast<uint16_t>(sign);
    const uint32_t e = absx >> 23;
    uint32_t m = (absx & 0x7FFFFF) | 0x800000;
    const uint32_t shift = 126 - e;  // 14 - (e - 112)
    uint32_t h = m >> (shift);
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = ((absx >> 13) - (112u << 10));
  const uint32_t rem = absx & 0x1FFF;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;
  return static_cast<uint16_t>(sign | h);
}

}  // namespace bitnetc
