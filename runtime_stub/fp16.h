// IEEE half precision <-> float, exact and portable (no F16C needed): used by the
// importers (fp16 tensors, TQ block scales) and by compiled outputs (fp16 weights).
#pragma once

#include <cstdint>

#include "numerics.h"

namespace bitnetc {

inline float fp16_to_f32(uint16_t h) { return bitnetc_half_to_float(h); }

// Round to nearest even, as ggml's reference and x86's F16C do (bitnetc_float_to_half;
// checked against a bit-by-bit rounding on every float).
inline uint16_t f32_to_fp16(float f) { return bitnetc_float_to_half(f); }

}  // namespace bitnetc
