// The model linked into a compiled output (executable or shared object): the blob
// (model_blob.h) read in place, the step list, the tokenizer, and generation with the
// generated kernels. One instance per loaded model; instances share nothing mutable.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "generate.h"
#include "interpreter.h"
#include "model_blob.h"
#include "tokenizer.h"

namespace bitnetc::rt {

class CompiledModel {
 public:
  // Reads the embedded blob; `n_ctx` > 0 shortens the context. Throws std::runtime_error
  // when the blob is damaged or n_ctx exceeds the model's.
  explicit CompiledModel(int64_t n_ctx = 0);

  const Tokenizer& tokenizer() const { return *tok_; }
  int64_t n_ctx() const { return graph_.n_ctx; }
  uint64_t fingerprint() const { return header_.source_fingerprint; }

  // Generates with the model's stop tokens. `on_text` gets printable text as it comes
  // and returns false to stop early.
  Generation generate(std::string_view prompt, int32_t n_predict, const SamplerParams& sampling,
                      const std::function<bool(std::string_view)>& on_text = {});

 private:
  BlobHeader header_{};
  ir::Graph graph_;
  std::unique_ptr<Tokenizer> tok_;
  std::vector<int32_t> stop_;
  std::vector<TernaryRecord> records_;
  std::vector<DenseRecord> dense_records_;
  std::vector<float> head_out_;
  std::unique_ptr<ir::Interpreter> exec_;
  std::vector<int8_t> xpad_;
  std::vector<int32_t> xsum_;
};

}  // namespace bitnetc::rt
