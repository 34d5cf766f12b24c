// Compilation targets as data: one record per target, the row a new CPU or GPU adds.
#pragma once

#include <string>
#include <vector>

#include "tensor_types.h"

namespace bitnetc {

enum class TargetArch { X86_64, AArch64, Cuda };

struct TargetInfo {
  std::string name;  // what users pass to --target
  TargetArch arch;
  std::string halide;   // Halide target string, every feature spelled out
  std::string llc_cpu;  // exact CPU for llc-14 when Halide's selection is wrong
  int vector_bytes;     // SIMD width of the target (dense kernels)
  int ternary_bytes;    // byte width of one packed ternary group (see schedules/ternary_gemv.h)
  // Ternary kernels with u8 x i8 dot-product instructions (AVX512-VNNI vpdpbusd). Halide
  // 14 selects them only with its sapphirerapids feature, which also turns on the
  // VEX-encoded AVX-VNNI that Zen 4 and Ice Lake lack; so these kernels go through LLVM
  // bitcode and llc-14 -mcpu=<llc_cpu>, whose CPU has the EVEX forms only.
  bool ternary_vnni;
  TensorType layout;    // preferred weight layout
  std::string triple;   // linker triple
  std::string description;
};

const std::vector<TargetInfo>& targets();
const TargetInfo* find_target(const std::string& name);  // nullptr when unknown

// `host`: the best x86 target this machine runs. Halide's own host detection adds
// avx512_sapphirerapids whenever AVX512-VNNI is present, which also enables the
// VEX-encoded AVX-VNNI that AMD Zen 4 lacks (SIGILL); bitnetc reads CPUID itself.
const TargetInfo& host_target();

}  // namespace bitnetc
