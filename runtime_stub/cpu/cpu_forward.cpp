#include "cpu_forward.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "HalideBuffer.h"
#include "fp16.h"
#include "interpreter.h"
#include "numerics.h"
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
  if (r.storage == DenseStorage::KQuant) {  // (d * sc) * q - dmin * m, as ir/kquant.h
    const KQuantLaneSections at = kquant_lane_sections(r.rows_padded, r.cols);
    const uint8_t* w = base + r.off;
    const int64_t L = r.tile, G = r.cols / 16, B = r.cols / 256;
    float d, dmin;
    std::memcpy(&d, w + at.d + 4 * head_tile_index(row, col / 256, B, L), 4);
    std::memcpy(&dmin, w + at.dmin + 4 * head_tile_index(row, col / 256, B, L), 4);
    const auto sc = static_cast<int8_t>(w[at.sc + head_tile_index(row, col / 16, G, L)]);
    const auto m = static_cast<int8_t>(w[at.m + head_tile_index(row, col / 16, G, L)]);
    const int q = kquant_lane_code(w, at, row, col, r.cols, L);
    return d * static_cast<float>(sc) * static_cast<float>(q) - dmin * static_cast<float>(m);
  }
  if (r.storage == DenseStorage::Q8_0) {  // q * d, as ir/kquant.h
    const Q8_0Sections at = q8_0_sections(r.rows_padded, r.cols);
    const uint8_t* w = base + r.off;
    float d;
    std::memcpy(&d, w + at.d + 4 * head_tile_index(row, col / 32, r.cols / 32, r.tile), 4);
    return static_cast<float>(static_cast<int8_t>(w[at.q + head_tile_index(row, col, r.cols, r.tile)])) * d;
  }
  const int64_t i = r.layout == DenseLayout::RowMajor ? row * r.cols + col
                                                      : static_cast<int64_t>(head_tile_index(row, col, r.cols, r.tile));
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

// The plan's steps and the weights' records must name kernels the output has, and a
// fused norm a Norm whose own step is skipped: else the blob is not the one these
// kernels were generated with.
static void check_plan_kernels(const ir::Graph& g, std::span<const TernaryRecord> ternary,
                               std::span<const DenseRecord> dense, std::span<const CpuStep> steps,
                               const KernelTable& k) {
  for (size_t i = 0; i < ternary.size(); ++i)
    if (ternary[i].layout == TernaryLayout::Cuda || ternary[i].gemv_kernel >= k.gemv_count ||
        ternary[i].gemm_kernel >= k.gemm_count)
      throw std::runtime_error("the embedded model is damaged (weight " + std::to_string(i) + "'s kernels)");
  for (size_t i = 0; i < dense.size(); ++i)
    if (dense[i].layout == DenseLayout::HeadTiles && dense[i].storage != DenseStorage::KQuant &&
        dense[i].storage != DenseStorage::Q8_0 && dense[i].kernel >= k.dense_count)
      throw std::runtime_error("the embedded model is damaged (dense weight " + std::to_string(i) + "'s kernel)");
  if (steps.size() != g.ops.size()) throw std::runtime_error("the embedded model is damaged (plan)");
  for (size_t i = 0; i < steps.size(); ++i) {
    const CpuStep& s = steps[i];
    const ir::OpKind kind = g.ops[i].kind;
    const uint32_t count = kind == ir::OpKind::Quantize       ? k.norm_quant_count
                           : kind == ir::OpKind::Attention    ? k.attention_count
                           : kind == ir::OpKind::Rope         ? k.rope_count
                           : kind == ir::OpKind::KQuantMatmul ? k.kquant_count
                           : kind == ir::OpKind::Q8_0Matmul   ? k.q8_0_count
                                                              : 0;
    // Every attention, RoPE, k-quant and Q8_0 head has a kernel; a quantize read by no matmul has none.
    const bool kernel_ok =
        s.kernel == -1 ? kind != ir::OpKind::Attention && kind != ir::OpKind::Rope &&
                             kind != ir::OpKind::KQuantMatmul && kind != ir::OpKind::Q8_0Matmul
                       : s.kernel >= 0 && (static_cast<uint64_t>(s.kernel) + 1) *
                                                  (kind == ir::OpKind::Attention ? kAttentionKernelsPerKey : 1) <=
                                              count;  // (an attention key's whole pair)
    const bool norm_ok =
        s.fused_norm == -1 ||
        (kind == ir::OpKind::Quantize && s.fused_norm >= 0 && static_cast<size_t>(s.fused_norm) < steps.size() &&
         g.ops[s.fused_norm].kind == ir::OpKind::Norm && steps[s.fused_norm].skipped);
    const bool skip_ok = !s.skipped || kind == ir::OpKind::Norm;
    if (!kernel_ok || !norm_ok || !skip_ok)
      throw std::runtime_error("the embedded model is damaged (plan step " + std::to_string(i) + ")");
  }
}

