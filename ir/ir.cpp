#include "ir.h"

#include <cstdio>
#include <set>

namespace bitnetc::ir {

const char* act_quant_name(ActQuant q) {
  switch (q) {
    case ActQuant::PerTokenLlama2c: return "per_token_llama2c";
    case ActQuant::PerTokenHF: return "per_token_hf";
    case ActQuant::PerTokenBitnetCpp: return "per_token_bitnetcpp";
    case ActQuant::PerBlockQ8K: return "per_block_q8k";
    case ActQuant::PerRowQ8K64: return "per_row_q8k64";
    case ActQuant::PerBlockQ8_0: return "per_block_q8_0";
  }
  return "?";
}

bool act_quant_is_per_block(ActQuant q) { return q == ActQuant::PerBlockQ8K; }

int64_t act_quant_factor_count(ActQuant q, int64_t n) { return bitnetc_quant_factor_count(static_cast<int>(q), n); }

const char* norm_name(NormKind k) {
  switch (k) {
    case NormKind::RmsF32: return "rms_f32";
    case NormKind::RmsF64Sum: return "rms_f64sum";
    case NormKind::RmsLlama2c: return "rms_llama2c";
    case NormKind::BitNorm: return "bitnorm";
  }
  return "?";
}

const char* rope_style_name(RopeStyle s) { return s == RopeStyle::Neox ? "neox" : "interleaved"; }

const char* rope_freq_name(RopeFreq f) {
  switch (f) {
    case RopeFreq::PowfPerPair: return "powf";
    case RopeFreq::GgmlIterative: return "ggml_iterative";
    case RopeFreq::TorchInvFreq: return "torch_inv_freq";
  }
  return "?";
}

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::SiluDiv: return "silu";
    case Activation::SiluLlama2c: return "silu_llama2c";
    case Activation::Relu2: return "relu2";
  }
  return "?";
}

const char* dtype_name(DType t) { return t == DType::F32 ? "f32" : "q8"; }

const char* op_name(OpKind k) {
  switch (k) {
    case OpKind::Embedding: return "embedding";
    case OpKind::Norm: return "norm";
    case OpKind::Quantize: return "quantize";
    case OpKind::TernaryMatmul: return "ternary_matmul";
    case OpKind::DenseMatmul: return "dense_matmul";
    case OpKind::KQuantMatmul: return "kquant_matmul";
    case OpKind::Q8_0Matmul: return "q8_0_matmul";
    case OpKind::Rope: return "rope";
    case OpKind::Attention: return "attention";
    case OpKind::GatedAct: return "gated_act";
    case OpKind::Add: return "add";
  }
  return "?";
}

int Graph::add_value(std::string name, DType dtype, int64_t size) {
  values.push_back({std::move(name), dtype, size});
  return static_cast<int>(values.size() - 1);
}

int Graph::add_dense(DenseWeights w) {
  dense.push_back(std::move(w));
  return static_cast<int>(dense.size() - 1);
}

int Graph::add_ternary(std::string name, TernaryWeights w) {
  ternary.push_back({std::move(name), std::move(w)});
  return static_cast<int>(ternary.size() - 1);
}

namespace {

// Inputs each kind takes, with their dtypes.
std::vector<DType> input_types(OpKind k) {
  switch (k) {
    case OpKind::Embedding: return {};
    case OpKind::Norm:
    case OpKind::Quantize:
    case OpKind::DenseMatmul:
    case OpKind::Rope: return {DType::F32};
    case OpKind::TernaryMatmul:
    case OpKind::KQuantMatmul:
    case OpKind::Q8_0Matmul: return {DType::Q8};
    case OpKind::Attention: return {DType::F32, DType::F32, DType::F32};
    case OpKind::GatedAct:
    case OpKind::Add: return {DType::F32, DType::F32};
  }
  return {};
}

}  // namespace

