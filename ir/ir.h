// The ternary IR: one decode step of a BitNet model as a straight-line graph of ops over
// per-token vectors, with every shape fixed at build time.
//
// Numerics that differ between the engines that define the source formats (how
// activations are quantized, how a norm accumulates, how RoPE forms its angles) are
// attributes of the ops, chosen by the lowering in compiler/lower.cpp to reproduce that
// engine, and printed in the text form. Nothing here knows about files or targets.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kquant.h"
#include "numerics.h"  // the kinds' values: one home, shared with the CUDA kernels
#include "ternary.h"

namespace bitnetc::ir {

// ---- semantics as data ----------------------------------------------------------------

// How a ternary matmul's input is quantized to int8.
enum class ActQuant : uint8_t {
  // Per vector absmax, as BitNet trains it. Three engines round it differently:
  //  - bitllama2.c runbit.c: a = (float)(max/127.0 in double),
  //    q = round_half_away((x * (float)(1/(double)a))), dequant factor a
  PerTokenLlama2c = kBitnetcPerTokenLlama2c,
  //  - transformers ActQuant: s = (1/max(amax,1e-5))*127 (two float roundings),
  //    q = clamp(round_half_even(x*s), -128, 127), dequant factor 1/s
  PerTokenHF = kBitnetcPerTokenHF,
  //  - bitnet.cpp quantize_row_i8_s: s = 127/amax, q = round_half_even(x*s)
  PerTokenBitnetCpp = kBitnetcPerTokenBitnetCpp,
  // llama.cpp's Q8_K (the vec_dot type of TQ1_0/TQ2_0), per block of 256: with m the
  // element of largest |x| (sign kept), iscale = -127/m, q = min(127, rne(iscale*x)),
  // dequant factor 1/iscale.
  PerBlockQ8K = kBitnetcPerBlockQ8K,
  // ik_llama.cpp's Q8_K64 (the vec_dot type of its IQ1_BN / IQ2_BN): four dequantization
  // factors per vector, element k in group (k % 16) / 4, d = amax/127, q = rne(x * (1/d));
  // a matmul combines the groups as ik's kernels do (bitnetc_q8k64_group_term).
  PerRowQ8K64 = kBitnetcPerRowQ8K64,
  // llama.cpp's Q8_0 (the vec_dot type of a Q8_0 head), per block of 32: d = fp16(amax/127),
  // q = rne(x * (127/amax)) (bitnetc_quantize). Read only by a Q8_0Matmul.
  PerBlockQ8_0 = kBitnetcPerBlockQ8_0,
};
const char* act_quant_name(ActQuant q);
bool act_quant_is_per_block(ActQuant q);
// Dequantization factors per quantized vector of n values (bitnetc_quant_factor_count).
int64_t act_quant_factor_count(ActQuant q, int64_t n);

enum class NormKind : uint8_t {
  RmsF32 = kBitnetcRmsF32,          // transformers: mean(x^2) in float32, x * rsqrt(mean + eps), then * w
  RmsF64Sum = kBitnetcRmsF64Sum,    // ggml: sum of squares in double, scale = 1/sqrtf(mean + eps), (x*scale)*w
  RmsLlama2c = kBitnetcRmsLlama2c,  // runbit.c final norm: sequential f32 sum, /n, +eps, r = 1/sqrtf, w * (r*x)
  BitNorm = kBitnetcBitNorm,        // runbit.c inside BitLinear: x / (n * rms(x)), no eps, no weight
};
const char* norm_name(NormKind k);

enum class RopeStyle : uint8_t {
  Interleaved = kBitnetcRopeInterleaved,  // pairs (2m, 2m+1) within a head (GPT-J, llama2.c)
  Neox = kBitnetcRopeNeox,                // pairs (m, m + d/2) within a head (HF rotate_half, llama.cpp NEOX)
};
enum class RopeFreq : uint8_t {
  PowfPerPair,    // runbit.c: f = 1/powf(base, 2m/d), angle = pos*f
  GgmlIterative,  // ggml: theta = pos; after each pair theta *= powf(base, -2/d)
  TorchInvFreq,   // transformers: inv = 1/(powf(base, 2m/d)) in f32, angle = pos*inv
};
const char* rope_style_name(RopeStyle s);
const char* rope_freq_name(RopeFreq f);

enum class Activation : uint8_t {
  SiluDiv = kBitnetcSiluDiv,          // x / (1 + expf(-x)) (ggml, torch)
  SiluLlama2c = kBitnetcSiluLlama2c,  // x * (1 / (1 + expf(-x))) (runbit.c)
  Relu2 = kBitnetcRelu2,              // max(x, 0)^2 (BitNet b1.58 2B4T)
};
const char* activation_name(Activation a);

enum class ScoreScale : uint8_t {
  DivideSqrt = kBitnetcDivideSqrt,            // (q.k) / sqrtf(d)
  MultiplyInvSqrt = kBitnetcMultiplyInvSqrt,  // (q.k) * (1/sqrt(d))
};
enum class SoftmaxSum : uint8_t {
  F32Divide = kBitnetcF32Divide,          // sum in f32, p = e / sum
  F64MulInverse = kBitnetcF64MulInverse,  // ggml: sum in double, p = e * (float)(1/sum)
};

// ---- the graph ------------------------------------------------------------------------

enum class DType : uint8_t { F32, Q8 };  // Q8: int8 codes + dequant factor(s)
const char* dtype_name(DType t);

struct Value {
  std::string name;
  DType dtype = DType::F32;
  int64_t size = 0;  // elements (one token)
};

enum class OpKind : uint8_t {
  Embedding,      // token -> row of a dense table
  Norm,           // x -> norm(x) [* weight]
  Quantize,       // x -> q8
  TernaryMatmul,  // q8 -> f32[rows] with a ternary weight
  DenseMatmul,    // f32 -> f32[rows] with a dense weight (the head)
  KQuantMatmul,   // q8 (Q8_K) -> f32[rows] with a k-quant weight (a Q4_K/Q5_K/Q6_K head)
  Q8_0Matmul,     // q8 (Q8_0) -> f32[rows] with a Q8_0 weight (a Q8_0 head)
  Rope,           // x -> x rotated at the current position
  Attention,      // q, k, v -> out; appends k, v to the layer's KV cache first
  GatedAct,       // gate, up -> act(gate) * up
  Add,            // a, b -> a + b
};
const char* op_name(OpKind k);

// How a dense weight is held: float values, or llama.cpp's k-quant or Q8_0 codes and
// scales (kquant.h), which the head computes with as ggml does and an embedding dequantizes.
enum class DenseFormat : uint8_t { F32, KQuant, Q8_0 };

struct DenseWeights {
  std::string name;
  int64_t rows = 0, cols = 0;  // a vector has rows == 1
  DenseFormat format = DenseFormat::F32;
  std::vector<float> data;  // F32
  KQuantWeights kquant;     // KQuant
  Q8_0Weights q8_0;         // Q8_0
};

struct NamedTernary {
  std::string name;
  TernaryWeights w;
};

struct Op {
  Op() = default;
  explicit Op(OpKind k) : kind(k) {}