// A chunk computes its values op after op, and no value outlives the chunk (the KV cache
// has its own memory): a value lives from the op that writes it to the last op that
// reads it, and values whose lives do not overlap share a slot. (One buffer per value
// took 154 MB for 2B4T's 30 layers at 32 rows; the live set is a few values wide.)
// An op's output never shares its inputs' slots: kernels do not compute in place.
void ForwardPass::assign_f32_slots() {
  const size_t n_values = g_.values.size();
  std::vector<size_t> last_read(n_values, 0);
  for (size_t i = 0; i < g_.ops.size(); ++i) {
    for (int v : g_.ops[i].inputs) last_read[static_cast<size_t>(v)] = i;
    // A Quantize with a fused Norm reads the norm's input itself (quantize below).
    if (steps_[i].fused_norm >= 0) last_read[static_cast<size_t>(g_.ops[steps_[i].fused_norm].inputs[0])] = i;
  }
  std::vector<int> slot_of(n_values, -1);
  std::vector<int64_t> slot_floats;
  std::vector<int> free_slots;
  auto release = [&](int v) {
    if (slot_of[static_cast<size_t>(v)] >= 0) free_slots.push_back(slot_of[static_cast<size_t>(v)]);
  };
  for (size_t i = 0; i < g_.ops.size(); ++i) {
    const ir::Op& op = g_.ops[i];
    const auto out = static_cast<size_t>(op.output);
    if (g_.values[out].dtype == ir::DType::F32 && slot_of[out] < 0) {
      const int64_t floats = g_.values[out].size * batch_;
      // The free slot nearest in size (grown if it is smaller), else a new one.
      auto best = free_slots.end();
      for (auto it = free_slots.begin(); it != free_slots.end(); ++it)
        if (best == free_slots.end() || std::abs(slot_floats[static_cast<size_t>(*it)] - floats) <
                                            std::abs(slot_floats[static_cast<size_t>(*best)] - floats))
          best = it;
      if (best != free_slots.end()) {
        slot_of[out] = *best;
        free_slots.erase(best);
      } else {
        slot_of[out] = static_cast<int>(slot_floats.size());
        slot_floats.push_back(0);
      }
      int64_t& capacity = slot_floats[static_cast<size_t>(slot_of[out])];
      capacity = std::max(capacity, floats);
    }
    std::vector<int> ends;  // each value once, even when an op reads it twice
    for (int v : op.inputs)
      if (last_read[static_cast<size_t>(v)] == i && std::find(ends.begin(), ends.end(), v) == ends.end())
        ends.push_back(v);
    if (last_read[out] <= i && std::find(ends.begin(), ends.end(), op.output) == ends.end())
      ends.push_back(op.output);  // written, never read later
    for (int v : ends) release(v);
  }
  f32_slots_.resize(slot_floats.size());
  for (size_t s = 0; s < slot_floats.size(); ++s) f32_slots_[s].assign(static_cast<size_t>(slot_floats[s]), 0.0f);
  f32_.assign(n_values, nullptr);
  for (size_t v = 0; v < n_values; ++v)
    if (slot_of[v] >= 0) f32_[v] = f32_slots_[static_cast<size_t>(slot_of[v])].data();
}

