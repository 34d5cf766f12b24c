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

schedules::MatmulReduce ternary_reduce(const TargetInfo& target) {
  switch (target.ternary_dot) {
    case TernaryDot::Vnni: return schedules::MatmulReduce::DotU8I8;
    case TernaryDot::Sdot: return schedules::MatmulReduce::DotI8I8;
    case TernaryDot::Widening: return schedules::MatmulReduce::WidenedPairs;
    case TernaryDot::None: break;
  }
  return schedules::MatmulReduce::PairwiseI16;
}

schedules::TernaryMatmulShape i2s_matmul_shape(const TargetInfo& target, int64_t K, int64_t N, int64_t act_block) {
  schedules::TernaryMatmulShape shape{K, N, act_block, target.ternary_bytes};
  shape.reduce = ternary_reduce(target);
  // Row lanes wherever the target has a 4-way dot product, or is x86 (AVX2's pmaddubsw
  // pairs, widened once per 256 weights): no horizontal sums, and Q8_K's blocks of 256
  // summed in place (bench/RESULTS.md, "Row lanes" and "AVX2 row lanes"). NEON without
  // the dot product keeps row tiles: row lanes were not measured on an ARM core.
  const bool lanes_pay = shape.reduce != schedules::MatmulReduce::PairwiseI16 || target.triple == "x86_64-linux-gnu";
  if (K % 16 == 0 && act_block % 16 == 0 && lanes_pay) shape.packing = schedules::MatmulPacking::RowLanes;
  return shape;
}

Halide::Target with_reduce_features(Halide::Target t, schedules::MatmulReduce reduce) {
  return reduce == schedules::MatmulReduce::DotU8I8 ? t.with_feature(Halide::Target::AVX512_SapphireRapids) : t;
}

namespace {

// Compiles `y` for `target` into `object_path`. A DotU8I8 reduce goes through bitcode and
// llc: the bitcode carries no CPU of its own, so llc's -mcpu decides vpdpbusd's encoding.
void compile_reduce_kernel(Halide::Func y, const std::vector<Halide::Argument>& args, schedules::MatmulReduce reduce,
                           const TargetInfo& target, const std::string& fn_name, const std::string& object_path) {
  Halide::Target t = Halide::Target(target.halide).with_feature(Halide::Target::NoRuntime);
  if (reduce != schedules::MatmulReduce::DotU8I8) {
    y.compile_to_object(object_path, args, fn_name, t);
    return;
  }
  const std::string bitcode = object_path + ".bc";
  y.compile_to_bitcode(bitcode, args, fn_name, with_reduce_features(t, reduce));
  const std::string cmd = std::string(BITNETC_LLC) + " -O3 -mcpu=" + target.llc_cpu +
                          " -filetype=obj -relocation-model=pic -o " + quote(object_path) + " " + quote(bitcode) +
                          " 2>&1";
  const int rc = run_shell(cmd);
  std::remove(bitcode.c_str());
  if (rc != 0) throw std::runtime_error("llc failed on " + fn_name + " (" + cmd + ")");
}

}  // namespace

void emit_ternary_matmul_object(const schedules::TernaryMatmulShape& shape, const TargetInfo& target,
                                const std::string& fn_name, const std::string& object_path) {
  schedules::MatmulPipeline p = schedules::ternary_matmul(shape);
  compile_reduce_kernel(p.y, p.arguments(), shape.reduce, target, fn_name, object_path);
}

void emit_lut_matmul_object(schedules::LutMatmulShape shape, const TargetInfo& target, const std::string& fn_name,
                            const std::string& object_path) {
  // WebAssembly SIMD's TL1 tile has a name of its own (runtime_stub/cpu/lut_tiles.h).
  if (shape.tile == schedules::LutTile::Native && target.halide.find("wasm_simd128") != std::string::npos)
    shape.tile = schedules::LutTile::Simd128;
  schedules::MatmulPipeline p = schedules::lut_matmul(shape);
  const Halide::Target t = Halide::Target(target.halide).with_feature(Halide::Target::NoRuntime);
  p.y.compile_to_object(object_path, p.arguments(), fn_name, t);
}

void emit_dense_matmul_object(const schedules::DenseMatmulShape& shape, const TargetInfo& target,
                            const std::string& fn_name, const std::string& object_path) {
  schedules::DenseMatmulPipeline p = schedules::dense_matmul(shape);
  const Halide::Target t = Halide::Target(target.halide).with_feature(Halide::Target::NoRuntime);
  p.y.compile_to_object(object_path, p.arguments(), fn_name, t);
}

schedules::KQuantMatmulShape kquant_matmul_shape(const TargetInfo& target, int64_t K, int64_t N) {
  schedules::KQuantMatmulShape shape{K, N, schedules::kquant_vector_bytes(target.vector_bytes), ternary_reduce(target)};
  // pmaddubsw's pairs are x86's; NEON without the dot product widens its products.
  if (shape.reduce == schedules::MatmulReduce::PairwiseI16 && target.triple != "x86_64-linux-gnu")
    shape.reduce = schedules::MatmulReduce::WidenedPairs;
  return shape;
}

void emit_kquant_matmul_object(const schedules::KQuantMatmulShape& shape, const TargetInfo& target,
                             const std::string& fn_name, const std::string& object_path) {
  schedules::KQuantMatmulPipeline p = schedules::kquant_matmul(shape);
  compile_reduce_kernel(p.y, p.arguments(), shape.reduce, target, fn_name, object_path);
}

void emit_q8_0_matmul_object(const schedules::Q8_0MatmulShape& shape, const TargetInfo& target,
                             const std::string& fn_name, const std::string& object_path) {
  schedules::Q8_0MatmulPipeline p = schedules::q8_0_matmul(shape);
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
  // A CUDA target's Halide string is its host side's: any x86-64 CPU (the kernels are on the GPU).
  Halide::compile_standalone_runtime(object_path, Halide::Target(target.halide));
}

}  // namespace bitnetc::codegen
