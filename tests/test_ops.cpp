// The op harness, in the manner of ggml's test-backend-ops: one table of ops with their
// shapes and attributes (kOpTable), each run on every back end that has a kernel for it
//  - the Halide kernels of schedules/, JIT-compiled for each CPU target this machine
//    runs (and the ARM targets' algorithms, run as x86 code: their instructions run
//    under qemu in compile_tests),
//  - the CUDA kernels of codegen/cuda/kernels.cuh, every instance the table needs in one
//    module, run on the CPU through tests/support/cuda_emulation.h (and compiled by NVRTC
//    for every SM where NVRTC is present),
// against the op's scalar reference (ir/interpreter.h; the sampler's for argmax, top-k
// and the repetition penalty), bit for bit. A back end that has no kernel for an op (the
// CPU runtime computes embeddings, adds and gated activations in plain C++ with the same
// reference functions) is skipped for it; every op has at least one back end.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <optional>

#include "attention.h"
#include "cpu_plan.h"
#include "cpu_program.h"
#include "cuda_kernels.h"
#include "cuda_state.h"
#include "dense_matmul.h"
#include "fp16.h"
#include "interpreter.h"
#include "kernel_objects.h"
#include "kquant_matmul.h"
#include "lut_matmul.h"
#include "lut_tiles.h"
#include "norm_quant.h"
#include "q8_0_matmul.h"
#include "rope.h"
#include "sampler.h"
#include "support/test_support.h"
#include "synthetic_model.h"
#include "targets.h"
#include "ternary_matmul.h"

using namespace bitnetc;
using namespace bitnetc::test;

namespace {

// ---- the table ---------------------------------------------------------------------------

enum class Op {
  TernaryMatmul,  // int8 activations x ternary codes, per-token or Q8_K blocks, scales per tensor or block
  DenseMatmul,    // the head: f32, f16 or int8 (--head=q8) weights
  KQuantMatmul,   // a Q4_K/Q5_K/Q6_K head on Q8_K activations
  Q8_0Matmul,     // a Q8_0 head on Q8_0 activations
  Embedding,      // rows of a table for the chunk's tokens
  Norm,           // rms_norm alone
  Quantize,       // activation quantization, with the norm and/or the gated activation before it
  Rope,           // each row rotated at its position
  RopeKvStore,    // q and k rotated, k and v stored into each row's sequence's caches
  KvStore,        // k and v stored
  Attention,      // each row against its own sequence's caches up to its position
  GatedAct,       // activate(gate) * up
  Add,            // a + b
  Argmax,         // the greedy token of the first row of logits
  TopK,           // the k largest logits of the first row, in the sampler's order
  RepeatPenalty,  // the penalty on the logits of some ids, in place
};

const char* op_name(Op op) {
  switch (op) {
    case Op::TernaryMatmul: return "ternary_matmul";
    case Op::DenseMatmul: return "dense_matmul";
    case Op::KQuantMatmul: return "kquant_matmul";
    case Op::Q8_0Matmul: return "q8_0_matmul";
    case Op::Embedding: return "embedding";
    case Op::Norm: return "norm";
    case Op::Quantize: return "quantize";
    case Op::Rope: return "rope";
    case Op::RopeKvStore: return "rope_kv_store";
    case Op::KvStore: return "kv_store";
    case Op::Attention: return "attention";
    case Op::GatedAct: return "gated_act";
    case Op::Add: return "add";
    case Op::Argmax: return "argmax";
    case Op::TopK: return "top_k";
    case Op::RepeatPenalty: return "repeat_penalty";
  }
  return "?";
}

void PrintTo(Op op, std::ostream* os) { *os << op_name(op); }

// Where a row of a chunk stands.
struct RowAt {
  int seq, pos;
};

struct OpCase {
  Op op;
  int64_t n = 0;  // elements per row (a matmul's K)
  int64_t N = 0;  // a matmul's output rows
  int rows = 1;   // rows of the chunk
  // Ternary matmuls.
  int64_t act_block = 0;  // 0: per token (n), or Q8_K's 256 for a Q8_K quantizer; else 256
                          // (ternary matmuls over Q8_K64 activations: quant = PerRowQ8K64)
  bool block_scales = false;
  bool residual = false;             // CUDA: the Add after the matmul, in its epilogue
  std::vector<int64_t> more_rows{};  // CUDA decode groups: further weights on the same activations
  // Dense weights.
  rt::DenseStorage storage = rt::DenseStorage::F32;
  bool k_major = false;           // CUDA: the head's layout (an embedding tied to it)
  std::vector<int> logit_rows{};  // CUDA: the head for these rows only; empty: every row
  bool kquant_mins = false;       // Q4_K/Q5_K (unsigned codes and mins) rather than Q6_K
  // Norms and quantizers.
  std::optional<ir::NormKind> norm{};
  bool norm_weight = false;
  float eps = 1e-5f;
  ir::ActQuant quant = ir::ActQuant::PerTokenBitnetCpp;
  std::optional<ir::Activation> gated{};  // the quantizer's input is activate(gate) * up
  // Attention and RoPE.
  int head_dim = 0, n_head = 0, n_head_kv = 0;
  ir::RopeStyle rope_style = ir::RopeStyle::Interleaved;
  ir::ScoreScale score_scale = ir::ScoreScale::DivideSqrt;
  ir::SoftmaxSum softmax_sum = ir::SoftmaxSum::F32Divide;
  std::vector<RowAt> at{};  // per row; empty: sequence 0 at positions 0, 1, ...
  // Element-wise ops and sampling.
  ir::Activation act = ir::Activation::SiluDiv;
  int k = 0;  // top-k
  float penalty = 1.0f;

