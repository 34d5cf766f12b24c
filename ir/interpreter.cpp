#include "interpreter.h"

#include "numerics.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

namespace bitnetc::ir {

// The arithmetic itself lives in numerics.h, shared with the generated CUDA kernels (the
// kinds of ir.h take their values from there).

void ternary_matmul(const TernaryWeights& w, ActQuant quant, const int8_t* q, const float* d, float* y) {
  if (quant == ActQuant::PerRowQ8K64) {
    ternary_matmul_q8k64(w, q, d, y);
    return;
  }
  const int64_t act_block = act_quant_is_per_block(quant) ? 256 : w.cols;
  const int64_t block = std::min<int64_t>(act_block, static_cast<int64_t>(std::min<uint64_t>(w.scale_block, w.cols)));
  for (int64_t r = 0; r < w.rows; ++r) {
    const int8_t* codes = &w.codes[r * w.cols];
    float acc = 0;
    for (int64_t b0 = 0; b0 < w.cols; b0 += block) {
      int32_t dot = 0;
      for (int64_t c = b0; c < b0 + block; ++c) dot += codes[c] * q[c];
      acc += static_cast<float>(dot) * (d[b0 / act_block] * w.scale_of(r, b0));
    }
    y[r] = acc;
  }
}

void ternary_matmul_q8k64(const TernaryWeights& w, const int8_t* q, const float* d, float* y) {
  constexpr int G = kBitnetcQ8K64Groups;
  int q_sum[G] = {};
  for (int64_t c = 0; c < w.cols; ++c) q_sum[bitnetc_q8k64_group(c)] += q[c];
  for (int64_t r = 0; r < w.rows; ++r) {
    const int8_t* codes = &w.codes[r * w.cols];
    int code_sum[G] = {};
    for (int64_t c = 0; c < w.cols; ++c) code_sum[bitnetc_q8k64_group(c)] += (codes[c] + 1) * q[c];
    float f[G];
    for (int g = 0; g < G; ++g) f[g] = bitnetc_q8k64_group_term(d[g], code_sum[g], q_sum[g]);
    y[r] = bitnetc_q8k64_combine(f, w.scale_of(r, 0));
  }
}

void dense_matmul(const float* w, int64_t rows, int64_t cols, const float* x, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = &w[r * cols];
    float acc = 0;
    for (int64_t c = 0; c < cols; ++c) acc += row[c] * x[c];
    y[r] = acc;
  }
}

void kquant_matmul(const KQuantWeights& w, const int8_t* x, const float* xd, float* y) {
  for (int64_t r = 0; r < w.rows; ++r) y[r] = kquant_dot(w, r, x, xd);
}

void q8_0_matmul(const Q8_0Weights& w, const int8_t* x, const float* xd, float* y) {
  for (int64_t r = 0; r < w.rows; ++r) y[r] = q8_0_dot(w, r, x, xd);
}

float q8_0_dot(const Q8_0Weights& w, int64_t r, const int8_t* x, const float* xd) {
  constexpr int B = Q8_0Weights::kBlock, L = kBitnetcQ8_0Lanes;
  const int64_t blocks = w.cols / B;
  const int8_t* q = &w.q[r * w.cols];
  float acc[L] = {};
  for (int64_t b = 0; b < blocks; ++b) {
    const float dd = w.d[r * blocks + b] * xd[b];
    for (int j = 0; j < L; ++j) {
      int32_t sum = 0;
      for (int64_t c = b * B + 4 * j; c < b * B + 4 * j + 4; ++c) sum += q[c] * x[c];
      acc[j] = bitnetc_q8_0_lane_step(dd, sum, acc[j]);
    }
  }
  return bitnetc_q8_0_hsum(acc);
}

void embedding_row(const DenseWeights& w, int32_t token, float* out) {
  if (w.format == DenseFormat::KQuant)
    for (int64_t c = 0; c < w.cols; ++c) out[c] = w.kquant.value(token, c);
  else if (w.format == DenseFormat::Q8_0)
    for (int64_t c = 0; c < w.cols; ++c) out[c] = w.q8_0.value(token, c);
  else
    std::copy_n(w.data.begin() + static_cast<int64_t>(token) * w.cols, w.cols, out);
}

void quantize_activations(ActQuant kind, const float* x, int64_t n, int8_t* q, float* d) {
  bitnetc_quantize(static_cast<int>(kind), x, n, reinterpret_cast<signed char*>(q), d);
}

