#include "cuda_forward.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "interpreter.h"

namespace bitnetc::rt {

CudaForwardPass::CudaForwardPass(const ir::Graph& g, std::span<const uint8_t> plan, const uint8_t* blob,
                                 uint64_t weights_off, uint64_t weights_size, std::span<const TernaryRecord> ternary,
                                 std::span<const DenseRecord> dense, int max_sequences)
    : g_(g), ternary_(ternary), dense_(dense) {
  if (max_sequences < 1) throw std::invalid_argument("a forward pass needs at least one sequence");
  if (plan.size() < sizeof plan_) throw std::runtime_error("the embedded CUDA plan is damaged");
  std::memcpy(&plan_, plan.data(), sizeof plan_);
  if (plan_.magic != kCudaPlanMagic || plan_.batch < 1) throw std::runtime_error("the embedded CUDA plan is damaged");
  const auto cubin = records_at<uint8_t>(plan, plan_.cubin_off, plan_.cubin_size, "the embedded CUDA plan");
  const auto ptx = records_at<char>(plan, plan_.ptx_off, plan_.ptx_size, "the embedded CUDA plan");
  const auto names = records_at<char>(plan, plan_.names_off, plan_.names_size, "the embedded CUDA plan");
  const auto buffers = records_at<CudaBuffer>(plan, plan_.buffers_off, plan_.n_buffers, "the embedded CUDA plan");
  const auto steps = records_at<CudaStep>(plan, plan_.steps_off, plan_.n_steps, "the embedded CUDA plan");
  const auto args = records_at<CudaArg>(plan, plan_.args_off, plan_.n_args, "the embedded CUDA plan");
  if (ptx.empty() || ptx.back() != '\0' || (!names.empty() && names.back() != '\0') ||
      plan_.logits_buffer >= buffers.size() || plan_.argmax_buffer >= buffers.size() ||
      plan_.topk_buffer >= buffers.size() || buffers[plan_.topk_buffer].bytes < kCudaTopKMax * 8u ||
      plan_.penalty_buffer >= buffers.size() || buffers[plan_.penalty_buffer].kind != CudaBufferKind::PerPosition ||
      buffers[plan_.penalty_buffer].bytes != 4)
    throw std::runtime_error("the embedded CUDA plan is damaged");

  const CudaDriver& cu = cuda_driver();
  try {
    int n_devices = 0;
    cuda_check(cu.cuDeviceGetCount(&n_devices), "counting GPUs");
    if (n_devices < 1) throw std::runtime_error("no CUDA GPU is visible to this process (CUDA_VISIBLE_DEVICES?)");
    cuda_check(cu.cuDeviceGet(&device_, 0), "opening GPU 0");
    int major = 0, minor = 0;
    char name[256] = {};
    cuda_check(cu.cuDeviceGetAttribute(&major, kCuAttrComputeCapabilityMajor, device_), "reading the GPU's version");
    cuda_check(cu.cuDeviceGetAttribute(&minor, kCuAttrComputeCapabilityMinor, device_), "reading the GPU's version");
    cuda_check(cu.cuDeviceGetName(name, sizeof name - 1, device_), "reading the GPU's name");
    const std::string gpu_sm = "sm_" + std::to_string(major) + std::to_string(minor);
    device_name_ = std::string(name) + " (" + gpu_sm + ")";
    cuda_check(cu.cuDevicePrimaryCtxRetain(&context_, device_), "creating the context");
    cuda_check(cu.cuCtxSetCurrent(context_), "making the context current");
    // The cubin runs on its own SM and later minors of its major; the PTX is compiled by
    // the driver for anything newer.
    if (cu.cuModuleLoadData(&module_, cubin.data()) != kCudaSuccess) {
      module_ = nullptr;
      const CUresult r = cu.cuModuleLoadData(&module_, ptx.data());
      if (r != kCudaSuccess) {
        module_ = nullptr;
        cuda_check(r, std::string("loading the kernels (compiled for ") + plan_.sm + ") on " + device_name_ +
                          "; compile the model for this GPU's target (`bitnetc targets` lists the cuda-sm* ones)");
      }
    }
    cuda_check(cu.cuStreamCreate(&stream_, 0), "creating a stream");

    // The weights, once.
    const CUdeviceptr weights = weights_ = alloc(weights_size);
    weights_size_ = weights_size;
    cuda_check(cu.cuMemcpyHtoD_v2(weights, blob + weights_off, weights_size), "copying the weights to the GPU");
    auto weight_at = [&](uint64_t off, uint64_t bytes) {
      if (off < weights_off || off - weights_off > weights_size || bytes > weights_size - (off - weights_off))
        throw std::runtime_error("the embedded CUDA plan is damaged (weights)");
      return weights + (off - weights_off);
    };

    // The buffers, zeroed; per-position ones for this context; rope tables filled; a
    // table of a pointer per sequence for each KV cache.
    std::vector<CUdeviceptr> buffer_at;
    const uint64_t n_ctx = static_cast<uint64_t>(g.n_ctx);
    const auto n_seq = static_cast<uint64_t>(max_sequences);
    for (const CudaBuffer& b : buffers) {
      const uint64_t bytes = b.kind == CudaBufferKind::Plain            ? b.bytes
                             : b.kind == CudaBufferKind::SequenceCaches ? 8 * n_seq
                                                                        : b.bytes * n_ctx;
      if (static_cast<uint32_t>(b.kind) > static_cast<uint32_t>(CudaBufferKind::SequenceCaches))
        throw std::runtime_error("the embedded CUDA plan is damaged (buffer kind)");
      const CUdeviceptr p = alloc(bytes);
      cuda_check(cu.cuMemsetD8_v2(p, 0, bytes), "clearing a buffer");
      if (b.kind == CudaBufferKind::RopeCos || b.kind == CudaBufferKind::RopeSin) {
        if (b.op >= g.ops.size() || g.ops[b.op].kind != ir::OpKind::Rope ||
            b.bytes != static_cast<uint64_t>(g.ops[b.op].head_dim / 2) * 4)
          throw std::runtime_error("the embedded CUDA plan is damaged (rope)");
        const size_t half = static_cast<size_t>(g.ops[b.op].head_dim / 2);
        std::vector<float> table(half * n_ctx), other(half);
        for (uint64_t pos = 0; pos < n_ctx; ++pos) {
          float* row = &table[pos * half];
          if (b.kind == CudaBufferKind::RopeCos)
            ir::rope_cos_sin(g.ops[b.op], static_cast<int32_t>(pos), row, other.data());
          else
            ir::rope_cos_sin(g.ops[b.op], static_cast<int32_t>(pos), other.data(), row);
        }
        cuda_check(cu.cuMemcpyHtoD_v2(p, table.data(), bytes), "copying the rope tables");
      }
      if (b.kind == CudaBufferKind::SequenceCaches) {
        cache_tables_.push_back({p, b.bytes});
        table_host_.emplace_back(n_seq, 0);
      }
      buffer_at.push_back(p);
    }
    sequence_caches_.resize(n_seq);
    next_pos_.assign(n_seq, 0);
    logits_ = buffer_at[plan_.logits_buffer];
    argmax_ = buffer_at[plan_.argmax_buffer];
    topk_ = buffer_at[plan_.topk_buffer];
    penalty_ids_ = buffer_at[plan_.penalty_buffer];
    logits_host_.resize(static_cast<size_t>(g.n_vocab));
    state_host_.assign(cuda_state_ints(plan_.batch), 0);
    state_host_[kBitnetcStateBatch] = static_cast<int32_t>(plan_.batch);
    state_host_[kBitnetcStateCtx] = static_cast<int32_t>(g.n_ctx);
    state_ = alloc(state_host_.size() * 4);

    // Each step's kernel and its arguments, bound once: addresses never move.
    std::vector<CUfunction> functions;
    std::vector<std::string> kernel_names;
    for (const char* n = names.data(); n < names.data() + names.size(); n += std::strlen(n) + 1) {
      CUfunction f = nullptr;
      cuda_check(cu.cuModuleGetFunction(&f, module_, n), std::string("finding kernel ") + n);
      functions.push_back(f);
      kernel_names.emplace_back(n);
    }
    if (functions.size() != plan_.n_kernels) throw std::runtime_error("the embedded CUDA plan is damaged (kernels)");
    arg_values_.reserve(args.size());
    for (const CudaArg& a : args) {
      uint64_t v = 0;
      switch (a.kind) {
        case CudaArgKind::State: v = state_; break;
        case CudaArgKind::Buffer:
          if (a.index >= buffer_at.size()) throw std::runtime_error("the embedded CUDA plan is damaged (buffer)");
          v = buffer_at[a.index] + a.value;
          break;
        case CudaArgKind::TernaryWeight:
          if (a.index >= ternary.size()) throw std::runtime_error("the embedded CUDA plan is damaged (weight)");
          v = weight_at(ternary[a.index].off, packed_bytes(ternary[a.index]));
          break;
        case CudaArgKind::DenseWeight:
          if (a.index >= dense.size()) throw std::runtime_error("the embedded CUDA plan is damaged (weight)");
          v = weight_at(dense[a.index].off + a.value, 0);  // a k-quant weight's parts: offsets in it
          break;
        case CudaArgKind::DenseScales:
          if (a.index >= dense.size() || dense[a.index].storage != DenseStorage::Q8)
            throw std::runtime_error("the embedded CUDA plan is damaged (scales)");
          v = weight_at(dense[a.index].scales_off, 4 * static_cast<uint64_t>(dense[a.index].rows));
          break;
        case CudaArgKind::TernaryBlockScales: {
          if (a.index >= ternary.size() || !ternary[a.index].block_scales)
            throw std::runtime_error("the embedded CUDA plan is damaged (block scales)");
          const TernaryRecord& r = ternary[a.index];
          v = weight_at(r.block_scales_off, 4 * static_cast<uint64_t>(r.K / r.act_block * r.block_scale_rows));
          break;
        }
        case CudaArgKind::F32: v = a.value; break;
        default: throw std::runtime_error("the embedded CUDA plan is damaged (argument)");
      }
      arg_values_.push_back(v);
    }
    for (uint64_t& v : arg_values_) arg_pointers_.push_back(&v);  // a float argument reads the slot's low 4 bytes
    for (const CudaStep& s : steps) {
      if (s.kernel >= functions.size() || s.first_arg > args.size() || s.n_args > args.size() - s.first_arg ||
          s.grid_x == 0 || s.block_x == 0 || static_cast<uint32_t>(s.run_for) > 2 ||
          static_cast<uint32_t>(s.grid_y) > static_cast<uint32_t>(CudaGridY::LogitRows))
        throw std::runtime_error("the embedded CUDA plan is damaged (step)");
      steps_.push_back(s);
      kernels_.push_back(functions[s.kernel]);
      step_kernel_names_.push_back(kernel_names[s.kernel]);
    }
  } catch (...) {
    release();  // the destructor does not run for a constructor that throws
    throw;
  }
}

CudaForwardPass::~CudaForwardPass() { release(); }

void CudaForwardPass::release() {
  if (!context_) return;
  const CudaDriver& cu = cuda_driver();
  cu.cuCtxSetCurrent(context_);
  if (stream_) cu.cuStreamSynchronize(stream_);
  if (decode_graph_) cu.cuGraphExecDestroy(decode_graph_);
  for (const auto& caches : sequence_caches_)
    for (CUdeviceptr p : caches) cu.cuMemFree_v2(p);
  sequence_caches_.clear();
  for (CUdeviceptr p : allocations_) cu.cuMemFree_v2(p);
  if (stream_) cu.cuStreamDestroy_v2(stream_);
  if (module_) cu.cuModuleUnload(module_);
  cu.cuDevicePrimaryCtxRelease_v2(device_);
  decode_graph_ = nullptr;
  allocations_.clear();
  stream_ = nullptr;
  module_ = nullptr;
  context_ = nullptr;
}

CUdeviceptr CudaForwardPass::alloc(size_t bytes) {
  CUdeviceptr p = 0;
  cuda_check(cuda_driver().cuMemAlloc_v2(&p, bytes ? bytes : 4),
             "allocating " + std::to_string(bytes >> 20) + " MiB on " + device_name_);
  allocations_.push_back(p);
  return p;
}

void CudaForwardPass::launch_plan(int count, int logit_rows) {
  const CudaDriver& cu = cuda_driver();
  const CudaRunFor skip = count == 1 ? CudaRunFor::SeveralTokens : CudaRunFor::OneToken;
  for (size_t i = 0; i < steps_.size(); ++i) {
    const CudaStep& s = steps_[i];
    if (s.run_for == skip) continue;
    const int grid_y = s.grid_y == CudaGridY::ChunkRows ? count : s.grid_y == CudaGridY::LogitRows ? logit_rows : 1;
    if (grid_y == 0) continue;  // no logits asked for in this chunk
    cuda_check(cu.cuLaunchKernel(kernels_[i], s.grid_x, static_cast<unsigned>(grid_y), 1, s.block_x, 1, 1, 0, stream_,
                                 &arg_pointers_[s.first_arg], nullptr),
               "launching a kernel");
  }
}

void CudaForwardPass::ensure_sequence(int32_t seq) {
  std::vector<CUdeviceptr>& caches = sequence_caches_[seq];
  if (!caches.empty() || cache_tables_.empty()) return;
  const CudaDriver& cu = cuda_driver();
  try {
    for (size_t t = 0; t < cache_tables_.size(); ++t) {
      const uint64_t bytes = cache_tables_[t].bytes_per_position * static_cast<uint64_t>(g_.n_ctx);
      CUdeviceptr p = 0;
      if (cu.cuMemAlloc_v2(&p, bytes) != kCudaSuccess)
        throw std::runtime_error("out of GPU memory for the KV cache of sequence " + std::to_string(seq) + " (" +
                                 std::to_string(g_.n_ctx) + " positions) on " + device_name_);
      caches.push_back(p);
      // Synchronous (a sequence starts rarely): the stream's earlier work finishes first.
      cuda_check(cu.cuMemsetD8_v2(p, 0, bytes), "clearing a KV cache");
      table_host_[t][seq] = p;
      cuda_check(cu.cuMemcpyHtoD_v2(cache_tables_[t].table + 8 * static_cast<uint64_t>(seq), &table_host_[t][seq], 8),
                 "writing a KV cache table");
    }
  } catch (...) {
    cu.cuStreamSynchronize(stream_);
    for (size_t t = 0; t < caches.size(); ++t) {
      cu.cuMemFree_v2(caches[t]);
      table_host_[t][seq] = 0;
    }
    caches.clear();
    throw;
  }
}

void CudaForwardPass::release_sequence(int32_t seq) {
  if (seq < 0 || static_cast<size_t>(seq) >= sequence_caches_.size()) return;
  next_pos_[seq] = 0;
  std::vector<CUdeviceptr>& caches = sequence_caches_[seq];
  if (caches.empty()) return;
  const CudaDriver& cu = cuda_driver();
  cuda_check(cu.cuCtxSetCurrent(context_), "making the context current");
  cuda_check(cu.cuStreamSynchronize(stream_), "finishing the work on a sequence");  // no kernel still reads them
  for (size_t t = 0; t < caches.size(); ++t) {
    cu.cuMemFree_v2(caches[t]);
    table_host_[t][seq] = 0;
    cuda_check(cu.cuMemcpyHtoD_v2(cache_tables_[t].table + 8 * static_cast<uint64_t>(seq), &table_host_[t][seq], 8),
               "writing a KV cache table");
  }
  caches.clear();
}

std::span<const float> CudaForwardPass::forward(std::span<const int32_t> tokens, int32_t pos) {
  run_chunks(tokens, pos);
  const CudaDriver& cu = cuda_driver();
  logits_host_.resize(static_cast<size_t>(g_.n_vocab));
  cuda_check(cu.cuMemcpyDtoHAsync_v2(logits_host_.data(), logits_, logits_host_.size() * 4, stream_),
             "copying the logits back");
  cuda_check(cu.cuStreamSynchronize(stream_), "running the forward pass");
  return logits_host_;
}

std::span<const float> CudaForwardPass::step(std::span<const BatchRow> rows) {
  check_step_rows(g_, rows, next_pos_);
  const CudaDriver& cu = cuda_driver();
  cuda_check(cu.cuCtxSetCurrent(context_), "making the context current");
  // The executor's order, as the CPU's: each sequence's rows together, in their order,
  // sequences in order of first appearance. Rows are independent in every op but
  // attention, which reads only the row's own sequence: the order changes no bit.
  std::vector<int32_t> order(rows.size()), first_row(next_pos_.size(), -1), logit_index(rows.size(), -1);
  int32_t n_logits = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    order[i] = static_cast<int32_t>(i);
    if (first_row[rows[i].seq] < 0) first_row[rows[i].seq] = static_cast<int32_t>(i);
    if (rows[i].logits) logit_index[i] = n_logits++;
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return first_row[rows[a].seq] < first_row[rows[b].seq]; });
  for (const BatchRow& r : rows) ensure_sequence(r.seq);  // before any kernel runs: out of memory feeds nothing
  state_host_[kBitnetcStatePenaltyCount] = 0;
  const size_t n_vocab = static_cast<size_t>(g_.n_vocab);
  logits_host_.resize(std::max<size_t>(n_logits, 1) * n_vocab);
  std::vector<BatchRow> chunk;
  std::vector<int32_t> logit_rows, out_index;
  for (size_t at = 0; at < order.size(); at += plan_.batch) {
    const size_t end = std::min(order.size(), at + plan_.batch);
    chunk.clear(), logit_rows.clear(), out_index.clear();
    for (size_t i = at; i < end; ++i) {
      const BatchRow& r = rows[order[i]];
      if (r.logits) logit_rows.push_back(static_cast<int32_t>(i - at)), out_index.push_back(logit_index[order[i]]);
      chunk.push_back(r);
    }
    run_chunk(chunk, logit_rows, 0);
    for (size_t j = 0; j < out_index.size(); ++j)
      cuda_check(cu.cuMemcpyDtoHAsync_v2(logits_host_.data() + out_index[j] * n_vocab, logits_ + j * n_vocab * 4,
                                         n_vocab * 4, stream_),
                 "copying the logits back");
  }
  cuda_check(cu.cuStreamSynchronize(stream_), "running the forward pass");
  for (const BatchRow& r : rows) next_pos_[r.seq] = r.pos + 1;
  return {logits_host_.data(), static_cast<size_t>(n_logits) * n_vocab};
}