ForwardPass::ForwardPass(const ir::Graph& g, const uint8_t* blob, std::span<const TernaryRecord> ternary,
                         std::span<const DenseRecord> dense, std::span<const CpuStep> steps, int batch,
                         const KernelTable& kernels, int max_sequences)
    : g_(g), blob_(blob), ternary_(ternary), dense_(dense), batch_(batch), kernels_(kernels), steps_(steps) {
  if (batch_ < 1) throw std::runtime_error("the embedded model is damaged (batch)");
  check_plan_kernels(g, ternary_, dense_, steps_, kernels_);
  assign_f32_slots();
  q8_.resize(g.values.size());
  // A quantized value takes the padding and blocks of the matmuls that read it (codegen
  // gives all readers of one value one layout): a ternary matmul's record, or a k-quant
  // (Q8_0) head's whole input in Q8_K (Q8_0) blocks.
  for (const ir::Op& op : g.ops) {
    if (op.kind != ir::OpKind::TernaryMatmul && op.kind != ir::OpKind::KQuantMatmul &&
        op.kind != ir::OpKind::Q8_0Matmul)
      continue;
    int64_t K, K_padded, block, factors;
    if (op.kind == ir::OpKind::TernaryMatmul) {
      const TernaryRecord& r = ternary_[op.weight];
      if (r.act_block <= 0 || r.K % r.act_block != 0 || (r.act_groups != 0 && r.act_groups != kBitnetcQ8K64Groups))
        throw std::runtime_error("the embedded model is damaged (activation blocks)");
      K = r.K, K_padded = r.K_padded, block = r.act_block, factors = act_factor_count(r);
    } else {
      const DenseRecord& r = dense_[op.weight];
      const bool kquant = op.kind == ir::OpKind::KQuantMatmul;
      block = kquant ? 256 : kBitnetcQ8_0Block;
      if (r.storage != (kquant ? DenseStorage::KQuant : DenseStorage::Q8_0) || r.cols % block != 0)
        throw std::runtime_error("the embedded model is damaged (quantized head)");
      K = K_padded = r.cols, factors = r.cols / block;
    }
    Q8Buffers& q = q8_[op.inputs[0]];
    if (q.K_padded != 0 && q.K_padded != K_padded)
      throw std::runtime_error("the embedded model is damaged (activation padding)");
    q.K = K;
    q.K_padded = K_padded;
    q.block = block;
    q.blocks = factors;
    q.q.assign(static_cast<size_t>(K_padded * batch_), 0);
    q.d.assign(static_cast<size_t>(q.blocks * batch_), 0.0f);
    q.sum.assign(static_cast<size_t>(q.blocks * batch_), 0);
  }
  if (max_sequences < 1) throw std::invalid_argument("a forward pass needs at least one sequence");
  k_positions_ =
      static_cast<int>((g.n_ctx + kAttentionPositionBlock - 1) / kAttentionPositionBlock * kAttentionPositionBlock);
  caches_.resize(static_cast<size_t>(max_sequences));
  next_pos_.assign(static_cast<size_t>(max_sequences), 0);
  logits_.resize(g.values[g.logits].size);
}

ForwardPass::SequenceCache& ForwardPass::cache(int32_t seq) {
  SequenceCache& c = caches_[seq];
  if (!c.k.empty()) return c;
  // calloc: the caches' pages stay untouched (and out of the resident set) until used.
  const size_t kv_dim = static_cast<size_t>(g_.kv_dim());
  for (int64_t l = 0; l < g_.n_layer; ++l) {
    c.k.emplace_back(static_cast<float*>(std::calloc(kv_dim * k_positions_, sizeof(float))));
    c.v.emplace_back(static_cast<float*>(std::calloc(kv_dim * g_.n_ctx, sizeof(float))));
    if (!c.k.back() || !c.v.back()) {
      c.k.clear(), c.v.clear();
      throw OutOfMemoryError("out of memory for the KV cache of sequence " + std::to_string(seq) + " (" +
                               std::to_string(g_.n_ctx) + " positions)");
    }
  }
  return c;
}

