// Compilation targets as data: one record per target, the row a new CPU or GPU adds.
#pragma once

#include <string>
#include <vector>

#include "tensor_types.h"

namespace bitnetc {

enum class TargetArch { X86_64, AArch64, Cuda };

// One measured ternary matmul on a target (bench/bench_layouts, weights cold, every core
// of the machine it names): what `--layout=auto` compares.
struct LayoutFigure {
  TensorType layout;  // I2_S, TL1 or TL2
  int64_t K, N;
  double gemv_us;            // one token (decode)
  double gemm_us_per_token;  // a batch of 8 (prefill), per token
};

struct TargetInfo {
  std::string name;  // what users pass to --target
  TargetArch arch;
  std::string halide;   // Halide target string, every feature spelled out
  std::string llc_cpu;  // exact CPU for llc-14 when Halide's selection is wrong; CUDA: the SM ("sm_80")
  int vector_bytes;     // SIMD width of the target (dense kernels)
  int ternary_bytes;    // byte width of one packed ternary group (see schedules/ternary_gemv.h)
  // The ternary kernels' dot-product instructions, if any.
  //  - Vnni: u8 x i8 (AVX512-VNNI vpdpbusd). Halide 14 selects it only with its
  //    sapphirerapids feature, which also turns on the VEX-encoded AVX-VNNI that Zen 4 and
  //    Ice Lake lack; so these kernels go through LLVM bitcode and llc-14
  //    -mcpu=<llc_cpu>, whose CPU has the EVEX forms only.
  //  - Sdot: i8 x i8 (ARMv8.2 dotprod), Halide's arm_dot_prod feature.
  enum class Dot { None, Vnni, Sdot } ternary_dot;
  TensorType layout;    // preferred weight layout
  std::string triple;   // GNU triple: the cross toolchain and runtime libraries outputs link with
  // How this machine runs the target's outputs when it is not the target's CPU: a user
  // mode emulator and a CPU model that has exactly the target's features ("" = natively).
  std::string emulator;
  std::string description;
  // Measured per layout (see LayoutFigure); empty where nobody has measured the target.
  std::vector<LayoutFigure> layout_figures;
};

// From how many rows one GEMM call for `batch` rows (the prefill kernel, padded to
// `batch`) costs less than a GEMV call per row, for an N x K matmul in `layout`: from
// the figures measured for that shape, else for every shape of the layout; 2 (any
// chunk of several rows takes the GEMM) where nobody has measured the target.
int gemm_min_rows(const TargetInfo& t, TensorType layout, int64_t K, int64_t N, int batch);

// Whether this machine runs the target's code natively (else through t.emulator).
bool runs_natively(const TargetInfo& t);

const std::vector<TargetInfo>& targets();
const TargetInfo* find_target(const std::string& name);  // nullptr when unknown

// `host`: the best x86 target this machine runs. Halide's own host detection adds
// avx512_sapphirerapids whenever AVX512-VNNI is present, which also enables the
// VEX-encoded AVX-VNNI that AMD Zen 4 lacks (SIGILL); bitnetc reads CPUID itself.
const TargetInfo& host_target();

}  // namespace bitnetc