  // The activations' quantization block: act_block, or Q8_K's 256, or the whole row.
  int64_t block() const {
    if (act_block) return act_block;
    if (op == Op::Quantize && quant == ir::ActQuant::PerBlockQ8K) return 256;
    if (op == Op::Quantize && quant == ir::ActQuant::PerBlockQ8_0) return kBitnetcQ8_0Block;
    return n;
  }
  bool q8k64() const { return quant == ir::ActQuant::PerRowQ8K64; }
  // The activations' factors (and code sums) per row: a block's, or Q8_K64's four groups.
  int64_t blocks() const { return q8k64() ? kBitnetcQ8K64Groups : n / block(); }
  // The weight scales per row of a block-scaled ternary matmul.
  int64_t scale_blocks() const { return n / block(); }
  // The quantizer of a ternary matmul's activations.
  ir::ActQuant matmul_quant() const {
    return q8k64() ? quant : act_block == 256 ? ir::ActQuant::PerBlockQ8K : ir::ActQuant::PerTokenHF;
  }
  RowAt row_at(int r) const { return at.empty() ? RowAt{0, r} : at[r]; }
  int n_seq() const {
    int s = 1;
    for (const RowAt& a : at) s = std::max(s, a.seq + 1);
    return s;
  }
  int n_ctx() const {
    int p = 0;
    for (int r = 0; r < rows; ++r) p = std::max(p, row_at(r).pos + 1);
    return p + 3;
  }
  int kv_dim() const { return n_head_kv * head_dim; }
  std::string describe() const {
    std::string s = std::string(op_name(op)) + " n=" + std::to_string(n) + " N=" + std::to_string(N) +
                    " rows=" + std::to_string(rows);
    if (op == Op::TernaryMatmul)
      s += " block=" + std::to_string(block()) + (q8k64() ? " q8_k64" : "") + (block_scales ? " block-scales" : "") +
           (residual ? " residual" : "") +
           (more_rows.empty() ? "" : " +" + std::to_string(more_rows.size()) + " weights");
    if (op == Op::DenseMatmul || op == Op::Embedding)
      s += " storage=" + std::to_string(static_cast<int>(storage)) + (k_major ? " k-major" : "") +
           (logit_rows.empty() ? "" : " logit-rows");
    if (op == Op::Quantize || op == Op::Norm)
      s += std::string(" norm=") + (norm ? ir::norm_name(*norm) : "none") + (norm_weight ? " weighted" : "") +
           " quant=" + ir::act_quant_name(quant) + (gated ? " gated" : "");
    if (head_dim)
      s += " heads=" + std::to_string(n_head) + "/" + std::to_string(n_head_kv) + "x" + std::to_string(head_dim);
    if (op == Op::Attention)
      s += " scale=" + std::to_string(static_cast<int>(score_scale)) +
           " softmax=" + std::to_string(static_cast<int>(softmax_sum));
    if (op == Op::Rope || op == Op::RopeKvStore) s += std::string(" ") + ir::rope_style_name(rope_style);
    if (!at.empty()) {
      s += " at";
      for (const RowAt& a : at) s += " " + std::to_string(a.seq) + ":" + std::to_string(a.pos);
    }
    return s;
  }
};

std::vector<OpCase> op_table() {
  using ir::ActQuant;
  using ir::NormKind;
  std::vector<OpCase> t;
  // Ternary matmuls: tails in N, Q8_K blocks and per-token activations, K padded to the
  // packing block, 2B4T's widths; one row (decode), a full prefill tile and short ones;
  // llama.cpp's scales per (row, block of 256), some blocks all zero with a zero scale.
  struct Shape {
    int64_t K, N, block;
  };
  for (const Shape s : {Shape{256, 1, 256}, Shape{256, 7, 256}, Shape{256, 64, 256}, Shape{512, 130, 256},
                        Shape{768, 33, 256}, Shape{768, 33, 0}, Shape{320, 9, 0}, Shape{192, 5, 0}, Shape{96, 3, 0},
                        Shape{2560, 40, 0}, Shape{6912, 17, 256}})
    for (int rows : {1, 3, 8}) {
      OpCase c{.op = Op::TernaryMatmul, .n = s.K, .N = s.N, .rows = rows, .act_block = s.block};
      t.push_back(c);
      if (s.block == 256 && rows != 3) {
        c.block_scales = true;
        t.push_back(c);
      }
    }
  t.push_back({.op = Op::TernaryMatmul, .n = 320, .N = 70, .rows = 19});                   // two token tiles
  // ik_llama.cpp's Q8_K64 activations: whole rows, a scale per tensor or per row (its
  // IQ1_BN/IQ2_BN), widths of 16s that are not of 64s or of the packing's groups.
  for (const Shape s : {Shape{256, 7, 0}, Shape{512, 130, 0}, Shape{96, 5, 0}, Shape{2560, 40, 0}, Shape{320, 9, 0}})
    for (int rows : {1, 3, 8})
      for (bool per_row : {false, true})
        t.push_back({.op = Op::TernaryMatmul,
                     .n = s.K,
                     .N = s.N,
                     .rows = rows,
                     .block_scales = per_row,
                     .quant = ActQuant::PerRowQ8K64});
  t.push_back({.op = Op::TernaryMatmul, .n = 768, .N = 40, .rows = 6, .act_block = 256});  // a partial tile
  t.push_back({.op = Op::TernaryMatmul, .n = 256, .N = 48, .rows = 2, .residual = true});
  t.push_back({.op = Op::TernaryMatmul, .n = 512, .N = 20, .rows = 1, .more_rows = {12, 12}});  // q, k, v
  t.push_back({.op = Op::TernaryMatmul,
               .n = 512,
               .N = 20,
               .rows = 1,
               .act_block = 256,
               .block_scales = true,
               .more_rows = {30}});  // gate, up
  // Heads: float and half weights (one half in eight any finite bit pattern), int8 with
  // row scales; several rows of activations, each summed as it would be alone.
  for (auto [K, N] : {std::pair<int64_t, int64_t>{256, 512}, {128, 1000}, {256, 37}, {2560, 300}})
    for (rt::DenseStorage st : {rt::DenseStorage::F32, rt::DenseStorage::F16})
      for (int rows : {1, 3}) t.push_back({.op = Op::DenseMatmul, .n = K, .N = N, .rows = rows, .storage = st});
  t.push_back({.op = Op::DenseMatmul, .n = 256, .N = 300, .rows = 2, .storage = rt::DenseStorage::Q8});
  t.push_back(
      {.op = Op::DenseMatmul, .n = 256, .N = 37, .rows = 5, .storage = rt::DenseStorage::F16, .logit_rows = {4, 1}});
  for (bool mins : {false, true}) {
    t.push_back({.op = Op::KQuantMatmul, .n = 768, .N = 45, .rows = 3, .kquant_mins = mins});
    t.push_back({.op = Op::KQuantMatmul, .n = 512, .N = 70, .rows = 4, .logit_rows = {3, 0}, .kquant_mins = mins});
    t.push_back({.op = Op::Embedding,
                 .n = 512,
                 .N = 40,
                 .rows = 3,
                 .storage = rt::DenseStorage::KQuant,
                 .k_major = true,
                 .kquant_mins = mins});
  }
  // Q8_0 heads: widths of one block and of 2B4T's, a tail in N, the logit rows only.
  t.push_back({.op = Op::Q8_0Matmul, .n = 32, .N = 9, .rows = 2});
  t.push_back({.op = Op::Q8_0Matmul, .n = 96, .N = 37, .rows = 3});
  t.push_back({.op = Op::Q8_0Matmul, .n = 2560, .N = 70, .rows = 1});
  t.push_back({.op = Op::Q8_0Matmul, .n = 512, .N = 45, .rows = 4, .logit_rows = {3, 0}});
  t.push_back({.op = Op::Embedding, .n = 96, .N = 40, .rows = 3, .storage = rt::DenseStorage::Q8_0, .k_major = true});
  for (rt::DenseStorage st : {rt::DenseStorage::F32, rt::DenseStorage::F16, rt::DenseStorage::Q8})
    for (bool k_major : {false, true})
      t.push_back({.op = Op::Embedding, .n = 96, .N = 50, .rows = 4, .storage = st, .k_major = k_major});
  // Norms and quantizers: every norm (and none) and every quantizer, weighted and not,
  // widths with and without padding; a few rows at once: one all zeros, one with the
  // largest magnitude twice with both signs (Q8_K keeps the first's sign), one on rounding
  // ties (x * 1 = k + 0.5).
  for (auto [n, per_block] : {std::pair<int64_t, bool>{2560, false}, {100, false}, {768, true}, {96, false}})
    for (ActQuant quant : {ActQuant::PerTokenLlama2c, ActQuant::PerTokenHF, ActQuant::PerTokenBitnetCpp,
                           ActQuant::PerBlockQ8K, ActQuant::PerRowQ8K64, ActQuant::PerBlockQ8_0}) {
      if ((quant == ActQuant::PerBlockQ8K) != per_block) continue;
      if (quant == ActQuant::PerRowQ8K64 && n % 16 != 0) continue;
      if (quant == ActQuant::PerBlockQ8_0 && n % kBitnetcQ8_0Block != 0) continue;
      t.push_back({.op = Op::Quantize, .n = n, .rows = 4, .quant = quant});
      for (NormKind norm : {NormKind::RmsF32, NormKind::RmsF64Sum, NormKind::RmsLlama2c, NormKind::BitNorm})
        for (bool weighted : {false, true}) {
          if (weighted && norm == NormKind::BitNorm) continue;
          t.push_back({.op = Op::Quantize, .n = n, .rows = 4, .norm = norm, .norm_weight = weighted, .quant = quant});
        }
    }
  t.push_back({.op = Op::Quantize,
               .n = 512,
               .rows = 2,
               .norm = NormKind::RmsF64Sum,
               .norm_weight = true,
               .quant = ActQuant::PerTokenBitnetCpp,
               .gated = ir::Activation::Relu2});  // 2B4T's ffn_sub_norm
  t.push_back(
      {.op = Op::Quantize, .n = 256, .rows = 3, .quant = ActQuant::PerBlockQ8K, .gated = ir::Activation::SiluDiv});
  for (NormKind norm : {NormKind::RmsF32, NormKind::RmsF64Sum, NormKind::BitNorm})
    t.push_back({.op = Op::Norm, .n = 288, .rows = 2, .norm = norm, .norm_weight = norm != NormKind::BitNorm});
  // RoPE: both pair styles, heads with whole and partial vectors, runs at 0 and further
  // on, and rows of several sequences at their own positions.
  for (auto [n, d] : {std::pair<int64_t, int>{2560, 128}, {640, 128}, {96, 32}, {36, 12}})
    for (ir::RopeStyle style : {ir::RopeStyle::Interleaved, ir::RopeStyle::Neox}) {
      t.push_back({.op = Op::Rope, .n = n, .rows = 1, .head_dim = d, .rope_style = style});
      t.push_back({.op = Op::Rope,
                   .n = n,
                   .rows = 5,
                   .head_dim = d,
                   .rope_style = style,
                   .at = {{0, 3}, {0, 4}, {0, 5}, {0, 6}, {0, 7}}});
    }
  t.push_back({.op = Op::Rope, .n = 64, .rows = 3, .head_dim = 16, .at = {{0, 9}, {2, 0}, {1, 4}}});
  // Attention: grouped and plain heads, head widths with whole and partial vectors,
  // every score scale and softmax sum; a chunk that starts at 0 and further on (each row
  // sees its own prefix), positions around the vector edges, and rows of several
  // sequences (each against its own caches).
  struct Heads {
    int d, n_head, n_head_kv;
  };
  for (const Heads h : {Heads{64, 20, 5}, Heads{32, 8, 4}, Heads{24, 3, 3}})
    for (ir::ScoreScale scale : {ir::ScoreScale::DivideSqrt, ir::ScoreScale::MultiplyInvSqrt})
      for (ir::SoftmaxSum softmax : {ir::SoftmaxSum::F32Divide, ir::SoftmaxSum::F64MulInverse}) {
        OpCase c{.op = Op::Attention,
                 .n = h.n_head * h.d,
                 .rows = 1,
                 .head_dim = h.d,
                 .n_head = h.n_head,
                 .n_head_kv = h.n_head_kv,
                 .score_scale = scale,
                 .softmax_sum = softmax};
        for (const std::vector<RowAt>& at : {std::vector<RowAt>{{0, 0}},
                                             {{0, 7}},
                                             {{0, 0}, {0, 1}, {0, 2}, {0, 3}, {0, 4}, {0, 5}, {0, 6}, {0, 7}},
                                             {{0, 15}, {0, 16}, {0, 17}},
                                             {{0, 70}, {0, 71}, {0, 72}, {0, 73}},
                                             {{1, 5}, {0, 12}, {2, 0}}}) {
          c.at = at;
          c.rows = static_cast<int>(at.size());
          t.push_back(c);
        }
      }
  for (ir::RopeStyle style : {ir::RopeStyle::Interleaved, ir::RopeStyle::Neox})
    t.push_back({.op = Op::RopeKvStore,
                 .n = 8 * 32,
                 .rows = 3,
                 .head_dim = 32,
                 .n_head = 8,
                 .n_head_kv = 2,
                 .rope_style = style,
                 .at = {{0, 4}, {1, 0}, {0, 5}}});
  t.push_back({.op = Op::KvStore,
               .n = 192,
               .rows = 3,
               .head_dim = 16,
               .n_head = 12,
               .n_head_kv = 6,
               .at = {{1, 2}, {0, 0}, {1, 3}}});
  for (ir::Activation act : {ir::Activation::SiluDiv, ir::Activation::SiluLlama2c, ir::Activation::Relu2})
    t.push_back({.op = Op::GatedAct, .n = 300, .rows = 3, .act = act});
  t.push_back({.op = Op::Add, .n = 300, .rows = 3});
  for (int64_t n : {int64_t{5}, int64_t{3000}}) {
    t.push_back({.op = Op::Argmax, .n = n});
    for (int k : {1, 7, 64}) t.push_back({.op = Op::TopK, .n = n, .k = k});
    t.push_back({.op = Op::RepeatPenalty, .n = n, .penalty = 1.3f});
  }
  return t;
}

// ---- inputs and outputs ----------------------------------------------------------------

// A named tensor: its elements' bytes and what they are, compared bit for bit.
struct Tensor {
  char type = 'f';  // 'f' float, 'i' int32, 'b' int8
  std::vector<uint8_t> bytes;
  template <typename T>
  static Tensor of(const std::vector<T>& v) {
    Tensor t;
    t.type = std::is_same_v<T, float> ? 'f' : std::is_same_v<T, int32_t> ? 'i' : 'b';
    t.bytes.resize(v.size() * sizeof(T));
    std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
    return t;
  }
  size_t size() const { return bytes.size() / (type == 'b' ? 1 : 4); }
  std::string element(size_t i) const {
    if (type == 'b') return std::to_string(static_cast<int8_t>(bytes[i]));
    int32_t v;
    std::memcpy(&v, &bytes[4 * i], 4);
    if (type == 'i') return std::to_string(v);
    char s[64];
    std::snprintf(s, sizeof s, "%a (%.9g)", std::bit_cast<float>(v), std::bit_cast<float>(v));
    return s;
  }
};
using Outputs = std::map<std::string, Tensor>;

struct Inputs {
  std::vector<TernaryWeights> ternary;          // a matmul's weights: one, or one per weight of a decode group
  std::vector<float> w_scale;                   // per weight
  std::vector<std::vector<float>> block_scale;  // per weight with block scales: [N][blocks]
  std::vector<int8_t> q;                        // int8 activations [rows][n]
  std::vector<float> d;                         // [rows][blocks]
  std::vector<int32_t> xsum;                    // [rows][blocks]
  std::vector<float> dense;                     // [N][n] (exact halves for F16; the codes' values for Q8)
  std::vector<int8_t> dense_codes;              // Q8: [N][n]
  std::vector<float> dense_scales;              // Q8: [N]
  KQuantWeights kquant;
  Q8_0Weights q8_0;
  std::vector<float> x, y, w;   // float rows ([rows][n]: x, and y for two-input ops); a norm's weight
  std::vector<int32_t> tokens;  // embedding rows, penalized ids
  std::vector<std::vector<float>> k_cache, v_cache;  // per sequence: [n_ctx][kv_dim]
};

// Random k-quant weights: signed codes and group scales without mins (Q6_K's form), or
// unsigned ones with mins (Q4_K/Q5_K's), factors that are halves.
KQuantWeights make_kquant(int64_t N, int64_t K, bool mins, SplitMix64& rng) {
  KQuantWeights w;
  w.rows = N;
  w.cols = K;
  w.q.resize(N * K);
  w.sc.resize(N * K / 16);
  w.m.resize(N * K / 16);
  w.d.resize(N * K / 256);
  w.dmin.resize(N * K / 256);
  for (auto& q : w.q) q = static_cast<int8_t>(mins ? rng.next() % 32 : static_cast<int>(rng.next() % 64) - 32);
  for (auto& s : w.sc) s = static_cast<int8_t>(mins ? rng.next() % 64 : static_cast<int>(rng.next() % 256) - 128);
  for (auto& m : w.m) m = mins ? static_cast<int8_t>(rng.next() % 64) : 0;
  for (auto& d : w.d) d = fp16_to_f32(f32_to_fp16(rng.uniform() * 0.01f));
  for (auto& d : w.dmin) d = mins ? fp16_to_f32(f32_to_fp16(rng.uniform() * 0.01f)) : 0.0f;
  return w;
}

// Random Q8_0 weights: every int8 code (-128 too, which llama.cpp's quantizer never
// writes but a file may hold), half factors of every kind: normal, subnormal, zero.
Q8_0Weights make_q8_0(int64_t N, int64_t K, SplitMix64& rng) {
  Q8_0Weights w;
  w.rows = N;
  w.cols = K;
  w.q.resize(N * K);
  w.d.resize(N * K / Q8_0Weights::kBlock);
  for (auto& q : w.q) q = static_cast<int8_t>(rng.next() >> 56);
  for (size_t b = 0; b < w.d.size(); ++b)
    w.d[b] = b % 11 == 3   ? 0.0f
             : b % 7 == 5  ? fp16_to_f32(static_cast<uint16_t>(1 + rng.next() % 0x3FF))
                           : fp16_to_f32(f32_to_fp16(rng.uniform() * 0.02f));
  return w;
}

Inputs make_inputs(const OpCase& c, uint64_t seed) {
  SplitMix64 rng(seed);
  Inputs in;
  const int64_t n = c.n;
  auto normals = [&](size_t count, float scale) {
    std::vector<float> v(count);
    for (auto& x : v) x = scale * rng.normal();
    return v;
  };
  switch (c.op) {
    case Op::TernaryMatmul: {
      std::vector<int64_t> Ns = {c.N};
      Ns.insert(Ns.end(), c.more_rows.begin(), c.more_rows.end());
      for (int64_t N : Ns) {
        TernaryWeights w;
        w.rows = N;
        w.cols = n;
        w.codes.resize(static_cast<size_t>(n * N));
        for (auto& v : w.codes) v = static_cast<int8_t>(static_cast<int>(rng.next() % 3) - 1);
        const float ws = 0.0625f + rng.uniform();
        in.w_scale.push_back(ws);
        if (c.block_scales) {
          std::vector<float> bs(static_cast<size_t>(N * c.scale_blocks()));
          for (int64_t r = 0; r < N; ++r)
            for (int64_t b = 0; b < c.scale_blocks(); ++b) {
              float& s = bs[r * c.scale_blocks() + b];
              s = 0.0625f + rng.uniform();
              if ((r + b) % 5 == 0) {  // an all-zero block with a zero scale
                s = 0;
                std::fill_n(&w.codes[r * n + b * c.block()], c.block(), int8_t{0});
              }
            }
          w.scales = bs;
          w.scale_block = static_cast<uint64_t>(c.block());
          in.block_scale.push_back(bs);
        } else {
          w.scales = {ws};
          w.scale_block = static_cast<uint64_t>(n * N);  // one scale for the tensor
        }
        in.ternary.push_back(std::move(w));
      }
      in.q.assign(static_cast<size_t>(n * c.rows), 0);
      in.d.resize(static_cast<size_t>(c.blocks() * c.rows));
      in.xsum.assign(in.d.size(), 0);
      for (int m = 0; m < c.rows; ++m) {
        const std::vector<float> xf = normals(static_cast<size_t>(n), 1.0f);
        if (c.q8k64()) {  // four factors for the row; code sums per group
          ir::quantize_activations(c.quant, xf.data(), n, &in.q[m * n], &in.d[m * c.blocks()]);
          for (int64_t k = 0; k < n; ++k) in.xsum[m * c.blocks() + bitnetc_q8k64_group(k)] += in.q[m * n + k];
          continue;
        }
        for (int64_t b = 0; b < c.blocks(); ++b) {
          int8_t* q = &in.q[m * n + b * c.block()];
          ir::quantize_activations(c.matmul_quant(), &xf[b * c.block()], c.block(), q, &in.d[m * c.blocks() + b]);
          for (int64_t k = 0; k < c.block(); ++k) in.xsum[m * c.blocks() + b] += q[k];
        }
      }
      if (c.residual) in.x = normals(static_cast<size_t>(c.N * c.rows), 1.0f);
      break;
    }
    case Op::DenseMatmul:
    case Op::Embedding: {
      if (c.storage == rt::DenseStorage::KQuant) {  // a k-quant embedding table
        in.kquant = make_kquant(c.N, n, c.kquant_mins, rng);
        for (int r = 0; r < c.rows; ++r) in.tokens.push_back(static_cast<int32_t>(rng.next() % c.N));
        break;
      }
      if (c.storage == rt::DenseStorage::Q8_0) {  // a Q8_0 embedding table
        in.q8_0 = make_q8_0(c.N, n, rng);
        for (int r = 0; r < c.rows; ++r) in.tokens.push_back(static_cast<int32_t>(rng.next() % c.N));
        break;
      }
      const bool f16 = c.storage == rt::DenseStorage::F16;
      in.dense.resize(static_cast<size_t>(c.N * n));
      for (auto& v : in.dense) {
        v = f16 ? fp16_to_f32(f32_to_fp16(rng.normal())) : rng.normal();
        const auto bits = static_cast<uint16_t>(rng.next() >> 48);
        if (f16 && rng.next() % 8 == 0 && (bits & 0x7c00) != 0x7c00) v = fp16_to_f32(bits);
      }
      if (c.storage == rt::DenseStorage::Q8) {
        in.dense_codes.resize(in.dense.size());
        in.dense_scales.resize(static_cast<size_t>(c.N));
        for (int64_t r = 0; r < c.N; ++r)
          in.dense_scales[r] = schedules::quantize_row_q8(&in.dense[r * n], n, &in.dense_codes[r * n]);
      }
      in.x = normals(static_cast<size_t>(n * c.rows), 1.0f);
      for (int r = 0; r < c.rows; ++r) in.tokens.push_back(static_cast<int32_t>(rng.next() % c.N));
      break;
    }
    case Op::KQuantMatmul: {
      in.kquant = make_kquant(c.N, n, c.kquant_mins, rng);
      in.q.resize(static_cast<size_t>(n * c.rows));
      in.d.resize(static_cast<size_t>(n / 256 * c.rows));
      for (int m = 0; m < c.rows; ++m) {
        const std::vector<float> xf = normals(static_cast<size_t>(n), 1.0f);
        ir::quantize_activations(ir::ActQuant::PerBlockQ8K, xf.data(), n, &in.q[m * n], &in.d[m * (n / 256)]);
      }
      break;
    }
    case Op::Q8_0Matmul: {  // activations as the head's quantizer makes them; some blocks all zero
      in.q8_0 = make_q8_0(c.N, n, rng);
      constexpr int B = kBitnetcQ8_0Block;
      in.q.resize(static_cast<size_t>(n * c.rows));
      in.d.resize(static_cast<size_t>(n / B * c.rows));
      for (int m = 0; m < c.rows; ++m) {
        std::vector<float> xf = normals(static_cast<size_t>(n), 2.0f);
        if (n > B) std::fill_n(&xf[(m % (n / B)) * B], B, 0.0f);
        ir::quantize_activations(ir::ActQuant::PerBlockQ8_0, xf.data(), n, &in.q[m * n], &in.d[m * (n / B)]);
      }
      break;
    }
    case Op::Norm:
    case Op::Quantize: {
      in.x = normals(static_cast<size_t>(n * c.rows), 3.0f);
      in.w.resize(static_cast<size_t>(n));
      for (auto& v : in.w) v = 0.5f + rng.uniform();
      // BitNorm makes an all-zero row NaNs (0 * inf), which the quantizers with a floor on
      // their scale then round: C leaves that undefined, so no such row for them.
      const bool nan_rounding = c.norm == ir::NormKind::BitNorm &&
                                (c.quant == ir::ActQuant::PerTokenHF || c.quant == ir::ActQuant::PerTokenBitnetCpp ||
                                 c.quant == ir::ActQuant::PerRowQ8K64);
      if (c.gated) {
        in.y = normals(static_cast<size_t>(n * c.rows), 1.0f);
      } else if (c.rows >= 4) {
        if (!nan_rounding) std::fill_n(&in.x[n], n, 0.0f);  // row 1: all zeros
        in.x[2 * n + 3] = -40.0f;                           // row 2: the largest magnitude, negative first
        in.x[2 * n + 7] = 40.0f;
        for (int64_t i = 0; i < n; ++i)  // row 3: 127 and ties k + 0.5
          in.x[3 * n + i] = i % c.block() == 0 ? 127.0f : static_cast<float>(i % 200 - 100) + 0.5f;
      }
      break;
    }
    case Op::Rope:
    case Op::GatedAct:
    case Op::Add:
      in.x = normals(static_cast<size_t>(n * c.rows), 4.0f);
      in.y = normals(static_cast<size_t>(n * c.rows), 1.0f);
      break;
    case Op::RopeKvStore:
    case Op::KvStore:
    case Op::Attention: {
      in.x = normals(static_cast<size_t>(n * c.rows), 2.0f);               // q
      in.y = normals(static_cast<size_t>(2 * c.kv_dim() * c.rows), 1.0f);  // k then v rows
      for (int s = 0; s < c.n_seq(); ++s) {
        in.k_cache.push_back(normals(static_cast<size_t>(c.n_ctx() * c.kv_dim()), 1.0f));
        in.v_cache.push_back(normals(static_cast<size_t>(c.n_ctx() * c.kv_dim()), 1.0f));
      }
      break;
    }
    case Op::Argmax:
    case Op::TopK:
    case Op::RepeatPenalty: {
      in.x = normals(static_cast<size_t>(n), 3.0f);
      if (n > 4) in.x[n - 1] = in.x[n / 2] = in.x[1] = 9.5f;                            // ties: the lower id first
      for (int64_t i = 0; i < n; i += 2) in.tokens.push_back(static_cast<int32_t>(i));  // distinct ids
      if (n > 4) in.x[n - 2] = -in.x[n - 2];  // penalized logits of both signs
      break;
    }
  }
  return in;
}

// The rope tables of a case: cos and sin of every position of its context.
void rope_tables(const OpCase& c, std::vector<float>& cos, std::vector<float>& sin) {
  ir::Op op(ir::OpKind::Rope);
  op.head_dim = c.head_dim;
  op.rope_style = c.rope_style;
  op.rope_freq = ir::RopeFreq::GgmlIterative;
  op.rope_theta = 500000.0f;
  const int half = c.head_dim / 2;
  cos.resize(static_cast<size_t>(c.n_ctx() * half));
  sin.resize(cos.size());
  for (int p = 0; p < c.n_ctx(); ++p) ir::rope_cos_sin(op, p, &cos[p * half], &sin[p * half]);
}

ir::Op attention_op(const OpCase& c) {
  ir::Op op(ir::OpKind::Attention);
  op.head_dim = c.head_dim;
  op.n_head = c.n_head;
  op.n_head_kv = c.n_head_kv;
  op.score_scale = c.score_scale;
  op.softmax_sum = c.softmax_sum;
  return op;
}

// ---- the reference ---------------------------------------------------------------------

Outputs reference(const OpCase& c, const Inputs& in) {
  Outputs out;
  const int64_t n = c.n;
  switch (c.op) {
    case Op::TernaryMatmul:
      for (size_t i = 0; i < in.ternary.size(); ++i) {
        const TernaryWeights& w = in.ternary[i];
        std::vector<float> y(static_cast<size_t>(w.rows * c.rows));
        for (int m = 0; m < c.rows; ++m) {
          ir::ternary_matmul(w, c.matmul_quant(), &in.q[m * n], &in.d[m * c.blocks()], &y[m * w.rows]);
          if (c.residual)
            for (int64_t r = 0; r < w.rows; ++r) y[m * w.rows + r] = in.x[m * w.rows + r] + y[m * w.rows + r];
        }
        out[i == 0 ? "y" : "y_" + std::to_string(i)] = Tensor::of(y);
      }
      break;
    case Op::DenseMatmul: {
      // Every row, or the logit rows in their order. --head=q8 computes
      // (sum_k float(code) * x) * row scale: the numerics that option announces.
      std::vector<int> rows = c.logit_rows;
      if (rows.empty())
        for (int r = 0; r < c.rows; ++r) rows.push_back(r);
      std::vector<float> y(rows.size() * c.N);
      std::vector<float> codes(in.dense_codes.begin(), in.dense_codes.end());
      for (size_t i = 0; i < rows.size(); ++i) {
        const bool q8 = c.storage == rt::DenseStorage::Q8;
        ir::dense_matmul(q8 ? codes.data() : in.dense.data(), c.N, n, &in.x[rows[i] * n], &y[i * c.N]);
        if (q8)
          for (int64_t r = 0; r < c.N; ++r) y[i * c.N + r] *= in.dense_scales[r];
      }
      out["y"] = Tensor::of(y);
      break;
    }
    case Op::KQuantMatmul: {  // every row, or the logit rows in their order
      std::vector<int> rows = c.logit_rows;
      if (rows.empty())
        for (int r = 0; r < c.rows; ++r) rows.push_back(r);
      std::vector<float> y(rows.size() * c.N);
      for (size_t i = 0; i < rows.size(); ++i)
        ir::kquant_matmul(in.kquant, &in.q[rows[i] * n], &in.d[rows[i] * (n / 256)], &y[i * c.N]);
      out["y"] = Tensor::of(y);
      break;
    }
    case Op::Q8_0Matmul: {  // every row, or the logit rows in their order
      std::vector<int> rows = c.logit_rows;
      if (rows.empty())
        for (int r = 0; r < c.rows; ++r) rows.push_back(r);
      std::vector<float> y(rows.size() * c.N);
      for (size_t i = 0; i < rows.size(); ++i)
        ir::q8_0_matmul(in.q8_0, &in.q[rows[i] * n], &in.d[rows[i] * (n / kBitnetcQ8_0Block)], &y[i * c.N]);
      out["y"] = Tensor::of(y);
      break;
    }
    case Op::Embedding: {
      ir::DenseWeights w;
      w.rows = c.N;
      w.cols = n;
      w.data = in.dense;
      if (c.storage == rt::DenseStorage::KQuant) {
        w.format = ir::DenseFormat::KQuant;
        w.kquant = in.kquant;
      }
      if (c.storage == rt::DenseStorage::Q8_0) {
        w.format = ir::DenseFormat::Q8_0;
        w.q8_0 = in.q8_0;
      }
      std::vector<float> y(static_cast<size_t>(n * c.rows));
      for (int m = 0; m < c.rows; ++m) {
        if (c.storage == rt::DenseStorage::Q8) {  // a tied --head=q8: the code times the row's scale
          for (int64_t k = 0; k < n; ++k)
            y[m * n + k] = static_cast<float>(in.dense_codes[in.tokens[m] * n + k]) * in.dense_scales[in.tokens[m]];
        } else {
          ir::embedding_row(w, in.tokens[m], &y[m * n]);
        }
      }
      out["y"] = Tensor::of(y);
      break;
    }
    case Op::Norm: {
      std::vector<float> y(in.x.size());
      for (int m = 0; m < c.rows; ++m)
        ir::rms_norm(*c.norm, &in.x[m * n], n, c.norm_weight ? in.w.data() : nullptr, c.eps, &y[m * n]);
      out["y"] = Tensor::of(y);
      break;
    }
    case Op::Quantize: {
      const int64_t Kp = codegen::cuda_padded_k(n);  // the comparison covers the padding, zeros
      std::vector<int8_t> q(static_cast<size_t>(Kp * c.rows), 0);
      std::vector<float> d(static_cast<size_t>(c.blocks() * c.rows));
      std::vector<int32_t> sum(d.size(), 0);
      for (int m = 0; m < c.rows; ++m) {
        std::vector<float> v(in.x.begin() + m * n, in.x.begin() + (m + 1) * n);
        if (c.gated)
          for (int64_t i = 0; i < n; ++i) v[i] = ir::activate(*c.gated, v[i]) * in.y[m * n + i];
        if (c.norm) {
          std::vector<float> normed(v.size());
          ir::rms_norm(*c.norm, v.data(), n, c.norm_weight ? in.w.data() : nullptr, c.eps, normed.data());
          v = normed;
        }
        if (c.q8k64()) {
          ir::quantize_activations(c.quant, v.data(), n, &q[m * Kp], &d[m * c.blocks()]);
          for (int64_t i = 0; i < n; ++i) sum[m * c.blocks() + bitnetc_q8k64_group(i)] += q[m * Kp + i];
          continue;
        }
        for (int64_t b = 0; b < c.blocks(); ++b) {
          int8_t* qb = &q[m * Kp + b * c.block()];
          ir::quantize_activations(c.quant, &v[b * c.block()], c.block(), qb, &d[m * c.blocks() + b]);
          for (int64_t i = 0; i < c.block(); ++i) sum[m * c.blocks() + b] += qb[i];
        }
      }
      out["q"] = Tensor::of(q);
      out["d"] = Tensor::of(d);
      out["sum"] = Tensor::of(sum);
      break;
    }
    case Op::Rope: {
      std::vector<float> cos, sin, y = in.x;
      rope_tables(c, cos, sin);
      const int half = c.head_dim / 2;
      for (int m = 0; m < c.rows; ++m)
        ir::rope_rotate(c.rope_style, c.head_dim, &cos[c.row_at(m).pos * half], &sin[c.row_at(m).pos * half], &y[m * n],
                        n);
      out["y"] = Tensor::of(y);
      break;
    }
    case Op::RopeKvStore:
    case Op::KvStore:
    case Op::Attention: {
      const int kv = c.kv_dim();
      std::vector<std::vector<float>> kc = in.k_cache, vc = in.v_cache;
      std::vector<float> q = in.x, cos, sin;
      if (c.op != Op::Attention) {  // the stores (and rotations) of every row
        if (c.op == Op::RopeKvStore) rope_tables(c, cos, sin);
        const int half = c.head_dim / 2;
        for (int m = 0; m < c.rows; ++m) {
          const RowAt a = c.row_at(m);
          float* k_row = &kc[a.seq][a.pos * kv];
          std::copy_n(&in.y[m * 2 * kv], kv, k_row);
          std::copy_n(&in.y[m * 2 * kv + kv], kv, &vc[a.seq][a.pos * kv]);
          if (c.op == Op::RopeKvStore) {
            ir::rope_rotate(c.rope_style, c.head_dim, &cos[a.pos * half], &sin[a.pos * half], &q[m * n], n);
            ir::rope_rotate(c.rope_style, c.head_dim, &cos[a.pos * half], &sin[a.pos * half], k_row, kv);
          }
        }
        for (int s = 0; s < c.n_seq(); ++s) {
          out["k_cache" + std::to_string(s)] = Tensor::of(kc[s]);
          out["v_cache" + std::to_string(s)] = Tensor::of(vc[s]);
        }
        if (c.op == Op::RopeKvStore) out["q"] = Tensor::of(q);
        break;
      }
      const ir::Op op = attention_op(c);
      std::vector<float> y(in.x.size()), scores(static_cast<size_t>(c.n_ctx()));
      for (int m = 0; m < c.rows; ++m) {
        const RowAt a = c.row_at(m);
        for (int h = 0; h < c.n_head; ++h)
          ir::attend_head(op, h, &in.x[m * n], in.k_cache[a.seq].data(), in.v_cache[a.seq].data(), kv, a.pos,
                          scores.data(), &y[m * n]);
      }
      out["y"] = Tensor::of(y);
      break;
    }
    case Op::GatedAct:
    case Op::Add: {
      std::vector<float> y(in.x.size());
      for (size_t i = 0; i < y.size(); ++i)
        y[i] = c.op == Op::Add ? in.x[i] + in.y[i] : ir::activate(c.act, in.x[i]) * in.y[i];
      out["y"] = Tensor::of(y);
      break;
    }
    case Op::Argmax: out["token"] = Tensor::of(std::vector<int32_t>{rt::argmax(in.x)}); break;
    case Op::TopK: {
      const std::vector<int32_t> ids = rt::top_k_ids(in.x, c.k);
      std::vector<float> vals;
      for (int32_t id : ids) vals.push_back(in.x[id]);
      out["ids"] = Tensor::of(ids);
      out["logits"] = Tensor::of(vals);
      break;
    }
    case Op::RepeatPenalty: {
      std::vector<float> y = in.x;
      rt::apply_repeat_penalty(y, {c.penalty, in.tokens});
      out["logits"] = Tensor::of(y);
      break;
    }
  }
  return out;
}

// ---- back ends ---------------------------------------------------------------------------

struct KernelBackend {
  std::string name;
  std::function<bool(const OpCase&)> has;
  std::function<Outputs(const OpCase&, const Inputs&)> run;
};

// The I2_S kernel of one group width and dot product, JIT-compiled for `halide`. With
// `kernel_batch` (a GEMM case), the kernel is compiled for that many rows and called, as
// the forward pass calls it, with the case's rows rounded up to a token tile of 4 (the
// rows past them zero codes, their outputs dropped).
Outputs run_i2s(const OpCase& c, const Inputs& in, const std::string& halide, int W, schedules::MatmulReduce reduce,
                schedules::MatmulPacking packing, int kernel_batch = 0) {
  const int rows = kernel_batch ? (c.rows + 3) / 4 * 4 : c.rows;
  const schedules::TernaryMatmulShape shape{
      c.n, c.N, c.block(), W, kernel_batch ? kernel_batch : c.rows, reduce, packing, c.block_scales, c.q8k64()};
  const int64_t Kp = schedules::packed_k(shape);
  schedules::MatmulPipeline p = schedules::ternary_matmul(shape);
  std::vector<uint8_t> packed = schedules::pack_ternary(in.ternary[0], shape);
  const schedules::PackedDims dims = schedules::packed_dims(shape);
  std::vector<int8_t> x(static_cast<size_t>(Kp * rows), 0);
  for (int m = 0; m < c.rows; ++m) std::copy_n(&in.q[m * c.n], c.n, &x[m * Kp]);
  std::vector<int32_t> xsum = in.xsum;
  std::vector<float> d = in.d;
  xsum.resize(static_cast<size_t>(c.blocks() * rows), 0);
  d.resize(xsum.size(), 1.0f);
  // The kernels' block-scale layout: [block][row], rows padded with zero scales.
  const int64_t bs_rows = c.block_scales ? schedules::block_scale_rows(shape) : 1;
  std::vector<float> bs(static_cast<size_t>(bs_rows * c.scale_blocks()), 0.0f);
  for (int64_t r = 0; c.block_scales && r < c.N; ++r)
    for (int64_t b = 0; b < c.scale_blocks(); ++b) bs[b * bs_rows + r] = in.block_scale[0][r * c.scale_blocks() + b];
  p.packed.set(Halide::Buffer<uint8_t>(packed.data(), dims.bytes_per_tile, dims.tiles));
  p.x.set(Halide::Buffer<int8_t>(x.data(), static_cast<int>(Kp), rows));
  p.x_sum.set(Halide::Buffer<int32_t>(xsum.data(), static_cast<int>(c.blocks()), rows));
  p.d_act.set(Halide::Buffer<float>(d.data(), static_cast<int>(c.blocks()), rows));
  p.w_scale.set(in.w_scale[0]);
  p.w_block_scales.set(Halide::Buffer<float>(bs.data(), static_cast<int>(bs_rows), static_cast<int>(c.scale_blocks())));
  std::vector<float> y(static_cast<size_t>(c.N * rows));
  Halide::Buffer<float> out(y.data(), static_cast<int>(c.N), rows);
  p.y.realize(out, Halide::Target(halide));
  y.resize(static_cast<size_t>(c.N * c.rows));
  return {{"y", Tensor::of(y)}};
}

// A lookup-table kernel (TL1/TL2), with its scalar reference tile or the SIMD tile this
// CPU runs.
Outputs run_lut(const OpCase& c, const Inputs& in, schedules::LutLayout layout, bool scalar,
                const std::string& halide) {
  static const std::map<std::string, Halide::JITExtern> externs = {
      {"bitnetc_tl1_tiles", Halide::JITExtern(bitnetc_tl1_tiles)},
      {"bitnetc_tl2_tiles", Halide::JITExtern(bitnetc_tl2_tiles)},
      {"bitnetc_tl1_tiles_scalar", Halide::JITExtern(bitnetc_tl1_tiles_scalar)},
      {"bitnetc_tl2_tiles_scalar", Halide::JITExtern(bitnetc_tl2_tiles_scalar)}};
  const schedules::LutMatmulShape shape{c.n, c.N, layout, c.rows,
                                        scalar ? schedules::LutTile::Scalar : schedules::LutTile::Native};
  schedules::MatmulPipeline p = schedules::lut_matmul(shape);
  std::vector<uint8_t> packed = schedules::pack_lut(in.ternary[0], layout);
  const int64_t Kp = schedules::lut_padded_k(c.n, layout);
  std::vector<int8_t> x(static_cast<size_t>(Kp * c.rows), 0);
  for (int m = 0; m < c.rows; ++m) std::copy_n(&in.q[m * c.n], c.n, &x[m * Kp]);
  std::vector<int32_t> xsum = in.xsum;
  std::vector<float> d = in.d, unread(1);
  p.packed.set(Halide::Buffer<uint8_t>(packed.data(), static_cast<int>(schedules::lut_tile_bytes(c.n, layout)),
                                       static_cast<int>(schedules::lut_tiles(c.N, layout))));
  p.x.set(Halide::Buffer<int8_t>(x.data(), static_cast<int>(Kp), c.rows));
  p.x_sum.set(Halide::Buffer<int32_t>(xsum.data(), 1, c.rows));
  p.d_act.set(Halide::Buffer<float>(d.data(), 1, c.rows));
  p.w_scale.set(in.w_scale[0]);
  p.w_block_scales.set(Halide::Buffer<float>(unread.data(), 1, 1));
  std::vector<float> y(static_cast<size_t>(c.N * c.rows));
  Halide::Pipeline pipeline(p.y);
  pipeline.set_jit_externs(externs);
  Halide::Buffer<float> out(y.data(), static_cast<int>(c.N), c.rows);
  pipeline.realize(out, Halide::Target(halide));
  return {{"y", Tensor::of(y)}};
}

// The head kernel's output rows past N are dropped (they are zero padding).
Outputs run_dense_halide(const OpCase& c, const Inputs& in, const TargetInfo& t) {
  const bool f16 = c.storage == rt::DenseStorage::F16, q8 = c.storage == rt::DenseStorage::Q8;
  auto p = schedules::dense_matmul({c.n, c.N, t.vector_bytes, f16, q8});
  const int64_t Np = schedules::dense_matmul_padded_rows(c.N, t.vector_bytes);
  const int T = schedules::dense_matmul_tile_rows(t.vector_bytes), K = static_cast<int>(c.n);
  const int tiles = static_cast<int>(Np / T);
  std::vector<float> scales;
  std::vector<uint8_t> wt = q8 ? schedules::quantize_for_dense_matmul_q8(in.dense, c.N, c.n, t.vector_bytes, scales)
                               : schedules::transpose_for_dense_matmul(in.dense, c.N, c.n, t.vector_bytes, f16);
  if (q8) {
    p.wt.set(Halide::Buffer<int8_t>(reinterpret_cast<int8_t*>(wt.data()), T, K, tiles));
    p.row_scale.set(Halide::Buffer<float>(scales.data(), static_cast<int>(Np)));
  } else if (f16) {
    p.wt.set(Halide::Buffer<uint16_t>(reinterpret_cast<uint16_t*>(wt.data()), T, K, tiles));
  } else {
    p.wt.set(Halide::Buffer<float>(reinterpret_cast<float*>(wt.data()), T, K, tiles));
  }
  std::vector<float> x = in.x;
  p.x.set(Halide::Buffer<float>(x.data(), K, c.rows));
  Halide::Buffer<float> out(static_cast<int>(Np), c.rows);
  p.y.realize(out, Halide::Target(t.halide));
  std::vector<float> y(static_cast<size_t>(c.N * c.rows));
  for (int m = 0; m < c.rows; ++m)
    for (int64_t r = 0; r < c.N; ++r) y[m * c.N + r] = out(static_cast<int>(r), m);
  return {{"y", Tensor::of(y)}};
}

// `shape`'s kernel (its reduce and width) run as `halide` code.
Outputs run_kquant_halide(const OpCase& c, const Inputs& in, const std::string& halide,
                          schedules::KQuantMatmulShape shape) {
  shape.K = c.n, shape.N = c.N;
  const int K = static_cast<int>(c.n);
  const int Np = static_cast<int>(schedules::dense_matmul_padded_rows(c.N, shape.vector_bytes));
  std::vector<uint8_t> packed = schedules::pack_for_kquant_matmul(in.kquant, shape.vector_bytes);
  auto p = schedules::kquant_matmul(shape);
  schedules::set_kquant_weights(p, shape, packed);
  std::vector<int8_t> q = in.q;
  std::vector<float> d = in.d;
  p.x.set(Halide::Buffer<int8_t>(q.data(), K, c.rows));
  p.xd.set(Halide::Buffer<float>(d.data(), K / 256, c.rows));
  Halide::Buffer<float> out(Np, c.rows);
  p.y.realize(out, Halide::Target(halide));
  std::vector<float> y(static_cast<size_t>(c.N * c.rows));
  for (int m = 0; m < c.rows; ++m)
    for (int64_t r = 0; r < c.N; ++r) y[m * c.N + r] = out(static_cast<int>(r), m);
  return {{"y", Tensor::of(y)}};
}

Outputs run_q8_0_halide(const OpCase& c, const Inputs& in, const TargetInfo& t) {
  const int K = static_cast<int>(c.n), blocks = K / kBitnetcQ8_0Block;
  const int T = schedules::dense_matmul_tile_rows(t.vector_bytes);
  const int Np = static_cast<int>(schedules::dense_matmul_padded_rows(c.N, t.vector_bytes));
  std::vector<uint8_t> packed = schedules::pack_for_q8_0_matmul(in.q8_0, t.vector_bytes);
  const rt::Q8_0Sections at = rt::q8_0_sections(Np, K);
  auto p = schedules::q8_0_matmul({c.n, c.N, t.vector_bytes});
  p.q.set(Halide::Buffer<int8_t>(reinterpret_cast<int8_t*>(packed.data() + at.q), T, K, Np / T));
  p.d.set(Halide::Buffer<float>(reinterpret_cast<float*>(packed.data() + at.d), T, blocks, Np / T));
  std::vector<int8_t> q = in.q;
  std::vector<float> d = in.d;
  p.x.set(Halide::Buffer<int8_t>(q.data(), K, c.rows));
  p.xd.set(Halide::Buffer<float>(d.data(), blocks, c.rows));
  Halide::Buffer<float> out(Np, c.rows);
  p.y.realize(out, Halide::Target(t.halide));
  std::vector<float> y(static_cast<size_t>(c.N * c.rows));
  for (int m = 0; m < c.rows; ++m)
    for (int64_t r = 0; r < c.N; ++r) y[m * c.N + r] = out(static_cast<int>(r), m);
  return {{"y", Tensor::of(y)}};
}

Outputs run_norm_quant_halide(const OpCase& c, const Inputs& in, const TargetInfo& t) {
  const int64_t Kp = codegen::cuda_padded_k(c.n);  // any padding: the kernel writes it as zeros
  schedules::NormQuantPipeline p =
      schedules::norm_quant({c.n, Kp, c.block(), c.norm, c.norm_weight, c.eps, c.quant, t.vector_bytes});
  std::vector<float> x = in.x, w = in.w;
  p.x.set(Halide::Buffer<float>(x.data(), static_cast<int>(c.n), c.rows));
  p.w.set(Halide::Buffer<float>(w.data(), static_cast<int>(c.n)));
  Halide::Buffer<int8_t> q(static_cast<int>(Kp), c.rows);
  Halide::Buffer<float> d(static_cast<int>(c.blocks()), c.rows);
  Halide::Buffer<int32_t> sum(static_cast<int>(c.blocks()), c.rows);
  q.fill(99);  // the padding must be written as zeros
  p.pipeline().realize({q, d, sum}, Halide::Target(t.halide));
  return {{"q", Tensor::of(std::vector<int8_t>(q.data(), q.data() + q.number_of_elements()))},
          {"d", Tensor::of(std::vector<float>(d.data(), d.data() + d.number_of_elements()))},
          {"sum", Tensor::of(std::vector<int32_t>(sum.data(), sum.data() + sum.number_of_elements()))}};
}

// Whether a case's rows are one sequence's consecutive positions: what one call of the
// CPU RoPE and attention kernels takes (the executor calls them per such run).
bool one_run(const OpCase& c) {
  for (int m = 0; m < c.rows; ++m)
    if (c.row_at(m).seq != c.row_at(0).seq || c.row_at(m).pos != c.row_at(0).pos + m) return false;
  return true;
}

Outputs run_rope_halide(const OpCase& c, const Inputs& in, const TargetInfo& t) {
  std::vector<float> cos, sin, x = in.x;
  rope_tables(c, cos, sin);
  const int half = c.head_dim / 2;
  schedules::RopePipeline p = schedules::rope({c.n, c.head_dim, c.rope_style, t.vector_bytes});
  p.cos.set(Halide::Buffer<float>(cos.data(), half, c.n_ctx()));
  p.sin.set(Halide::Buffer<float>(sin.data(), half, c.n_ctx()));
  p.x.set(Halide::Buffer<float>(x.data(), static_cast<int>(c.n), c.rows));
  p.pos0.set(c.row_at(0).pos);
  std::vector<float> y(x.size());
  Halide::Buffer<float> out(y.data(), static_cast<int>(c.n), c.rows);
  p.y.realize(out, Halide::Target(t.halide));
  return {{"y", Tensor::of(y)}};
}

Outputs run_attention_halide(const OpCase& c, const Inputs& in, const TargetInfo& t, int tokens_per_task) {
  const int kv = c.kv_dim(), seq = c.row_at(0).seq;
  schedules::AttentionPipeline p = schedules::attention(
      {c.head_dim, c.n_head, c.n_head_kv, c.score_scale, c.softmax_sum, t.vector_bytes, tokens_per_task});
  // The kernel's keys: in transposed blocks, the last padded (NaN: never read).
  const int padded =
      (c.n_ctx() + rt::kAttentionPositionBlock - 1) / rt::kAttentionPositionBlock * rt::kAttentionPositionBlock;
  std::vector<float> kt(static_cast<size_t>(padded) * kv, std::numeric_limits<float>::quiet_NaN());
  for (int r = 0; r < c.n_ctx(); ++r)
    for (int ch = 0; ch < kv; ++ch) kt[rt::key_cache_index(r, ch, kv)] = in.k_cache[seq][r * kv + ch];
  std::vector<float> vc = in.v_cache[seq], q = in.x;
  p.k_cache.set(
      Halide::Buffer<float>(kt.data(), rt::kAttentionPositionBlock, kv, padded / rt::kAttentionPositionBlock));
  p.v_cache.set(Halide::Buffer<float>(vc.data(), kv, c.n_ctx()));
  p.q.set(Halide::Buffer<float>(q.data(), static_cast<int>(c.n), c.rows));
  p.pos0.set(c.row_at(0).pos);
  std::vector<float> y(q.size());
  Halide::Buffer<float> out(y.data(), static_cast<int>(c.n), c.rows);
  Halide::Pipeline(p.out).realize(out, Halide::Target(t.halide));
  return {{"y", Tensor::of(y)}};
}

// Every Halide kernel variant this machine runs: each CPU target's own kernels, and the
// ARM targets' I2_S algorithms (16-byte groups, sdot's signed codes) as x86 code. The
// VNNI kernels are JIT-compiled as codegen::with_reduce_features says: with 64-byte groups
// they use only EVEX zmm forms, which run on the CPU this test runs on (outputs go through
// llc with the target's exact CPU instead; compile_tests run those).
std::vector<KernelBackend> cpu_backends() {
  using schedules::MatmulPacking;
  using schedules::MatmulReduce;
  std::vector<KernelBackend> b;
  auto ternary_fits = [](const OpCase& c, int W, MatmulPacking packing) {
    if (c.op != Op::TernaryMatmul || c.residual || !c.more_rows.empty()) return false;
    return packing == MatmulPacking::RowLanes ? c.n % 16 == 0 && c.block() % 16 == 0
                                              : c.block() == c.n || c.block() % (4 * W) == 0;
  };
  auto add_i2s = [&](const std::string& name, const std::string& halide, int W, MatmulReduce reduce,
                     MatmulPacking packing) {
    b.push_back(
        {name + " i2_s W" + std::to_string(W) + (packing == MatmulPacking::RowLanes ? " row lanes" : " row tiles"),
         [=](const OpCase& c) { return ternary_fits(c, W, packing); },
         [=](const OpCase& c, const Inputs& in) { return run_i2s(c, in, halide, W, reduce, packing); }});
  };
  auto add_kquant = [&](const std::string& name, const std::string& halide, schedules::KQuantMatmulShape shape) {
    b.push_back({name + " kquant_matmul",
                 [](const OpCase& c) { return c.op == Op::KQuantMatmul && c.logit_rows.empty(); },
                 [=](const OpCase& c, const Inputs& in) { return run_kquant_halide(c, in, halide, shape); }});
  };
  // The outputs' GEMM, compiled for a whole prefill chunk and called with fewer rows.
  auto add_chunk_gemm = [&](const std::string& name, const std::string& halide, int W, MatmulReduce reduce,
                            MatmulPacking packing) {
    const int batch = codegen::kCpuPrefillBatch;
    b.push_back({name + " i2_s W" + std::to_string(W) +
                     (packing == MatmulPacking::RowLanes ? " row lanes" : " row tiles") + ", batch " +
                     std::to_string(batch) + " GEMM called with the case's rows",
                 [=](const OpCase& c) { return c.rows > 1 && c.rows <= batch && ternary_fits(c, W, packing); },
                 [=](const OpCase& c, const Inputs& in) { return run_i2s(c, in, halide, W, reduce, packing, batch); }});
  };
  const std::string avx2 = find_target("x86-64-avx2")->halide;
  for (const TargetInfo& t : targets()) {
    if (t.backend != Backend::Cpu) continue;
    const MatmulReduce reduce = codegen::ternary_reduce(t);
    if (!runs_on_this_cpu(t)) {  // an ARM or WebAssembly target: its I2_S algorithm as x86 code
      // (wasm32 and wasm32-simd share theirs: one of them.)
      if (t.triple == "aarch64-linux-gnu" || t.name == "wasm32-simd") {
        add_i2s(t.name + " (as x86 code)", avx2, t.ternary_bytes, reduce, MatmulPacking::RowTiles);
        add_i2s(t.name + " (as x86 code)", avx2, t.ternary_bytes, reduce, MatmulPacking::RowLanes);
        add_chunk_gemm(t.name + " (as x86 code)", avx2, t.ternary_bytes, reduce,
                       codegen::i2s_matmul_shape(t, 256, 8, 256).packing);
        add_kquant(t.name + " (as x86 code)", avx2, codegen::kquant_matmul_shape(t, 256, 1));
      }
      continue;
    }
    const std::string halide = codegen::with_reduce_features(Halide::Target(t.halide), reduce).to_string();
    add_i2s(t.name, halide, t.ternary_bytes, reduce, MatmulPacking::RowTiles);
    add_i2s(t.name, halide, t.ternary_bytes, reduce, MatmulPacking::RowLanes);
    add_chunk_gemm(t.name, halide, t.ternary_bytes, reduce, MatmulPacking::RowLanes);
    if (t.ternary_bytes != 32) {  // AVX2's algorithms on the wider target too
      add_i2s(t.name, t.halide, 32, MatmulReduce::PairwiseI16, MatmulPacking::RowTiles);
      add_i2s(t.name, t.halide, 32, MatmulReduce::PairwiseI16, MatmulPacking::RowLanes);
    }
    const TargetInfo* target = &t;
    b.push_back({t.name + " dense_matmul",
                 [](const OpCase& c) { return c.op == Op::DenseMatmul && c.logit_rows.empty(); },
                 [=](const OpCase& c, const Inputs& in) { return run_dense_halide(c, in, *target); }});
    const schedules::KQuantMatmulShape kquant = codegen::kquant_matmul_shape(t, 256, 1);
    add_kquant(t.name, codegen::with_reduce_features(Halide::Target(t.halide), kquant.reduce).to_string(), kquant);
    b.push_back({t.name + " q8_0_matmul",
                 [](const OpCase& c) { return c.op == Op::Q8_0Matmul && c.logit_rows.empty(); },
                 [=](const OpCase& c, const Inputs& in) { return run_q8_0_halide(c, in, *target); }});
    b.push_back({t.name + " norm_quant", [](const OpCase& c) { return c.op == Op::Quantize && !c.gated; },
                 [=](const OpCase& c, const Inputs& in) { return run_norm_quant_halide(c, in, *target); }});
    b.push_back({t.name + " rope", [](const OpCase& c) { return c.op == Op::Rope && one_run(c); },
                 [=](const OpCase& c, const Inputs& in) { return run_rope_halide(c, in, *target); }});
    // Both kernels of rt::attention_kernel's pair, on runs of every length (the block
    // kernel with blocks of tokens cut short, and with one token).
    for (const int tokens : {1, rt::kAttentionBlockTokens})
      b.push_back({t.name + " attention, " + std::to_string(tokens) + " token(s) per task",
                   [](const OpCase& c) { return c.op == Op::Attention && one_run(c); },
                   [=](const OpCase& c, const Inputs& in) { return run_attention_halide(c, in, *target, tokens); }});
  }
  // The lookup-table layouts: per-token activations, one scale per tensor; the scalar
  // reference tiles, and the SIMD tile this CPU runs (AVX2's TL2).
  for (schedules::LutLayout layout : {schedules::LutLayout::TL1, schedules::LutLayout::TL2})
    for (bool scalar : {true, false})
      b.push_back({std::string(schedules::layout_name(layout)) + (scalar ? " scalar tile" : " SIMD tile"),
                   [](const OpCase& c) {
                     return c.op == Op::TernaryMatmul && c.block() == c.n && !c.q8k64() && !c.block_scales &&
                            !c.residual && c.more_rows.empty();
                   },
                   [=](const OpCase& c, const Inputs& in) { return run_lut(c, in, layout, scalar, avx2); }});
  return b;
}

// ---- the CUDA back end: the kernels in one emulated module ------------------------------

// The entry points a case launches, in order, and their grids' y (CudaGridY).
std::vector<codegen::CudaKernel> cuda_kernels_of(const OpCase& c) {
  using namespace codegen;
  switch (c.op) {
    case Op::TernaryMatmul: {
      CudaMatmulShape s{.K = c.n,
                        .N = c.N,
                        .act_block = c.block(),
                        .batch = c.rows + 2,  // room past the chunk's rows, which must stay untouched
                        .add_residual = c.residual,
                        .more_rows = c.more_rows,
                        .block_scales = c.block_scales,
                        .q8k64 = c.q8k64()};
      std::vector<CudaKernel> k = {cuda_ternary_matmul(s)};
      if (c.more_rows.empty() && (c.block() == c.n || c.block() % 64 == 0) && !c.q8k64()) {
        s.batch = (c.rows + 2 + 15) / 16 * 16;
        k.push_back(cuda_ternary_matmul_mma(s));
      }
      return k;
    }
    case Op::DenseMatmul: return {cuda_dense_matmul(c.n, c.N, c.storage, !c.logit_rows.empty())};
    case Op::Embedding: return {cuda_embedding(c.N, c.n, c.storage, c.k_major)};
    case Op::Norm: return {cuda_norm(c.n, {*c.norm, c.norm_weight, c.eps})};
    case Op::Quantize:
      return {cuda_quantize(c.n, c.quant,
                            c.norm ? std::optional(CudaNorm{*c.norm, c.norm_weight, c.eps}) : std::nullopt, c.gated)};
    case Op::Rope: return {cuda_rope(c.n, c.head_dim, c.rope_style)};
    case Op::RopeKvStore: return {cuda_rope_kv_store({c.n, c.kv_dim(), c.head_dim, c.rope_style})};
    case Op::KvStore: return {cuda_kv_store(c.kv_dim())};
    case Op::Attention: return {cuda_attention({c.n_head, c.n_head_kv, c.head_dim, c.score_scale, c.softmax_sum})};
    case Op::GatedAct: return {cuda_gated(c.n, c.act)};
    case Op::Add: return {cuda_add(c.n)};
    case Op::Argmax: return {cuda_argmax_partial(c.n, 64), cuda_argmax_final(64)};
    case Op::TopK:
      return {cuda_topk_partial(c.n, 256, rt::kCudaTopKMax), cuda_topk_merge(256, 16, rt::kCudaTopKMax),
              cuda_topk_merge(16, 16, rt::kCudaTopKMax)};
    case Op::RepeatPenalty: return {cuda_repeat_penalty(c.n)};
    case Op::KQuantMatmul: return {cuda_kquant_matmul(c.n, c.N, !c.logit_rows.empty())};
    case Op::Q8_0Matmul: return {cuda_q8_0_matmul(c.n, c.N, !c.logit_rows.empty())};
  }
  return {};
}

using EmulatedLaunch = void (*)(unsigned, unsigned, unsigned, void**);

// The module of every entry point the table needs, built once as C++ for the CPU.
class EmulatedCudaModule {
 public:
  explicit EmulatedCudaModule(const std::vector<OpCase>& table) {
    std::map<std::string, codegen::CudaKernel> kernels;
    for (const OpCase& c : table)
      for (codegen::CudaKernel& k : cuda_kernels_of(c)) kernels.emplace(k.name, std::move(k));
    source_ = codegen::cuda_module_preamble();
    for (const auto& [name, k] : kernels) source_ += "\n" + codegen::cuda_kernel_text(k);
    kernels_ = kernels.size();
    if (kernels_ == 0) return;
    write_text(dir_.file("ops.cu"), source_);
    // The rounding NVRTC gets: no contraction (-fmad=false).
    const CommandResult r = run_command(std::string(BITNETC_CXX) +
                                            " -std=c++17 -O1 -ffp-contract=off -fPIC -shared -w "
                                            "-DBITNETC_CUDA_EMULATION -include " +
                                            BITNETC_TEST_SUPPORT_DIR + "/cuda_emulation.h -x c++ " +
                                            dir_.file("ops.cu") + " -o " + dir_.file("ops.so"),
                                        dir_);
    if (r.status != 0) throw std::runtime_error("the emulated CUDA module does not compile:\n" + r.err.substr(0, 4000));
    handle_ = ::dlopen(dir_.file("ops.so").c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle_) throw std::runtime_error(std::string("dlopen: ") + ::dlerror());
  }
  ~EmulatedCudaModule() {
    if (handle_) ::dlclose(handle_);
  }
  const std::string& source() const { return source_; }
  size_t kernels() const { return kernels_; }
  EmulatedLaunch launcher(const std::string& name) const {
    auto f = reinterpret_cast<EmulatedLaunch>(::dlsym(handle_, ("bitnetc_emulate_" + name).c_str()));
    if (!f) throw std::runtime_error("the emulated module lacks " + name);
    return f;
  }

