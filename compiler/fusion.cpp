#include "fusion.h"

namespace bitnetc {

int32_t ValueUses::sole_producer(const ir::Graph& g, int v, ir::OpKind kind) const {
  if (v < 0 || static_cast<size_t>(v) >= producer.size() || v == g.logits || readers[v] != 1) return -1;
  const int32_t p = producer[v];
  return p >= 0 && g.ops[p].kind == kind ? p : -1;
}

ValueUses value_uses(const ir::Graph& g) {
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

Fusions plan_fusions(const ir::Graph& g) {
  const size_t n_ops = g.ops.size();
  const ValueUses uses = value_uses(g);
  Fusions f{std::vector<int32_t>(n_ops, -1), std::vector<int32_t>(n_ops, -1), std::vector<int32_t>(n_ops, -1),
            std::vector<std::pair<int32_t, int32_t>>(n_ops, {-1, -1})};
  for (size_t i = 0; i < n_ops; ++i) {
    const ir::Op& op = g.ops[i];
    if (op.kind == ir::OpKind::Quantize && !op.inputs.empty()) {
      const int32_t norm = uses.sole_producer(g, op.inputs[0], ir::OpKind::Norm);
      f.norm_of_quantize[i] = norm;
      const int src = norm >= 0 ? g.ops[norm].inputs[0] : op.inputs[0];
      f.gated_of_quantize[i] = uses.sole_producer(g, src, ir::OpKind::GatedAct);
    } else if (op.kind == ir::OpKind::Add) {
      for (int side = 0; side < 2; ++side) {
        const int32_t p = uses.sole_producer(g, op.inputs[side], ir::OpKind::TernaryMatmul);
        // The residual must exist when the matmul runs.
        if (p >= 0 && f.add_of_matmul[p] < 0 && uses.producer[op.inputs[1 - side]] < p) {
          f.add_of_matmul[p] = static_cast<int32_t>(i);
          break;
        }
      }
    } else if (op.kind == ir::OpKind::Attention) {
      const int32_t rq = uses.sole_producer(g, op.inputs[0], ir::OpKind::Rope);
      const int32_t rk = uses.sole_producer(g, op.inputs[1], ir::OpKind::Rope);
      if (rq >= 0 && rk >= 0 && g.ops[rq].head_dim == op.head_dim && g.ops[rk].head_dim == op.head_dim &&
          g.ops[rq].rope_style == g.ops[rk].rope_style)
        f.ropes_of_attention[i] = {rq, rk};
    }
  }
  return f;
}

}  // namespace bitnetc
