// CPU kernel emission: every Halide kernel a CPU output needs (the packed weights'
// ternary and head matmuls, the plan's norm + quantize, attention, RoPE and k-quant
// kernels), compiled ahead of time for the target into one object each, and the C++
// source of the tables that name them: per family of runtime_stub/cpu/kernel_abi.h,
// `bitnetc_F_kernels[]` in the order the blob's records and steps index them and
// `bitnetc_F_kernel_count`.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "cpu_program.h"
#include "packing.h"
#include "targets.h"

namespace bitnetc::codegen {

struct CpuKernels {
  std::vector<std::string> objects;  // one .o per kernel
  std::string table_source;          // kernels.cpp: the tables, the target's name and CPU features
};

// Writes the objects into `work_dir`; `say` gets one progress line.
CpuKernels emit_cpu_kernels(const TargetInfo& target, const PackedWeights& packed, const CpuPlan& plan,
                            const std::string& work_dir, const std::function<void(const std::string&)>& say);

}  // namespace bitnetc::codegen