 private:
  ScratchDir dir_;
  std::string source_;
  size_t kernels_ = 0;
  void* handle_ = nullptr;
};

// A kernel argument as cuLaunchKernel takes it: an 8-byte slot (a device address, or a
// float in its low bytes).
uint64_t arg(const void* p) { return reinterpret_cast<uint64_t>(p); }
uint64_t arg(float f) { return std::bit_cast<uint32_t>(f); }

// Device memory for one run: buffers with room past what the case uses, filled with a
// sentinel that must survive there.
struct DeviceBuffers {
  std::vector<std::vector<uint8_t>> buffers;
  template <typename T>
  T* alloc(size_t n, size_t room = 0, T fill = T()) {
    std::vector<uint8_t> b((n + room) * sizeof(T));
    for (size_t i = 0; i < n + room; ++i) std::memcpy(&b[i * sizeof(T)], &fill, sizeof(T));
    buffers.push_back(std::move(b));
    return reinterpret_cast<T*>(buffers.back().data());
  }
  template <typename T>
  T* copy(const std::vector<T>& v, size_t room = 0, T fill = T()) {
    T* p = alloc<T>(v.size(), room, fill);
    std::copy(v.begin(), v.end(), p);
    return p;
  }
};

Outputs run_cuda(const OpCase& c, const Inputs& in, const EmulatedCudaModule& module) {
  DeviceBuffers mem;
  // The chunk's state (runtime_stub/cuda/cuda_state.h): its rows and where they stand.
  constexpr int B = 64;
  std::vector<int32_t> state(kBitnetcStateRows + 4 * B, 0);
  state[kBitnetcStateCount] = c.rows;
  state[kBitnetcStateCtx] = c.n_ctx();
  state[kBitnetcStateBatch] = B;
  state[kBitnetcStateTopK] = c.k;
  state[kBitnetcStatePenaltyCount] = static_cast<int32_t>(in.tokens.size());
  state[kBitnetcStatePenalty] = static_cast<int32_t>(std::bit_cast<uint32_t>(c.penalty));
  state[kBitnetcStateLogitRows] = static_cast<int32_t>(c.logit_rows.size());
  for (int m = 0; m < c.rows; ++m) {
    state[kBitnetcStateRows + m] = m < static_cast<int>(in.tokens.size()) ? in.tokens[m] : 0;
    state[kBitnetcStateRows + B + m] = c.row_at(m).pos;
    state[kBitnetcStateRows + 2 * B + m] = c.row_at(m).seq;
  }
  for (size_t j = 0; j < c.logit_rows.size(); ++j) state[kBitnetcStateRows + 3 * B + j] = c.logit_rows[j];
  const int32_t* st = mem.copy(state);
  const std::vector<codegen::CudaKernel> kernels = cuda_kernels_of(c);
  auto launch = [&](const codegen::CudaKernel& k, std::vector<uint64_t> args) {
    args.insert(args.begin(), arg(st));
    if (args.size() != k.params.size()) throw std::logic_error(k.name + ": argument count");
    std::vector<void*> p;
    for (uint64_t& a : args) p.push_back(&a);
    const unsigned gy = k.grid_y == rt::CudaGridY::ChunkRows   ? static_cast<unsigned>(c.rows)
                        : k.grid_y == rt::CudaGridY::LogitRows ? static_cast<unsigned>(c.logit_rows.size())
                                                               : 1u;
    module.launcher(k.name)(k.grid_x, gy, k.block_x, p.data());
  };
  const int64_t n = c.n;
  Outputs out;
  // Reads `count` elements of a device buffer back, after checking that `room` more past
  // them still hold `fill`.
  auto back = [&](const std::string& name, const auto* p, size_t count, size_t room, auto fill) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(p)>>;
    for (size_t i = count; i < count + room; ++i)
      EXPECT_EQ(std::memcmp(&p[i], &fill, sizeof(T)), 0) << c.describe() << ": " << name << " written past its rows";
    out[name] = Tensor::of(std::vector<T>(p, p + count));
  };
  switch (c.op) {
    case Op::TernaryMatmul: {
      const int64_t Kp = codegen::cuda_padded_k(n);
      std::vector<int8_t> x(static_cast<size_t>(Kp * c.rows), 0);
      for (int m = 0; m < c.rows; ++m) std::copy_n(&in.q[m * n], n, &x[m * Kp]);
      for (const codegen::CudaKernel& k : kernels) {
        const int room = 2 * static_cast<int>(Kp);  // two rows past the chunk's, never read
        const int8_t* xd = mem.copy(x, static_cast<size_t>(room));
        const int32_t* xs = mem.copy(in.xsum, 2 * static_cast<size_t>(c.blocks()));
        const float* d = mem.copy(in.d, 2 * static_cast<size_t>(c.blocks()));
        std::vector<uint64_t> args;
        std::vector<float*> ys;
        for (size_t i = 0; i < in.ternary.size(); ++i) {
          const TernaryWeights& w = in.ternary[i];
          const uint32_t* packed = mem.copy(codegen::pack_for_cuda_matmul(w));
          std::vector<float> bs;  // [blocks][N]
          if (c.block_scales) {
            bs.resize(static_cast<size_t>(w.rows * c.scale_blocks()));
            for (int64_t r = 0; r < w.rows; ++r)
              for (int64_t b = 0; b < c.scale_blocks(); ++b)
                bs[b * w.rows + r] = in.block_scale[i][r * c.scale_blocks() + b];
          }
          float* y = mem.alloc<float>(static_cast<size_t>(w.rows * c.rows), static_cast<size_t>(2 * w.rows), -1.0f);
          ys.push_back(y);
          if (i == 0) {
            args = {arg(packed), arg(xd), arg(xs), arg(d), arg(in.w_scale[0])};
            if (c.block_scales) args.push_back(arg(mem.copy(bs)));
            if (c.residual) args.push_back(arg(mem.copy(in.x)));
            args.push_back(arg(y));
          } else {
            args.insert(args.end(), {arg(packed), arg(in.w_scale[i])});
            if (c.block_scales) args.push_back(arg(mem.copy(bs)));
            args.push_back(arg(y));
          }
        }
        launch(k, args);
        for (size_t i = 0; i < ys.size(); ++i) {
          const int64_t N = in.ternary[i].rows;
          back(std::string(k.name.find("_mma_") != std::string::npos ? "mma " : "") +
                   (i == 0 ? "y" : "y_" + std::to_string(i)),
               ys[i], static_cast<size_t>(N * c.rows), static_cast<size_t>(2 * N), -1.0f);
        }
      }
      // Both kernels' results are compared under the reference's names.
      Outputs renamed;
      for (auto& [name, t] : out) renamed[name.rfind("mma ", 0) == 0 ? name.substr(4) : name] = t;
      if (kernels.size() == 2) {
        EXPECT_EQ(out["mma y"].bytes, out["y"].bytes) << c.describe() << ": the tensor-core and dp4a kernels differ";
      }
      return renamed;
    }
    case Op::KQuantMatmul:
    case Op::Q8_0Matmul:
    case Op::DenseMatmul:
    case Op::Embedding: {
      const bool q8_0 = c.op == Op::Q8_0Matmul || c.storage == rt::DenseStorage::Q8_0;
      const bool kquant = c.op == Op::KQuantMatmul || c.storage == rt::DenseStorage::KQuant;
      if (q8_0 || kquant) {
        // The parts, k-major (rt::q8_0_sections, rt::kquant_sections), as codegen packs them
        // for CUDA; then the head's activation codes and factors, or an embedding's tokens.
        std::vector<uint8_t> w;
        std::vector<uint64_t> parts;
        if (q8_0) {
          const rt::Q8_0Sections at = rt::q8_0_sections(c.N, n);
          const int64_t blocks = n / kBitnetcQ8_0Block;
          w.resize(at.end);
          for (int64_t r = 0; r < c.N; ++r) {
            for (int64_t k = 0; k < n; ++k) w[at.q + k * c.N + r] = static_cast<uint8_t>(in.q8_0.q[r * n + k]);
            for (int64_t b = 0; b < blocks; ++b)
              std::memcpy(&w[at.d + 4 * (b * c.N + r)], &in.q8_0.d[r * blocks + b], 4);
          }
          parts = {at.q, at.d};
        } else {
          const rt::KQuantSections at = rt::kquant_sections(c.N, n);
          const KQuantWeights& kw = in.kquant;
          w.resize(at.end);
          for (int64_t r = 0; r < c.N; ++r) {
            for (int64_t k = 0; k < n; ++k) w[at.q + k * c.N + r] = static_cast<uint8_t>(kw.q[r * n + k]);
            for (int64_t g = 0; g < n / 16; ++g) {
              w[at.sc + g * c.N + r] = static_cast<uint8_t>(kw.sc[r * (n / 16) + g]);
              w[at.m + g * c.N + r] = static_cast<uint8_t>(kw.m[r * (n / 16) + g]);
            }
            for (int64_t b = 0; b < n / 256; ++b) {
              std::memcpy(&w[at.d + 4 * (b * c.N + r)], &kw.d[r * (n / 256) + b], 4);
              std::memcpy(&w[at.dmin + 4 * (b * c.N + r)], &kw.dmin[r * (n / 256) + b], 4);
            }
          }
          parts = {at.q, at.sc, at.m, at.d, at.dmin};
        }
        const uint8_t* dw = mem.copy(w);
        std::vector<uint64_t> args;
        for (uint64_t off : parts) args.push_back(arg(dw + off));
        const size_t out_rows = !c.logit_rows.empty() ? c.logit_rows.size() : static_cast<size_t>(c.rows);
        const size_t width = static_cast<size_t>(c.op == Op::Embedding ? n : c.N);
        float* y = mem.alloc<float>(out_rows * width, width, -1.0f);
        if (c.op != Op::Embedding) {
          const int64_t Kp = codegen::cuda_padded_k(n);
          std::vector<int8_t> x(static_cast<size_t>(Kp * c.rows), 0);
          for (int m = 0; m < c.rows; ++m) std::copy_n(&in.q[m * n], n, &x[m * Kp]);
          args.push_back(arg(mem.copy(x)));
          args.push_back(arg(mem.copy(in.d)));
        }
        args.push_back(arg(y));
        launch(kernels[0], args);
        back("y", y, out_rows * width, width, -1.0f);
        return out;
      }
      // The weight k-major (the head's layout) or row-major: f32, IEEE half bits, or int8 codes.
      const bool k_major = c.op == Op::DenseMatmul || c.k_major;
      const size_t count = static_cast<size_t>(c.N * n);
      std::vector<uint8_t> w(count * rt::element_bytes(c.storage));
      for (int64_t r = 0; r < c.N; ++r)
        for (int64_t k = 0; k < n; ++k) {
          const size_t at = static_cast<size_t>(k_major ? k * c.N + r : r * n + k),
                       from = static_cast<size_t>(r * n + k);
          if (c.storage == rt::DenseStorage::Q8) {
            w[at] = static_cast<uint8_t>(in.dense_codes[from]);
          } else if (c.storage == rt::DenseStorage::F16) {
            const uint16_t h = f32_to_fp16(in.dense[from]);
            std::memcpy(&w[2 * at], &h, 2);
          } else {
            std::memcpy(&w[4 * at], &in.dense[from], 4);
          }
        }
      std::vector<uint64_t> args = {arg(mem.copy(w))};
      if (c.storage == rt::DenseStorage::Q8) args.push_back(arg(mem.copy(in.dense_scales)));
      const size_t out_rows = c.op == Op::DenseMatmul && !c.logit_rows.empty() ? c.logit_rows.size() : c.rows;
      const size_t width = static_cast<size_t>(c.op == Op::DenseMatmul ? c.N : n);
      float* y = mem.alloc<float>(out_rows * width, width, -1.0f);
      if (c.op == Op::DenseMatmul) args.push_back(arg(mem.copy(in.x)));
      args.push_back(arg(y));
      launch(kernels[0], args);
      back("y", y, out_rows * width, width, -1.0f);
      return out;
    }
    case Op::Norm: {
      float* y = mem.alloc<float>(in.x.size(), static_cast<size_t>(n), -1.0f);
      std::vector<uint64_t> args = {arg(mem.copy(in.x))};
      if (c.norm_weight) args.push_back(arg(mem.copy(in.w)));
      args.push_back(arg(y));
      launch(kernels[0], args);
      back("y", y, in.x.size(), static_cast<size_t>(n), -1.0f);
      return out;
    }
    case Op::Quantize: {
      const int64_t Kp = codegen::cuda_padded_k(n);
      int8_t* q = mem.alloc<int8_t>(static_cast<size_t>(Kp * c.rows), static_cast<size_t>(Kp), int8_t{0x55});
      const size_t nd = static_cast<size_t>(c.blocks() * c.rows);
      int32_t* sum = mem.alloc<int32_t>(nd, static_cast<size_t>(c.blocks()), -7);
      float* d = mem.alloc<float>(nd, static_cast<size_t>(c.blocks()), -1.0f);
      std::vector<uint64_t> args = {arg(mem.copy(in.x))};
      if (c.gated) args.push_back(arg(mem.copy(in.y)));
      if (c.norm && c.norm_weight) args.push_back(arg(mem.copy(in.w)));
      args.insert(args.end(), {arg(q), arg(sum), arg(d)});
      launch(kernels[0], args);
      back("q", q, static_cast<size_t>(Kp * c.rows), static_cast<size_t>(Kp), int8_t{0x55});
      back("sum", sum, nd, static_cast<size_t>(c.blocks()), -7);
      back("d", d, nd, static_cast<size_t>(c.blocks()), -1.0f);
      return out;
    }
    case Op::Rope: {
      std::vector<float> cos, sin;
      rope_tables(c, cos, sin);
      float* y = mem.alloc<float>(in.x.size(), static_cast<size_t>(n), -1.0f);
      launch(kernels[0], {arg(mem.copy(cos)), arg(mem.copy(sin)), arg(mem.copy(in.x)), arg(y)});
      back("y", y, in.x.size(), static_cast<size_t>(n), -1.0f);
      return out;
    }
    case Op::RopeKvStore:
    case Op::KvStore:
    case Op::Attention: {
      // The caches: a table of a pointer per sequence, as the runtime keeps them.
      const int kv = c.kv_dim();
      std::vector<float*> k_caches, v_caches;
      for (int s = 0; s < c.n_seq(); ++s) {
        k_caches.push_back(mem.copy(in.k_cache[s]));
        v_caches.push_back(mem.copy(in.v_cache[s]));
      }
      float* const* kt = mem.copy(k_caches);
      float* const* vt = mem.copy(v_caches);
      std::vector<float> k_rows, v_rows;
      for (int m = 0; m < c.rows; ++m) {
        k_rows.insert(k_rows.end(), &in.y[m * 2 * kv], &in.y[m * 2 * kv + kv]);
        v_rows.insert(v_rows.end(), &in.y[m * 2 * kv + kv], &in.y[(m + 1) * 2 * kv]);
      }
      if (c.op == Op::Attention) {
        float* y = mem.alloc<float>(in.x.size(), static_cast<size_t>(n), -1.0f);
        float* scores = mem.alloc<float>(static_cast<size_t>(c.rows * c.n_head * c.n_ctx()));
        launch(kernels[0], {arg(mem.copy(in.x)), arg(kt), arg(vt), arg(scores), arg(y)});
        back("y", y, in.x.size(), static_cast<size_t>(n), -1.0f);
        return out;
      }
      if (c.op == Op::RopeKvStore) {
        std::vector<float> cos, sin;
        rope_tables(c, cos, sin);
        const float* cs = mem.copy(cos);
        const float* sn = mem.copy(sin);
        float* q_out = mem.alloc<float>(in.x.size(), static_cast<size_t>(n), -1.0f);
        launch(kernels[0], {arg(cs), arg(sn), arg(cs), arg(sn), arg(mem.copy(in.x)), arg(mem.copy(k_rows)),
                            arg(mem.copy(v_rows)), arg(q_out), arg(kt), arg(vt)});
        back("q", q_out, in.x.size(), static_cast<size_t>(n), -1.0f);
      } else {
        launch(kernels[0], {arg(mem.copy(k_rows)), arg(mem.copy(v_rows)), arg(kt), arg(vt)});
      }
      for (int s = 0; s < c.n_seq(); ++s) {
        back("k_cache" + std::to_string(s), k_caches[s], in.k_cache[s].size(), 0, 0.0f);
        back("v_cache" + std::to_string(s), v_caches[s], in.v_cache[s].size(), 0, 0.0f);
      }
      return out;
    }
    case Op::GatedAct:
    case Op::Add: {
      float* y = mem.alloc<float>(in.x.size(), static_cast<size_t>(n), -1.0f);
      launch(kernels[0], {arg(mem.copy(in.x)), arg(mem.copy(in.y)), arg(y)});
      back("y", y, in.x.size(), static_cast<size_t>(n), -1.0f);
      return out;
    }
    case Op::Argmax: {
      float* partial = mem.alloc<float>(2 * 64);
      int32_t* token = mem.alloc<int32_t>(1);
      launch(kernels[0], {arg(mem.copy(in.x)), arg(partial)});
      launch(kernels[1], {arg(partial), arg(token)});
      back("token", token, 1, 0, 0);
      return out;
    }
    case Op::TopK: {
      const size_t list = 2 * rt::kCudaTopKMax;
      float* lists = mem.alloc<float>(256 * list);
      float* merged = mem.alloc<float>(16 * list);
      float* top = mem.alloc<float>(list);
      const float* logits = mem.copy(in.x);
      launch(kernels[0], {arg(logits), arg(lists)});
      launch(kernels[1], {arg(lists), arg(merged)});
      launch(kernels[2], {arg(merged), arg(top)});
      std::vector<int32_t> ids;
      std::vector<float> vals;
      for (int j = 0; j < rt::kCudaTopKMax; ++j) {
        const int32_t id = std::bit_cast<int32_t>(top[rt::kCudaTopKMax + j]);
        if (j < c.k && id >= 0) ids.push_back(id), vals.push_back(top[j]);
        if (j >= c.k) EXPECT_EQ(id, -1) << c.describe() << ": entry " << j << " past k";
      }
      out["ids"] = Tensor::of(ids);
      out["logits"] = Tensor::of(vals);
      return out;
    }
    case Op::RepeatPenalty: {
      float* logits = mem.copy(in.x);
      launch(kernels[0], {arg(logits), arg(mem.copy(in.tokens))});
      back("logits", logits, in.x.size(), 0, 0.0f);
      return out;
    }
  }
  throw std::logic_error("no CUDA kernel for " + c.describe());
}

