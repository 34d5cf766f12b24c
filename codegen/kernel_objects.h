// CPU object emission: the Halide pipelines of schedules/, compiled ahead of time for
// one exact shape and target into object files that the output links.
#pragma once

#include <string>

#include "attention.h"
#include "dense_matmul.h"
#include "kquant_matmul.h"
#include "lut_matmul.h"
#include "norm_quant.h"
#include "q8_0_matmul.h"
#include "rope.h"
#include "targets.h"
#include "ternary_matmul.h"

namespace bitnetc::codegen {

// The inner reduction the target's dot-product instructions (if any) call for.
schedules::MatmulReduce ternary_reduce(const TargetInfo& target);

// The I2_S kernel shape for an N x K weight whose activations come in blocks of
// act_block (batch 1): the target's width and reduce, packed in row lanes when the
// target has a 4-way dot product (schedules/ternary_matmul.h), else in row tiles.
schedules::TernaryMatmulShape i2s_matmul_shape(const TargetInfo& target, int64_t K, int64_t N, int64_t act_block);

// `t` with what the ternary kernels' `reduce` needs of Halide: vpdpbusd (DotU8I8) comes
// only with its sapphirerapids feature, whose bitcode llc then encodes for the target's
// exact CPU (emit_ternary_matmul_object; see TernaryDot). JIT runs on this machine
// (tests, benchmarks) use the feature directly: at 64-byte groups it emits only EVEX
// forms, which any AVX512-VNNI CPU runs.
Halide::Target with_reduce_features(Halide::Target t, schedules::MatmulReduce reduce);

// Compiles the GEMV for `shape` into `object_path`, exporting the C function `fn_name`
// with Halide's AOT signature (buffers in the order of MatmulPipeline::arguments(), then
// the output buffer). The Halide runtime is left out (see emit_halide_runtime), so that
// an output with many kernels carries it once.
void emit_ternary_matmul_object(const schedules::TernaryMatmulShape& shape, const TargetInfo& target, const std::string& fn_name,
                      const std::string& object_path);

// A lookup-table (TL1/TL2) ternary matmul, likewise; its extern tile is linked from the
// runtime (runtime_stub/cpu/lut_tiles.cpp).
void emit_lut_matmul_object(schedules::LutMatmulShape shape, const TargetInfo& target, const std::string& fn_name,
                            const std::string& object_path);

// The dense GEMV of the head, likewise (signature: wt, x, row_scale, then the output buffer).
void emit_dense_matmul_object(const schedules::DenseMatmulShape& shape, const TargetInfo& target, const std::string& fn_name,
                            const std::string& object_path);
// The k-quant head's kernel shape for an N x K weight: the target's width (at most 32
// bytes: schedules::kquant_vector_bytes), and the 4-way dot of its ternary kernels
// (pmaddubsw pairs on x86 only).
schedules::KQuantMatmulShape kquant_matmul_shape(const TargetInfo& target, int64_t K, int64_t N);
void emit_kquant_matmul_object(const schedules::KQuantMatmulShape& shape, const TargetInfo& target,
                             const std::string& fn_name, const std::string& object_path);
void emit_q8_0_matmul_object(const schedules::Q8_0MatmulShape& shape, const TargetInfo& target,
                             const std::string& fn_name, const std::string& object_path);

// The fused norm + quantize of one activation width, likewise (signature: x, w, then
// the outputs q, d, sum).
void emit_norm_quant_object(const schedules::NormQuantShape& shape, const TargetInfo& target,
                            const std::string& fn_name, const std::string& object_path);

// The attention of one head shape, likewise (signature: q, k_cache, v_cache, pos0, then
// the output); its e^x is linked from the runtime (schedules/attention.h).
void emit_attention_object(const schedules::AttentionShape& shape, const TargetInfo& target, const std::string& fn_name,
                           const std::string& object_path);

// The RoPE of one width, likewise (signature: x, cos, sin, pos0, then the output).
void emit_rope_object(const schedules::RopeShape& shape, const TargetInfo& target, const std::string& fn_name,
                      const std::string& object_path);

// The Halide runtime (thread pool, buffer helpers) for `target`, once per output.
void emit_halide_runtime(const TargetInfo& target, const std::string& object_path);

}  // namespace bitnetc::codegen
