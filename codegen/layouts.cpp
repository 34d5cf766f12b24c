#include "layouts.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <stdexcept>

namespace bitnetc::codegen {

TensorType tensor_type_of(rt::TernaryLayout l) {
  switch (l) {
    case rt::TernaryLayout::TL1: return TensorType::TL1;
    case rt::TernaryLayout::TL2: return TensorType::TL2;
    case rt::TernaryLayout::I2S:
    case rt::TernaryLayout::Cuda: break;
  }
  return TensorType::I2_S;
}

namespace {

// Microseconds for one decoded plus one prefilled token through a K x N matmul in
// `layout`, from the nearest measured shape scaled by the weight count; infinity when
// the target has no figure for the layout.
double estimate_us(const TargetInfo& target, rt::TernaryLayout layout, int64_t K, int64_t N) {
  const LayoutFigure* best = nullptr;
  double best_distance = std::numeric_limits<double>::infinity();
  for (const LayoutFigure& f : target.layout_figures) {
    if (f.layout != tensor_type_of(layout)) continue;
    const double distance = std::fabs(std::log(double(K) / f.K)) + std::fabs(std::log(double(N) / f.N));
    if (distance < best_distance) {
      best_distance = distance;
      best = &f;
    }
  }
  if (!best) return std::numeric_limits<double>::infinity();
  return (best->gemv_us + best->gemm_us_per_token) * (double(K) * N) / (double(best->K) * best->N);
}

std::string fixed(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.0f", v);
  return b;
}

}  // namespace

LayoutRequest parse_layout_request(const std::string& s) {
  if (s == "auto" || s.empty()) return LayoutRequest::Auto;
  if (s == "i2_s") return LayoutRequest::I2S;
  if (s == "tl1") return LayoutRequest::TL1;
  if (s == "tl2") return LayoutRequest::TL2;
  throw std::invalid_argument("--layout: unknown layout \"" + s + "\" (auto, i2_s, tl1 or tl2)");
}

const char* layout_label(rt::TernaryLayout l) {
  switch (l) {
    case rt::TernaryLayout::TL1: return "tl1";
    case rt::TernaryLayout::TL2: return "tl2";
    case rt::TernaryLayout::Cuda: return "i2_cuda";
    case rt::TernaryLayout::I2S: break;
  }
  return "i2_s";
}

ir::ActQuant act_quant_of(const ir::Graph& g, const ir::Op& matmul) {
  for (const ir::Op& q : g.ops)
    if (q.output == matmul.inputs[0]) return q.quant;
  throw std::logic_error("ternary matmul without a quantize op");
}

int64_t act_block_of(const ir::Graph& g, const ir::Op& matmul, int64_t K) {
  return ir::act_quant_is_per_block(act_quant_of(g, matmul)) ? 256 : K;
}

namespace {

// Whether a stored ternary type can hold more than one scale per tensor (llama.cpp's TQ
// types one per 256 weights, ik_llama.cpp's IQ*_BN one per row).
bool may_have_several_scales(TensorType t) {
  return t == TensorType::TQ1_0 || t == TensorType::TQ2_0 || t == TensorType::IQ1_BN || t == TensorType::IQ2_BN;
}

}  // namespace

std::vector<LayoutChoice> choose_layouts(const ir::Graph& g, const TargetInfo& target, LayoutRequest request,
                                         const ImportedModel* model) {
  if (target.backend == Backend::Cuda) {  // one layout: the dp4a kernels' 2-bit words
    if (request == LayoutRequest::TL1 || request == LayoutRequest::TL2)
      throw std::invalid_argument(std::string("--layout=") + (request == LayoutRequest::TL1 ? "tl1" : "tl2") +
                                  ": target " + target.name + " has no lookup-table kernels (its layout is i2_cuda: "
                                  "2-bit codes in 16-weight words for dp4a; use --layout=auto)");
    return std::vector<LayoutChoice>(
        g.ternary.size(), {rt::TernaryLayout::Cuda,
                           "the CUDA kernels' layout: 2-bit codes in 16-weight "
                           "words, chunk-major (coalesced dp4a to decode, int8 tensor cores for prefill chunks)"});
  }
  // Groups: the ternary weights read by matmuls of the same activations, in graph order.
  std::map<int32_t, std::vector<const ir::Op*>> readers;
  for (const ir::Op& op : g.ops)
    if (op.kind == ir::OpKind::TernaryMatmul) readers[op.inputs[0]].push_back(&op);

  std::vector<LayoutChoice> choice(g.ternary.size(), {rt::TernaryLayout::I2S, ""});
  const std::vector<rt::TernaryLayout>& kernels = target.layouts;
  for (const auto& [value, ops] : readers) {
    const TernaryWeights& first = g.ternary[ops.front()->weight].w;
    const bool q8k64 = act_quant_of(g, *ops.front()) == ir::ActQuant::PerRowQ8K64;
    const bool per_token = !q8k64 && act_block_of(g, *ops.front(), first.cols) == first.cols;
    std::string several_scales;  // a tensor of the group whose type can hold several scales
    for (const ir::Op* op : ops)
      if (const ModelTensor* t = model ? model->find(g.ternary[op->weight].name) : nullptr;
          t && may_have_several_scales(t->type))
        several_scales = t->name + " (" + type_name(t->type) + ")";
    LayoutChoice c{rt::TernaryLayout::I2S, ""};
    if (request != LayoutRequest::Auto) {
      c.layout = request == LayoutRequest::TL1   ? rt::TernaryLayout::TL1
                 : request == LayoutRequest::TL2 ? rt::TernaryLayout::TL2
                                                 : rt::TernaryLayout::I2S;
      const std::string& name = g.ternary[ops.front()->weight].name;
      bool has_kernel = false;
      for (rt::TernaryLayout l : kernels) has_kernel |= l == c.layout;
      if (!has_kernel)
        throw std::invalid_argument(std::string("--layout=") + layout_label(c.layout) + ": target " + target.name +
                                    " has no " + layout_label(c.layout) +
                                    " kernels (TL1 is for ARM and wasm32-simd targets, TL2 " +
                                    "for x86 ones; i2_s is everywhere)");
      if (c.layout != rt::TernaryLayout::I2S && !per_token)
        throw std::invalid_argument(std::string("--layout=") + layout_label(c.layout) + ": " + name +
                                    (q8k64 ? " reads ik_llama.cpp's Q8_K64 activations"
                                           : " reads per-block (Q8_K) activations") +
                                    ", which the lookup-table kernels do not take; use --layout=i2_s or auto");
      c.reason = std::string("requested (--layout=") + layout_label(c.layout) + ")";
    } else if (!per_token) {
      c.reason = std::string("auto: ") + (q8k64 ? "ik_llama.cpp's Q8_K64" : "per-block (Q8_K)") +
                 " activations; the lookup-table layouts take per-token ones only";
    } else if (!several_scales.empty()) {
      c.reason = "auto: " + several_scales +
                 " can hold a scale per row or block; the lookup-table layouts take one per tensor";
    } else if (target.layout_figures.empty()) {
      c.layout = kernels.front();
      c.reason = std::string("auto: the target's preferred layout, ") + layout_label(c.layout) +
                 " (compiler/targets.cpp says why); no per-shape figures for " + target.name;
    } else {
      double best = std::numeric_limits<double>::infinity();
      std::string figures;
      for (rt::TernaryLayout l : kernels) {
        double us = 0;
        for (const ir::Op* op : ops) {
          const TernaryWeights& w = g.ternary[op->weight].w;
          us += estimate_us(target, l, w.cols, w.rows);
        }
        if (std::isinf(us)) continue;
        figures += std::string(figures.empty() ? "" : ", ") + layout_label(l) + " " + fixed(us) + " us";
        if (us < best) {
          best = us;
          c.layout = l;
        }
      }
      c.reason = "auto: least measured time for this group's " + std::to_string(ops.size()) +
                 " matmul(s), one decoded + one prefilled token (" + figures + ")";
    }
    for (const ir::Op* op : ops) choice[op->weight] = c;
  }
  return choice;
}

}  // namespace bitnetc::codegen
