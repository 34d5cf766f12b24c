#include "targets.h"

#include <algorithm>
#include <cmath>

#include "cpu_features.h"

namespace bitnetc {

namespace {

// bench/bench_layouts on a 2-core AMD EPYC (Zen 4) VM, 2 threads on the outputs' pool,
// weights cold (run-to-run spread on that machine: 10-20 %). Columns: layout, K, N, GEMV
// us, batch-8 GEMM us per token. I2_S wins every 2B4T group on cost = one decoded + one
// prefilled token: a GEMV task reads one sequential stream (interleaved row tiles on
// AVX2, row lanes on AVX-512 VNNI), so it decodes 1.6-2.4x faster than TL2 despite TL2's
// fewer bytes (1.67 bits per weight); TL2's prefill matches I2_S's on AVX2 only.
const std::vector<LayoutFigure> kAvx2Figures = {
    {TensorType::I2_S, 2560, 2560, 55.6, 51.5},   {TensorType::TL2, 2560, 2560, 108.8, 57.3},
    {TensorType::I2_S, 2560, 640, 15.6, 14.2},    {TensorType::TL2, 2560, 640, 35.5, 17.6},
    {TensorType::I2_S, 2560, 6912, 162.3, 133.6}, {TensorType::TL2, 2560, 6912, 264.9, 133.0},
    {TensorType::I2_S, 6912, 2560, 150.1, 116.5}, {TensorType::TL2, 6912, 2560, 277.1, 141.0},
};
const std::vector<LayoutFigure> kAvx512Figures = {
    {TensorType::I2_S, 2560, 2560, 56.6, 21.9},  {TensorType::TL2, 2560, 2560, 103.5, 55.0},
    {TensorType::I2_S, 2560, 640, 14.3, 5.2},    {TensorType::TL2, 2560, 640, 33.2, 15.8},
    {TensorType::I2_S, 2560, 6912, 136.9, 57.4}, {TensorType::TL2, 2560, 6912, 334.1, 141.5},
    {TensorType::I2_S, 6912, 2560, 146.6, 51.3}, {TensorType::TL2, 6912, 2560, 259.3, 143.0},
};

}  // namespace

const std::vector<TargetInfo>& targets() {
  static const std::vector<TargetInfo> table = {
      {"x86-64-avx2", TargetArch::X86_64, "x86-64-linux-sse41-avx-avx2-fma-f16c", "haswell", 32, 32,
       TargetInfo::Dot::None, TensorType::I2_S, "x86_64-linux-gnu", "", "x86-64 with AVX2 and FMA (Haswell and later, Zen)",
       kAvx2Figures},
      {"x86-64-avx512", TargetArch::X86_64,
       "x86-64-linux-sse41-avx-avx2-fma-f16c-avx512-avx512_skylake-avx512_cannonlake", "icelake-server", 64,
       // Ternary groups of 64 bytes with vpdpbusd (2B4T-shape pp128 ~44 -> ~50 t/s, 2560x6912
       // batch-8 GEMM 794-880 -> 677-687 us at 2 threads; decode unchanged). Without VNNI, 64-byte
       // groups lost to 32-byte ones: Halide 14 splits 512-bit pmaddubsw (121 vs 97 us,
       // 1 thread, 2560x2560).
       64, TargetInfo::Dot::Vnni, TensorType::I2_S, "x86_64-linux-gnu", "",
       "x86-64 with AVX-512 F/CD/BW/DQ/VL/IFMA/VBMI/VNNI (Ice Lake, Zen 4); no VEX AVX-VNNI", kAvx512Figures},
      // ARMv8-A: one 128-bit NEON register per ternary group. Under emulation the plain
      // target runs on a Cortex-A72 (no dotprod), so a stray sdot would fault.
      {"aarch64-neon", TargetArch::AArch64, "arm-64-linux", "cortex-a72", 16, 16, TargetInfo::Dot::None,
       TensorType::I2_S, "aarch64-linux-gnu", "qemu-aarch64 -cpu cortex-a72",
       "AArch64 with NEON (ARMv8-A: Cortex-A53/A72, Raspberry Pi 3/4)",
       {}},  // not measured: timing under qemu means nothing; bench_layouts on a device fills it
      {"aarch64-neon-dotprod", TargetArch::AArch64, "arm-64-linux-arm_dot_prod", "neoverse-n1", 16, 16,
       TargetInfo::Dot::Sdot, TensorType::I2_S, "aarch64-linux-gnu", "qemu-aarch64 -cpu neoverse-n1",
       "AArch64 with NEON and dot product (ARMv8.2-A+: Cortex-A76, Neoverse N1, Apple M, Graviton 2+)", {}},
      // NVIDIA GPUs: kernels compiled by NVRTC for the exact SM (the cpu column) plus PTX.
      {"cuda-sm80", TargetArch::Cuda, "", "sm_80", 0, 0, TargetInfo::Dot::None, TensorType::I2_S, "x86_64-linux-gnu", "",
       "NVIDIA Ampere data center (A100, A30)", {}},
      {"cuda-sm86", TargetArch::Cuda, "", "sm_86", 0, 0, TargetInfo::Dot::None, TensorType::I2_S, "x86_64-linux-gnu", "",
       "NVIDIA Ampere (RTX 30xx, A10, A40)", {}},
      {"cuda-sm89", TargetArch::Cuda, "", "sm_89", 0, 0, TargetInfo::Dot::None, TensorType::I2_S, "x86_64-linux-gnu", "",
       "NVIDIA Ada (RTX 40xx, L4, L40)", {}},
      {"cuda-sm90", TargetArch::Cuda, "", "sm_90", 0, 0, TargetInfo::Dot::None, TensorType::I2_S, "x86_64-linux-gnu", "",
       "NVIDIA Hopper (H100, H200)", {}},
  };
  return table;
}

const TargetInfo* find_target(const std::string& name) {
  if (name == "host") return &host_target();
  for (const auto& t : targets())
    if (t.name == name) return &t;
  return nullptr;
}

int gemm_min_rows(const TargetInfo& t, TensorType layout, int64_t K, int64_t N, int batch) {
  double gemv = 0, gemm_per_token = 0;
  for (bool exact : {true, false}) {
    for (const LayoutFigure& f : t.layout_figures)
      if (f.layout == layout && (!exact || (f.K == K && f.N == N)))
        gemv += f.gemv_us, gemm_per_token += f.gemm_us_per_token;
    if (gemv > 0) break;
  }
  if (gemv <= 0) return 2;
  // rows * gemv >= batch * gemm_per_token: the smallest such count of rows.
  const int rows = static_cast<int>(std::ceil(batch * gemm_per_token / gemv - 1e-9));
  return std::clamp(rows, 2, batch);
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
