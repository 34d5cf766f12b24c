// CUDA targets: CUDA C++ source for every op of the forward pass, generated per shape
// (sizes and attributes are constants of the code), and its compilation by NVRTC at
// compile time into a cubin for the target's exact SM plus PTX for newer GPUs. No GPU
// is needed for any of this. codegen/cuda_program.h puts the kernels of one model
// together with the plan that launches them.
//
// The kernels use blocks, __shared__ arrays and __syncthreads() but no warp shuffles,
// atomics or intrinsics beyond __dp4a/__fmul_rn/__fadd_rn: the source stays valid C++,
// so tests run it on the CPU through tests/support/cuda_emulation.h (threads as fibers
// switching at barriers) and compare it with the interpreter. Weights are 16-weight
// words laid out chunk-major so that neighbouring threads read neighbouring words
// (coalesced). The numerics are the interpreter's, bit for bit
// (ir/numerics.h is part of every module, its expf included; products and sums unfused,
// -fmad=false; sqrtf and division are IEEE-rounded on the device as on the host).
//
// Packing: row n's weights 16c .. 16c+15 form word c*N + n; byte b of the word holds, at
// bits 2s..2s+1, the code (w + 1) of weight 16c + 4s + b. So (word >> 2s) & 0x03030303
// is four codes in byte order that meet four consecutive int8 activations in __dp4a.
//
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model_blob.h"
#include "targets.h"
#include "ternary.h"

