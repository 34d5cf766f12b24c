// CUDA targets: the kernels of every op of the forward pass for one model's shapes, and
// their compilation by NVRTC at compile time into a cubin for the target's exact SM plus
// PTX for newer GPUs. No GPU is needed for any of this. The kernels themselves are
// templates in codegen/cuda/kernels.cuh (real CUDA C++, shapes as template parameters);
// this generator instantiates one per distinct shape behind an extern "C" entry point and
// chooses its launch geometry. codegen/cuda_program.h puts the kernels of one model
// together with the plan that launches them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cuda_plan.h"
#include "ir.h"
#include "model_blob.h"
#include "targets.h"
#include "ternary.h"

namespace bitnetc::codegen {

// One kernel of a module: a plain extern "C" __global__ entry point (its name and
// parameters, as the plan's launches pass them) whose body calls one instance of a
// template of codegen/cuda/kernels.cuh, and its launch geometry.
struct CudaKernel {
  std::string name;
  std::vector<std::string> params;  // C declarations; the first is always the chunk's state
  std::string body;                 // the call of the template instance
  // How it is launched: grid_x blocks of block_x threads, times grid_y in y.
  uint32_t grid_x = 1, block_x = 1;
  rt::CudaGridY grid_y = rt::CudaGridY::One;
};

// The entry point as CUDA C++, followed (under BITNETC_CUDA_EMULATION) by a launcher that
// runs it on the CPU: extern "C" void bitnetc_emulate_NAME(unsigned grid_x, unsigned
// grid_y, unsigned block_x, void** params), params as cuLaunchKernel takes them, and
// extern "C" const int bitnetc_emulate_NAME_params (how many there are).
std::string cuda_kernel_text(const CudaKernel& k);
// What every module starts with: mma.h, ir/numerics.h (the interpreter's arithmetic),
// runtime_stub/cuda/cuda_state.h (the chunk's state) and codegen/cuda/kernels.cuh (the
// kernel templates).
std::string cuda_module_preamble();

// The kernels, one entry point per distinct shape. Parameters are listed as the plan
// passes them; the templates in kernels.cuh say what each computes, and which arrays
// are [B][...] (B: the chunk's most rows).

// Ternary matmul with dp4a (bitnetc_ternary_dp4a): state, packed (pack_for_cuda_matmul),
// x, x_sum, d_act, float w_scale, [w_block_scales,] [residual,] y, then per further
// weight packed_i, w_scale_i, [w_block_scales_i,] y_i.
struct CudaMatmulShape {
  int64_t K = 0, N = 0;
  int64_t act_block = 0;  // K (per-token activations) or 256 (Q8_K blocks)
  int batch = 1;          // the most rows a chunk holds
  bool add_residual = false;  // the output is residual + the product (an Add absorbed)
  // dp4a only: further weights of these many rows that read the same activations (q, k
  // and v; gate and up), computed by the same launch.
  std::vector<int64_t> more_rows = {};
  bool block_scales = false;  // a weight scale per (row, activation block): floats [blocks][N]
  // ik_llama.cpp's Q8_K64 activations (act_block K, four interleaved groups; dp4a only).
  bool q8k64 = false;
};
CudaKernel cuda_ternary_matmul(const CudaMatmulShape& s);
// The same product on the int8 tensor cores (bitnetc_ternary_mma), for prefill chunks
// (batch a multiple of 16); one weight, same parameters.
CudaKernel cuda_ternary_matmul_mma(const CudaMatmulShape& s);

// K padded to whole 16-weight words (zero weights; the activations are zero there).
int64_t cuda_padded_k(int64_t K);
std::vector<uint32_t> pack_for_cuda_matmul(const TernaryWeights& w);

// An rms_norm's attributes (the Norm op's).
struct CudaNorm {
  ir::NormKind kind = ir::NormKind::RmsF32;
  bool has_weight = false;
  float eps = 0;
};
// rms_norm of each row (bitnetc_norm): state, x, [w,] y.
CudaKernel cuda_norm(int64_t n, const CudaNorm& norm);
// Activation quantization of each row (bitnetc_quantize), with the norm before it and/or
// the gated activation that makes its input computed in the same launch: state, x (or
// gate and up), [the norm's w,] q, x_sum, d.
CudaKernel cuda_quantize(int64_t n, ir::ActQuant quant, const std::optional<CudaNorm>& norm = std::nullopt,
                         std::optional<ir::Activation> gated = std::nullopt);
// Embedding rows of the chunk's tokens (bitnetc_embedding): state, table, [scales,] out;
// of a k-quant table (bitnetc_kquant_embedding, k-major parts): state, q, sc, m, d,
// dmin, out; of a Q8_0 table (bitnetc_q8_0_embedding): state, q, d, out.
CudaKernel cuda_embedding(int64_t rows, int64_t cols, rt::DenseStorage storage, bool k_major);
// A k-quant head on Q8_K activations (bitnetc_kquant_matmul): state, q, sc, m, d, dmin
// (k-major parts), x (the codes), xd (their factors), y. `logit_rows` as cuda_dense_matmul.
CudaKernel cuda_kquant_matmul(int64_t K, int64_t N, bool logit_rows);
// A Q8_0 head on Q8_0 activations (bitnetc_q8_0_matmul): state, q, d (k-major parts),
// x, xd, y.
CudaKernel cuda_q8_0_matmul(int64_t K, int64_t N, bool logit_rows);
// Dense matmul with a k-major weight (bitnetc_dense_matmul): state, w, [scales,] x, y.
// `logit_rows`: the head, launched for the chunk's logit rows only.
CudaKernel cuda_dense_matmul(int64_t K, int64_t N, rt::DenseStorage storage, bool logit_rows);
// RoPE (bitnetc_rope): state, cos, sin, x, y.
CudaKernel cuda_rope(int64_t n, int head_dim, ir::RopeStyle style);
// RoPE of q and k and the KV cache store in one launch (bitnetc_rope_kv_store): state,
// cos_q, sin_q, cos_k, sin_k, q, k, v, q_out, k_caches, v_caches.
struct CudaRopeKvShape {
  int64_t q_n = 0;  // n_head * head_dim
  int kv_dim = 0, head_dim = 0;
  ir::RopeStyle style = ir::RopeStyle::Interleaved;
};
CudaKernel cuda_rope_kv_store(const CudaRopeKvShape& s);
// The KV cache store (bitnetc_kv_store): state, k, v, k_caches, v_caches.
CudaKernel cuda_kv_store(int kv_dim);
// Attention (bitnetc_attention): state, q, k_caches, v_caches, scores, out.
struct CudaAttentionShape {
  int n_head = 0, n_head_kv = 0, head_dim = 0;
  ir::ScoreScale score_scale = ir::ScoreScale::DivideSqrt;
  ir::SoftmaxSum softmax_sum = ir::SoftmaxSum::F32Divide;
};
CudaKernel cuda_attention(const CudaAttentionShape& s);
// out = activate(gate) * up, and out = a + b: state, the two inputs, out.
CudaKernel cuda_gated(int64_t n, ir::Activation activation);
CudaKernel cuda_add(int64_t n);
// Greedy sampling on the device (bitnetc_argmax_partial/final): state, logits, partial;
// then state, partial, the int result.
CudaKernel cuda_argmax_partial(int64_t n, int parts);
CudaKernel cuda_argmax_final(int parts);
// The repetition penalty in place (bitnetc_repeat_penalty): state, logits, tokens.
CudaKernel cuda_repeat_penalty(int64_t n);
// The top-k logits (bitnetc_topk_partial/merge): state, logits or input lists, output lists.
CudaKernel cuda_topk_partial(int64_t n, int parts, int k_max);
CudaKernel cuda_topk_merge(int lists, int lists_per_thread, int k_max);
// For benchmarks (bitnetc_read_words): p, n, sink. Every module has it, named
// rt::kCudaReadBandwidthKernel.
CudaKernel cuda_read_bandwidth();

// A compiled module: cubin for the target's SM and PTX of the same source.
struct CudaImage {
  std::vector<uint8_t> cubin;
  std::string ptx;
};

// Whether this bitnetc was built with NVRTC's headers (else compile_cuda throws, saying
// so). NVRTC itself is loaded at the first compile_cuda.
bool have_nvrtc();
// Compiles `source` for the target's SM (TargetInfo::cuda_sm, e.g. "sm_80"). Throws
// std::runtime_error with NVRTC's log on a compile error.
CudaImage compile_cuda(const std::string& source, const TargetInfo& target);

}  // namespace bitnetc::codegen
