// Compilation targets as data: one record per target, the row a new CPU or GPU adds. No
// back end switches on the architecture where a field of the row would do: the
// kernels' vector widths and dot products, the CPU features an output checks at load,
// the ternary layouts with kernels, the toolchain (runtime build) outputs link with and
// the emulator that runs them here are all columns.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model_blob.h"  // runtime_stub/: rt::TernaryLayout
#include "tensor_types.h"

namespace bitnetc {

// Which back end compiles a target's forward pass and which executor runs it: Halide
// kernels with the CPU plan (codegen/cpu_program.h), or NVRTC kernels with the CUDA plan
// (codegen/cuda_program.h) driven from the host side.
enum class Backend { Cpu, Cuda };

// The ternary kernels' dot-product instructions, if any (the reduction kind).
//  - Vnni: u8 x i8 (AVX512-VNNI vpdpbusd). Halide 14 selects it only with its
//    sapphirerapids feature, which also turns on the VEX-encoded AVX-VNNI that Zen 4 and
//    Ice Lake lack; so these kernels go through LLVM bitcode and llc-14
//    -mcpu=<llc_cpu>, whose CPU has the EVEX forms only.
//  - Sdot: i8 x i8 (ARMv8.2 dotprod), Halide's arm_dot_prod feature.
//  - Widening: i8 x i8 four-way sums with no dot instruction, which Halide lowers to
//    widening multiplies and pairwise adds (WebAssembly SIMD's i16x8.extmul and
//    i32x4.extadd_pairwise): twice as fast there as u8 x i8 pairs in saturating i16.
enum class TernaryDot { None, Vnni, Sdot, Widening };

// One measured ternary matmul on a target (bench/bench_layouts, weights cold, every core
// of the machine it names): what `--layout=auto` compares.
struct LayoutFigure {
  TensorType layout;  // I2_S, TL1 or TL2
  int64_t K, N;
  double gemv_us;            // one token (decode)
  double gemm_us_per_token;  // a batch of kLayoutFigureBatch (prefill), per token
};
inline constexpr int kLayoutFigureBatch = 8;

struct TargetInfo {
  std::string name;  // what users pass to --target
  Backend backend;
  // Halide target string, every feature spelled out: the kernels' (CPU back end), or
  // the host side's Halide runtime (CUDA back end).
  std::string halide;
  std::string llc_cpu;  // CPU back end: the exact CPU for llc-14 when Halide's selection is wrong
  std::string cuda_sm;  // CUDA back end: the SM NVRTC compiles the cubin for ("sm_80")
  int vector_bytes;     // SIMD width of the dense kernels (0: not a CPU target)
  int ternary_bytes;    // byte width of one packed ternary group (see schedules/ternary_matmul.h)
  TernaryDot ternary_dot;
  uint32_t cpu_features;  // rt::CpuFeature bits the kernels use, which an output checks at load
  std::vector<rt::TernaryLayout> layouts;  // the ternary layouts it has kernels for (codegen/layouts.h)
  // GNU triple of the CPU outputs run on: the toolchain and runtime libraries they link
  // with (codegen/link.cpp).
  std::string triple;
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

// Whether this machine's CPU architecture is the CPU target's (else its outputs run
// through t.emulator). CUDA targets: false (their kernels need a GPU).
bool runs_natively(const TargetInfo& t);
// Whether the target's kernels run on this very CPU: natively, with every feature
// they use (an AVX-512 target on an AVX2-only x86 runs natively but not here).
bool runs_on_this_cpu(const TargetInfo& t);

const std::vector<TargetInfo>& targets();
const TargetInfo* find_target(const std::string& name);  // nullptr when unknown

// `host`: the widest CPU target this machine runs (bitnetc reads CPUID itself: Halide's
// own host detection adds avx512_sapphirerapids whenever AVX512-VNNI is present, which
// also enables the VEX-encoded AVX-VNNI that AMD Zen 4 lacks, a SIGILL).
const TargetInfo& host_target();

}  // namespace bitnetc
