#include "cpu_program.h"

#include <stdexcept>

#include "fusion.h"

namespace bitnetc::codegen {

namespace {

// The index of `key` in `list`, appended when new (first appearance decides the order).
template <typename Key>
int32_t kernel_index(std::map<Key, int32_t>& index, std::vector<Key>& list, const Key& key) {
  const auto [it, added] = index.emplace(key, static_cast<int32_t>(list.size()));
  if (added) list.push_back(key);
  return it->second;
}

}  // namespace

CpuPlan plan_cpu(const ir::Graph& g, std::span<const rt::TernaryRecord> ternary) {
  const size_t n_ops = g.ops.size();
  CpuPlan plan;
  plan.steps.assign(n_ops, rt::CpuStep{-1, -1, 0, 0});
  // Each quantized value's padding and blocks (codegen gives all readers of one value
  // one layout).
  std::vector<std::pair<int64_t, int64_t>> layout(g.values.size(), {0, 0});
  for (size_t i = 0; i < n_ops; ++i) {
    const ir::Op& op = g.ops[i];
    if (op.kind == ir::OpKind::TernaryMatmul) {
      if (op.weight < 0 || static_cast<size_t>(op.weight) >= ternary.size() || op.inputs.empty())
        throw std::logic_error("plan_cpu: a ternary matmul without its record");
      layout[op.inputs[0]] = {ternary[op.weight].K_padded, ternary[op.weight].act_block};
    }
    if (op.kind == ir::OpKind::KQuantMatmul) layout[op.inputs[0]] = {g.values[op.inputs[0]].size, 256};
    if (op.kind == ir::OpKind::Q8_0Matmul)
      layout[op.inputs[0]] = {g.values[op.inputs[0]].size, Q8_0Weights::kBlock};
  }
  const Fusions fusions = plan_fusions(g);
  size_t gated = 0, adds = 0, ropes = 0;
  std::map<NormQuantKernelKey, int32_t> norm_quant_index;
  std::map<AttentionKernelKey, int32_t> attention_index;
  std::map<RopeKernelKey, int32_t> rope_index;
  std::map<KQuantKernelKey, int32_t> kquant_index, q8_0_index;
  for (size_t i = 0; i < n_ops; ++i) {
    const ir::Op& op = g.ops[i];
    rt::CpuStep& step = plan.steps[i];
    gated += fusions.gated_of_quantize[i] >= 0;
    adds += fusions.add_of_matmul[i] >= 0;
    ropes += fusions.ropes_of_attention[i].first >= 0;
    if (op.kind == ir::OpKind::Rope) {
      const RopeKernelKey key{g.values[op.output].size, op.head_dim, op.rope_style};
      step.kernel = kernel_index(rope_index, plan.rope, key);
      continue;
    }
    if (op.kind == ir::OpKind::Attention) {
      const AttentionKernelKey key{op.head_dim, op.n_head, op.n_head_kv, op.score_scale, op.softmax_sum};
      step.kernel = kernel_index(attention_index, plan.attention, key);
      continue;
    }
    if (op.kind == ir::OpKind::KQuantMatmul) {
      const KQuantKernelKey key{g.values[op.inputs[0]].size, g.values[op.output].size};
      step.kernel = kernel_index(kquant_index, plan.kquant, key);
      continue;
    }
    if (op.kind == ir::OpKind::Q8_0Matmul) {
      const KQuantKernelKey key{g.values[op.inputs[0]].size, g.values[op.output].size};
      step.kernel = kernel_index(q8_0_index, plan.q8_0, key);
      continue;
    }
    if (op.kind != ir::OpKind::Quantize) continue;
    const int in = op.inputs.at(0);
    const auto [K_padded, block] = layout[op.output];
    if (K_padded == 0) continue;  // read by no matmul: nothing to quantize for
    NormQuantKernelKey key{g.values[in].size, K_padded, block, std::nullopt, false, 0, op.quant};
    if (const int32_t p = fusions.norm_of_quantize[i]; p >= 0) {
      const ir::Op& norm = g.ops[p];
      key.norm = norm.norm;
      key.norm_weight = norm.weight >= 0;
      std::memcpy(&key.eps_bits, &norm.eps, 4);
      step.fused_norm = p;
      plan.steps[p].skipped = 1;
    }
    step.kernel = kernel_index(norm_quant_index, plan.norm_quant, key);
  }
  auto decline = [&](size_t n, const char* what) {
    if (n) plan.declined.push_back(std::to_string(n) + " " + what + " (no CPU kernel computes them together)");
  };
  decline(gated, "gated activations inside the quantize after them");
  decline(adds, "residual adds inside the matmul before them");
  decline(ropes, "q/k RoPEs inside their attention");
  return plan;
}

std::string print_cpu_plan(const ir::Graph& g, const CpuPlan& plan) {
  std::string s = "kernels: " + std::to_string(plan.norm_quant.size()) + " norm+quantize, " +
                  std::to_string(plan.attention.size()) + " attention, " + std::to_string(plan.rope.size()) + " rope" +
                  (plan.kquant.empty() ? "" : ", " + std::to_string(plan.kquant.size()) + " k-quant head") +
                  (plan.q8_0.empty() ? "" : ", " + std::to_string(plan.q8_0.size()) + " Q8_0 head") + "\n";
  for (size_t i = 0; i < plan.norm_quant.size(); ++i) {
    const NormQuantKernelKey& k = plan.norm_quant[i];
    s += "  norm_quant" + std::to_string(i) + ": n " + std::to_string(k.n) + ", padded " + std::to_string(k.K_padded) +
         ", blocks of " + std::to_string(k.block) + ", " +
         (k.norm ? std::string(ir::norm_name(*k.norm)) + (k.norm_weight ? " weighted" : "") : std::string("no norm")) +
         ", " + ir::act_quant_name(k.quant) + "\n";
  }
  for (size_t i = 0; i < plan.attention.size(); ++i) {
    const AttentionKernelKey& k = plan.attention[i];
    s += "  attention" + std::to_string(i) + ": " + std::to_string(k.n_head) + "/" + std::to_string(k.n_head_kv) +
         " heads of " + std::to_string(k.head_dim) + "\n";
  }
  for (size_t i = 0; i < plan.rope.size(); ++i) {
    const RopeKernelKey& k = plan.rope[i];
    s += "  rope" + std::to_string(i) + ": n " + std::to_string(k.n) + ", heads of " + std::to_string(k.head_dim) +
         ", " + ir::rope_style_name(k.style) + "\n";
  }
  for (size_t i = 0; i < plan.kquant.size(); ++i)
    s += "  kquant" + std::to_string(i) + ": " + std::to_string(plan.kquant[i].N) + " x " +
         std::to_string(plan.kquant[i].K) + ", Q8_K activations (ggml's vec_dot_q*_K_q8_K)\n";
  for (size_t i = 0; i < plan.q8_0.size(); ++i)
    s += "  q8_0_" + std::to_string(i) + ": " + std::to_string(plan.q8_0[i].N) + " x " +
         std::to_string(plan.q8_0[i].K) + ", Q8_0 activations (ggml's vec_dot_q8_0_q8_0)\n";
  s += "steps:\n";
  for (size_t i = 0; i < g.ops.size(); ++i) {
    const ir::Op& op = g.ops[i];
    const rt::CpuStep& st = plan.steps[i];
    const std::string out = "  %" + std::to_string(op.output);
    if (st.skipped) {
      s += out + " = " + ir::op_name(op.kind) + ": in the kernel of the quantize after it\n";
    } else if (op.kind == ir::OpKind::Attention && st.kernel >= 0) {
      s += out + " = attention (layer " + std::to_string(op.layer) + "): kernel attention" + std::to_string(st.kernel) +
           "\n";
    } else if (op.kind == ir::OpKind::KQuantMatmul && st.kernel >= 0) {
      s += out + " = kquant_matmul(%" + std::to_string(op.inputs[0]) + "): kernel kquant" + std::to_string(st.kernel) +
           "\n";
    } else if (op.kind == ir::OpKind::Q8_0Matmul && st.kernel >= 0) {
      s += out + " = q8_0_matmul(%" + std::to_string(op.inputs[0]) + "): kernel q8_0_" + std::to_string(st.kernel) +
           "\n";
    } else if (op.kind == ir::OpKind::Rope && st.kernel >= 0) {
      s += out + " = rope(%" + std::to_string(op.inputs[0]) + "): kernel rope" + std::to_string(st.kernel) + "\n";
    } else if (op.kind == ir::OpKind::Quantize && st.kernel >= 0) {
      const std::string in = std::to_string(op.inputs[0]);
      s += out + " = quantize(%" + in + "): kernel norm_quant" + std::to_string(st.kernel) +
           (st.fused_norm >= 0 ? ", with the norm that makes %" + in + " (one pass, %" + in + " never stored)"
                               : " (its input is not a norm's alone: quantized as it is)") +
           "\n";
    }
  }
  for (const std::string& d : plan.declined) s += "declined: " + d + "\n";
  return s;
}

}  // namespace bitnetc::codegen
