#include "forward.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "HalideBuffer.h"
#include "fp16.h"
#include "interpreter.h"
#include "thread_pool.h"

namespace bitnetc::rt {

namespace {

template <typename T>
using Buf = Halide::Runtime::Buffer<T>;

void check_kernel(int err, const char* what) {
  if (err) throw std::runtime_error(std::string(what) + " kernel failed (Halide error " + std::to_string(err) + ")");
}

// One element of a dense weight, wherever its layout and storage put it.
float dense_at(const uint8_t* base, const DenseRecord& r, int64_t row, int64_t col) {
  const int64_t i = r.layout == DenseLayout::RowMajor
                        ? row * r.cols + col
                        : (row / r.tile) * r.cols * r.tile + col * r.tile + row % r.tile;
  if (r.storage == DenseStorage::F16) {
    uint16_t h;
    std::memcpy(&h, base + r.off + 2 * i, 2);
    return fp16_to_f32(h);
  }
  if (r.storage == DenseStorage::Q8) {
    float scale;
    std::memcpy(&scale, base + r.scales_off + 4 * row, 4);
    return static_cast<float>(static_cast<int8_t>(base[r.off + i])) * scale;
  }
  float f;
  std::memcpy(&f, base + r.off + 4 * i, 4);
  return f;
}

}  // namespace

ForwardPass::ForwardPass(const ir::Graph& g, const uint8_t* blob, std::span<const TernaryRecord> ternary,
                         std::span<const DenseRecord> dense, int batch, const KernelTable& kernels)
    : g_(g), blob_(blob), ternary_(ternary), dense_(dense), batch_(batch), kernels_(kernels) {
  if (batch_ < 1) throw std::runtime_error("the embedded model is damaged (batch)");
  steps_ = plan_step_kernels(g, ternary);
  if (steps_.norm_quant.size() != kernels_.norm_quant_count || steps_.attention.size() != kernels_.attention_count ||
      steps_.rope.size() != kernels_.rope_count)
    throw std::runtime_error("the embedded model is damaged (step kernels)");
  f32_.resize(g.values.size());
  q8_.resize(g.values.size());
  for (size_t v = 0; v < g.values.size(); ++v)
    if (g.values[v].dtype == ir::DType::F32) f32_[v].assign(static_cast<size_t>(g.values[v].size * batch_), 0.0f);
  // A quantized value takes the padding and blocks of the matmuls that read it.
  for (const ir::Op& op : g.ops) {
    if (op.kind != ir::OpKind::TernaryMatmul) continue;
    const TernaryRecord& r = ternary_[op.weight];
    Q8Buffers& q = q8_[op.inputs[0]];
    if (q.K_padded != 0 && q.K_padded != r.K_padded)  // codegen gives readers of one value one layout
      throw std::runtime_error("the embedded model is damaged (activation padding)");
    q.K = r.K;
    q.K_padded = r.K_padded;
    q.block = r.act_block;
    q.blocks = r.K / r.act_block;
    q.q.assign(static_cast<size_t>(r.K_padded * batch_), 0);
    q.d.assign(static_cast<size_t>(q.blocks * batch_), 0.0f);
    q.sum.assign(static_cast<size_t>(q.blocks * batch_), 0);
  }
  // calloc: the caches' pages stay untouched (and out of the resident set) until used.
  k_positions_ =
      static_cast<int>((g.n_ctx + kAttentionPositionBlock - 1) / kAttentionPositionBlock * kAttentionPositionBlock);
  const size_t kv_dim = static_cast<size_t>(g.kv_dim());
  for (int64_t l = 0; l < g.n_layer; ++l) {
    k_cache_.emplace_back(static_cast<float*>(std::calloc(kv_dim * k_positions_, sizeof(float))));
    v_cache_.emplace_back(static_cast<float*>(std::calloc(kv_dim * g.n_ctx, sizeof(float))));
    if (!k_cache_.back() || !v_cache_.back())
      throw std::runtime_error("out of memory for the KV cache (" + std::to_string(g.n_ctx) + " positions)");
  }
  logits_.resize(g.values[g.logits].size);
}

uint64_t decode_bytes_per_token(const ir::Graph& g, std::span<const TernaryRecord> ternary,
                                std::span<const DenseRecord> dense) {
  uint64_t bytes = 0;
  for (const TernaryRecord& r : ternary) bytes += packed_bytes(r);
  std::vector<bool> head(dense.size(), false);
  for (const ir::Op& op : g.ops)
    if (op.kind == ir::OpKind::DenseMatmul) head[op.weight] = true;
  for (size_t i = 0; i < dense.size(); ++i) {
    const DenseRecord& r = dense[i];
    bytes += (head[i] ? static_cast<uint64_t>(r.rows_padded) : 1) * static_cast<uint64_t>(r.cols) * element_bytes(r.storage);
  }
  return bytes;
}

void check_forward_args(const ir::Graph& g, std::span<const int32_t> tokens, int32_t pos, int32_t next_pos) {
  if (tokens.empty()) throw std::invalid_argument("no tokens to feed");
  if (pos < 0 || pos > next_pos) throw std::logic_error("positions must be fed in order");
  if (pos + static_cast<int64_t>(tokens.size()) > g.n_ctx)
    throw std::out_of_range("position " + std::to_string(pos + tokens.size() - 1) + " is outside the context of " +
                            std::to_string(g.n_ctx));
  for (int32_t t : tokens)
    if (t < 0 || t >= g.n_vocab) throw std::out_of_range("token id " + std::to_string(t) + " out of range");
}

std::span<const float> ForwardPass::forward(std::span<const int32_t> tokens, int32_t pos) {
  check_forward_args(g_, tokens, pos, next_pos_);
  for (size_t i = 0; i < tokens.size(); i += static_cast<size_t>(batch_)) {
    const int count = static_cast<int>(std::min<size_t>(static_cast<size_t>(batch_), tokens.size() - i));
    run_chunk(tokens.data() + i, count, pos + static_cast<int32_t>(i), i + count == tokens.size());
  }
  next_pos_ = pos + static_cast<int32_t>(tokens.size());
  return logits_;
}

void ForwardPass::run_chunk(const int32_t* tokens, int count, int32_t pos0, bool last_chunk) {
  for (size_t op_index = 0; op_index < g_.ops.size(); ++op_index) {
    const ir::Op& op = g_.ops[op_index];
    if (steps_.skipped[op_index]) continue;  // a Norm its Quantize's kernel does
    const int64_t n = g_.values[op.output].size;
    float* out = op.kind == ir::OpKind::Quantize ? nullptr : f32_[op.output].data();
    auto in = [&](size_t k, int b) { return f32_[op.inputs[k]].data() + b * g_.values[op.inputs[k]].size; };
    switch (op.kind) {
      case ir::OpKind::Embedding:
        embed(op, tokens, count, out);
        break;
      case ir::OpKind::Norm: {
        const float* w = nullptr;
        if (op.weight >= 0) w = reinterpret_cast<const float*>(blob_ + dense_[op.weight].off);
        for (int b = 0; b < count; ++b) ir::rms_norm(op.norm, in(0, b), n, w, op.eps, out + b * n);
        break;
      }
      case ir::OpKind::Quantize: quantize(op_index, count); break;
      case ir::OpKind::TernaryMatmul:
        ternary_matmul(op, count, out);
        break;
      case ir::OpKind::DenseMatmul:
        if (op.output == g_.logits) {  // only the last token's logits are ever read
          if (last_chunk) dense_matmul(op, in(0, count - 1), logits_.data());
        } else {
          for (int b = 0; b < count; ++b) dense_matmul(op, in(0, b), out + b * n);
        }
        break;
      case ir::OpKind::Rope: {
        const RopeTable& t = rope_table(op, pos0 + count - 1);
        const int half = op.head_dim / 2;
        Buf<float> xb(in(0, 0), static_cast<int>(n), count), yb(out, static_cast<int>(n), count);
        Buf<float> cb(const_cast<float*>(t.cos.data()), half, t.filled),
            sb(const_cast<float*>(t.sin.data()), half, t.filled);
        check_kernel(kernels_.rope[steps_.kernel_of_op[op_index]](xb, cb, sb, pos0, yb), "rope");
        break;
      }
      case ir::OpKind::Attention: attend(op_index, count, pos0, out); break;
      case ir::OpKind::GatedAct:
        parallel_for_each(count, [&](int b) {
          const float *gate = in(0, b), *up = in(1, b);
          for (int64_t i = 0; i < n; ++i) out[b * n + i] = ir::activate(op.act, gate[i]) * up[i];
        });
        break;
      case ir::OpKind::Add: {
        const float *a = in(0, 0), *b = in(1, 0);
        for (int64_t i = 0; i < count * n; ++i) out[i] = a[i] + b[i];
        break;
      }
    }
  }
}

void ForwardPass::embed(const ir::Op& op, const int32_t* tokens, int count, float* out) const {
  const DenseRecord& r = dense_[op.weight];
  for (int b = 0; b < count; ++b) {
    float* row = out + b * r.cols;
    if (r.layout == DenseLayout::RowMajor && r.storage == DenseStorage::F32)
      std::memcpy(row, blob_ + r.off + static_cast<size_t>(tokens[b]) * r.cols * 4, r.cols * 4);
    else
      for (int64_t k = 0; k < r.cols; ++k) row[k] = dense_at(blob_, r, tokens[b], k);
  }
}

// A Quantize (and the Norm before it, when the plan fused it) as one generated kernel.
void ForwardPass::quantize(size_t op_index, int count) {
  const ir::Op& op = g_.ops[op_index];
  const int32_t kernel = steps_.kernel_of_op[op_index];
  if (kernel < 0) return;  // read by no ternary matmul
  const NormQuantKernelKey& key = steps_.norm_quant[kernel];
  const int32_t norm = steps_.fused_norm_of_op[op_index];
  const int x_value = norm >= 0 ? g_.ops[norm].inputs[0] : op.inputs[0];
  Q8Buffers& q = q8_[op.output];
  float* x = f32_[x_value].data();
  // The norm's weight, or an unread one-element stand-in.
  const bool weighted = norm >= 0 && g_.ops[norm].weight >= 0;
  float* w = weighted ? const_cast<float*>(reinterpret_cast<const float*>(blob_ + dense_[g_.ops[norm].weight].off)) : x;
  // Token by token on the pool: the kernel itself is serial (one token per decode step).
  parallel_for_each(count, [&](int b) {
    Buf<float> xb(x + b * key.n, static_cast<int>(key.n), 1);
    Buf<float> wb(w, weighted ? static_cast<int>(key.n) : 1);
    Buf<int8_t> qb(q.q.data() + b * q.K_padded, static_cast<int>(q.K_padded), 1);
    Buf<float> db(q.d.data() + b * q.blocks, static_cast<int>(q.blocks), 1);
    Buf<int32_t> sb(q.sum.data() + b * q.blocks, static_cast<int>(q.blocks), 1);
    check_kernel(kernels_.norm_quant[kernel](xb, wb, qb, db, sb), "norm + quantize");
  });
  // Unused tokens of a short chunk meet the GEMM kernel as zeros (a single token goes to
  // the GEMV, which reads only its own row).
  if (count > 1) {
    std::fill(q.q.begin() + count * q.K_padded, q.q.end(), 0);
    std::fill(q.d.begin() + count * q.blocks, q.d.end(), 0.0f);
    std::fill(q.sum.begin() + count * q.blocks, q.sum.end(), 0);
  }
}

// Writes the chunk's k and v into the layer's caches, then every (token, head) of the
// chunk in one generated kernel (its tasks run on the thread pool).
void ForwardPass::attend(size_t op_index, int count, int32_t pos0, float* out) {
  const ir::Op& op = g_.ops[op_index];
  const int kv_dim = g_.kv_dim();
  float* kc = k_cache_[op.layer].get();
  float* vc = v_cache_[op.layer].get();
  const float* k = f32_[op.inputs[1]].data();
  for (int b = 0; b < count; ++b)
    for (int c = 0; c < kv_dim; ++c) kc[key_cache_index(pos0 + b, c, kv_dim)] = k[b * kv_dim + c];
  std::copy_n(f32_[op.inputs[2]].data(), count * kv_dim, vc + static_cast<int64_t>(pos0) * kv_dim);
  const int q_size = static_cast<int>(g_.values[op.inputs[0]].size);
  Buf<float> qb(f32_[op.inputs[0]].data(), q_size, count);
  Buf<float> kb(kc, kAttentionPositionBlock, kv_dim, k_positions_ / kAttentionPositionBlock);
  Buf<float> vb(vc, kv_dim, static_cast<int>(g_.n_ctx));
  Buf<float> ob(out, static_cast<int>(g_.values[op.output].size), count);
  check_kernel(kernels_.attention[steps_.kernel_of_op[op_index]](qb, kb, vb, pos0, ob), "attention");
}

void ForwardPass::ternary_matmul(const ir::Op& op, int count, float* out) {
  const TernaryRecord& r = ternary_[op.weight];
  Q8Buffers& q = q8_[op.inputs[0]];
  const int m = count == 1 ? 1 : batch_;
  const int blocks = static_cast<int>(q.blocks);
  Buf<uint8_t> packed(const_cast<uint8_t*>(blob_ + r.off), r.packed_dim0, r.packed_dim1);
  Buf<int8_t> x(q.q.data(), static_cast<int>(r.K_padded), m);
  Buf<int32_t> sum(q.sum.data(), blocks, m);
  Buf<float> d(q.d.data(), blocks, m);
  Buf<float> y(out, static_cast<int>(r.N), m);
  const KernelTable::Ternary fn = m == 1 ? kernels_.gemv[r.gemv_kernel] : kernels_.gemm[r.gemm_kernel];
  check_kernel(fn(packed, x, sum, d, r.w_scale, y), m == 1 ? "GEMV" : "GEMM");
}

void ForwardPass::dense_matmul(const ir::Op& op, const float* x, float* out) {
  const DenseRecord& r = dense_[op.weight];
  head_out_.resize(r.rows_padded);
  const int tile = static_cast<int>(r.tile), K = static_cast<int>(r.cols), tiles = static_cast<int>(r.rows_padded / r.tile);
  void* w = const_cast<uint8_t*>(blob_ + r.off);
  Buf<float> xb(const_cast<float*>(x), K);
  Buf<float> yb(head_out_.data(), static_cast<int>(r.rows_padded));
  // Float scales per row for q8; for the others an unread one-element stand-in.
  float* scales = const_cast<float*>(reinterpret_cast<const float*>(blob_ + r.scales_off));
  Buf<float> sb(r.storage == DenseStorage::Q8 ? scales : xb.data(),
                r.storage == DenseStorage::Q8 ? static_cast<int>(r.rows_padded) : 1);
  int err;
  if (r.storage == DenseStorage::F16) {
    Buf<uint16_t> wb(static_cast<uint16_t*>(w), tile, K, tiles);  // half bits
    err = kernels_.dense[r.kernel](wb, xb, sb, yb);
  } else if (r.storage == DenseStorage::Q8) {
    Buf<int8_t> wb(static_cast<int8_t*>(w), tile, K, tiles);
    err = kernels_.dense[r.kernel](wb, xb, sb, yb);
  } else {
    Buf<float> wb(static_cast<float*>(w), tile, K, tiles);
    err = kernels_.dense[r.kernel](wb, xb, sb, yb);
  }
  check_kernel(err, "head");
  std::copy_n(head_out_.data(), r.rows, out);
}

const ForwardPass::RopeTable& ForwardPass::rope_table(const ir::Op& op, int32_t last_pos) {
  auto same = [&](const RopeTable& t) {
    return t.op->rope_freq == op.rope_freq && t.op->rope_theta == op.rope_theta && t.op->head_dim == op.head_dim;
  };
  auto it = std::find_if(ropes_.begin(), ropes_.end(), same);
  if (it == ropes_.end()) {
    ropes_.push_back(RopeTable{&op, {}, {}, 0});
    it = ropes_.end() - 1;
  }
  const int half = op.head_dim / 2;
  if (it->filled <= last_pos) {
    it->cos.resize(static_cast<size_t>(last_pos + 1) * half);
    it->sin.resize(static_cast<size_t>(last_pos + 1) * half);
    for (int32_t p = it->filled; p <= last_pos; ++p) ir::rope_cos_sin(op, p, &it->cos[p * half], &it->sin[p * half]);
    it->filled = last_pos + 1;
  }
  return *it;
}

}  // namespace bitnetc::rt