void ForwardPass::release_sequence(int32_t seq) {
  if (seq < 0 || static_cast<size_t>(seq) >= caches_.size()) return;
  caches_[seq].k.clear();
  caches_[seq].v.clear();
  next_pos_[seq] = 0;
}

std::span<const float> ForwardPass::forward(std::span<const int32_t> tokens, int32_t pos) {
  check_forward_args(g_, tokens, pos, next_pos_[0]);
  return step(rows_of_one_sequence(tokens, pos));
}

std::span<const float> ForwardPass::step(std::span<const BatchRow> rows) {
  check_step_rows(g_, rows, next_pos_);
  // The executor's order: each sequence's rows together, in their order (a run of
  // consecutive positions is one attention and one RoPE call), sequences in order of
  // first appearance. Rows are independent in every other op, so the order changes no bit.
  std::vector<int32_t> order(rows.size());
  std::vector<int32_t> first_row(caches_.size(), -1), logit_index(rows.size(), -1);
  int32_t n_logits = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    order[i] = static_cast<int32_t>(i);
    if (first_row[rows[i].seq] < 0) first_row[rows[i].seq] = static_cast<int32_t>(i);
    if (rows[i].logits) logit_index[i] = n_logits++;
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return first_row[rows[a].seq] < first_row[rows[b].seq]; });
  for (const BatchRow& r : rows) cache(r.seq);  // before any kernel runs: out of memory leaves nothing half fed
  const int64_t n_vocab = g_.values[g_.logits].size;
  logits_.resize(static_cast<size_t>(std::max(n_logits, 1) * n_vocab));
  Chunk chunk;
  for (size_t at = 0; at < order.size(); at += static_cast<size_t>(batch_)) {
    const size_t end = std::min(order.size(), at + static_cast<size_t>(batch_));
    chunk.tokens.clear(), chunk.runs.clear(), chunk.logit_rows.clear(), chunk.out_logit.clear();
    for (size_t i = at; i < end; ++i) {
      const BatchRow& r = rows[order[i]];
      const auto row = static_cast<int32_t>(i - at);
      chunk.tokens.push_back(r.token);
      if (chunk.runs.empty() || chunk.runs.back().seq != r.seq) chunk.runs.push_back({r.seq, r.pos, row, 0});
      ++chunk.runs.back().count;
      if (r.logits) chunk.logit_rows.push_back(row), chunk.out_logit.push_back(logit_index[order[i]]);
    }
    run_chunk(chunk);
  }
  for (const BatchRow& r : rows) next_pos_[r.seq] = r.pos + 1;
  return {logits_.data(), static_cast<size_t>(n_logits * n_vocab)};
}

