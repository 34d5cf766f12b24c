#include "kernel_objects.h"

namespace bitnetc::codegen {

void emit_gemv_object(const schedules::GemvShape& shape, const TargetInfo& target, const std::string& fn_name,
                      const std::string& object_path) {
  schedules::GemvPipeline p = schedules::ternary_gemv(shape);
  const Halide::Target t = Halide::Target(target.halide).with_feature(Halide::Target::NoRuntime);
  p.y.compile_to_object(object_path, p.arguments(), fn_name, t);
}

void emit_dense_gemv_object(const schedules::DenseGemvShape& shape, const TargetInfo& target,
                            const std::string& fn_name, const std::string& object_path) {
  schedules::DenseGemvPipeline p = schedules::dense_gemv(shape);
  const Halide::Target t = Halide::Target(target.halide).with_feature(Halide::Target::NoRuntime);
  p.y.compile_to_object(object_path, p.arguments(), fn_name, t);
}

void emit_halide_runtime(const TargetInfo& target, const std::string& object_path) {
  Halide::compile_standalone_runtime(object_path, Halide::Target(target.halide));
}

}  // namespace bitnetc::codegen
