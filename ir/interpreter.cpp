#include "interpreter.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

namespace bitnetc::ir {

namespace {

// ggml's nearest_int: round half to even for |x| < 2^22 via the 1.5*2^23 trick.
int ggml_nearest_int(float f) {
  float v = f + 12582912.f;
  int32_t i;
  std::memcpy(&i, &v, 4);
  return (i & 0x007fffff) - 0x00400000;
}

}  // namespace

void quantize_activations(ActQuant kind, const float* x, int64_t n, int8_t* q, float* d) {
  switch (kind) {
    case ActQuant::PerTokenLlama2c: {
      float m = 0;
      for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
      const float a = static_cast<float>(static_cast<double>(m) / 127.0);
      if (a == 0) {  // all zeros: runbit.c would divide by zero; the only sane result is 0
        std::fill(q, q + n, 0);
        d[0] = 0;
        return;
      }
      const float inv = static_cast<float>(1.0 / static_cast<double>(a));
      for (int64_t i = 0; i < n; ++i) q[i] = static_cast<int8_t>(std::round(static_cast<double>(x[i] * inv)));
      d[0] = a;
      return;
    }
    case ActQuant::PerTokenHF: {
      float amax = 0;
      for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
      amax = std::max(amax, 1e-5f);
      const float s = (1.0f / amax) * 127.0f;  // eager PyTorch: reciprocal, then * 127
      for (int64_t i = 0; i < n; ++i) q[i] = static_cast<int8_t>(std::clamp(std::nearbyint(x[i] * s), -128.0f, 127.0f));
      d[0] = 1.0f / s;
      return;
    }
    case ActQuant::PerTokenBitnetCpp: {
      double m = 1e-5;
      for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(static_cast<double>(x[i])));
      const float s = static_cast<float>(127.0 / m);
      for (int64_t i = 0; i < n; ++i)
        q[i] = static_cast<int8_t>(std::clamp(std::round(static_cast<double>(x[i] * s)), -128.0, 127.0));
      d[0] = 1.0f / s;
      return;
    }
    case ActQuant::PerBlockQ8K: {
      for (int64_t b = 0; b < n / 256; ++b) {
        const float* xb = x + 256 * b;
        float amax = 0, max = 0;
        for (int j = 0; j < 256; ++j) {
          const float ax = std::fabs(xb[j]);
          if (ax > amax) {
            amax = ax;
            max = xb[j];
          }
        }
        if (amax == 0) {
          std::fill(q + 256 * b, q + 256 * (b + 1), 0);
          d[b] = 0;
          continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < 256; ++j)
          q[256 * b + j] = static_cast<int8_t>(std::min(127, ggml_nearest_int(iscale * xb[j])));
        d[b] = 1 / iscale;
      }
      return;
    }
  }
}

void rms_norm(NormKind kind, const float* x, int64_t n, const float* w, float eps, float* y) {
  switch (kind) {
    case NormKind::RmsF32: {
      float ss = 0;
      for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
      const float r = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
      for (int64_t i = 0; i < n; ++i) y[i] = w ? w[i] * (x[i] * r) : x[i] * r;
      return;
    }
    case NormKind::RmsF64Sum: {
      double ss = 0;
      for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i] * x[i]);
      const float mean = static_cast<float>(ss / static_cast<double>(n));
      const float scale = 1.0f / std::sqrt(mean + eps);
      for (int64_t i = 0; i < n; ++i) y[i] = w ? (x[i] * scale) * w[i] : x[i] * scale;
      return;
    }
    case NormKind::RmsLlama2c: {
      float ss = 0;
      for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
      ss /= static_cast<float>(n);
      ss += eps;
      const float r = 1.0f / std::sqrt(ss);
      for (int64_t i = 0; i < n; ++i) y[i] = w ? w[i] * (r * x[i]) : r * x[i];
      return;
    }
    case NormKind::BitNorm: {
      // runbit.c: F.normalize(x) * n^-1/2 == x / (n * rms(x)); no epsilon.
      float ss = 0;
      for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
      ss /= static_cast<float>(n);
      float r = 1.0f / std::sqrt(ss);
      r /= static_cast<float>(n);
      for (int64_t i = 0; i < n; ++i) y[i] = x[i] * r;
      return;
    }
  }
}

void rope_cos_sin(const Op& op, int32_t pos, float* cos, float* sin) {
  const int d = op.head_dim, half = d / 2;
  float ggml_theta = static_cast<float>(pos);
  const float ggml_theta_scale = std::pow(op.rope_theta, -2.0f / static_cast<float>(d));
  for (int m = 0; m < half; ++m) {
    float angle;
    switch (op.rope_freq) {
      case RopeFreq::PowfPerPair:
        angle = static_cast<float>(pos) * (1.0f / std::pow(op.rope_theta, static_cast<float>(2 * m) / d));
        break;
      case RopeFreq::TorchInvFreq: {
        const float inv = 1.0f / std::pow(op.rope_theta, static_cast<float>(2 * m) / static_cast<float>(d));
        angle = static_cast<float>(pos) * inv;
        break;
      }
      case RopeFreq::GgmlIterative:
      default:
        angle = ggml_theta;
        ggml_theta *= ggml_theta_scale;
        break;
    }
    cos[m] = std::cos(angle);
    sin[m] = std::sin(angle);
  }
}