namespace {

// out = activation(gate) * up, the activation a constant of each loop so that it inlines
// (ReLU^2 vectorizes to a max and two multiplies). SiLU's exact exp (bitnetc_expf) makes
// three fma() calls per value: calls into libm on the baseline x86-64 this runtime is
// built for, one instruction each in the copy built for CPUs with FMA (fma rounds once
// either way: the same bits). Through ir::activate, a call per value, the activation
// was 6 % of a 2B4T-shape prefill.
template <int kKind>
void gated_row_plain(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = bitnetc_activate(kKind, gate[i]) * up[i];
}

#if defined(__x86_64__)
template <int kKind>
__attribute__((target("fma"))) void gated_row_fma(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = bitnetc_activate(kKind, gate[i]) * up[i];
}
#endif

template <int kKind>
void gated_row_of_kind(const float* gate, const float* up, float* out, int64_t n) {
#if defined(__x86_64__)
  static const bool has_fma = __builtin_cpu_supports("fma");
  if (has_fma) return gated_row_fma<kKind>(gate, up, out, n);
#endif
  gated_row_plain<kKind>(gate, up, out, n);
}

void gated_row(ir::Activation act, const float* gate, const float* up, float* out, int64_t n) {
  switch (act) {
    case ir::Activation::SiluDiv: return gated_row_of_kind<kBitnetcSiluDiv>(gate, up, out, n);
    case ir::Activation::SiluLlama2c: return gated_row_of_kind<kBitnetcSiluLlama2c>(gate, up, out, n);
    case ir::Activation::Relu2: return gated_row_of_kind<kBitnetcRelu2>(gate, up, out, n);
  }
}

}  // namespace