// ---- the test ------------------------------------------------------------------------------

void expect_same(const OpCase& c, const std::string& backend, const Outputs& want, const Outputs& got) {
  for (const auto& [name, w] : want) {
    const auto it = got.find(name);
    ASSERT_NE(it, got.end()) << backend << " " << c.describe() << ": no output " << name;
    const Tensor& g = it->second;
    ASSERT_EQ(g.size(), w.size()) << backend << " " << c.describe() << ": " << name << " size";
    for (size_t i = 0; i < w.size(); ++i) {
      const size_t e = w.type == 'b' ? 1 : 4;
      ASSERT_EQ(std::memcmp(&g.bytes[i * e], &w.bytes[i * e], e), 0)
          << backend << " " << c.describe() << ": " << name << "[" << i << "] is " << g.element(i) << ", the reference "
          << w.element(i);
    }
  }
}

}  // namespace

// Every op of the table on every back end that has it, bit for bit against the
// reference; and every op has one. One test per op (run in parallel by ctest), each
// building the emulated CUDA module of its own cases.
class Ops : public testing::TestWithParam<Op> {};

TEST_P(Ops, EveryBackendMatchesTheReferenceBitForBit) {
  std::vector<OpCase> table;
  for (const OpCase& c : op_table())
    if (c.op == GetParam()) table.push_back(c);
  ASSERT_FALSE(table.empty());
  const std::vector<KernelBackend> cpu = cpu_backends();
  const EmulatedCudaModule cuda(table);
  std::map<std::string, int> runs;  // per back end
  for (size_t i = 0; i < table.size(); ++i) {
    const OpCase& c = table[i];
    const Inputs in = make_inputs(c, 1000 + i);
    const Outputs want = reference(c, in);
    int backends = 0;
    for (const KernelBackend& b : cpu)
      if (b.has(c)) {
        ++backends, ++runs[b.name];
        ASSERT_NO_FATAL_FAILURE(expect_same(c, b.name, want, b.run(c, in)));
      }
    if (!cuda_kernels_of(c).empty()) {
      ++backends, ++runs["cuda (emulated)"];
      ASSERT_NO_FATAL_FAILURE(expect_same(c, "cuda (emulated)", want, run_cuda(c, in, cuda)));
    }
    EXPECT_GT(backends, 0) << c.describe() << " has no back end";
  }
  for (const auto& [name, count] : runs) std::printf("  %-52s %4d cases\n", name.c_str(), count);
  // NVRTC builds the module for every SM.
  if (codegen::have_nvrtc() && cuda.kernels() > 0)
    for (const char* t : {"cuda-sm80", "cuda-sm90"}) {
      const codegen::CudaImage image = codegen::compile_cuda(cuda.source(), *find_target(t));
      EXPECT_NE(image.ptx.find(".entry bitnetc_"), std::string::npos) << t;
    }
}

INSTANTIATE_TEST_SUITE_P(Table, Ops,
                         testing::Values(Op::TernaryMatmul, Op::DenseMatmul, Op::KQuantMatmul, Op::Q8_0Matmul,
                                         Op::Embedding, Op::Norm,
                                         Op::Quantize, Op::Rope, Op::RopeKvStore, Op::KvStore, Op::Attention,
                                         Op::GatedAct, Op::Add, Op::Argmax, Op::TopK, Op::RepeatPenalty),
                         [](const testing::TestParamInfo<Op>& p) { return std::string(op_name(p.param)); });
