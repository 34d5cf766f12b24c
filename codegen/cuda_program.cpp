#include "cuda_program.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>

#include "atomic_file.h"
#include "cuda_kernels.h"
#include "fusion.h"

namespace bitnetc::codegen {

namespace {

// Builds the plan op by op, adding each distinct kernel to the module once.
class PlanBuilder {
 public:
  PlanBuilder() { p_.source = cuda_module_preamble(); }

  uint32_t buffer(rt::CudaBufferKind kind, uint64_t bytes, uint32_t op = 0) {
    p_.buffers.push_back({kind, op, bytes});
    return static_cast<uint32_t>(p_.buffers.size() - 1);
  }

  // `weight_bytes`: what one launch reads of the weights per token (for --profile).
  void launch(const CudaKernel& k, std::vector<rt::CudaArg> args, rt::CudaRunFor run_for = rt::CudaRunFor::Any,
              uint64_t weight_bytes = 0) {
    if (args.size() + 1 != k.params.size()) throw std::logic_error("cuda plan: " + k.name + ": argument count");
    auto [it, added] = kernel_of_.emplace(k.name, static_cast<uint32_t>(p_.kernel_names.size()));
    if (added) {
      p_.kernel_names.push_back(k.name);
      p_.source += "\n" + cuda_kernel_text(k);
    }
    rt::CudaStep s{it->second,
                   k.grid_x,
                   k.block_x,
                   k.grid_y,
                   static_cast<uint32_t>(p_.args.size()),
                   static_cast<uint32_t>(args.size() + 1),
                   run_for,
                   0,
                   weight_bytes};
    p_.args.push_back({rt::CudaArgKind::State, 0, 0});
    p_.args.insert(p_.args.end(), args.begin(), args.end());
    p_.steps.push_back(s);
  }

  CudaProgram& program() { return p_; }

