// The CPU back end's plan (the counterpart of cuda_program.h): which steps of a CPU
// output, besides the matmuls, run generated kernels, and which kernels it carries: the norm + quantize kernels
// (schedules/norm_quant.h), the attention kernels (schedules/attention.h) and the RoPE
// kernels (schedules/rope.h), and the k-quant and Q8_0 head kernels (schedules/kquant_matmul.h, q8_0_matmul.h). Made once at compile time from
// the fusion pass (compiler/fusion.h); codegen emits the kernels it lists and writes its per-op steps into the blob
// (runtime_stub/cpu/cpu_plan.h), which the runtime executes as they are.
//
// Every Quantize gets a kernel. When the fusion pass lets it do the Norm before it, the
// kernel does that norm too and the Norm step is skipped: one pass, the normalized floats
// never stored. Every Attention and every Rope gets a kernel. The CPU back end declines
// the pass's other fusions (a gated activation inside a quantize, a residual add inside
// a matmul, RoPE inside attention): it has no kernels for them (`compile -v` says so).
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "cpu_plan.h"  // runtime_stub/: the steps as the blob holds them
#include "ir.h"
#include "model_blob.h"

namespace bitnetc::codegen {

// The most rows of a CPU output's prefill (GEMM) call: a chunk of this many meets every
// unpacked weight group once; 32 read the weights a quarter as often as 8 did (bench/
// RESULTS.md, "Prefill batch" and "prefill chunks of 32"). The forward pass runs every op
// over chunks of up to this many rows (BlobHeader::batch).
inline constexpr int kCpuPrefillBatch = 32;

struct NormQuantKernelKey {
  int64_t n = 0, K_padded = 0, block = 0;
  std::optional<ir::NormKind> norm;  // none: quantize the input as it is
  bool norm_weight = false;
  uint32_t eps_bits = 0;  // the norm's eps (a constant of the kernel)
  ir::ActQuant quant = ir::ActQuant::PerTokenLlama2c;
  auto tie() const { return std::tie(n, K_padded, block, norm, norm_weight, eps_bits, quant); }
  bool operator<(const NormQuantKernelKey& o) const { return tie() < o.tie(); }
  float eps() const {
    float e;
    std::memcpy(&e, &eps_bits, 4);
    return e;
  }
};

struct AttentionKernelKey {
  int32_t head_dim = 0, n_head = 0, n_head_kv = 0;
  ir::ScoreScale score_scale = ir::ScoreScale::DivideSqrt;
  ir::SoftmaxSum softmax_sum = ir::SoftmaxSum::F32Divide;
  auto tie() const { return std::tie(head_dim, n_head, n_head_kv, score_scale, softmax_sum); }
  bool operator<(const AttentionKernelKey& o) const { return tie() < o.tie(); }
};

struct RopeKernelKey {
  int64_t n = 0;
  int32_t head_dim = 0;
  ir::RopeStyle style = ir::RopeStyle::Interleaved;
  auto tie() const { return std::tie(n, head_dim, style); }
  bool operator<(const RopeKernelKey& o) const { return tie() < o.tie(); }
};

// The head of a k-quant weight (schedules/kquant_matmul.h), or of a Q8_0 weight
// (schedules/q8_0_matmul.h): its shape.
struct KQuantKernelKey {
  int64_t K = 0, N = 0;
  auto tie() const { return std::tie(K, N); }
  bool operator<(const KQuantKernelKey& o) const { return tie() < o.tie(); }
};

struct CpuPlan {
  std::vector<NormQuantKernelKey> norm_quant;  // bitnetc_norm_quant_kernels[], in this order
  std::vector<AttentionKernelKey> attention;   // bitnetc_attention_kernels[]
  std::vector<RopeKernelKey> rope;             // bitnetc_rope_kernels[]
  std::vector<KQuantKernelKey> kquant;         // bitnetc_kquant_kernels[]
  std::vector<KQuantKernelKey> q8_0;           // bitnetc_q8_0_kernels[]
  std::vector<rt::CpuStep> steps;              // per op, as the blob carries them
  // The fusion pass's proposals this back end has no kernel for, one line each.
  std::vector<std::string> declined;
};

CpuPlan plan_cpu(const ir::Graph& g, std::span<const rt::TernaryRecord> ternary);

// The plan as text, one line per kernel and per op with a kernel: what `compile -v`
// prints and the golden plan tests compare.
std::string print_cpu_plan(const ir::Graph& g, const CpuPlan& plan);

}  // namespace bitnetc::codegen
