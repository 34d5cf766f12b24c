#include "compiled_model.h"

#include <cstring>
#include <span>
#include <stdexcept>
#include <string>

#include "serialize.h"
#include "vocab_io.h"

// Written by codegen/emit_executable.cpp for each output.
extern "C" const bitnetc::rt::KernelTable::Ternary bitnetc_gemv_kernels[];
extern "C" const bitnetc::rt::KernelTable::Ternary bitnetc_gemm_kernels[];
extern "C" const bitnetc::rt::KernelTable::Dense bitnetc_dense_kernels[];
extern "C" const uint8_t bitnetc_blob_start[];
extern "C" const uint8_t bitnetc_blob_end[];

namespace bitnetc::rt {

namespace {

// A typed view of `n` records at `off`, checked against the blob's end.
template <typename T>
std::span<const T> records_at(std::span<const uint8_t> blob, uint64_t off, uint64_t n) {
  if (off % alignof(T) != 0 || off > blob.size() || n > (blob.size() - off) / sizeof(T))
    throw std::runtime_error("the embedded model is damaged (records)");
  return {reinterpret_cast<const T*>(blob.data() + off), static_cast<size_t>(n)};
}

}  // namespace

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
  const auto stop = records_at<int32_t>(blob, header_.stop_off, header_.n_stop);
  stop_.assign(stop.begin(), stop.end());
  const auto ternary = records_at<TernaryRecord>(blob, header_.records_off, header_.n_records);
  const auto dense = records_at<DenseRecord>(blob, header_.dense_records_off, header_.n_dense_records);
  if (ternary.size() != graph_.ternary.size() || dense.size() != graph_.dense.size())
    throw std::runtime_error("the embedded model is damaged (weights)");
  const KernelTable kernels{bitnetc_gemv_kernels, bitnetc_gemm_kernels, bitnetc_dense_kernels};
  forward_ = std::make_unique<ForwardPass>(graph_, blob.data(), ternary, dense, static_cast<int>(header_.batch),
                                           kernels);
}

Generation CompiledModel::generate(std::string_view prompt, int32_t n_predict, const SamplerParams& sampling,
                                   const std::function<bool(std::string_view)>& on_text,
                                   const std::function<void(std::span<const float>)>& on_logits,
                                   bool truncate_prompt) {
  GenerateOptions go;
  go.n_predict = n_predict;
  go.n_ctx = graph_.n_ctx;
  go.sampling = sampling;
  go.stop_tokens = stop_;
  go.parse_special = true;
  go.on_logits = on_logits;
  go.truncate_prompt = truncate_prompt;
  auto forward = [&](std::span<const int32_t> tokens, int32_t pos) { return forward_->forward(tokens, pos); };
  return rt::generate(*tok_, forward, prompt, go, on_text);
}

}  // namespace bitnetc::rt