bool CudaForwardPass::penalty_fits(const RepeatPenalty& penalty) const {
  return penalty.tokens.size() <= static_cast<size_t>(g_.n_ctx);  // an int per position
}

int32_t CudaForwardPass::forward_argmax(std::span<const int32_t> tokens, int32_t pos, const RepeatPenalty& penalty) {
  if (!penalty_fits(penalty)) return Forward::forward_argmax(tokens, pos, penalty);
  run_chunks(tokens, pos, 0, &penalty);
  const CudaDriver& cu = cuda_driver();
  int32_t token = 0;
  cuda_check(cu.cuMemcpyDtoHAsync_v2(&token, argmax_, 4, stream_), "copying the token back");
  cuda_check(cu.cuStreamSynchronize(stream_), "running the forward pass");
  return token;
}

double CudaForwardPass::measure_device_read_bandwidth() {
  const CudaDriver& cu = cuda_driver();
  cuda_check(cu.cuCtxSetCurrent(context_), "making the context current");
  CUfunction f = nullptr;
  cuda_check(cu.cuModuleGetFunction(&f, module_, kCudaReadBandwidthKernel), "finding the bandwidth kernel");
  CUdeviceptr p = weights_;
  unsigned long long words = weights_size_ / 16;
  CUdeviceptr sink = argmax_;  // never written in practice
  void* params[] = {&p, &words, &sink};
  auto run = [&] {
    cuda_check(cu.cuLaunchKernel(f, 1024, 1, 1, 256, 1, 1, 0, stream_, params, nullptr), "reading the weights");
  };
  run();  // warm-up
  cuda_check(cu.cuStreamSynchronize(stream_), "reading the weights");
  constexpr int kReps = 10;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kReps; ++i) run();
  cuda_check(cu.cuStreamSynchronize(stream_), "reading the weights");
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s > 0 ? static_cast<double>(words) * 16.0 * kReps / s : 0;
}

