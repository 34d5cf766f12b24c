#include "cpu_features.h"

#if defined(__x86_64__)
#include <cpuid.h>
#elif defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace bitnetc::rt {

uint32_t cpu_features() {
  uint32_t f = 0;
#if defined(__x86_64__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  bool fma = false, f16c = false, avx = false;
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    fma = c & (1u << 12);
    avx = (c & (1u << 28)) && (c & (1u << 27));  // AVX and OSXSAVE
    f16c = c & (1u << 29);
  }
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    const bool avx2 = b & (1u << 5);
    if (avx && avx2 && fma && f16c) f |= kCpuAvx2Fma;
    const bool f512 = b & (1u << 16), dq = b & (1u << 17), ifma = b & (1u << 21), cd = b & (1u << 28),
               bw = b & (1u << 30), vl = b & (1u << 31), vbmi = c & (1u << 1), vnni = c & (1u << 11);
    if ((f & kCpuAvx2Fma) && f512 && dq && ifma && cd && bw && vl && vbmi && vnni) f |= kCpuAvx512Vnni;
  }
#elif defined(__aarch64__)
  if (::getauxval(AT_HWCAP) & HWCAP_ASIMDDP) f |= kCpuDotProd;
#endif
  return f;
}

std::string describe_cpu_features(uint32_t features) {
  std::string s;
  auto add = [&](uint32_t bit, const char* name) {
    if (!(features & bit)) return;
    if (!s.empty()) s += ", ";
    s += name;
  };
  add(kCpuAvx2Fma, "AVX2 with FMA and F16C");
  add(kCpuAvx512Vnni, "AVX-512 F/DQ/IFMA/CD/BW/VL/VBMI/VNNI");
  add(kCpuDotProd, "the ARMv8.2 dot product instructions (asimddp)");
  return s;
}

}  // namespace bitnetc::rt
