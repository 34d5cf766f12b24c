// One entry point for every model source bitnetc reads: GGUF files, HF SafeTensors
// checkpoints (folder with config.json), and bitllama2.c-style ternary checkpoints.
//
// The result is a uniform view: architecture, validated hyperparameters, a tensor table
// pointing into the mapped files, and a tokenizer summary. Lowering to the IR starts
// from here; `bitnetc inspect` prints it.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "hf_config.h"
#include "mapped_file.h"
#include "tensor_types.h"

namespace bitnetc {

class GgufFile;
class SafeTensorsCheckpoint;

enum class SourceFormat { Gguf, SafeTensors, Llama2c };
const char* source_format_name(SourceFormat f);

struct ModelTensor {
  std::string name;
  TensorType type = TensorType::F32;
  std::vector<uint64_t> shape;  // outermost first (rows, cols)
  uint64_t file_offset = 0;     // absolute, in `file`
  uint64_t nbytes = 0;
  uint64_t n_params = 0;  // logical weights (4 per byte for packed ternary U8)
  bool ternary = false;   // holds (or will be lowered to) ternary codes
  const uint8_t* data = nullptr;
  std::string file;
};

struct Hyperparams {
  int64_t n_vocab = 0, n_embd = 0, n_ff = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ctx = 0;
  double rope_theta = 10000.0;
  double rms_eps = 1e-5;
  std::string ffn_act;  // "silu" or "relu2"
  bool tied_embeddings = false;
};

struct TokenizerSummary {
  std::string kind;    // "llama" (SentencePiece-style), "gpt2" (byte-level BPE), ...
  std::string source;  // where it comes from
  int64_t n_tokens = 0;
  int64_t bos = -1, eos = -1;
};

struct ImportOptions {
  // Refuse architectures bitnetc cannot compile (inspect turns this off to show any file).
  bool require_supported = true;
};

class ImportedModel {
 public:
  ImportedModel();
  ~ImportedModel();
  ImportedModel(ImportedModel&&) noexcept;
  ImportedModel& operator=(ImportedModel&&) noexcept;

  SourceFormat format = SourceFormat::Gguf;
  std::string path;
  std::string architecture;  // "bitnet", "bitnet-b1.58", "BitNetForCausalLM", "bitllama2c", ...
  bool supported = false;    // bitnetc can lower it
  std::string unsupported_reason;
  std::optional<Hyperparams> hparams;
  std::optional<HfConfig> hf_config;
  TokenizerSummary tokenizer;
  std::vector<ModelTensor> tensors;

  const ModelTensor* find(std::string_view name) const;
  // MappedFile::drop_pages for a tensor's bytes (or `n` of them from `offset`), in
  // whichever of the model's files holds them. Readers that stream a large tensor drop
  // kDropPagesChunk bytes at a time: dropping a few KiB at a time split the page cache's
  // 2 MiB mappings piece by piece (a TLB shootdown each; 13 % of a 2B4T compile).
  static constexpr uint64_t kDropPagesChunk = uint64_t{4} << 20;
  void drop_pages(const ModelTensor& t) const { drop_pages(t, 0, t.nbytes); }
  void drop_pages(const ModelTensor& t, uint64_t offset, uint64_t n) const;
  const GgufFile* gguf() const { return gguf_.get(); }
  const SafeTensorsCheckpoint* safetensors() const { return st_.get(); }

  // Totals for inspect.
  uint64_t n_params() const;
  uint64_t ternary_params() const;
  uint64_t ternary_bytes() const;    // as stored in the source
  uint64_t bytes_per_token() const;  // weights read to decode one token

  // Metadata as JSON (GGUF KVs, or config.json, or the checkpoint header). Arrays longer
  // than `max_array` are summarised unless max_array is 0.
  nlohmann::json metadata_json(size_t max_array) const;

 private:
  friend ImportedModel import_model(const std::string&, const ImportOptions&);
  friend ImportedModel import_llama2c(MappedFile);
  std::shared_ptr<GgufFile> gguf_;
  std::shared_ptr<SafeTensorsCheckpoint> st_;
  std::shared_ptr<MappedFile> raw_;
};

struct DecodeOptions {
  // I2_S byte order for files that do not record it (bitnet.cpp's files never do).
  std::optional<I2SLayout> i2s_layout;
};

// Decodes a weight matrix of `m` into ternary codes and scale(s), whatever its source:
// TQ1_0/TQ2_0/I2_S/TL1/TL2 and dense F32/F16/BF16/Q8_0 holding s*{-1,0,1} (GGUF), the
// packed uint8 + weight_scale and the bf16 masters ternarised by absmean (HF), and
// bitllama2.c records. Throws ImportError naming the tensor when it cannot.
TernaryWeights decode_ternary(const ImportedModel& m, const ModelTensor& t, const DecodeOptions& options = {});
// A weight's typical scale: the median of its non-zero scales (0 when all are zero).
float typical_scale(const TernaryWeights& w);
// Scales each plausible alone but wildly unlike the same weight's in the other layers
// (more than 1000x from their median: garbage, as bitnet.cpp's multi-threaded quantizer
// writes): throws ImportError naming the tensor. `typical`: tensor name -> typical_scale,
// for every ternary weight of the model; kinds with fewer than 3 layers are not judged.
void check_scales_across_layers(const ImportedModel& m, const std::vector<std::pair<std::string, float>>& typical);
// rows x cols of the matrix decode_ternary gives, without decoding it.
std::pair<int64_t, int64_t> ternary_dims(const ModelTensor& t);

// Decodes a dense tensor (F32, F16, BF16, Q8_0, TQ*) to float.
std::vector<float> decode_dense(const ModelTensor& t);
// The same values a row at a time (row r of a [rows, cols] matrix into out[0..cols)).
void decode_dense_row(const ModelTensor& t, int64_t r, float* out);

// Writes `h` as the `<arch>.*` hyperparameter keys that the GGUF reader (and llama.cpp,
// bitnet.cpp) read back: one home for those key names, for the writers.
class GgufWriter;
void set_gguf_hyperparameters(GgufWriter& w, const std::string& arch, const Hyperparams& h);

// The bitllama2.c reader on its own, over bytes already mapped (fuzzers, tests).
ImportedModel import_llama2c(MappedFile file);

// Detects the format of `path` (a file or a checkpoint folder) and imports it.
// Throws ImportError.
ImportedModel import_model(const std::string& path, const ImportOptions& options = {});

}  // namespace bitnetc