std::vector<StepProfile> CudaForwardPass::profile_decode_steps(int reps) {
  const int32_t first = 0;
  run_chunks(std::span<const int32_t>(&first, 1), 0);  // every buffer holds a real token's values
  const CudaDriver& cu = cuda_driver();
  cuda_check(cu.cuStreamSynchronize(stream_), "running the forward pass");
  // The decode step's launches, replayed at the same position (each is idempotent there),
  // between a pair of events each.
  std::vector<size_t> decode;
  for (size_t i = 0; i < steps_.size(); ++i)
    if (steps_[i].run_for != CudaRunFor::SeveralTokens) decode.push_back(i);
  std::vector<CUevent> events(2 * decode.size(), nullptr);
  std::vector<double> ms(decode.size(), 0);
  try {
    for (CUevent& e : events) cuda_check(cu.cuEventCreate(&e, 0), "creating an event");
    for (int rep = 0; rep < reps; ++rep) {
      for (size_t j = 0; j < decode.size(); ++j) {
        const CudaStep& s = steps_[decode[j]];
        cuda_check(cu.cuEventRecord(events[2 * j], stream_), "recording an event");
        cuda_check(cu.cuLaunchKernel(kernels_[decode[j]], s.grid_x, 1, 1, s.block_x, 1, 1, 0, stream_,
                                     &arg_pointers_[s.first_arg], nullptr),
                   "launching a kernel");
        cuda_check(cu.cuEventRecord(events[2 * j + 1], stream_), "recording an event");
      }
      cuda_check(cu.cuEventSynchronize(events.back()), "timing the decode step");
      for (size_t j = 0; j < decode.size(); ++j) {
        float t = 0;
        cuda_check(cu.cuEventElapsedTime(&t, events[2 * j], events[2 * j + 1]), "reading an event");
        ms[j] += t;
      }
    }
  } catch (...) {
    for (CUevent e : events)
      if (e) cu.cuEventDestroy_v2(e);
    throw;
  }
  for (CUevent e : events) cu.cuEventDestroy_v2(e);
  std::vector<StepProfile> out;
  for (size_t j = 0; j < decode.size(); ++j)
    out.push_back({step_kernel_names_[decode[j]], 1000.0 * ms[j] / std::max(reps, 1), steps_[decode[j]].weight_bytes});
  return out;
}

