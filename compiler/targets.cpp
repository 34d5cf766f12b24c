#include "targets.h"

#include <algorithm>
#include <cmath>

#include "cpu_features.h"

namespace bitnetc {

namespace {

// bench/bench_layouts on a 2-core AMD EPYC (Zen 4) VM, 2 threads on the outputs' pool,
// weights cold (run-to-run spread on that machine: 10-20 %). Columns: layout, K, N, GEMV
// us, batch-8 GEMM us per token. I2_S wins every 2B4T group on cost = one decoded + one
// prefilled token: a GEMV task reads one sequential stream (row lanes: one row per i32
// lane), so it decodes 1.5-2.6x faster than TL2 despite TL2's fewer bytes (1.67 bits per
// weight), and prefills 2-2.5x faster. (AVX2 figures of 2026-12-07, after AVX2's row
// lanes; AVX-512's of 2026-12-04.)
const std::vector<LayoutFigure> kAvx2Figures = {
    {TensorType::I2_S, 2560, 2560, 50.9, 29.4},  {TensorType::TL2, 2560, 2560, 93.0, 59.6},
    {TensorType::I2_S, 2560, 640, 13.8, 8.8},    {TensorType::TL2, 2560, 640, 36.1, 22.2},
    {TensorType::I2_S, 2560, 6912, 132.2, 80.5}, {TensorType::TL2, 2560, 6912, 203.9, 162.9},
    {TensorType::I2_S, 6912, 2560, 138.7, 81.8}, {TensorType::TL2, 6912, 2560, 257.4, 170.1},
};
const std::vector<LayoutFigure> kAvx512Figures = {
    {TensorType::I2_S, 2560, 2560, 56.6, 21.9},  {TensorType::TL2, 2560, 2560, 103.5, 55.0},
    {TensorType::I2_S, 2560, 640, 14.3, 5.2},    {TensorType::TL2, 2560, 640, 33.2, 15.8},
    {TensorType::I2_S, 2560, 6912, 136.9, 57.4}, {TensorType::TL2, 2560, 6912, 334.1, 141.5},
    {TensorType::I2_S, 6912, 2560, 146.6, 51.3}, {TensorType::TL2, 6912, 2560, 259.3, 143.0},
};


// An NVIDIA GPU: kernels compiled by NVRTC for the exact SM plus PTX; the host side is
// an x86-64 program (runtime_stub/cuda/cuda_forward.cpp drives the GPU through the driver API).
TargetInfo cuda_row(const std::string& sm, const std::string& description) {
  return {.name = "cuda-sm" + sm,
          .backend = Backend::Cuda,
          .halide = "x86-64-linux",
          .llc_cpu = "",
          .cuda_sm = "sm_" + sm,
          .vector_bytes = 0,
          .ternary_bytes = 0,
          .ternary_dot = TernaryDot::None,
          .cpu_features = 0,
          .layouts = {rt::TernaryLayout::Cuda},
          .triple = "x86_64-linux-gnu",
          .emulator = "",
          .description = description,
          .layout_figures = {}};
}

// WebAssembly: a module and its ES-module loader (model.wasm + model.mjs), run by node
// here and by browsers; one thread. 128-bit SIMD without a byte dot product: I2_S in
// NEON's 16-byte groups, row lanes summed by i32x4.dot_i16x8_s (TernaryDot::Widening),
// and TL1 with i8x16.swizzle lookups (runtime_stub/cpu/lut_tiles_simd128.cpp), which
// wasm32-simd prefers (the first of its layouts) for per-token activations: about half
// the instructions per weight, and on node 20 (bench/bench_wasm.sh, synthetic 1280/3584
// model, one thread, one run) decode 1.2x and prefill 1.4x I2_S's.
TargetInfo wasm_row(const std::string& name, const std::string& halide, const std::string& description,
                    std::vector<rt::TernaryLayout> layouts) {
  return {.name = name,
          .backend = Backend::Cpu,
          .halide = halide,
          .llc_cpu = "",
          .cuda_sm = "",
          .vector_bytes = 16,
          .ternary_bytes = 16,
          .ternary_dot = TernaryDot::Widening,
          .cpu_features = 0,
          .layouts = std::move(layouts),
          .triple = "wasm32-wasi",
          .emulator = "node",
          .description = description,
          .layout_figures = {}};
}

}  // namespace

const std::vector<TargetInfo>& targets() {
  static const std::vector<TargetInfo> table = {
      {.name = "x86-64-avx2",
       .backend = Backend::Cpu,
       .halide = "x86-64-linux-sse41-avx-avx2-fma-f16c",
       .llc_cpu = "haswell",
       .cuda_sm = "",
       .vector_bytes = 32,
       .ternary_bytes = 32,
       .ternary_dot = TernaryDot::None,
       .cpu_features = rt::kCpuAvx2Fma,
       .layouts = {rt::TernaryLayout::I2S, rt::TernaryLayout::TL2},  // TL2: pshufb lookups
       .triple = "x86_64-linux-gnu",
       .emulator = "",
       .description = "x86-64 with AVX2 and FMA (Haswell and later, Zen)",
       .layout_figures = kAvx2Figures},
      {.name = "x86-64-avx512",
       .backend = Backend::Cpu,
       .halide = "x86-64-linux-sse41-avx-avx2-fma-f16c-avx512-avx512_skylake-avx512_cannonlake",
       .llc_cpu = "icelake-server",
       .cuda_sm = "",
       .vector_bytes = 64,
       // Ternary groups of 64 bytes with vpdpbusd; without VNNI, 64-byte groups lost to
       // 32-byte ones (bench/RESULTS.md, "AVX-512 groups").
       .ternary_bytes = 64,
       .ternary_dot = TernaryDot::Vnni,
       .cpu_features = rt::kCpuAvx2Fma | rt::kCpuAvx512Vnni,
       .layouts = {rt::TernaryLayout::I2S, rt::TernaryLayout::TL2},
       .triple = "x86_64-linux-gnu",
       .emulator = "",
       .description = "x86-64 with AVX-512 F/CD/BW/DQ/VL/IFMA/VBMI/VNNI (Ice Lake, Zen 4); no VEX AVX-VNNI",
       .layout_figures = kAvx512Figures},
      // ARMv8-A: one 128-bit NEON register per ternary group. Under emulation the plain
      // target runs on a Cortex-A72 (no dotprod), so a stray sdot would fault. Not
      // measured: timing under qemu means nothing; bench_layouts on a device fills it.
      {.name = "aarch64-neon",
       .backend = Backend::Cpu,
       .halide = "arm-64-linux",
       .llc_cpu = "cortex-a72",
       .cuda_sm = "",
       .vector_bytes = 16,
       .ternary_bytes = 16,
       .ternary_dot = TernaryDot::None,
       .cpu_features = 0,
       .layouts = {rt::TernaryLayout::I2S, rt::TernaryLayout::TL1},  // TL1: NEON tbl lookups
       .triple = "aarch64-linux-gnu",
       .emulator = "qemu-aarch64 -cpu cortex-a72",
       .description = "AArch64 with NEON (ARMv8-A: Cortex-A53/A72, Raspberry Pi 3/4)",
       .layout_figures = {}},
      {.name = "aarch64-neon-dotprod",
       .backend = Backend::Cpu,
       .halide = "arm-64-linux-arm_dot_prod",
       .llc_cpu = "neoverse-n1",
       .cuda_sm = "",
       .vector_bytes = 16,
       .ternary_bytes = 16,
       .ternary_dot = TernaryDot::Sdot,
       .cpu_features = rt::kCpuDotProd,
       .layouts = {rt::TernaryLayout::I2S, rt::TernaryLayout::TL1},
       .triple = "aarch64-linux-gnu",
       .emulator = "qemu-aarch64 -cpu neoverse-n1",
       .description = "AArch64 with NEON and dot product (ARMv8.2-A+: Cortex-A76, Neoverse N1, Apple M, Graviton 2+)",
       .layout_figures = {}},
      // `wasm32` is the scalar fallback for engines without SIMD (Halide scalarizes the
      // same schedules).
      wasm_row("wasm32-simd", "wasm-32-wasmrt-wasm_simd128",
               "WebAssembly with 128-bit SIMD (browsers since 2021, node 16+), one thread",
               {rt::TernaryLayout::TL1, rt::TernaryLayout::I2S}),
      wasm_row("wasm32", "wasm-32-wasmrt", "WebAssembly without SIMD (any engine), one thread",
               {rt::TernaryLayout::I2S}),
      cuda_row("80", "NVIDIA Ampere data center (A100, A30)"),
      cuda_row("86", "NVIDIA Ampere (RTX 30xx, A10, A40)"),
      cuda_row("89", "NVIDIA Ada (RTX 40xx, L4, L40)"),
      cuda_row("90", "NVIDIA Hopper (H100, H200)"),
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

// The GNU triple of the CPU this bitnetc runs on.
#if defined(__x86_64__)
constexpr const char* kThisMachineTriple = "x86_64-linux-gnu";
#elif defined(__aarch64__)
constexpr const char* kThisMachineTriple = "aarch64-linux-gnu";
#else
constexpr const char* kThisMachineTriple = "";
#endif

bool runs_natively(const TargetInfo& t) { return t.backend == Backend::Cpu && t.triple == kThisMachineTriple; }

bool runs_on_this_cpu(const TargetInfo& t) {
  return runs_natively(t) && (t.cpu_features & ~rt::cpu_features()) == 0;
}

const TargetInfo& host_target() {
  static const TargetInfo* const host = [] {
    const TargetInfo* best = nullptr;
    for (const TargetInfo& t : targets())
      if (runs_on_this_cpu(t) && (!best || t.vector_bytes > best->vector_bytes ||
                                  (t.vector_bytes == best->vector_bytes && t.cpu_features > best->cpu_features)))
        best = &t;
    // A CPU without the least of its architecture's targets' features: the first row of
    // the architecture, whose outputs then say at load which features they miss.
    for (const TargetInfo& t : targets())
      if (!best && runs_natively(t)) best = &t;
    return best ? best : &targets().front();
  }();
  return *host;
}

}  // namespace bitnetc
