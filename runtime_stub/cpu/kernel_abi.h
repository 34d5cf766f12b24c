// The C signatures of the generated CPU kernels (Halide's AOT calling convention: buffers
// and scalars in the pipeline's argument order, then the outputs), one line per kernel
// family. This one declaration is where the runtime's function-pointer types and extern
// tables (forward.h, compiled_model.cpp) and the table source codegen writes into every
// output (codegen/cpu_kernels.cpp) come from, so the three cannot drift apart.
//
// An output defines, per family F, `bitnetc_F_kernels[]` (its kernels, in the order the
// blob's records and plan steps index them) and `bitnetc_F_kernel_count`.
#pragma once

#include <cstdint>

#include "HalideRuntime.h"

// A ternary matmul (schedules/ternary_matmul.h, lut_matmul.h): packed weights, int8
// activations [K_padded, rows], their block sums and factors, the weight scale, the
// scales per (row, block) (an unread stand-in without them), y [N, rows].
#define BITNETC_TERNARY_MATMUL_SIGNATURE                                                                      \
  (halide_buffer_t * packed, halide_buffer_t * x, halide_buffer_t * x_sum, halide_buffer_t * d_act, float w_scale, \
   halide_buffer_t * w_block_scales, halide_buffer_t * y)

// X(family, signature), every family once:
//  - gemv: a ternary matmul of one row (decode); gemm: of BlobHeader::batch rows (prefill)
//  - dense: the head, x [K, rows] -> y [padded N, rows] (schedules/dense_matmul.h)
//  - norm_quant: rms_norm (optional) + activation quantization (schedules/norm_quant.h)
//  - attention: one sequence's rows against its KV cache from position pos0 (schedules/attention.h)
//  - rope: the rows' rotation from position pos0 (schedules/rope.h)
//  - kquant: a k-quant head, q, sc, m, d, dmin, x, xd -> y (schedules/kquant_matmul.h)
//  - q8_0: a Q8_0 head, q, d, x, xd -> y (schedules/q8_0_matmul.h)
#define BITNETC_CPU_KERNEL_FAMILIES(X)                                                                                \
  X(gemv, BITNETC_TERNARY_MATMUL_SIGNATURE)                                                                           \
  X(gemm, BITNETC_TERNARY_MATMUL_SIGNATURE)                                                                           \
  X(dense, (halide_buffer_t * w_tiles, halide_buffer_t * x, halide_buffer_t * row_scale, halide_buffer_t * y))        \
  X(norm_quant, (halide_buffer_t * x, halide_buffer_t * norm_weight, halide_buffer_t * q, halide_buffer_t * d,        \
                 halide_buffer_t * q_sum))                                                                            \
  X(attention,                                                                                                        \
    (halide_buffer_t * q, halide_buffer_t * k_cache, halide_buffer_t * v_cache, int32_t pos0, halide_buffer_t * out)) \
  X(rope, (halide_buffer_t * x, halide_buffer_t * cos, halide_buffer_t * sin, int32_t pos0, halide_buffer_t * y))     \
  X(kquant,                                                                                                           \
    (halide_buffer_t * lo, halide_buffer_t * hi, halide_buffer_t * sc, halide_buffer_t * m, halide_buffer_t * d,      \
     halide_buffer_t * dmin, halide_buffer_t * x, halide_buffer_t * xd, halide_buffer_t * y))                         \
  X(q8_0, (halide_buffer_t * q, halide_buffer_t * d, halide_buffer_t * x, halide_buffer_t * xd, halide_buffer_t * y))

#define BITNETC_STRINGIFY_(...) #__VA_ARGS__
#define BITNETC_STRINGIFY(...) BITNETC_STRINGIFY_(__VA_ARGS__)

namespace bitnetc::rt {

// The kernels an output carries, per family: `F` points at its table, `F_count` says
// how many it holds (the runtime checks every index the blob names against it).
struct KernelTable {
#define BITNETC_KERNEL_TABLE_FIELDS(family, signature) \
  using family##_fn = int(*) signature;                \
  const family##_fn* family = nullptr;                 \
  uint32_t family##_count = 0;
  BITNETC_CPU_KERNEL_FAMILIES(BITNETC_KERNEL_TABLE_FIELDS)
#undef BITNETC_KERNEL_TABLE_FIELDS
};

// The families' names and signatures as text, for the code generator.
struct KernelFamily {
  const char* name;
  const char* signature;
};
inline constexpr KernelFamily kCpuKernelFamilies[] = {
#define BITNETC_KERNEL_FAMILY_TEXT(family, signature) {#family, BITNETC_STRINGIFY(signature)},
    BITNETC_CPU_KERNEL_FAMILIES(BITNETC_KERNEL_FAMILY_TEXT)
#undef BITNETC_KERNEL_FAMILY_TEXT
};

}  // namespace bitnetc::rt