namespace bitnetc::codegen {

// One generated kernel: its name, its parameters (C declarations) and its body. Every
// kernel's first parameter is the chunk's state (runtime_stub/cuda_plan.h: CudaState);
// kernels that work per token take the token from blockIdx.y (launched with the chunk's
// token count in y) unless they say otherwise.
struct CudaKernel {
  std::string name;
  std::vector<std::string> params;
  std::string body;
  // How it is launched: grid_x blocks of block_x threads, times the chunk's tokens in y
  // when per_token is set.
  uint32_t grid_x = 1, block_x = 1;
  bool per_token = false;
};

// The kernel as CUDA C++, followed (under BITNETC_CUDA_EMULATION) by a launcher that
// runs it on the CPU: extern "C" void bitnetc_emulate_NAME(unsigned grid_x, unsigned
// grid_y, unsigned block_x, void** params), params as cuLaunchKernel takes them, and
// extern "C" const int bitnetc_emulate_NAME_params (how many there are).
std::string cuda_kernel_text(const CudaKernel& k);
// What every module starts with: ir/numerics.h (the interpreter's arithmetic).
std::string cuda_module_preamble();

// Ternary matmul: y = w_scale * sum over activation blocks of d_act * (codes . x - sum x).
// A block computes a few rows (neighbouring threads read neighbouring words: coalesced)
// for every token of the chunk (up to `batch`, so each weight word is read once per
// chunk), its threads split into slices of K; the integer partial dots meet in shared
// memory (exact), and one thread per row applies the float epilogue in the
// interpreter's order.
// Parameters: state, packed (pack_for_cuda_matmul), x (int8 codes, [batch][padded K] as
// words), x_sum and d_act ([batch][K / act_block]), float w_scale, y ([batch][N]).
struct CudaMatmulShape {
  int64_t K = 0, N = 0;
  int64_t act_block = 0;  // K (per-token activations) or 256 (Q8_K blocks)
  int batch = 1;          // the most tokens a chunk holds
  // The output is residual + the product (an Add absorbed: one more parameter, the
  // residual, before y).
  bool add_residual = false;
  // dp4a only: further weights of these many rows that read the same activations (q, k
  // and v; gate and up), computed by the same launch, each with its blocks; their
  // packed words, scale and output follow as parameters packed_i, w_scale_i, y_i.
  std::vector<int64_t> more_rows;
  // A weight scale per (row, activation block) (llama.cpp's TQ files): each weight's
  // w_scale is followed by its scales, floats [blocks][N] (block b of row n at b * N + n),
  // which multiply the blocks' dots in place of w_scale.
  bool block_scales = false;
};
CudaKernel cuda_ternary_matmul(const CudaMatmulShape& s);

// The same product on the int8 tensor cores (mma.h's warp matrix operations, m16n16k16)
// for prefill chunks: a block of 4 warps computes 64 rows for up to `batch` tokens
// (batch a multiple of 16; each weight word read once per chunk), the words of each
// stage unpacked to int8 codes in shared memory, the activations staged beside them;
// the int32 accumulators per activation block go through shared memory to the float
// epilogue, so the result is the dp4a kernel's (and the interpreter's) bit for bit.
// Same parameters as cuda_ternary_matmul.
CudaKernel cuda_ternary_matmul_mma(const CudaMatmulShape& s);

// K padded to whole 16-weight words (zero weights; the activations are zero there).
int64_t cuda_padded_k(int64_t K);
std::vector<uint32_t> pack_for_cuda_matmul(const TernaryWeights& w);

// An rms_norm's attributes (the Norm op's): ir::NormKind, whether it has a weight, eps.
struct CudaNorm {
  int kind = 0;
  bool has_weight = false;
  float eps = 0;
};
// rms_norm of each token: one block per token. The sum of squares is the interpreter's:
// for RmsF64Sum reduced in parallel in double (where the order does not change the
// float result, in all but astronomically rare cases); for the float recipes added in
// order by one thread (a parallel float sum rounds differently, and on small random
// models that moved logits by more than 1). Parameters: state, x, [w,] y, all
// [batch][n].
CudaKernel cuda_norm(int64_t n, const CudaNorm& norm);
// Activation quantization of each token: one block per token; the largest magnitude
// (and the first value that has it) reduced in shared memory, then every code as the
// interpreter computes it, and the codes' sum (all exact). Writes the int8 codes q
// ([batch][cuda_padded_k(n)], zero padded, as words), their sums x_sum and the dequant
// factors d ([batch][blocks]: one per token, or per 256-block for Q8_K). With `norm`,
// the block first computes the token's rms_norm scale (as cuda_norm does) and quantizes
// the normalized values, recomputed where they are read and never stored: one launch
// and one pass over x instead of two. With a gated activation (ir::Activation, >= 0) the
// input is not x but activate(gate) * up (cuda_gated's values, never stored). Parameters:
// state, x or gate and up, [the norm's w,] q, x_sum, d.
CudaKernel cuda_quantize(int64_t n, int act_quant, const std::optional<CudaNorm>& norm = std::nullopt,
                         int gated_activation = -1);
// Embedding rows of the chunk's tokens: one thread per element. The table is rows x cols
// row-major, or k-major (element (r, c) at c * rows + r: a tied head's layout), f32,
// IEEE half, or (a tied --head=q8) int8 codes times the row's scale. Parameters: state,
// table, [scales,] out ([batch][cols]).
CudaKernel cuda_embedding(int64_t rows, int64_t cols, rt::DenseStorage storage, bool k_major);
// Dense matmul y = W x with W k-major (coalesced: neighbouring threads read neighbouring
// rows), f32, half or int8 codes, summed in column order; an int8 row's sum is then
// multiplied by its scale (the CPU kernels' --head=q8 numerics). `last_token_only`:
// grid_y 1, reads the chunk's last token and writes y's first row (the head: only those
// logits are read). Parameters: state, w, [scales,] x ([batch][K]), y.
CudaKernel cuda_dense_matmul(int64_t K, int64_t N, rt::DenseStorage storage, bool last_token_only);
// RoPE: y = x with every head rotated by the angles of the token's position, read from
// tables of [position][head_dim / 2] cos and sin. One thread per head. Parameters: state,
// cos, sin, x, y ([batch][n]).
CudaKernel cuda_rope(int64_t n, int head_dim, int rope_style);
// RoPE of a layer's q and k and the KV cache store in one launch (an Attention whose q
// and k come from Rope steps nothing else reads): q rotated into q_out, k rotated
// straight into its position's key cache row, v copied into the value cache. One thread
// per head, q's then k's, the first kv_dim threads also copying v. Parameters: state,
// cos_q, sin_q, cos_k, sin_k, q, k, v, q_out, k_cache, v_cache.
struct CudaRopeKvShape {
  int64_t q_n = 0;  // n_head * head_dim
  int kv_dim = 0, head_dim = 0, rope_style = 0;
};
CudaKernel cuda_rope_kv_store(const CudaRopeKvShape& s);
// Appends the chunk's k and v ([batch][kv_dim]) to a layer's caches ([n_ctx][kv_dim]) at
// its positions. One thread per element. Parameters: state, k, v, k_cache, v_cache.
CudaKernel cuda_kv_store(int kv_dim);
// Attention: one block per (head, token). Its threads compute the scores over the
// positions up to the token's (each score in the interpreter's order), the maximum and
// the softmax (the f32 sum in position order by one thread; ggml's double sum reduced
// in shared memory), then each output element as a sum over positions in order. scores
// is scratch of
// [batch][n_head][n_ctx]. Parameters: state, q, k_cache, v_cache, scores, out.
struct CudaAttentionShape {
  int n_head = 0, n_head_kv = 0, head_dim = 0, kv_dim = 0;
  int score_scale = 0, softmax_sum = 0;  // ir::ScoreScale, ir::SoftmaxSum
};
CudaKernel cuda_attention(const CudaAttentionShape& s);
// out = activate(gate) * up, and out = a + b: one thread per element. Parameters:
// state, the two inputs, out.
CudaKernel cuda_gated(int64_t n, int activation);
CudaKernel cuda_add(int64_t n);
// Greedy sampling on the device: the index of the largest of n logits (the lowest index
// among equal ones, as rt::argmax). `parts` threads each scan every parts-th logit
// (coalesced) into (value, index) pairs; one thread then picks among them. Parameters:
// state, logits, partial ([parts] floats then [parts] ints); then state, partial, the
// int result.
CudaKernel cuda_argmax_partial(int64_t n, int parts);
CudaKernel cuda_argmax_final(int parts);
// The repetition penalty on the device, in place on the n logits: the state's penalty
// (CudaState::kPenalty) on the logits of the first kPenaltyCount ids of `tokens`
// (distinct, so no two threads write one logit). One block. Parameters: state, logits,
// tokens.
CudaKernel cuda_repeat_penalty(int64_t n);
// Sampling on the device: the state's K (CudaState::kTopK, at most k_max) largest
// logits with their ids, largest first and lower ids first among equals (the host
// sampler's order), so only they come back. `parts` threads each keep a sorted list over
// every parts-th logit; merge passes then join lists_per_thread lists per thread.
// Lists are [lists][k_max] floats followed by as many ids (-1: no entry). Parameters:
// state, logits or the input lists, the output lists.
CudaKernel cuda_topk_partial(int64_t n, int parts, int k_max);
CudaKernel cuda_topk_merge(int lists, int lists_per_thread, int k_max);
// For benchmarks: reads n 16-byte words (a grid-stride loop, the access pattern of a
// bandwidth test) and writes a value that depends on all of them to *sink. Every module
// has it, named rt::kCudaReadBandwidthKernel. Parameters: const uint4* p, unsigned long
// long n, unsigned* sink.
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
