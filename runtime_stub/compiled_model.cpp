#include "compiled_model.h"

#include <cstring>
#include <span>
#include <stdexcept>
#include <string>

#include "HalideBuffer.h"
#include "serialize.h"
#include "vocab_io.h"

using KernelFn = int (*)(halide_buffer_t*, halide_buffer_t*, halide_buffer_t*, halide_buffer_t*, float,
                         halide_buffer_t*);
extern "C" const KernelFn bitnetc_kernels[];
using DenseKernelFn = int (*)(halide_buffer_t*, halide_buffer_t*, halide_buffer_t*);
extern "C" const DenseKernelFn bitnetc_dense_kernels[];
extern "C" const uint8_t bitnetc_blob_start[];
extern "C" const uint8_t bitnetc_blob_end[];

namespace bitnetc::rt {

CompiledModel::CompiledModel(int64_t n_ctx) {
  const std::span<const uint8_t> blob(bitnetc_blob_start, static_cast<size_t>(bitnetc_blob_end - bitnetc_blob_start));
  if (blob.size() < sizeof header_) throw std::runtime_error("the embedded model is damaged");
  std::memcpy(&header_, blob.data(), sizeof header_);
  if (header_.magic != kBlobMagic || header_.version != kBlobVersion)
    throw std::runtime_error("the embedded model is damaged");
  graph_ = ir::deserialize(blob.subspan(header_.graph_off, header_.graph_size));
  if (n_ctx > 0) {
    if (n_ctx > graph_.n_ctx)
      throw std::runtime_error("a context of " + std::to_string(n_ctx) + " is more than the model's " +
                               std::to_string(graph_.n_ctx));
    graph_.n_ctx = n_ctx;
  }
  tok_ = std::make_unique<Tokenizer>(deserialize_vocab(blob.subspan(header_.vocab_off, header_.vocab_size)));
  stop_.resize(header_.n_stop);
  std::memcpy(stop_.data(), blob.data() + header_.stop_off, header_.n_stop * sizeof(int32_t));
  records_.resize(header_.n_records);
  std::memcpy(records_.data(), blob.data() + header_.records_off, header_.n_records * sizeof(TernaryRecord));

  // The step list runs in the interpreter's loop, with every ternary matmul sent to
  // its generated kernel over the packed weights in the blob.
  const uint8_t* base = blob.data();
  auto matmul = [this, base](size_t op_index, const int8_t* q, const float* d, float* out) {
    const TernaryRecord& r = records_[graph_.ops[op_index].weight];
    xpad_.assign(r.K_padded, 0);
    std::memcpy(xpad_.data(), q, r.K);
    const int64_t nb = r.K / r.act_block;
    xsum_.assign(nb, 0);
    for (int64_t k = 0; k < r.K; ++k) xsum_[k / r.act_block] += q[k];
    Halide::Runtime::Buffer<uint8_t> pb(const_cast<uint8_t*>(base + r.packed_off), static_cast<int>(r.K_padded / 4),
                                        static_cast<int>(r.N));
    Halide::Runtime::Buffer<int8_t> xb(xpad_.data(), static_cast<int>(r.K_padded));
    Halide::Runtime::Buffer<int32_t> sb(xsum_.data(), static_cast<int>(nb));
    Halide::Runtime::Buffer<float> db(const_cast<float*>(d), static_cast<int>(nb));
    Halide::Runtime::Buffer<float> yb(out, static_cast<int>(r.N));
    if (int err = bitnetc_kernels[r.kernel](pb, xb, sb, db, r.w_scale, yb))
      throw std::runtime_error("kernel " + std::to_string(r.kernel) + " failed (Halide error " + std::to_string(err) +
                               ")");
  };
  dense_records_.resize(header_.n_dense_records);
  std::memcpy(dense_records_.data(), blob.data() + header_.dense_records_off,
              header_.n_dense_records * sizeof(DenseRecord));
  auto dense = [this, base](size_t op_index, const float* x, float* out) {
    const DenseRecord& r = dense_records_[graph_.ops[op_index].weight];
    head_out_.resize(r.N_padded);
    Halide::Runtime::Buffer<float> wb(const_cast<float*>(reinterpret_cast<const float*>(base + r.off)),
                                      static_cast<int>(r.N_padded), static_cast<int>(r.K));
    Halide::Runtime::Buffer<float> xb(const_cast<float*>(x), static_cast<int>(r.K));
    Halide::Runtime::Buffer<float> yb(head_out_.data(), static_cast<int>(r.N_padded));
    if (int err = bitnetc_dense_kernels[r.kernel](wb, xb, yb))
      throw std::runtime_error("head kernel failed (Halide error " + std::to_string(err) + ")");
    std::memcpy(out, head_out_.data(), r.N * sizeof(float));
  };
  exec_ = std::make_unique<ir::Interpreter>(graph_, matmul, dense);
}

Generation CompiledModel::generate(std::string_view prompt, int32_t n_predict, const SamplerParams& sampling,
                                   const std::function<bool(std::string_view)>& on_text) {
  GenerateOptions go;
  go.n_predict = n_predict;
  go.n_ctx = graph_.n_ctx;
  go.sampling = sampling;
  go.stop_tokens = stop_;
  go.parse_special = true;
  exec_->reset();
  auto forward = [&](int32_t token, int32_t pos) -> std::span<const float> { return exec_->forward(token, pos); };
  return rt::generate(*tok_, forward, prompt, go, on_text);
}

}  // namespace bitnetc::rt
