// Which steps of a CPU output run the generated norm + quantize kernels
// (schedules/norm_quant.h), and which kernels the output carries. Codegen and the
// runtime both derive it from the graph and the ternary records with this one function,
// so the kernel indices agree without being stored in the blob.
//
// Every Quantize gets a kernel. When its input is the output of a Norm that nothing
// else reads, the kernel does that norm too and the Norm step is skipped: the
// normalized floats never reach memory.
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

struct NormQuantPlan {
  std::vector<NormQuantKernelKey> kernels;  // bitnetc_norm_quant_kernels[], in this order
  std::vector<int32_t> kernel_of_op;        // per op: the kernel of a Quantize, else -1
  std::vector<int32_t> fused_norm_of_op;    // per op: the Norm a Quantize absorbs, else -1
  std::vector<bool> skipped;                // per op: a Norm absorbed by its Quantize
};

inline NormQuantPlan plan_norm_quant(const ir::Graph& g, std::span<const TernaryRecord> ternary) {
  const size_t n_ops = g.ops.size();
  NormQuantPlan plan{
      {}, std::vector<int32_t>(n_ops, -1), std::vector<int32_t>(n_ops, -1), std::vector<bool>(n_ops, false)};
  // Each value's producer and reader count; each quantized value's padding and blocks
  // (codegen gives all readers of one value one layout).
  std::vector<int32_t> producer(g.values.size(), -1), readers(g.values.size(), 0);
  std::vector<std::pair<int64_t, int64_t>> layout(g.values.size(), {0, 0});
  for (size_t i = 0; i < n_ops; ++i) {
    const ir::Op& op = g.ops[i];
    if (op.output >= 0 && static_cast<size_t>(op.output) < g.values.size())
      producer[op.output] = static_cast<int32_t>(i);
    for (int v : op.inputs)
      if (v >= 0 && static_cast<size_t>(v) < g.values.size()) ++readers[v];
    if (op.kind == ir::OpKind::TernaryMatmul) {
      if (op.weight < 0 || static_cast<size_t>(op.weight) >= ternary.size() || op.inputs.empty())
        throw std::runtime_error("the embedded model is damaged (ternary matmul)");
      layout[op.inputs[0]] = {ternary[op.weight].K_padded, ternary[op.weight].act_block};
    }
  }
  std::map<NormQuantKernelKey, int32_t> index;
  for (size_t i = 0; i < n_ops; ++i) {
    const ir::Op& op = g.ops[i];
    if (op.kind != ir::OpKind::Quantize) continue;
    const int in = op.inputs.at(0);
    const auto [K_padded, block] = layout[op.output];
    if (K_padded == 0) continue;  // read by no ternary matmul: nothing to quantize for
    NormQuantKernelKey key{g.values[in].size, K_padded, block, -1, false, 0, static_cast<int32_t>(op.quant)};
    const int32_t p = producer[in];
    if (p >= 0 && g.ops[p].kind == ir::OpKind::Norm && readers[in] == 1 && in != g.logits) {
      const ir::Op& norm = g.ops[p];
      key.norm = static_cast<int32_t>(norm.norm);
      key.norm_weight = norm.weight >= 0;
      std::memcpy(&key.eps_bits, &norm.eps, 4);
      plan.fused_norm_of_op[i] = p;
      plan.skipped[p] = true;
    }
    const auto [it, added] = index.emplace(key, static_cast<int32_t>(plan.kernels.size()));
    if (added) plan.kernels.push_back(key);
    plan.kernel_of_op[i] = it->second;
  }
  return plan;
}

}  // namespace bitnetc::rt
