#include "kernel_objects.h"

#include "process.h"

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace bitnetc::codegen {

namespace {

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

}  // namespace

schedules::GemvReduce ternary_reduce(const TargetInfo& target) {
  switch (target.ternary_dot) {
    case TargetInfo::Dot::Vnni: return schedules::GemvReduce::DotU8I8;
    case TargetInfo::Dot::Sdot: return schedules::GemvReduce::DotI8I8;
    case TargetInfo::Dot::None: break;
  }
  return schedules::GemvReduce::PairwiseI16;
}

schedules::GemvShape i2s_gemv_shape(const TargetInfo& target, int64_t K, int64_t N, int64_t act_block) {
  schedules::GemvShape shape{K, N, act_block, target.ternary_bytes};
  shape.reduce = ternary_reduce(target);
  // Row lanes wherever the target has a 4-way dot product. Measured on 2B4T's shape,
  // avx512 VNNI (row tiles -> row lanes): bench_gemv 1 thread, weights in cache, us per
  // token, q/o, k/v, gate, down: GEMV 54/12.7/137/126 -> 42.5/10.6/113/113, GEMM of 8
  // 47/11.2/129/95 -> 29/7.0/78/77; from memory the GEMVs stream alike. Whole model, 2
  // threads, back to back: I2_S pp128 81-90 -> 110-119 t/s, decode the same within the
  // machine's noise; TQ2_0 (Q8_K blocks, which row tiles sum across once per block of
  // 256) pp128 31-33 -> 80-95, tg128 16-18 -> 22-26 t/s.
  if (K % 16 == 0 && act_block % 16 == 0 && shape.reduce != schedules::GemvReduce::PairwiseI16)
    shape.packing = schedules::GemvPacking::RowLanes;
  return shape;
}

Halide::Target with_reduce_features(Halide::Target t, schedules::GemvReduce reduce) {
  return reduce == schedules::GemvReduce::DotU8I8 ? t.with_feature(Halide::Target::AVX512_SapphireRapids) : t;
}

void emit_gemv_object(const schedules::GemvShape& shape, const TargetInfo& target, const std::string& fn_name,
                      const std::string& object_path) {
  schedules::GemvPipeline p = schedules::ternary_gemv(shape);
  Halide::Target t = Halide::Target(target.halide).with_feature(Halide::Target::NoRuntime);
  if (shape.reduce != schedules::GemvReduce::DotU8I8) {
    p.y.compile_to_object(object_path, p.arguments(), fn_name, t);
    return;
  }
  // The bitcode carries no CPU of its own, so llc's -mcpu decides the encoding.
  const std::string bitcode = object_path + ".bc";
  p.y.compile_to_bitcode(bitcode, p.arguments(), fn_name, with_reduce_features(t, shape.reduce));
  const std::string cmd = std::string(BITNETC_LLC) + " -O3 -mcpu=" + target.llc_cpu +
                          " -filetype=obj -relocation-model=pic -o " + quote(object_path) + " " + quote(bitcode) +
                          " 2>&1";
  const int rc = run_shell(cmd);
  std::remove(bitcode.c_str());
  if (rc != 0) throw std::runtime_error("llc failed on " + fn_name + " (" + cmd + ")");
}

void emit_lut_gemv_object(const schedules::LutGemvShape& shape, const TargetInfo& target, const std::string& fn_name,
                          const std::string& object_path) {
  schedules::GemvPipeline p = schedules::lut_gemv(shape);
  const Halide::Target t = Halide::Target(target.halide).with_feature(Halide::Target::NoRuntime);
  p.y.compile_to_object(object_path, p.arguments(), fn_name, t);
}

void emit_dense_gemv_object(const schedules::DenseGemvShape& shape, const TargetInfo& target,
                            const std::string& fn_name, const std::string& object_path) {
  schedules::DenseGemvPipeline p = schedules::dense_gemv(shape);
  const Halide::Target t = Halide::Target(target.halide).with_feature(Halide::Target::NoRuntime);
  p.y.compile_to_object(object_path, p.arguments(), fn_name, t);
}

void emit_kquant_gemv_object(const schedules::KQuantGemvShape& shape, const TargetInfo& target,
                             const std::string& fn_name, const std::string& object_path) {
  schedules::KQuantGemvPipeline p = schedules::kquant_gemv(shape);
  const Halide::Target t = Halide::Target(target.halide).with_feature(Halide::Target::NoRuntime);
  p.y.compile_to_object(object_path, p.arguments(), fn_name, t);
}

void emit_norm_quant_object(const schedules::NormQuantShape& shape, const TargetInfo& target,
                            const std::string& fn_name, const std::string& object_path) {
  schedules::NormQuantPipeline p = schedules::norm_quant(shape);
  const Halide::Target t = Halide::Target(target.halide).with_feature(Halide::Target::NoRuntime);
  p.pipeline().compile_to_object(object_path, p.arguments(), fn_name, t);
}

void emit_attention_object(const schedules::AttentionShape& shape, const TargetInfo& target, const std::string& fn_name,
                           const std::string& object_path) {
  schedules::AttentionPipeline p = schedules::attention(shape);
  const Halide::Target t = Halide::Target(target.halide).with_feature(Halide::Target::NoRuntime);
  p.out.compile_to_object(object_path, p.arguments(), fn_name, t);
}

void emit_rope_object(const schedules::RopeShape& shape, const TargetInfo& target, const std::string& fn_name,
                      const std::string& object_path) {
  schedules::RopePipeline p = schedules::rope(shape);
  const Halide::Target t = Halide::Target(target.halide).with_feature(Halide::Target::NoRuntime);
  p.y.compile_to_object(object_path, p.arguments(), fn_name, t);
}

void emit_halide_runtime(const TargetInfo& target, const std::string& object_path) {
  // A CUDA output's host side runs on any x86-64 CPU (its kernels are on the GPU).
  Halide::compile_standalone_runtime(object_path,
                                     Halide::Target(target.arch == TargetArch::Cuda ? "x86-64-linux" : target.halide));
}

}  // namespace bitnetc::codegen