bool CudaForwardPass::forward_top_k(std::span<const int32_t> tokens, int32_t pos, int k, const RepeatPenalty& penalty,
                                    std::vector<int32_t>& ids, std::vector<float>& logits) {
  if (k < 1 || k > kCudaTopKMax || !penalty_fits(penalty)) return false;
  run_chunks(tokens, pos, k, &penalty);
  const CudaDriver& cu = cuda_driver();
  float vals[kCudaTopKMax];
  int32_t got[kCudaTopKMax];
  cuda_check(cu.cuMemcpyDtoHAsync_v2(vals, topk_, sizeof vals, stream_), "copying the candidates back");
  cuda_check(cu.cuMemcpyDtoHAsync_v2(got, topk_ + sizeof vals, sizeof got, stream_), "copying the candidates back");
  cuda_check(cu.cuStreamSynchronize(stream_), "running the forward pass");
  ids.clear();
  logits.clear();
  for (int j = 0; j < k && got[j] >= 0; ++j) {  // fewer when the vocabulary is smaller than k
    ids.push_back(got[j]);
    logits.push_back(vals[j]);
  }
  return true;
}

void CudaForwardPass::run_chunks(std::span<const int32_t> tokens, int32_t pos, int top_k,
                                 const RepeatPenalty* penalty) {
  check_forward_args(g_, tokens, pos, next_pos_[0]);
  const CudaDriver& cu = cuda_driver();
  cuda_check(cu.cuCtxSetCurrent(context_), "making the context current");
  ensure_sequence(0);
  const bool penalize = penalty && !penalty->tokens.empty();
  if (penalize) {
    if (!penalty_fits(*penalty)) throw std::logic_error("CudaForwardPass: too many penalized tokens");
    penalty_host_ = penalty->tokens;
    cuda_check(cu.cuMemcpyHtoDAsync_v2(penalty_ids_, penalty_host_.data(), penalty_host_.size() * 4, stream_),
               "copying the penalized tokens to the GPU");
  }
  state_host_[kBitnetcStatePenaltyCount] = penalize ? static_cast<int32_t>(penalty->tokens.size()) : 0;
  const float penalty_value = penalize ? penalty->penalty : 1.0f;
  std::memcpy(&state_host_[kBitnetcStatePenalty], &penalty_value, 4);
  const std::vector<BatchRow> rows = rows_of_one_sequence(tokens, pos);
  for (size_t i = 0; i < rows.size(); i += plan_.batch) {
    const size_t count = std::min<size_t>(plan_.batch, rows.size() - i);
    const int32_t last = static_cast<int32_t>(count - 1);
    // Only the last row's logits are read: the head runs for it alone.
    run_chunk(std::span<const BatchRow>(rows).subspan(i, count),
              i + count == rows.size() ? std::span<const int32_t>(&last, 1) : std::span<const int32_t>(), top_k);
  }
  next_pos_[0] = pos + static_cast<int32_t>(tokens.size());
}

