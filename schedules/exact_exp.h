// e^x as a Halide expression that gives ir/numerics.h's bitnetc_expf bit for bit, so a
// kernel can vectorize it instead of calling the scalar C function once per lane.
//
// bitnetc_expf evaluates its cubic in double with three fused multiply-adds, which
// Halide 14 cannot spell. Plain double multiplies and adds give the same float for all
// 2^32 inputs (checked exhaustively against the fused version; the double polynomial
// carries 29 bits more than the float it rounds to, and no input lands close enough to
// a float rounding tie for the last double bit to matter); the kernel tests check every
// 61st float. Every operation is strict_float, so neither Halide nor LLVM reassociates
// or contracts it.
#pragma once

#include "Halide.h"

namespace bitnetc::schedules {

// bitnetc_expf(x) for a float x (NaN, infinities, overflow and underflow included).
Halide::Expr exact_expf(Halide::Expr x);

}  // namespace bitnetc::schedules
