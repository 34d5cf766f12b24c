#include "targets.h"

#include "cpu_features.h"

namespace bitnetc {

const std::vector<TargetInfo>& targets() {
  static const std::vector<TargetInfo> table = {
      {"x86-64-avx2", TargetArch::X86_64, "x86-64-linux-sse41-avx-avx2-fma-f16c", "haswell", 32, 32,
       TargetInfo::Dot::None, TensorType::I2_S, "x86_64-linux-gnu", "", "x86-64 with AVX2 and FMA (Haswell and later, Zen)"},
      {"x86-64-avx512", TargetArch::X86_64,
       "x86-64-linux-sse41-avx-avx2-fma-f16c-avx512-avx512_skylake-avx512_cannonlake", "icelake-server", 64,
       // Ternary groups of 64 bytes with vpdpbusd (2B4T-shape pp128 ~44 -> ~50 t/s, 2560x6912
       // batch-8 GEMM 794-880 -> 677-687 us at 2 threads; decode unchanged). Without VNNI, 64-byte
       // groups lost to 32-byte ones: Halide 14 splits 512-bit pmaddubsw (121 vs 97 us,
       // 1 thread, 2560x2560).
       64, TargetInfo::Dot::Vnni, TensorType::I2_S, "x86_64-linux-gnu", "",
       "x86-64 with AVX-512 F/CD/BW/DQ/VL/IFMA/VBMI/VNNI (Ice Lake, Zen 4); no VEX AVX-VNNI"},
      // ARMv8-A: one 128-bit NEON register per ternary group. Under emulation the plain
      // target runs on a Cortex-A72 (no dotprod), so a stray sdot would fault.
      {"aarch64-neon", TargetArch::AArch64, "arm-64-linux", "cortex-a72", 16, 16, TargetInfo::Dot::None,
       TensorType::I2_S, "aarch64-linux-gnu", "qemu-aarch64 -cpu cortex-a72",
       "AArch64 with NEON (ARMv8-A: Cortex-A53/A72, Raspberry Pi 3/4)"},
      {"aarch64-neon-dotprod", TargetArch::AArch64, "arm-64-linux-arm_dot_prod", "neoverse-n1", 16, 16,
       TargetInfo::Dot::Sdot, TensorType::I2_S, "aarch64-linux-gnu", "qemu-aarch64 -cpu neoverse-n1",
       "AArch64 with NEON and dot product (ARMv8.2-A+: Cortex-A76, Neoverse N1, Apple M, Graviton 2+)"},
  };
  return table;
}

const TargetInfo* find_target(const std::string& name) {
  if (name == "host") return &host_target();
  for (const auto& t : targets())
    if (t.name == name) return &t;
  return nullptr;
}

bool runs_natively(const TargetInfo& t) {
#if defined(__x86_64__)
  return t.arch == TargetArch::X86_64;
#elif defined(__aarch64__)
  return t.arch == TargetArch::AArch64;
#else
  return false;
#endif
}

const TargetInfo& host_target() {
  return *find_target(rt::cpu_features() & rt::kCpuAvx512Vnni ? "x86-64-avx512" : "x86-64-avx2");
}

}  // namespace bitnetc
