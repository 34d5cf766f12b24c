// The CPU features that generated kernels use, as bits: codegen records the ones an
// output needs (kernels.cpp: bitnetc_cpu_features) and the output checks them at load,
// so that running it on an older CPU is a clear error instead of SIGILL. bitnetc's
// `host` target reads the same bits.
#pragma once

#include <cstdint>
#include <string>

namespace bitnetc::rt {

enum CpuFeature : uint32_t {
  kCpuAvx2Fma = 1u << 0,     // x86-64: AVX, AVX2, FMA, F16C
  kCpuAvx512Vnni = 1u << 1,  // x86-64: AVX-512 F/DQ/IFMA/CD/BW/VL/VBMI/VNNI
  kCpuDotProd = 1u << 2,     // AArch64: ARMv8.2 dot product (sdot/udot)
};

// The features of the CPU this runs on.
uint32_t cpu_features();

// "AVX-512 (F/DQ/...)" etc. for the bits set in `features`, comma separated.
std::string describe_cpu_features(uint32_t features);

}  // namespace bitnetc::rt
