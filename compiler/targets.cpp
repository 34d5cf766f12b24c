#include "targets.h"

#include <cpuid.h>

namespace bitnetc {

const std::vector<TargetInfo>& targets() {
  static const std::vector<TargetInfo> table = {
      {"x86-64-avx2", TargetArch::X86_64, "x86-64-linux-sse41-avx-avx2-fma-f16c", "haswell", 32, 32, false, TensorType::I2_S,
       "x86_64-linux-gnu", "x86-64 with AVX2 and FMA (Haswell and later, Zen)"},
      {"x86-64-avx512", TargetArch::X86_64,
       "x86-64-linux-sse41-avx-avx2-fma-f16c-avx512-avx512_skylake-avx512_cannonlake", "icelake-server", 64,
       // Ternary groups of 64 bytes with vpdpbusd (2B4T-shape pp128 ~44 -> ~50 t/s, 2560x6912
       // batch-8 GEMM 794-880 -> 677-687 us at 2 threads; decode unchanged). Without VNNI, 64-byte
       // groups lost to 32-byte ones: Halide 14 splits 512-bit pmaddubsw (121 vs 97 us,
       // 1 thread, 2560x2560).
       64, true, TensorType::I2_S, "x86_64-linux-gnu",
       "x86-64 with AVX-512 F/CD/BW/DQ/VL/IFMA/VBMI/VNNI (Ice Lake, Zen 4); no VEX AVX-VNNI"},
  };
  return table;
}

const TargetInfo* find_target(const std::string& name) {
  if (name == "host") return &host_target();
  for (const auto& t : targets())
    if (t.name == name) return &t;
  return nullptr;
}

const TargetInfo& host_target() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  bool avx512 = false;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    const bool f = b & (1u << 16), dq = b & (1u << 17), ifma = b & (1u << 21), cd = b & (1u << 28), bw = b & (1u << 30),
               vl = b & (1u << 31), vbmi = c & (1u << 1), vnni = c & (1u << 11);
    avx512 = f && dq && ifma && cd && bw && vl && vbmi && vnni;
  }
  return *find_target(avx512 ? "x86-64-avx512" : "x86-64-avx2");
}

}  // namespace bitnetc
