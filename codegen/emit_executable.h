// `bitnetc MODEL --target=T -o OUT`: the driver of the pipeline's back half, one stage
// per file:
//
//   lower (compiler/lower.h) -> pack (packing.h: the weights in the target's layouts)
//   -> plan (cpu_program.h / cuda_program.h, from the fusion pass) -> kernels
//   (cpu_kernels.h: Halide AOT objects; cuda_program.h: one NVRTC module) -> blob
//   (blob_writer.h) -> link (link.h) -> OUT, written to a temporary name and renamed:
//   complete or absent.
#pragma once

#include <functional>
#include <string>

#include "link.h"
#include "lower.h"
#include "model_import.h"
#include "targets.h"

namespace bitnetc::codegen {

struct CompileOptions {
  std::string output;
  EmitKind emit = EmitKind::Executable;
  bool external_weights = false;    // weights in OUTPUT.weights beside the output (for models too large to embed)
  bool head_q8 = false;             // --head=q8: int8 head with a scale per row (changes numerics; halves its bytes)
  std::string cuda_source;          // CUDA targets: also write the generated CUDA C++ here (--cuda-source)
  std::string layout = "auto";      // --layout: auto, i2_s, tl1, tl2 (codegen/layouts.h)
  std::string runtime = "default";  // --runtime: default, asan or tsan (codegen/link.h)
  std::string kernel_cache;         // --kernel-cache: a folder or "off"; empty: the default (kernel_cache.h)
  LowerOptions lower;
  std::function<void(const std::string&)> progress;  // one line per step
  std::function<void(const std::string&)> explain;   // -v: the plan and every tensor's layout, and why
};

void compile_executable(const ImportedModel& m, const TargetInfo& target, const CompileOptions& o);

// A WebAssembly target's output is NAME.mjs, an ES module that loads NAME.wasm beside it
// (and NAME.weights with --weights=external): throws std::invalid_argument naming -o or
// --emit when `output` is another name or a shared object is asked for. Other targets:
// nothing to check.
void check_wasm_output_name(const TargetInfo& target, const std::string& output, EmitKind emit);

}  // namespace bitnetc::codegen