void rope_rotate(RopeStyle style, int head_dim, const float* cos, const float* sin, float* x, int64_t n) {
  const int half = head_dim / 2;
  for (int64_t h = 0; h < n / head_dim; ++h) {
    float* v = x + h * head_dim;
    for (int m = 0; m < half; ++m) {
      const int i0 = style == RopeStyle::Neox ? m : 2 * m;
      const int i1 = style == RopeStyle::Neox ? m + half : 2 * m + 1;
      const float x0 = v[i0], x1 = v[i1];
      v[i0] = x0 * cos[m] - x1 * sin[m];
      v[i1] = x0 * sin[m] + x1 * cos[m];
    }
  }
}

void attend_head(const Op& op, int h, const float* q, const float* k_cache, const float* v_cache, int kv_dim,
                 int32_t pos, float* scores, float* out) {
  const int d = op.head_dim, group = op.n_head / op.n_head_kv;
  const float sqrt_d = std::sqrt(static_cast<float>(d));
  const float inv_sqrt_d = 1.0f / sqrt_d;
  const int kvh = h / group;
  float* p = scores;
  float mx = -INFINITY;
  for (int t = 0; t <= pos; ++t) {
    const float* k = k_cache + static_cast<int64_t>(t) * kv_dim + kvh * d;
    float s = 0;
    for (int i = 0; i < d; ++i) s += q[h * d + i] * k[i];
    s = op.score_scale == ScoreScale::DivideSqrt ? s / sqrt_d : s * inv_sqrt_d;
    p[t] = s;
    mx = std::max(mx, s);
  }
  if (op.softmax_sum == SoftmaxSum::F32Divide) {
    float sum = 0;
    for (int t = 0; t <= pos; ++t) sum += (p[t] = std::exp(p[t] - mx));
    for (int t = 0; t <= pos; ++t) p[t] /= sum;
  } else {
    double sum = 0;
    for (int t = 0; t <= pos; ++t) sum += static_cast<double>(p[t] = std::exp(p[t] - mx));
    const float inv = static_cast<float>(1.0 / sum);
    for (int t = 0; t <= pos; ++t) p[t] *= inv;
  }
  float* o = out + h * d;
  std::fill(o, o + d, 0.0f);
  for (int t = 0; t <= pos; ++t) {
    const float* v = v_cache + static_cast<int64_t>(t) * kv_dim + kvh * d;
    for (int i = 0; i < d; ++i) o[i] += p[t] * v[i];
  }
}

void attend(const Op& op, const float* q, const float* k_cache, const float* v_cache, int kv_dim, int32_t pos,
            float* scores, float* out) {
  for (int h = 0; h < op.n_head; ++h) attend_head(op, h, q, k_cache, v_cache, kv_dim, pos, scores, out);
}

float activate(Activation a, float g) {
  switch (a) {
    case Activation::SiluDiv: return g / (1.0f + std::exp(-g));
    case Activation::SiluLlama2c: return g * (1.0f / (1.0f + std::exp(-g)));
    case Activation::Relu2: {
      const float r = std::max(g, 0.0f);
      return r * r;
    }
  }
  return g;
}

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
      q.block = act_quant_is_per_block(op.quant) ? 256 : n;
      q.d.resize(n / q.block);
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
      case OpKind::Embedding: {
        const DenseWeights& w = g_.dense[op.weight];
        std::copy_n(w.data.begin() + static_cast<int64_t>(token) * w.cols, w.cols, out->begin());
        break;
      }
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
        const TernaryWeights& w = g_.ternary[op.weight].w;
        // Blocks are where either the activation's or the weight's scale changes.
        const int64_t block =
            std::min<int64_t>(x.block, static_cast<int64_t>(std::min<uint64_t>(w.scale_block, w.cols)));
        for (int64_t r = 0; r < w.rows; ++r) {
          const int8_t* codes = &w.codes[r * w.cols];
          float y = 0;
          for (int64_t b0 = 0; b0 < w.cols; b0 += block) {
            int32_t acc = 0;
            for (int64_t c = b0; c < b0 + block; ++c) acc += codes[c] * x.q[c];
            y += static_cast<float>(acc) * (x.d[b0 / x.block] * w.scale_of(r, b0));
          }
          (*out)[r] = y;
        }
        break;
      }
      case OpKind::DenseMatmul: {
        if (dense_) {
          dense_(op_index, in(0).data(), out->data());
          break;
        }
        const DenseWeights& w = g_.dense[op.weight];
        const float* x = in(0).data();
        for (int64_t r = 0; r < w.rows; ++r) {
          const float* row = &w.data[r * w.cols];
          float y = 0;
          for (int64_t c = 0; c < w.cols; ++c) y += row[c] * x[c];
          (*out)[r] = y;
        }
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
