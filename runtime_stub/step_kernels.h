// Which steps of a CPU output, besides the matmuls, run generated kernels, and which
// kernels the output carries: the norm + quantize kernels (schedules/norm_quant.h), the
// attention kernels (schedules/attention.h) and the RoPE kernels (schedules/rope.h). Codegen and the runtime both
// derive it from the graph and the ternary records with this one function, so the kernel indices agree without being
// stored in the blob.
//
// Every Quantize gets a kernel. When its input is the output of a Norm that nothing
// else reads, the kernel does that norm too and the Norm step is skipped: one pass, and
// the normalized floats are never stored. Every Attention and every Rope gets a kernel.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <span>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "ir.h"
#include "model_blob.h"

namespace bitnetc::rt {

struct NormQuantKernelKey {
  int64_t n = 0, K_padded = 0, block = 0;
  int32_t norm = -1;  // ir::NormKind, or -1: quantize the input as it is
  bool norm_weight = false;
  uint32_t eps_bits = 0;  // the norm's eps (a constant of the kernel)
  int32_t quant = 0;      // ir::ActQuant
  auto tie() const { return std::tie(n, K_padded, block, norm, norm_weight, eps_bits, quant); }
  bool operator<(const NormQuantKernelKey& o) const { return tie() < o.tie(); }
  float eps() const {
    float e;
    std::memcpy(&e, &eps_bits, 4);
    return e;
  }
};

// The key cache holds blocks of this many positions, each block transposed (a row of
// the block's positions per channel), and the runtime pads it to whole blocks: the
// attention kernels score 8 vectors of positions at a time (128 with AVX-512) and read
// the last of them past the end.
inline constexpr int kAttentionPositionBlock = 128;

// Where the key cache keeps channel c of position pos (schedules/attention.h).
inline int64_t key_cache_index(int64_t pos, int64_t c, int64_t kv_dim) {
  return pos / kAttentionPositionBlock * kAttentionPositionBlock * kv_dim + c * kAttentionPositionBlock +
         pos % kAttentionPositionBlock;
}

struct AttentionKernelKey {
  int32_t head_dim = 0, n_head = 0, n_head_kv = 0;
  int32_t score_scale = 0, softmax_sum = 0;  // ir::ScoreScale, ir::SoftmaxSum
  auto tie() const { return std::tie(head_dim, n_head, n_head_kv, score_scale, softmax_sum); }
  bool operator<(const AttentionKernelKey& o) const { return tie() < o.tie(); }
};

struct RopeKernelKey {
  int64_t n = 0;
  int32_t head_dim = 0, style = 0;  // ir::RopeStyle
  auto tie() const { return std::tie(n, head_dim, style); }
  bool operator<(const RopeKernelKey& o) const { return tie() < o.tie(); }
};

struct StepKernels {
  std::vector<NormQuantKernelKey> norm_quant;  // bitnetc_norm_quant_kernels[], in this order
  std::vector<AttentionKernelKey> attention;   // bitnetc_attention_kernels[]
  std::vector<RopeKernelKey> rope;             // bitnetc_rope_kernels[]
  std::vector<int32_t> kernel_of_op;           // per op: its kernel in the list of its kind, else -1
  std::vector<int32_t> fused_norm_of_op;       // per op: the Norm a Quantize absorbs, else -1
  std::vector<bool> skipped;                   // per op: a Norm absorbed by its Quantize
};

// The index of `key` in `list`, appended when new (first appearance decides the order).
template <typename Key>
int32_t kernel_index(std::map<Key, int32_t>& index, std::vector<Key>& list, const Key& key) {
  const auto [it, added] = index.emplace(key, static_cast<int32_t>(list.size()));
  if (added) list.push_back(key);
  return it->second;
}

// Each value's producing op (-1: none) and how many op inputs read it.
struct ValueUses {
  std::vector<int32_t> producer, readers;
  // The op that produces `v` when that op is of `kind` and only one input anywhere
  // reads v (and v is not the logits): an op another launch may absorb. Else -1.
  int32_t sole_producer(const ir::Graph& g, int v, ir::OpKind kind) const {
    if (v < 0 || static_cast<size_t>(v) >= producer.size() || v == g.logits || readers[v] != 1) return -1;
    const int32_t p = producer[v];
    return p >= 0 && g.ops[p].kind == kind ? p : -1;
  }
};
inline ValueUses value_uses(const ir::Graph& g) {
  ValueUses u{std::vector<int32_t>(g.values.size(), -1), std::vector<int32_t>(g.values.size(), 0)};
  for (size_t i = 0; i < g.ops.size(); ++i) {
    const ir::Op& op = g.ops[i];
    if (op.output >= 0 && static_cast<size_t>(op.output) < g.values.size())
      u.producer[op.output] = static_cast<int32_t>(i);
    for (int v : op.inputs)
      if (v >= 0 && static_cast<size_t>(v) < g.values.size()) ++u.readers[v];
  }
  return u;
}

// Per op: for a Quantize whose input is the output of a Norm that nothing else reads
// (not the logits either), that Norm, else -1. Such a pair is one kernel on every
// target: the CPU outputs' norm + quantize kernels, the CUDA outputs' fused launch.
inline std::vector<int32_t> norms_absorbed_by_quantize(const ir::Graph& g) {
  const ValueUses uses = value_uses(g);
  std::vector<int32_t> absorbed(g.ops.size(), -1);
  for (size_t i = 0; i < g.ops.size(); ++i) {
    const ir::Op& op = g.ops[i];
    if (op.kind == ir::OpKind::Quantize && !op.inputs.empty())
      absorbed[i] = uses.sole_producer(g, op.inputs[0], ir::OpKind::Norm);
  }
  return absorbed;
}

inline StepKernels plan_step_kernels(const ir::Graph& g, std::span<const TernaryRecord> ternary) {
  const size_t n_ops = g.ops.size();
  StepKernels plan;
  plan.kernel_of_op.assign(n_ops, -1);
  plan.fused_norm_of_op.assign(n_ops, -1);
  plan.skipped.assign(n_ops, false);
  // Each quantized value's padding and blocks (codegen gives all readers of one value
  // one layout).
  std::vector<std::pair<int64_t, int64_t>> layout(g.values.size(), {0, 0});
  for (size_t i = 0; i < n_ops; ++i) {
    const ir::Op& op = g.ops[i];
    if (op.kind == ir::OpKind::TernaryMatmul) {
      if (op.weight < 0 || static_cast<size_t>(op.weight) >= ternary.size() || op.inputs.empty())
        throw std::runtime_error("the embedded model is damaged (ternary matmul)");
      layout[op.inputs[0]] = {ternary[op.weight].K_padded, ternary[op.weight].act_block};
    }
  }
  const std::vector<int32_t> absorbed = norms_absorbed_by_quantize(g);
  std::map<NormQuantKernelKey, int32_t> norm_quant_index;
  std::map<AttentionKernelKey, int32_t> attention_index;
  std::map<RopeKernelKey, int32_t> rope_index;
  for (size_t i = 0; i < n_ops; ++i) {
    const ir::Op& op = g.ops[i];
    if (op.kind == ir::OpKind::Rope) {
      const RopeKernelKey key{g.values[op.output].size, op.head_dim, static_cast<int32_t>(op.rope_style)};
      plan.kernel_of_op[i] = kernel_index(rope_index, plan.rope, key);
      continue;
    }
    if (op.kind == ir::OpKind::Attention) {
      const AttentionKernelKey key{op.head_dim, op.n_head, op.n_head_kv, static_cast<int32_t>(op.score_scale),
                                   static_cast<int32_t>(op.softmax_sum)};
      plan.kernel_of_op[i] = kernel_index(attention_index, plan.attention, key);
      continue;
    }
    if (op.kind != ir::OpKind::Quantize) continue;
    const int in = op.inputs.at(0);
    const auto [K_padded, block] = layout[op.output];
    if (K_padded == 0) continue;  // read by no ternary matmul: nothing to quantize for
    NormQuantKernelKey key{g.values[in].size, K_padded, block, -1, false, 0, static_cast<int32_t>(op.quant)};
    if (const int32_t p = absorbed[i]; p >= 0) {
      const ir::Op& norm = g.ops[p];
      key.norm = static_cast<int32_t>(norm.norm);
      key.norm_weight = norm.weight >= 0;
      std::memcpy(&key.eps_bits, &norm.eps, 4);
      plan.fused_norm_of_op[i] = p;
      plan.skipped[p] = true;
    }
    plan.kernel_of_op[i] = kernel_index(norm_quant_index, plan.norm_quant, key);
  }
  return plan;
}

}  // namespace bitnetc::rt