float kquant_dot(const KQuantWeights& w, int64_t r, const int8_t* x, const float* xd) {
  constexpr int B = KQuantWeights::kBlock, G = KQuantWeights::kGroup;
  const int64_t blocks = w.cols / B;
  const int8_t* q = &w.q[r * w.cols];
  const int8_t* sc = &w.sc[r * (w.cols / G)];
  const int8_t* m = &w.m[r * (w.cols / G)];
  float acc = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    int32_t isum = 0, imin = 0;
    for (int64_t c = b * B; c < (b + 1) * B; ++c) {
      isum += sc[c / G] * q[c] * x[c];
      imin += m[c / G] * x[c];
    }
    acc = acc + (w.d[r * blocks + b] * xd[b]) * static_cast<float>(isum);
    acc = acc - (w.dmin[r * blocks + b] * xd[b]) * static_cast<float>(imin);
  }
  return acc;
}

void rms_norm(NormKind kind, const float* x, int64_t n, const float* w, float eps, float* y) {
  bitnetc_rms_norm(static_cast<int>(kind), x, n, w, eps, y);
}

void rope_cos_sin(const Op& op, int32_t pos, float* cos, float* sin) {
  const int d = op.head_dim, half = d / 2;
  float ggml_theta = static_cast<float>(pos);
  const float ggml_theta_scale = bitnetc_powf(op.rope_theta, -2.0f / static_cast<float>(d));
  for (int m = 0; m < half; ++m) {
    float angle;
    switch (op.rope_freq) {
      case RopeFreq::PowfPerPair:
        angle = static_cast<float>(pos) * (1.0f / bitnetc_powf(op.rope_theta, static_cast<float>(2 * m) / d));
        break;
      case RopeFreq::TorchInvFreq: {
        const float inv = 1.0f / bitnetc_powf(op.rope_theta, static_cast<float>(2 * m) / static_cast<float>(d));
        angle = static_cast<float>(pos) * inv;
        break;
      }
      case RopeFreq::GgmlIterative:
      default:
        angle = ggml_theta;
        ggml_theta *= ggml_theta_scale;
        break;
    }
    // (numerics.h's sinf, cosf and powf: glibc's bits, on every libm.)
    cos[m] = bitnetc_cosf(angle);
    sin[m] = bitnetc_sinf(angle);
  }
}

void rope_rotate(RopeStyle style, int head_dim, const float* cos, const float* sin, float* x, int64_t n) {
  for (int64_t h = 0; h < n / head_dim; ++h)
    bitnetc_rope_rotate_head(static_cast<int>(style), head_dim, cos, sin, x + h * head_dim);
}

void attend_head(const Op& op, int h, const float* q, const float* k_cache, const float* v_cache, int kv_dim,
                 int32_t pos, float* scores, float* out) {
  bitnetc_attend_head(static_cast<int>(op.score_scale), static_cast<int>(op.softmax_sum), op.head_dim, op.n_head,
                      op.n_head_kv, h, q, k_cache, v_cache, kv_dim, pos, scores, out);
}

void attend(const Op& op, const float* q, const float* k_cache, const float* v_cache, int kv_dim, int32_t pos,
            float* scores, float* out) {
  for (int h = 0; h < op.n_head; ++h) attend_head(op, h, q, k_cache, v_cache, kv_dim, pos, scores, out);
}

float activate(Activation a, float g) { return bitnetc_activate(static_cast<int>(a), g); }

Interpreter::Interpreter(const Graph& g, TernaryMatmulFn matmul, DenseMatmulFn dense)
    : g_(g), matmul_(std::move(matmul)), dense_(std::move(dense)) {
  const auto errors = verify(g);
  if (!errors.empty()) throw std::invalid_argument("invalid graph: " + errors[0]);
  f32_.resize(g.values.size());
  q8_.resize(g.values.size());
  for (size_t v = 0; v < g.values.size(); ++v) {
    if (g.values[v].dtype == DType::F32) f32_[v].resize(g.values[v].size);
  }
  for (const Op& op : g.ops)
    if (op.kind == OpKind::Quantize) {
      Q8& q = q8_[op.output];
      const int64_t n = g.values[op.output].size;
      q.q.resize(n);
      q.quant = op.quant;
      q.d.resize(static_cast<size_t>(act_quant_factor_count(op.quant, n)));
    }
  k_cache_.assign(g.n_layer, std::vector<float>(g.n_ctx * g.kv_dim()));
  v_cache_.assign(g.n_layer, std::vector<float>(g.n_ctx * g.kv_dim()));
}

