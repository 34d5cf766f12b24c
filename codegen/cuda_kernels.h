// CUDA targets, first part: CUDA C++ source for the ternary matmul, generated per weight
// shape (K, N, activation block and batch are constants of the code), and its
// compilation by NVRTC at compile time into a cubin for the target's exact SM plus PTX
// for newer GPUs. No GPU is needed for any of this.
//
// The kernels use no shared memory, warp shuffles or barriers: one thread per output
// (row, token), weights in 16-weight words laid out chunk-major so that neighbouring
// threads read neighbouring words (coalesced). That keeps the source valid C++ as
// well, so tests run it on the CPU through tests/support/cuda_emulation.h and compare
// it with the interpreter bit for bit.
//
// Packing: row n's weights 16c .. 16c+15 form word c*N + n; byte b of the word holds, at
// bits 2s..2s+1, the code (w + 1) of weight 16c + 4s + b. So (word >> 2s) & 0x03030303
// is four codes in byte order that meet four consecutive int8 activations in __dp4a.
//
// Not yet here (issue 8): the RoPE, attention, head and sampling kernels,
// and the runtime that loads libcuda.so.1 and runs a model; outputs for CUDA targets
// are refused with a clear error until then.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "targets.h"
#include "ternary.h"

namespace bitnetc::codegen {

struct CudaGemvShape {
  int64_t K = 0, N = 0;
  int64_t act_block = 0;  // K (per-token activations) or 256 (Q8_K blocks)
  int batch = 1;          // tokens per launch (blockIdx.y)
};

// K padded to whole 16-weight words (zero weights; the activations are zero there).
int64_t cuda_padded_k(int64_t K);
std::vector<uint32_t> pack_for_cuda_gemv(const TernaryWeights& w);

// The kernel's name and its source. Arguments, in order: const uint32_t* packed,
// const int32_t* x (the int8 activations, [batch][padded K] as words), const int32_t*
// x_sum ([batch][K / act_block]), const float* d_act (likewise), float w_scale,
// float* y ([batch][N]). Launch: blockDim.x threads per block, ceil(N / blockDim.x)
// blocks in x, batch in y.
std::string cuda_gemv_name(const CudaGemvShape& s);
std::string cuda_gemv_source(const CudaGemvShape& s);

// Norm then activation quantization for `batch` tokens of width n, with the
// interpreter's own arithmetic (ir/numerics.h, embedded in the source). One thread per
// token. Arguments: const float* x ([batch][n]), const float* w (the norm weight, or
// unused), float* y ([batch][n], the normed values), int32_t* q (int8 codes,
// [batch][cuda_padded_k(n)] zero padded, as words), int32_t* x_sum and float* d
// ([batch][blocks]: per token, or per 256-block for Q8_K).
struct CudaNormQuantShape {
  int64_t n = 0;
  int norm = 0;         // ir::NormKind
  bool has_weight = false;
  float eps = 0;
  int quant = 0;        // ir::ActQuant
  int batch = 1;
};
std::string cuda_norm_quant_name(const CudaNormQuantShape& s);
std::string cuda_norm_quant_source(const CudaNormQuantShape& s);

// A compiled module: cubin for the target's SM and PTX of the same source.
struct CudaImage {
  std::vector<uint8_t> cubin;
  std::string ptx;
};

// Whether this bitnetc was built with NVRTC's headers (else compile_cuda throws, saying
// so). NVRTC itself is loaded at the first compile_cuda.
bool have_nvrtc();
// Compiles `source` for the target's SM (TargetInfo::llc_cpu, e.g. "sm_80"). Throws
// std::runtime_error with NVRTC's log on a compile error.
CudaImage compile_cuda(const std::string& source, const TargetInfo& target);

}  // namespace bitnetc::codegen