std::vector<std::string> verify(const Graph& g) {
  std::vector<std::string> errors;
  std::vector<bool> defined(g.values.size(), false);
  std::vector<int> quant_of(g.values.size(), -1);  // the quantizer of each Q8 value
  auto err = [&](size_t i, const std::string& what) {
    errors.push_back("op " + std::to_string(i) + " (" + op_name(g.ops[i].kind) + "): " + what);
  };
  for (size_t i = 0; i < g.ops.size(); ++i) {
    const Op& op = g.ops[i];
    const auto types = input_types(op.kind);
    if (op.inputs.size() != types.size()) {
      err(i, "takes " + std::to_string(types.size()) + " inputs, has " + std::to_string(op.inputs.size()));
      continue;
    }
    bool ok = true;
    for (size_t k = 0; k < op.inputs.size(); ++k) {
      const int v = op.inputs[k];
      if (v < 0 || v >= static_cast<int>(g.values.size())) {
        err(i, "input " + std::to_string(k) + " is no value");
        ok = false;
        continue;
      }
      if (!defined[v]) {
        err(i, "uses %" + std::to_string(v) + " before it is defined");
        ok = false;
      }
      if (g.values[v].dtype != types[k]) {
        err(i, "input " + std::to_string(k) + " must be " + dtype_name(types[k]));
        ok = false;
      }
    }
    if (op.output < 0 || op.output >= static_cast<int>(g.values.size())) {
      err(i, "output is no value");
      continue;
    }
    if (defined[op.output]) err(i, "redefines %" + std::to_string(op.output));
    defined[op.output] = true;
    if (op.kind == OpKind::Quantize) quant_of[op.output] = static_cast<int>(op.quant);
    if (!ok) continue;
    const Value& out = g.values[op.output];
    auto in_size = [&](size_t k) { return g.values[op.inputs[k]].size; };
    auto dense = [&]() -> const DenseWeights* {
      if (op.weight < 0 || op.weight >= static_cast<int>(g.dense.size())) {
        err(i, "dense weight missing");
        return nullptr;
      }
      return &g.dense[op.weight];
    };
    switch (op.kind) {
      case OpKind::Embedding:
        if (auto* w = dense(); w && (w->rows != g.n_vocab || w->cols != out.size)) err(i, "table shape mismatch");
        break;
      case OpKind::Norm:
        if (out.size != in_size(0)) err(i, "output size differs from input");
        if (op.weight >= 0) {
          if (auto* w = dense(); w && w->cols * w->rows != out.size) err(i, "norm weight size mismatch");
        }
        if (op.norm == NormKind::BitNorm && op.weight >= 0) err(i, "bitnorm has no weight");
        break;
      case OpKind::Quantize:
        if (out.dtype != DType::Q8 || out.size != in_size(0)) err(i, "must produce q8 of the input size");
        if (act_quant_is_per_block(op.quant) && out.size % 256 != 0)
          err(i, "per-block quantization needs multiples of 256");
        if (op.quant == ActQuant::PerRowQ8K64 && out.size % 16 != 0) err(i, "Q8_K64 quantization needs multiples of 16");
        if (op.quant == ActQuant::PerBlockQ8_0 && out.size % kBitnetcQ8_0Block != 0)
          err(i, "Q8_0 quantization needs multiples of 32");
        if (static_cast<int>(op.quant) > static_cast<int>(ActQuant::PerBlockQ8_0)) err(i, "unknown activation quantizer");
        break;
      case OpKind::TernaryMatmul: {
        if (op.weight < 0 || op.weight >= static_cast<int>(g.ternary.size())) {
          err(i, "ternary weight missing");
          break;
        }
        const auto& w = g.ternary[op.weight].w;
        if (w.cols != in_size(0) || w.rows != out.size)
          err(i, "weight " + g.ternary[op.weight].name + " shape mismatch");
        if (quant_of[op.inputs[0]] == static_cast<int>(ActQuant::PerBlockQ8_0))
          err(i, "reads Q8_0 activations, which only a Q8_0 head reads");
        // ik's Q8_K64 dot multiplies by one weight scale per row, at the end.
        if (quant_of[op.inputs[0]] == static_cast<int>(ActQuant::PerRowQ8K64) && w.cols > 0 &&
            w.scale_block % static_cast<uint64_t>(w.cols) != 0)
          err(i, "weight " + g.ternary[op.weight].name +
                     " has a scale per block of its rows; Q8_K64 activations take one scale per row");
        break;
      }
      case OpKind::DenseMatmul:
        if (auto* w = dense(); w && (w->cols != in_size(0) || w->rows != out.size)) err(i, "weight shape mismatch");
        if (auto* w = dense(); w && w->format != DenseFormat::F32) err(i, "needs a float weight");
        break;
      case OpKind::KQuantMatmul:
        if (auto* w = dense(); w && (w->cols != in_size(0) || w->rows != out.size)) err(i, "weight shape mismatch");
        if (auto* w = dense(); w && (w->format != DenseFormat::KQuant || w->cols % KQuantWeights::kBlock != 0))
          err(i, "needs a k-quant weight with rows of whole 256-blocks");
        if (quant_of[op.inputs[0]] >= 0 && quant_of[op.inputs[0]] != static_cast<int>(ActQuant::PerBlockQ8K))
          err(i, "needs Q8_K activations");
        break;
      case OpKind::Q8_0Matmul:
        if (auto* w = dense(); w && (w->cols != in_size(0) || w->rows != out.size)) err(i, "weight shape mismatch");
        if (auto* w = dense(); w && (w->format != DenseFormat::Q8_0 || w->cols % Q8_0Weights::kBlock != 0))
          err(i, "needs a Q8_0 weight with rows of whole 32-blocks");
        if (quant_of[op.inputs[0]] >= 0 && quant_of[op.inputs[0]] != static_cast<int>(ActQuant::PerBlockQ8_0))
          err(i, "needs Q8_0 activations");
        break;
      case OpKind::Rope:
        if (op.head_dim <= 0 || op.head_dim % 2 || in_size(0) % op.head_dim) err(i, "bad head_dim");
        if (out.size != in_size(0)) err(i, "output size differs from input");
        break;
      case OpKind::Attention:
        if (op.layer < 0 || op.layer >= g.n_layer) err(i, "layer out of range");
        if (op.n_head <= 0 || op.n_head_kv <= 0 || op.n_head % op.n_head_kv) err(i, "bad head counts");
        if (in_size(0) != op.n_head * op.head_dim || in_size(1) != op.n_head_kv * op.head_dim ||
            in_size(2) != op.n_head_kv * op.head_dim || out.size != in_size(0))
          err(i, "q/k/v sizes do not match the head counts");
        if (op.head_dim != g.head_dim || op.n_head_kv != g.n_head_kv) err(i, "KV cache shape differs from the graph's");
        break;
      case OpKind::GatedAct:
      case OpKind::Add:
        if (in_size(0) != in_size(1) || out.size != in_size(0)) err(i, "operand sizes differ");
        break;
    }
  }
  if (g.logits < 0 || g.logits >= static_cast<int>(g.values.size()) || !defined[g.logits])
    errors.push_back("the logits value is not defined");
  else if (g.values[g.logits].size != g.n_vocab)
    errors.push_back("logits size differs from the vocabulary");
  return errors;
}