const std::vector<float>& Interpreter::forward(int32_t token, int32_t pos) {
  if (token < 0 || token >= g_.n_vocab) throw std::out_of_range("token id " + std::to_string(token) + " out of range");
  if (pos < 0 || pos >= g_.n_ctx)
    throw std::out_of_range("position " + std::to_string(pos) + " is outside the context");
  if (pos > next_pos_) throw std::logic_error("positions must be fed in order");
  next_pos_ = pos + 1;

  for (size_t op_index = 0; op_index < g_.ops.size(); ++op_index) {
    const Op& op = g_.ops[op_index];
    const int64_t n = g_.values[op.output].size;
    std::vector<float>* out = &f32_[op.output];
    auto in = [&](size_t k) -> const std::vector<float>& { return f32_[op.inputs[k]]; };
    switch (op.kind) {
      case OpKind::Embedding: embedding_row(g_.dense[op.weight], token, out->data()); break;
      case OpKind::Norm:
        rms_norm(op.norm, in(0).data(), n, op.weight >= 0 ? g_.dense[op.weight].data.data() : nullptr, op.eps,
                 out->data());
        break;
      case OpKind::Quantize: {
        Q8& q = q8_[op.output];
        quantize_activations(op.quant, in(0).data(), n, q.q.data(), q.d.data());
        break;
      }
      case OpKind::TernaryMatmul: {
        const Q8& x = q8_[op.inputs[0]];
        if (matmul_) {
          matmul_(op_index, x.q.data(), x.d.data(), out->data());
          break;
        }
        ternary_matmul(g_.ternary[op.weight].w, x.quant, x.q.data(), x.d.data(), out->data());
        break;
      }
      case OpKind::DenseMatmul: {
        if (dense_) {
          dense_(op_index, in(0).data(), out->data());
          break;
        }
        const DenseWeights& w = g_.dense[op.weight];
        dense_matmul(w.data.data(), w.rows, w.cols, in(0).data(), out->data());
        break;
      }
      case OpKind::KQuantMatmul: {
        const Q8& x = q8_[op.inputs[0]];
        if (x.quant != ActQuant::PerBlockQ8K) throw std::logic_error("a k-quant matmul reads Q8_K activations");
        kquant_matmul(g_.dense[op.weight].kquant, x.q.data(), x.d.data(), out->data());
        break;
      }
      case OpKind::Q8_0Matmul: {
        const Q8& x = q8_[op.inputs[0]];
        if (x.quant != ActQuant::PerBlockQ8_0) throw std::logic_error("a Q8_0 matmul reads Q8_0 activations");
        q8_0_matmul(g_.dense[op.weight].q8_0, x.q.data(), x.d.data(), out->data());
        break;
      }
      case OpKind::Rope: {
        *out = in(0);
        std::vector<float> c(op.head_dim / 2), sn(op.head_dim / 2);
        rope_cos_sin(op, pos, c.data(), sn.data());
        rope_rotate(op.rope_style, op.head_dim, c.data(), sn.data(), out->data(), n);
        break;
      }
      case OpKind::Attention: {
        const int kv_dim = g_.kv_dim();
        float* kc = k_cache_[op.layer].data();
        float* vc = v_cache_[op.layer].data();
        std::copy(in(1).begin(), in(1).end(), kc + static_cast<int64_t>(pos) * kv_dim);
        std::copy(in(2).begin(), in(2).end(), vc + static_cast<int64_t>(pos) * kv_dim);
        std::vector<float> scores(pos + 1);
        attend(op, in(0).data(), kc, vc, kv_dim, pos, scores.data(), out->data());
        break;
      }
      case OpKind::GatedAct:
        for (int64_t i = 0; i < n; ++i) (*out)[i] = activate(op.act, in(0)[i]) * in(1)[i];
        break;
      case OpKind::Add:
        for (int64_t i = 0; i < n; ++i) (*out)[i] = in(0)[i] + in(1)[i];
        break;
    }
  }
  return f32_[g_.logits];
}

}  // namespace bitnetc::ir