void CudaForwardPass::run_chunk(std::span<const BatchRow> rows, std::span<const int32_t> logit_rows, int top_k) {
  const CudaDriver& cu = cuda_driver();
  const int count = static_cast<int>(rows.size());
  const size_t B = plan_.batch;
  int32_t* per_row = &state_host_[kBitnetcStateRows];
  state_host_[kBitnetcStateCount] = count;
  state_host_[kBitnetcStateTopK] = top_k;
  state_host_[kBitnetcStateLogitRows] = static_cast<int32_t>(logit_rows.size());
  for (int i = 0; i < count; ++i) {
    per_row[i] = rows[i].token;
    per_row[B + i] = rows[i].pos;
    per_row[2 * B + i] = rows[i].seq;
  }
  std::copy(logit_rows.begin(), logit_rows.end(), per_row + 3 * B);
  // Pageable memory: the copy has taken the state when the call returns.
  cuda_check(cu.cuMemcpyHtoDAsync_v2(state_, state_host_.data(), state_host_.size() * 4, stream_),
             "copying the rows to the GPU");
  if (count > 1 || logit_rows.size() != 1) {
    launch_plan(count, static_cast<int>(logit_rows.size()));
    return;
  }
  // Decode: the launches of one row and its logits, captured once, replayed for every
  // position and sequence.
  if (!decode_graph_) {
    cuda_check(cu.cuStreamBeginCapture_v2(stream_, kCuStreamCaptureThreadLocal), "capturing the decode step");
    CUgraph graph = nullptr;
    try {
      launch_plan(1, 1);
    } catch (...) {
      cu.cuStreamEndCapture(stream_, &graph);
      if (graph) cu.cuGraphDestroy(graph);
      throw;
    }
    cuda_check(cu.cuStreamEndCapture(stream_, &graph), "capturing the decode step");
    const CUresult r = cu.cuGraphInstantiateWithFlags(&decode_graph_, graph, 0);
    cu.cuGraphDestroy(graph);
    cuda_check(r, "instantiating the decode graph");
  }
  cuda_check(cu.cuGraphLaunch(decode_graph_, stream_), "running the decode step");
}

}  // namespace bitnetc::rt