std::string print(const Graph& g) {
  std::string s;
  char buf[256];
  std::snprintf(buf, sizeof buf, "graph %s {vocab=%lld embd=%lld layers=%lld ctx=%lld kv_heads=%lld head_dim=%lld}\n",
                g.name.c_str(), (long long)g.n_vocab, (long long)g.n_embd, (long long)g.n_layer, (long long)g.n_ctx,
                (long long)g.n_head_kv, (long long)g.head_dim);
  s += buf;
  auto val = [&](int v) { return "%" + std::to_string(v); };
  for (const Op& op : g.ops) {
    const Value& out = g.values[op.output];
    std::string line = "  " + val(op.output) + ":" + dtype_name(out.dtype) + "[" + std::to_string(out.size) +
                       "] = " + op_name(op.kind) + "(";
    if (op.kind == OpKind::Embedding) line += "token";
    for (size_t k = 0; k < op.inputs.size(); ++k) line += (k ? ", " : "") + val(op.inputs[k]);
    line += ")";
    std::string attrs;
    auto add = [&](const std::string& a) { attrs += (attrs.empty() ? "" : " ") + a; };
    switch (op.kind) {
      case OpKind::Norm:
        add(norm_name(op.norm));
        if (op.norm != NormKind::BitNorm) {
          std::snprintf(buf, sizeof buf, "eps=%g", op.eps);
          add(buf);
        }
        break;
      case OpKind::Quantize: add(act_quant_name(op.quant)); break;
      case OpKind::Rope:
        add(rope_style_name(op.rope_style));
        add(rope_freq_name(op.rope_freq));
        std::snprintf(buf, sizeof buf, "theta=%g head_dim=%d", op.rope_theta, op.head_dim);
        add(buf);
        break;
      case OpKind::Attention:
        std::snprintf(buf, sizeof buf, "layer=%d heads=%d kv_heads=%d head_dim=%d %s %s", op.layer, op.n_head,
                      op.n_head_kv, op.head_dim, op.score_scale == ScoreScale::DivideSqrt ? "div_sqrt" : "mul_inv_sqrt",
                      op.softmax_sum == SoftmaxSum::F32Divide ? "softmax_f32" : "softmax_f64");
        add(buf);
        break;
      case OpKind::GatedAct: add(activation_name(op.act)); break;
      default: break;
    }
    if (op.kind == OpKind::TernaryMatmul) {
      const auto& t = g.ternary[op.weight];
      std::snprintf(buf, sizeof buf, "w=%s[%lldx%lld] scales=%zu", t.name.c_str(), (long long)t.w.rows,
                    (long long)t.w.cols, t.w.scales.size());
      add(buf);
    } else if (op.weight >= 0) {
      const auto& d = g.dense[op.weight];
      std::snprintf(buf, sizeof buf, "w=%s[%lldx%lld]%s", d.name.c_str(), (long long)d.rows, (long long)d.cols,
                    d.format == DenseFormat::KQuant ? " kquant" : d.format == DenseFormat::Q8_0 ? " q8_0" : "");
      add(buf);
    }
    if (!attrs.empty()) line += " {" + attrs + "}";
    s += line + "\n";
  }
  s += "  return " + val(g.logits) + "\n";
  return s;
}

}  // namespace bitnetc::ir
