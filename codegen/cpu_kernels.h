// CPU kernel emission: every Halide kernel a CPU output needs (the packed weights'
// ternary and head matmuls, the plan's norm + quantize, attention, RoPE and k-quant
// kernels), compiled ahead of time for the target into one object each, and the C++
// source of the tables that name them: per family of runtime_stub/cpu/kernel_abi.h,
// `bitnetc_F_kernels[]` in the order the blob's records and steps index them and
// `bitnetc_F_kernel_count`; and the Halide runtime's object, which every output links.
//
// Objects come from the kernel cache (kernel_cache.h) where it has them. The others
// compile on every core, each in a fresh fork of bitnetc, so that an object's bytes never
// depend on what was compiled before it (Halide's name counters), and in the background:
// the caller writes the model blob meanwhile and calls finish() before it links.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cpu_program.h"
#include "kernel_cache.h"
#include "packing.h"
#include "process.h"
#include "targets.h"

namespace bitnetc::codegen {

struct CpuKernels {
  std::vector<std::string> objects;  // one .o per kernel, then the Halide runtime's
  std::string table_source;          // kernels.cpp: the tables, the target's name and CPU features
  size_t cached = 0;                 // objects the cache had
  // Waits for the objects still compiling; throws what a kernel's compile threw.
  void finish();

  std::vector<std::unique_ptr<ForkedTask>> workers;  // compiling the rest
};

// Starts writing the objects into `work_dir`; `say` gets one progress line.
CpuKernels emit_cpu_kernels(const TargetInfo& target, const PackedWeights& packed, const CpuPlan& plan,
                            const std::string& work_dir, const KernelCache& cache,
                            const std::function<void(const std::string&)>& say);

}  // namespace bitnetc::codegen