void ForwardPass::run_chunk(const Chunk& chunk) {
  const int count = static_cast<int>(chunk.tokens.size());
  for (size_t op_index = 0; op_index < g_.ops.size(); ++op_index) {
    const ir::Op& op = g_.ops[op_index];
    if (steps_[op_index].skipped) continue;  // a Norm its Quantize's kernel does
    const int64_t n = g_.values[op.output].size;
    float* out = op.kind == ir::OpKind::Quantize ? nullptr : f32_[op.output];
    auto in = [&](size_t k, int b) { return f32_[op.inputs[k]] + b * g_.values[op.inputs[k]].size; };
    switch (op.kind) {
      case ir::OpKind::Embedding: embed(op, chunk.tokens.data(), count, out); break;
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
        if (op.output == g_.logits) {  // only the rows asked for
          const int64_t K = g_.values[op.inputs[0]].size;
          const int m = static_cast<int>(chunk.logit_rows.size());
          if (m == 0) break;
          head_in_.resize(static_cast<size_t>(m * K));
          for (int i = 0; i < m; ++i) std::copy_n(in(0, chunk.logit_rows[i]), K, head_in_.data() + i * K);
          // Each logit row goes straight to its place in the step's output.
          dense_matmul(op, head_in_.data(), m, nullptr, 0);
          const DenseRecord& r = dense_[op.weight];
          for (int i = 0; i < m; ++i)
            std::copy_n(head_out_.data() + i * r.rows_padded, r.rows, logits_.data() + chunk.out_logit[i] * n);
        } else {
          dense_matmul(op, in(0, 0), count, out, n);
        }
        break;
      case ir::OpKind::KQuantMatmul: kquant_head(op_index, chunk); break;
      case ir::OpKind::Q8_0Matmul: q8_0_head(op_index, chunk); break;
      case ir::OpKind::Rope: {
        const int half = op.head_dim / 2;
        for (const Run& run : chunk.runs) {
          const RopeTable& t = rope_table(op, run.pos0 + run.count - 1);
          Buf<float> xb(in(0, run.first), static_cast<int>(n), run.count),
              yb(out + run.first * n, static_cast<int>(n), run.count);
          Buf<float> cb(const_cast<float*>(t.cos.data()), half, t.filled),
              sb(const_cast<float*>(t.sin.data()), half, t.filled);
          check_kernel(kernels_.rope[steps_[op_index].kernel](xb, cb, sb, run.pos0, yb), "rope");
        }
        break;
      }
      case ir::OpKind::Attention: attend(op_index, chunk, out); break;
      case ir::OpKind::GatedAct:
        parallel_for_each(count, [&](int b) { gated_row(op.act, in(0, b), in(1, b), out + b * n, n); });
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
  const int32_t kernel = steps_[op_index].kernel;
  if (kernel < 0) return;  // read by no ternary matmul
  const int32_t norm = steps_[op_index].fused_norm;
  const int x_value = norm >= 0 ? g_.ops[norm].inputs[0] : op.inputs[0];
  const int64_t n = g_.values[x_value].size;
  Q8Buffers& q = q8_[op.output];
  float* x = f32_[x_value];
  // The norm's weight, or an unread one-element stand-in.
  const bool weighted = norm >= 0 && g_.ops[norm].weight >= 0;
  float* w = weighted ? const_cast<float*>(reinterpret_cast<const float*>(blob_ + dense_[g_.ops[norm].weight].off)) : x;
  // Token by token on the pool: the kernel itself is serial (one token per decode step).
  parallel_for_each(count, [&](int b) {
    Buf<float> xb(x + b * n, static_cast<int>(n), 1);
    Buf<float> wb(w, weighted ? static_cast<int>(n) : 1);
    Buf<int8_t> qb(q.q.data() + b * q.K_padded, static_cast<int>(q.K_padded), 1);
    Buf<float> db(q.d.data() + b * q.blocks, static_cast<int>(q.blocks), 1);
    Buf<int32_t> sb(q.sum.data() + b * q.blocks, static_cast<int>(q.blocks), 1);
    check_kernel(kernels_.norm_quant[kernel](xb, wb, qb, db, sb), "norm + quantize");
  });
  // Unused tokens of a short chunk meet the GEMM kernel as zeros (rows that go to GEMVs
  // are read one by one).
  if (count > 1) {
    std::fill(q.q.begin() + count * q.K_padded, q.q.end(), 0);
    std::fill(q.d.begin() + count * q.blocks, q.d.end(), 0.0f);
    std::fill(q.sum.begin() + count * q.blocks, q.sum.end(), 0);
  }
}

// Writes each run's k and v into its sequence's caches, then attends each run's tokens
// (every (token, head) of a run in one generated kernel call, its tasks on the pool).
void ForwardPass::attend(size_t op_index, const Chunk& chunk, float* out) {
  const ir::Op& op = g_.ops[op_index];
  const int kv_dim = g_.kv_dim();
  const int q_size = static_cast<int>(g_.values[op.inputs[0]].size);
  const int out_size = static_cast<int>(g_.values[op.output].size);
  for (const Run& run : chunk.runs) {
    SequenceCache& c = caches_[run.seq];
    float* kc = c.k[op.layer].get();
    float* vc = c.v[op.layer].get();
    const float* k = f32_[op.inputs[1]] + static_cast<int64_t>(run.first) * kv_dim;
    for (int b = 0; b < run.count; ++b)
      for (int ch = 0; ch < kv_dim; ++ch) kc[key_cache_index(run.pos0 + b, ch, kv_dim)] = k[b * kv_dim + ch];
    std::copy_n(f32_[op.inputs[2]] + static_cast<int64_t>(run.first) * kv_dim, run.count * kv_dim,
                vc + static_cast<int64_t>(run.pos0) * kv_dim);
    Buf<float> qb(f32_[op.inputs[0]] + static_cast<int64_t>(run.first) * q_size, q_size, run.count);
    Buf<float> kb(kc, kAttentionPositionBlock, kv_dim, k_positions_ / kAttentionPositionBlock);
    Buf<float> vb(vc, kv_dim, static_cast<int>(g_.n_ctx));
    Buf<float> ob(out + static_cast<int64_t>(run.first) * out_size, out_size, run.count);
    check_kernel(kernels_.attention[attention_kernel(steps_[op_index].kernel, run.count)](qb, kb, vb, run.pos0, ob),
                 "attention");
  }
}

// One GEMM call for the chunk's rows (the lookup-table kernels' padded to batch_ rows),
// or, for fewer rows than that pays for (TernaryRecord::gemm_min_rows), one GEMV call per
// row: the same bits either way.
void ForwardPass::ternary_matmul(const ir::Op& op, int count, float* out) {
  const TernaryRecord& r = ternary_[op.weight];
  Q8Buffers& q = q8_[op.inputs[0]];
  const int blocks = static_cast<int>(q.blocks);  // the activations' factors per token
  Buf<uint8_t> packed(const_cast<uint8_t*>(blob_ + r.off), r.packed_dim0, r.packed_dim1);
  // A scale per (row, activation block), or an unread one-element stand-in.
  float* block_scales = reinterpret_cast<float*>(const_cast<uint8_t*>(blob_ + r.block_scales_off));
  Buf<float> ws = r.block_scales
                      ? Buf<float>(block_scales, static_cast<int>(r.block_scale_rows), static_cast<int>(r.K / r.act_block))
                      : Buf<float>(&q.d[0], 1, 1);
  if (count >= 2 && count >= static_cast<int>(r.gemm_min_rows)) {
    // I2_S's GEMM takes whole token tiles of 4 (schedules/ternary_matmul.cpp): rows past
    // `count` compute from stale codes into rows of `out` nobody reads.
    const int rows = r.layout == TernaryLayout::I2S ? std::min(batch_, (count + 3) / 4 * 4) : batch_;
    Buf<int8_t> x(q.q.data(), static_cast<int>(r.K_padded), rows);
    Buf<int32_t> sum(q.sum.data(), blocks, rows);
    Buf<float> d(q.d.data(), blocks, rows);
    Buf<float> y(out, static_cast<int>(r.N), rows);
    check_kernel(kernels_.gemm[r.gemm_kernel](packed, x, sum, d, r.w_scale, ws, y), "GEMM");
    return;
  }
  for (int b = 0; b < count; ++b) {
    Buf<int8_t> x(q.q.data() + b * r.K_padded, static_cast<int>(r.K_padded), 1);
    Buf<int32_t> sum(q.sum.data() + b * blocks, blocks, 1);
    Buf<float> d(q.d.data() + b * blocks, blocks, 1);
    Buf<float> y(out + b * r.N, static_cast<int>(r.N), 1);
    check_kernel(kernels_.gemv[r.gemv_kernel](packed, x, sum, d, r.w_scale, ws, y), "GEMV");
  }
}

void ForwardPass::dense_matmul(const ir::Op& op, const float* x, int rows, float* out, int64_t out_stride) {
  const DenseRecord& r = dense_[op.weight];
  head_out_.resize(static_cast<size_t>(r.rows_padded * rows));
  const int tile = static_cast<int>(r.tile), K = static_cast<int>(r.cols), tiles = static_cast<int>(r.rows_padded / r.tile);
  const int Np = static_cast<int>(r.rows_padded);
  void* w = const_cast<uint8_t*>(blob_ + r.off);
  Buf<float> xb(const_cast<float*>(x), K, rows);
  Buf<float> yb(head_out_.data(), Np, rows);
  // Float scales per row for q8; for the others an unread one-element stand-in.
  float* scales = const_cast<float*>(reinterpret_cast<const float*>(blob_ + r.scales_off));
  Buf<float> sb(r.storage == DenseStorage::Q8 ? scales : xb.data(), r.storage == DenseStorage::Q8 ? Np : 1);
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
  if (out)
    for (int i = 0; i < rows; ++i)
      std::copy_n(head_out_.data() + static_cast<int64_t>(i) * Np, r.rows, out + i * out_stride);
}

// A quantized head's input rows that logits are asked for, codes and factors, gathered
// into head_q_ and head_qd_; head_out_ sized for the kernel's [padded N][rows].
void ForwardPass::gather_head_rows(const Q8Buffers& q, const DenseRecord& r, const Chunk& chunk) {
  const int64_t m = static_cast<int64_t>(chunk.logit_rows.size()), K = r.cols, blocks = q.blocks;
  head_q_.resize(static_cast<size_t>(m * K));
  head_qd_.resize(static_cast<size_t>(m * blocks));
  for (int64_t i = 0; i < m; ++i) {
    std::copy_n(q.q.data() + chunk.logit_rows[i] * q.K_padded, K, head_q_.data() + i * K);
    std::copy_n(q.d.data() + chunk.logit_rows[i] * q.blocks, blocks, head_qd_.data() + i * blocks);
  }
  head_out_.resize(static_cast<size_t>(r.rows_padded * m));
}

// head_out_'s rows into the chunk's logits.
void ForwardPass::store_head_logits(const ir::Op& op, const DenseRecord& r, const Chunk& chunk) {
  const int64_t n = g_.values[op.output].size;
  for (size_t i = 0; i < chunk.logit_rows.size(); ++i)
    std::copy_n(head_out_.data() + static_cast<int64_t>(i) * r.rows_padded, r.rows,
                logits_.data() + chunk.out_logit[i] * n);
}

void ForwardPass::q8_0_head(size_t op_index, const Chunk& chunk) {
  const ir::Op& op = g_.ops[op_index];
  const int m = static_cast<int>(chunk.logit_rows.size());
  if (m == 0) return;
  const DenseRecord& r = dense_[op.weight];
  const Q8Buffers& q = q8_[op.inputs[0]];
  gather_head_rows(q, r, chunk);
  const int K = static_cast<int>(r.cols), blocks = static_cast<int>(q.blocks);
  const int T = static_cast<int>(r.tile), tiles = static_cast<int>(r.rows_padded / r.tile);
  const Q8_0Sections at = q8_0_sections(r.rows_padded, r.cols);
  auto* w = const_cast<uint8_t*>(blob_ + r.off);
  Buf<int8_t> qb(reinterpret_cast<int8_t*>(w + at.q), T, K, tiles);
  Buf<float> db(reinterpret_cast<float*>(w + at.d), T, blocks, tiles);
  Buf<int8_t> xb(head_q_.data(), K, m);
  Buf<float> xdb(head_qd_.data(), blocks, m);
  Buf<float> yb(head_out_.data(), static_cast<int>(r.rows_padded), m);
  check_kernel(kernels_.q8_0[steps_[op_index].kernel](qb, db, xb, xdb, yb), "Q8_0 head");
  store_head_logits(op, r, chunk);
}

void ForwardPass::kquant_head(size_t op_index, const Chunk& chunk) {
  const ir::Op& op = g_.ops[op_index];
  const int m = static_cast<int>(chunk.logit_rows.size());
  if (m == 0) return;
  const DenseRecord& r = dense_[op.weight];
  const Q8Buffers& q = q8_[op.inputs[0]];
  gather_head_rows(q, r, chunk);
  const int K = static_cast<int>(r.cols), blocks = static_cast<int>(q.blocks);
  const int L = static_cast<int>(r.tile), groups = static_cast<int>(r.rows_padded / r.tile);
  const int Np = static_cast<int>(r.rows_padded);
  const KQuantLaneSections at = kquant_lane_sections(r.rows_padded, r.cols);
  auto* w = const_cast<uint8_t*>(blob_ + r.off);
  Buf<uint8_t> lob(w + at.lo, 4 * L, K / 8, groups);
  Buf<uint8_t> hib(w + at.hi, 4 * L, K / 16, groups);
  Buf<int8_t> scb(reinterpret_cast<int8_t*>(w + at.sc), L, K / 16, groups);
  Buf<int8_t> mb(reinterpret_cast<int8_t*>(w + at.m), L, K / 16, groups);
  Buf<float> db(reinterpret_cast<float*>(w + at.d), L, blocks, groups);
  Buf<float> dminb(reinterpret_cast<float*>(w + at.dmin), L, blocks, groups);
  Buf<int8_t> xb(head_q_.data(), K, m);
  Buf<float> xdb(head_qd_.data(), blocks, m);
  Buf<float> yb(head_out_.data(), Np, m);
  check_kernel(kernels_.kquant[steps_[op_index].kernel](lob, hib, scb, mb, db, dminb, xb, xdb, yb), "k-quant head");
  store_head_logits(op, r, chunk);
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