 private:
  CudaProgram p_;
  std::map<std::string, uint32_t> kernel_of_;
};

rt::CudaArg buf(uint32_t b) { return {rt::CudaArgKind::Buffer, b, 0}; }

// A dense weight's arguments: its values, and an int8 head's row scales; a k-quant
// weight's five parts (rt::kquant_sections: q, sc, m, d, dmin).
std::vector<rt::CudaArg> dense_args(int weight, const rt::DenseRecord& r) {
  const auto w = static_cast<uint32_t>(weight);
  if (r.storage == rt::DenseStorage::KQuant) {
    const rt::KQuantSections at = rt::kquant_sections(r.rows_padded, r.cols);
    std::vector<rt::CudaArg> args;
    for (uint64_t off : {at.q, at.sc, at.m, at.d, at.dmin}) args.push_back({rt::CudaArgKind::DenseWeight, w, off});
    return args;
  }
  if (r.storage == rt::DenseStorage::Q8_0) {
    const rt::Q8_0Sections at = rt::q8_0_sections(r.rows_padded, r.cols);
    return {{rt::CudaArgKind::DenseWeight, w, at.q}, {rt::CudaArgKind::DenseWeight, w, at.d}};
  }
  std::vector<rt::CudaArg> args{{rt::CudaArgKind::DenseWeight, w, 0}};
  if (r.storage == rt::DenseStorage::Q8)
    args.push_back({rt::CudaArgKind::DenseScales, static_cast<uint32_t>(weight), 0});
  return args;
}
// The bytes one row of a dense weight takes (what an embedding reads per token).
uint64_t row_bytes(const rt::DenseRecord& r) {
  return r.storage == rt::DenseStorage::KQuant ? rt::kquant_sections(1, r.cols).end
         : r.storage == rt::DenseStorage::Q8_0 ? rt::q8_0_sections(1, r.cols).end
                                               : static_cast<uint64_t>(r.cols) * rt::element_bytes(r.storage);
}

rt::CudaArg f32(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return {rt::CudaArgKind::F32, 0, bits};
}

CudaNorm norm_of(const ir::Op& norm) { return {norm.norm, norm.weight >= 0, norm.eps}; }
rt::CudaArg norm_weight(const ir::Op& norm) {
  return {rt::CudaArgKind::DenseWeight, static_cast<uint32_t>(norm.weight), 0};
}

// The launches the plan saves by doing several ops' work in one kernel, each keeping
// the interpreter's bits (one launch per op is 668 launches per decoded 2B4T token, and
// a launch costs about as much as streaming a small matmul's weights); an Attention that
// rotates its q and k also stores k and v into the cache in the same launch.
// CUDA outputs take every fusion the pass proposes (compiler/fusion.h), and add one of
// their own: decode computes the ternary matmuls that read one quantized value (q, k and
// v; gate and up) in one launch (prefill runs each on the tensor cores).
struct CudaFusions : Fusions {
  std::vector<std::vector<int32_t>> decode_group;  // per TernaryMatmul: the later ones decode runs with it
  std::vector<bool> in_later_group;                // per op: decode runs it with an earlier matmul
  std::vector<bool> skipped;                       // per op: another op's launch does its work
};

// Whether a ternary matmul's prefill chunks run on the tensor cores (else dp4a, the
// decode kernel, for every chunk).
bool prefill_on_tensor_cores(const rt::TernaryRecord& r, int batch) {
  // (Q8_K64's four groups interleave within each word: the dp4a kernel keeps them apart.)
  return batch % 16 == 0 && (r.act_block == r.K || r.act_block % 64 == 0) && r.act_groups == 0;
}

CudaFusions plan_cuda_fusions(const ir::Graph& g, std::span<const rt::TernaryRecord> ternary, int batch) {
  const size_t n_ops = g.ops.size();
  CudaFusions f{plan_fusions(g), std::vector<std::vector<int32_t>>(n_ops), std::vector<bool>(n_ops, false),
                std::vector<bool>(n_ops, false)};
  for (size_t i = 0; i < n_ops; ++i) {
    for (int32_t absorbed : {f.norm_of_quantize[i], f.gated_of_quantize[i], f.add_of_matmul[i],
                             f.ropes_of_attention[i].first, f.ropes_of_attention[i].second})
      if (absorbed >= 0) f.skipped[absorbed] = true;
  }
  // Decode groups: matmuls of one input, none absorbing an Add, all on the tensor cores
  // in prefill (so each one's own launch is for prefill only).
  auto groupable = [&](size_t i) {
    const ir::Op& op = g.ops[i];
    return op.kind == ir::OpKind::TernaryMatmul && f.add_of_matmul[i] < 0 && !f.in_later_group[i] &&
           prefill_on_tensor_cores(ternary[op.weight], batch);
  };
  for (size_t i = 0; i < n_ops; ++i) {
    if (!groupable(i)) continue;
    for (size_t j = i + 1; j < n_ops; ++j)
      if (groupable(j) && g.ops[j].inputs[0] == g.ops[i].inputs[0] &&
          ternary[g.ops[j].weight].act_block == ternary[g.ops[i].weight].act_block &&
          ternary[g.ops[j].weight].block_scales == ternary[g.ops[i].weight].block_scales) {
        f.decode_group[i].push_back(static_cast<int32_t>(j));
        f.in_later_group[j] = true;
      }
  }
  return f;
}

}  // namespace

CudaProgram build_cuda_program(const ir::Graph& g, std::span<const rt::TernaryRecord> ternary,
                               std::span<const rt::DenseRecord> dense, int batch) {
  PlanBuilder b;
  const uint64_t B = static_cast<uint64_t>(batch);
  // A buffer per value: floats for a chunk, or the int8 codes (padded), sums and
  // dequantization factors of a quantized one.
  struct Q8 {
    uint32_t q = 0, sum = 0, d = 0;
  };
  std::vector<uint32_t> f32_buf(g.values.size(), 0);
  std::vector<Q8> q8_buf(g.values.size());
  std::vector<int64_t> blocks(g.values.size(), 1);
  for (const ir::Op& op : g.ops)
    if (op.kind == ir::OpKind::Quantize) blocks[op.output] = ir::act_quant_factor_count(op.quant, g.values[op.output].size);
  for (size_t v = 0; v < g.values.size(); ++v) {
    const uint64_t n = static_cast<uint64_t>(g.values[v].size);
    if (g.values[v].dtype == ir::DType::F32) {
      f32_buf[v] = b.buffer(rt::CudaBufferKind::Plain, B * n * 4);
    } else {
      q8_buf[v].q = b.buffer(rt::CudaBufferKind::Plain, B * static_cast<uint64_t>(cuda_padded_k(g.values[v].size)));
      q8_buf[v].sum = b.buffer(rt::CudaBufferKind::Plain, B * blocks[v] * 4);
      q8_buf[v].d = b.buffer(rt::CudaBufferKind::Plain, B * blocks[v] * 4);
    }
  }
  // Per layer, the key and value caches of every sequence: tables of a pointer per sequence.
  const int kv_dim = g.kv_dim();
  std::vector<uint32_t> k_cache, v_cache;
  for (int64_t l = 0; l < g.n_layer; ++l) {
    k_cache.push_back(b.buffer(rt::CudaBufferKind::SequenceCaches, static_cast<uint64_t>(kv_dim) * 4));
    v_cache.push_back(b.buffer(rt::CudaBufferKind::SequenceCaches, static_cast<uint64_t>(kv_dim) * 4));
  }
  int max_heads = 1;
  for (const ir::Op& op : g.ops)
    if (op.kind == ir::OpKind::Attention) max_heads = std::max(max_heads, op.n_head);
  const uint32_t scores = b.buffer(rt::CudaBufferKind::PerPosition, B * static_cast<uint64_t>(max_heads) * 4);
  // Rope tables, one pair per distinct angle formula.
  std::map<std::tuple<int, float, int>, std::pair<uint32_t, uint32_t>> rope_tables;
  auto rope_table = [&](size_t rope_op) {
    const ir::Op& op = g.ops[rope_op];
    const auto key = std::make_tuple(static_cast<int>(op.rope_freq), op.rope_theta, op.head_dim);
    auto it = rope_tables.find(key);
    if (it == rope_tables.end()) {
      const uint64_t per_pos = static_cast<uint64_t>(op.head_dim / 2) * 4;
      const auto idx = static_cast<uint32_t>(rope_op);
      it = rope_tables
               .emplace(key, std::make_pair(b.buffer(rt::CudaBufferKind::RopeCos, per_pos, idx),
                                            b.buffer(rt::CudaBufferKind::RopeSin, per_pos, idx)))
               .first;
    }
    return it->second;
  };

  const CudaFusions fused = plan_cuda_fusions(g, ternary, batch);
  for (size_t i = 0; i < g.ops.size(); ++i) {
    if (fused.skipped[i]) continue;
    const ir::Op& op = g.ops[i];
    const int64_t n = g.values[op.output].size;
    auto in = [&](size_t k) { return buf(f32_buf[op.inputs[k]]); };
    switch (op.kind) {
      case ir::OpKind::Embedding: {
        const rt::DenseRecord& r = dense[op.weight];
        std::vector<rt::CudaArg> args = dense_args(op.weight, r);
        args.push_back(buf(f32_buf[op.output]));
        b.launch(cuda_embedding(r.rows, r.cols, r.storage, r.layout == rt::DenseLayout::KMajor), args,
                 rt::CudaRunFor::Any, row_bytes(r));
        break;
      }
      case ir::OpKind::Norm: {
        std::vector<rt::CudaArg> args{in(0)};
        if (op.weight >= 0) args.push_back(norm_weight(op));
        args.push_back(buf(f32_buf[op.output]));
        b.launch(cuda_norm(n, norm_of(op)), args, rt::CudaRunFor::Any, op.weight >= 0 ? 4 * n : 0);
        break;
      }
      case ir::OpKind::Quantize: {
        // The input: this op's, or the absorbed Norm's, or the absorbed GatedAct's two.
        const int32_t norm = fused.norm_of_quantize[i], gated = fused.gated_of_quantize[i];
        std::vector<rt::CudaArg> args;
        if (gated >= 0) {
          args = {buf(f32_buf[g.ops[gated].inputs[0]]), buf(f32_buf[g.ops[gated].inputs[1]])};
        } else {
          args = {buf(f32_buf[norm >= 0 ? g.ops[norm].inputs[0] : op.inputs[0]])};
        }
        if (norm >= 0 && g.ops[norm].weight >= 0) args.push_back(norm_weight(g.ops[norm]));
        const Q8& q = q8_buf[op.output];
        args.insert(args.end(), {buf(q.q), buf(q.sum), buf(q.d)});
        b.launch(
            cuda_quantize(n, op.quant, norm >= 0 ? std::optional(norm_of(g.ops[norm])) : std::nullopt,
                          gated >= 0 ? std::optional(g.ops[gated].act) : std::nullopt),
            args, rt::CudaRunFor::Any, norm >= 0 && g.ops[norm].weight >= 0 ? 4 * n : 0);
        break;
      }
      case ir::OpKind::TernaryMatmul: {
        // The weight's arguments and the value it writes (an absorbed Add's output).
        auto weight_args = [&](size_t at) {
          const ir::Op& m = g.ops[at];
          const rt::TernaryRecord& r = ternary[m.weight];
          if (r.layout != rt::TernaryLayout::Cuda) throw std::logic_error("cuda plan: weight not packed for CUDA");
          const int32_t add = fused.add_of_matmul[at];
          return std::make_pair(rt::CudaArg{rt::CudaArgKind::TernaryWeight, static_cast<uint32_t>(m.weight), 0},
                                f32_buf[add >= 0 ? g.ops[add].output : m.output]);
        };
        const rt::TernaryRecord& r = ternary[op.weight];
        const Q8& q = q8_buf[op.inputs[0]];
        const int32_t add = fused.add_of_matmul[i];
        const auto [weight, out] = weight_args(i);
        std::vector<rt::CudaArg> args{weight, buf(q.q), buf(q.sum), buf(q.d), f32(r.w_scale)};
        if (r.block_scales) args.push_back({rt::CudaArgKind::TernaryBlockScales, static_cast<uint32_t>(op.weight), 0});
        if (add >= 0) {  // out = residual + product: the Add's other input
          const ir::Op& a = g.ops[add];
          args.push_back(buf(f32_buf[a.inputs[0] == op.output ? a.inputs[1] : a.inputs[0]]));
        }
        args.push_back(buf(out));
        CudaMatmulShape shape{.K = r.K,
                              .N = r.N,
                              .act_block = r.act_block,
                              .batch = 1,
                              .add_residual = add >= 0,
                              .block_scales = r.block_scales != 0,
                              .q8k64 = r.act_groups != 0};
        // Prefill chunks: the tensor cores where the activation blocks cover whole stages
        // (else the dp4a kernel for every chunk).
        if (!prefill_on_tensor_cores(r, batch)) {
          shape.batch = batch;
          b.launch(cuda_ternary_matmul(shape), args, rt::CudaRunFor::Any, rt::packed_bytes(r));
          break;
        }
        CudaMatmulShape chunk = shape;
        chunk.batch = batch;
        b.launch(cuda_ternary_matmul_mma(chunk), args, rt::CudaRunFor::SeveralTokens, rt::packed_bytes(r));
        // Decode: dp4a, one pass over the weights, with the rest of its group.
        if (fused.in_later_group[i]) break;
        std::vector<rt::CudaArg> decode_args = args;
        uint64_t bytes = rt::packed_bytes(r);
        for (int32_t j : fused.decode_group[i]) {
          const auto [w, o] = weight_args(j);
          const rt::TernaryRecord& rj = ternary[g.ops[j].weight];
          shape.more_rows.push_back(rj.N);
          decode_args.insert(decode_args.end(), {w, f32(rj.w_scale)});
          if (rj.block_scales)
            decode_args.push_back({rt::CudaArgKind::TernaryBlockScales, static_cast<uint32_t>(g.ops[j].weight), 0});
          decode_args.push_back(buf(o));
          bytes += rt::packed_bytes(rj);
        }
        b.launch(cuda_ternary_matmul(shape), decode_args, rt::CudaRunFor::OneToken, bytes);
        break;
      }
      case ir::OpKind::DenseMatmul: {
        const rt::DenseRecord& r = dense[op.weight];
        if (r.layout != rt::DenseLayout::KMajor) throw std::logic_error("cuda plan: dense matmul weight not k-major");
        const bool logits = op.output == g.logits;  // only the rows asked for
        std::vector<rt::CudaArg> args = dense_args(op.weight, r);
        args.push_back(in(0));
        args.push_back(buf(f32_buf[op.output]));
        b.launch(cuda_dense_matmul(r.cols, r.rows, r.storage, logits), args, rt::CudaRunFor::Any,
                 static_cast<uint64_t>(r.rows) * r.cols * rt::element_bytes(r.storage) +
                     (r.storage == rt::DenseStorage::Q8 ? 4 * static_cast<uint64_t>(r.rows) : 0));
        break;
      }
      case ir::OpKind::KQuantMatmul: {  // a k-quant head on the Q8_K codes of its input
        const rt::DenseRecord& r = dense[op.weight];
        if (r.storage != rt::DenseStorage::KQuant || r.layout != rt::DenseLayout::KMajor)
          throw std::logic_error("cuda plan: k-quant head not in k-major parts");
        const Q8& q = q8_buf[op.inputs[0]];
        std::vector<rt::CudaArg> args = dense_args(op.weight, r);
        args.insert(args.end(), {buf(q.q), buf(q.d), buf(f32_buf[op.output])});
        b.launch(cuda_kquant_matmul(r.cols, r.rows, op.output == g.logits), args, rt::CudaRunFor::Any,
                 rt::kquant_sections(r.rows, r.cols).end);
        break;
      }
      case ir::OpKind::Q8_0Matmul: {  // a Q8_0 head on the Q8_0 codes of its input
        const rt::DenseRecord& r = dense[op.weight];
        if (r.storage != rt::DenseStorage::Q8_0 || r.layout != rt::DenseLayout::KMajor)
          throw std::logic_error("cuda plan: Q8_0 head not in k-major parts");
        const Q8& q = q8_buf[op.inputs[0]];
        std::vector<rt::CudaArg> args = dense_args(op.weight, r);
        args.insert(args.end(), {buf(q.q), buf(q.d), buf(f32_buf[op.output])});
        b.launch(cuda_q8_0_matmul(r.cols, r.rows, op.output == g.logits), args, rt::CudaRunFor::Any,
                 rt::q8_0_sections(r.rows, r.cols).end);
        break;
      }
      case ir::OpKind::Rope: {
        const auto [cos, sin] = rope_table(i);
        b.launch(cuda_rope(n, op.head_dim, op.rope_style),
                 {buf(cos), buf(sin), in(0), buf(f32_buf[op.output])});
        break;
      }
      case ir::OpKind::Attention: {
        const auto [rq, rk] = fused.ropes_of_attention[i];
        if (rq >= 0) {  // q and k rotated, k and v stored: one launch
          const auto [cos_q, sin_q] = rope_table(rq);
          const auto [cos_k, sin_k] = rope_table(rk);
          b.launch(cuda_rope_kv_store({g.values[op.inputs[0]].size, kv_dim, op.head_dim, g.ops[rq].rope_style}),
                   {buf(cos_q), buf(sin_q), buf(cos_k), buf(sin_k), buf(f32_buf[g.ops[rq].inputs[0]]),
                    buf(f32_buf[g.ops[rk].inputs[0]]), in(2), in(0), buf(k_cache[op.layer]), buf(v_cache[op.layer])});
        } else {
          b.launch(cuda_kv_store(kv_dim), {in(1), in(2), buf(k_cache[op.layer]), buf(v_cache[op.layer])});
        }
        const CudaAttentionShape s{op.n_head, op.n_head_kv, op.head_dim, op.score_scale, op.softmax_sum};
        b.launch(cuda_attention(s), {in(0), buf(k_cache[op.layer]), buf(v_cache[op.layer]), buf(scores), buf(f32_buf[op.output])});
        break;
      }
      case ir::OpKind::GatedAct:
        b.launch(cuda_gated(n, op.act), {in(0), in(1), buf(f32_buf[op.output])});
        break;
      case ir::OpKind::Add:
        b.launch(cuda_add(n), {in(0), in(1), buf(f32_buf[op.output])});
        break;
    }
  }
  // The repetition penalty, when the sampler has one, on the logits the samplers below
  // read.
  const uint32_t penalty_ids = b.buffer(rt::CudaBufferKind::PerPosition, 4);
  b.launch(cuda_repeat_penalty(g.n_vocab), {buf(f32_buf[g.logits]), buf(penalty_ids)});
  // Greedy sampling on the device: only the token comes back.
  constexpr int kArgmaxParts = 1024;
  const uint32_t partial = b.buffer(rt::CudaBufferKind::Plain, kArgmaxParts * 8);
  const uint32_t argmax = b.buffer(rt::CudaBufferKind::Plain, 4);
  b.launch(cuda_argmax_partial(g.n_vocab, kArgmaxParts), {buf(f32_buf[g.logits]), buf(partial)});
  b.launch(cuda_argmax_final(kArgmaxParts), {buf(partial), buf(argmax)});

  // Sampling on the device: the largest logits (top-k) in three passes, 1024 lists
  // merged 32 at a time, then the last 32 into one.
  constexpr int kTopKParts = 1024, kTopKFanIn = 32;
  const uint64_t list_bytes = static_cast<uint64_t>(rt::kCudaTopKMax) * 8;
  const uint32_t lists = b.buffer(rt::CudaBufferKind::Plain, kTopKParts * list_bytes);
  const uint32_t merged = b.buffer(rt::CudaBufferKind::Plain, kTopKParts / kTopKFanIn * list_bytes);
  const uint32_t topk = b.buffer(rt::CudaBufferKind::Plain, list_bytes);
  b.launch(cuda_topk_partial(g.n_vocab, kTopKParts, rt::kCudaTopKMax), {buf(f32_buf[g.logits]), buf(lists)});
  b.launch(cuda_topk_merge(kTopKParts, kTopKFanIn, rt::kCudaTopKMax), {buf(lists), buf(merged)});
  b.launch(cuda_topk_merge(kTopKParts / kTopKFanIn, kTopKParts / kTopKFanIn, rt::kCudaTopKMax),
           {buf(merged), buf(topk)});

  b.program().source += "\n" + cuda_kernel_text(cuda_read_bandwidth());  // for benchmarks, not a step

  CudaProgram p = std::move(b.program());
  p.logits_buffer = f32_buf[g.logits];
  p.argmax_buffer = argmax;
  p.topk_buffer = topk;
  p.penalty_buffer = penalty_ids;
  return p;
}

std::vector<uint8_t> serialize_cuda_plan(const CudaProgram& p, const std::vector<uint8_t>& cubin,
                                         const std::string& ptx, const std::string& sm, int batch, int64_t n_vocab) {
  std::vector<uint8_t> out(sizeof(rt::CudaPlanHeader), 0);
  rt::CudaPlanHeader h{};
  h.magic = rt::kCudaPlanMagic;
  h.batch = static_cast<uint32_t>(batch);
  h.logits_buffer = p.logits_buffer;
  h.argmax_buffer = p.argmax_buffer;
  h.topk_buffer = p.topk_buffer;
  h.penalty_buffer = p.penalty_buffer;
  h.n_vocab = static_cast<uint32_t>(n_vocab);
  std::strncpy(h.sm, sm.c_str(), sizeof h.sm - 1);
  auto append = [&](const void* data, size_t size, uint64_t& off) {
    while (out.size() % 16) out.push_back(0);
    off = out.size();
    out.insert(out.end(), static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + size);
  };
  append(cubin.data(), cubin.size(), h.cubin_off);
  h.cubin_size = cubin.size();
  const std::string ptx_z = ptx + '\0';  // cuModuleLoadData takes PTX as a C string
  append(ptx_z.data(), ptx_z.size(), h.ptx_off);
  h.ptx_size = ptx_z.size();
  std::string names;
  for (const auto& n : p.kernel_names) names += n + '\0';
  append(names.data(), names.size(), h.names_off);
  h.names_size = names.size();
  h.n_kernels = p.kernel_names.size();
  append(p.buffers.data(), p.buffers.size() * sizeof(rt::CudaBuffer), h.buffers_off);
  h.n_buffers = p.buffers.size();
  append(p.steps.data(), p.steps.size() * sizeof(rt::CudaStep), h.steps_off);
  h.n_steps = p.steps.size();
  append(p.args.data(), p.args.size() * sizeof(rt::CudaArg), h.args_off);
  h.n_args = p.args.size();
  std::memcpy(out.data(), &h, sizeof h);
  return out;
}

namespace {

// The NVRTC image of `source` from the cache, else compiled and kept there. The cached
// file: the cubin's size (8 bytes, little-endian), the cubin, then the PTX.
CudaImage cuda_image(const std::string& source, const TargetInfo& target, const KernelCache& cache,
                     const std::string& work_dir, bool& cached) {
  const std::string key = "cuda image " + target.name + " " + target.cuda_sm + "\n" + toolchain_identity() + "source " +
                          std::to_string(source.size()) + "\n" + source;
  const std::string file = (std::filesystem::path(work_dir) / "cuda_image.bin").string();
  cached = cache.fetch(key, file);
  if (cached) {
    std::ifstream in(file, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    uint64_t cubin_size = 0;
    if (bytes.size() >= 8) std::memcpy(&cubin_size, bytes.data(), 8);
    if (bytes.size() >= 8 && cubin_size <= bytes.size() - 8)
      return {std::vector<uint8_t>(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(cubin_size)),
              bytes.substr(8 + cubin_size)};
    cached = false;  // (an entry of another shape under this key cannot pass the cache's checks)
  }
  CudaImage image = compile_cuda(source, target);
  std::ofstream out(file, std::ios::binary);
  const uint64_t cubin_size = image.cubin.size();
  out.write(reinterpret_cast<const char*>(&cubin_size), 8);
  out.write(reinterpret_cast<const char*>(image.cubin.data()), static_cast<std::streamsize>(image.cubin.size()));
  out << image.ptx;
  out.close();
  if (out) cache.store(key, file);
  return image;
}

}  // namespace

std::vector<uint8_t> emit_cuda_plan(const ir::Graph& g, const TargetInfo& target,
                                    std::span<const rt::TernaryRecord> ternary, std::span<const rt::DenseRecord> dense,
                                    const std::string& cuda_source, const KernelCache& cache,
                                    const std::string& work_dir, const std::function<void(const std::string&)>& say) {
  const CudaProgram program = build_cuda_program(g, ternary, dense, kCudaChunkTokens);
  size_t decode_launches = 0, chunk_launches = 0;
  for (const rt::CudaStep& st : program.steps) {
    decode_launches += st.run_for != rt::CudaRunFor::SeveralTokens;
    chunk_launches += st.run_for != rt::CudaRunFor::OneToken;
  }
  say("generating " + std::to_string(program.kernel_names.size()) + " CUDA kernels (" +
      std::to_string(decode_launches) + " launches per decoded token, " + std::to_string(chunk_launches) +
      " per prefill chunk) for " + target.name + " (NVRTC, " + target.cuda_sm + ")");
  if (!cuda_source.empty())
    write_file_atomically(cuda_source, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(program.source.data()),
                                                                program.source.size()));
  bool cached = false;
  const CudaImage image = cuda_image(program.source, target, cache, work_dir, cached);
  if (cached) say("the CUDA image from the kernel cache");
  return serialize_cuda_plan(program, image.cubin, image.ptx, target.cuda_sm, kCudaChunkTokens, g.n_vocab);
}

}  // namespace bitnetc::codegen
