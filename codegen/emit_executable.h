// `bitnetc MODEL --target=T -o OUT`: one self-contained executable.
//
// Steps: lower the model, pack every ternary weight for the target's kernels, emit one
// GEMV object per distinct shape (and the Halide runtime once), write the model blob
// (graph, vocabulary, packed weights) as a page-aligned read-only section, and link it
// all with the runtime's `main` using the system C++ compiler. The output is written to
// a temporary name and renamed: it is complete or absent.
#pragma once

#include <functional>
#include <string>

#include "lower.h"
#include "model_import.h"
#include "targets.h"

namespace bitnetc::codegen {

enum class EmitKind { Executable, SharedObject };

struct CompileOptions {
  std::string output;
  EmitKind emit = EmitKind::Executable;
  bool external_weights = false;  // weights in OUTPUT.weights beside the output (for models too large to embed)
  bool head_q8 = false;  // --head=q8: int8 head with a scale per row (changes numerics; halves its bytes)
  std::string cuda_source;  // CUDA targets: also write the generated CUDA C++ here (--cuda-source)
  std::string layout = "auto";  // --layout: auto, i2_s, tl1, tl2 (codegen/layouts.h)
  LowerOptions lower;
  std::function<void(const std::string&)> progress;  // one line per step
  std::function<void(const std::string&)> explain;   // -v: the plan and every tensor's layout, and why
};

void compile_executable(const ImportedModel& m, const TargetInfo& target, const CompileOptions& o);

}  // namespace bitnetc::codegen