  OpKind kind = OpKind::Add;
  std::vector<int> inputs;  // value ids
  int output = -1;          // value id
  int weight = -1;          // dense (Embedding, Norm, DenseMatmul) or ternary (TernaryMatmul)

  // Attributes; each kind reads its own.
  NormKind norm = NormKind::RmsF32;
  float eps = 0;
  ActQuant quant = ActQuant::PerTokenHF;
  RopeStyle rope_style = RopeStyle::Neox;
  RopeFreq rope_freq = RopeFreq::GgmlIterative;
  float rope_theta = 10000.0f;
  int head_dim = 0;
  int n_head = 0, n_head_kv = 0;
  int layer = -1;
  ScoreScale score_scale = ScoreScale::MultiplyInvSqrt;
  SoftmaxSum softmax_sum = SoftmaxSum::F32Divide;
  Activation act = Activation::SiluDiv;
};

struct Graph {
  std::string name;  // e.g. "bitnet", "BitNetForCausalLM"
  int64_t n_vocab = 0, n_embd = 0, n_layer = 0, n_ctx = 0, n_head_kv = 0, head_dim = 0;
  std::vector<Value> values;
  std::vector<Op> ops;
  std::vector<DenseWeights> dense;
  std::vector<NamedTernary> ternary;
  int logits = -1;  // value id of the output

  int add_value(std::string name, DType dtype, int64_t size);
  int add_dense(DenseWeights w);
  int add_ternary(std::string name, TernaryWeights w);
  int kv_dim() const { return static_cast<int>(n_head_kv * head_dim); }
};

// Checks shapes, dtypes, weight references and def-before-use. Returns the problems
// found (empty when the graph is well formed).
std::vector<std::string> verify(const Graph& g);

// A stable text form: one line per op, attributes spelled out, weights by name and
// shape. Golden-IR tests compare it.
std::string print(const Graph& g);

}  // namespace bitnetc::ir
