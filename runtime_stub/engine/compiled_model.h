// The model linked into a compiled output (executable or shared object): the blob
// (model_blob.h) read in place, the tokenizer, and generation over the forward pass
// (forward.h) with the generated kernels. One instance per loaded model; instances
// share nothing mutable.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "engine.h"
#include "forward.h"
#include "generate.h"
#include "model_blob.h"
#include "tokenizer.h"

namespace bitnetc::rt {

class CompiledModel {
 public:
  // Reads the embedded blob; `n_ctx` > 0 shortens the context (of each sequence). A
  // model compiled with --weights=external maps `weights_path`, by default this file's
  // path + ".weights". `max_sequences`: how many sequences generate_all() may run at
  // once (a KV cache each). Throws std::runtime_error when the blob or the side file is
  // damaged or missing, or n_ctx exceeds the model's.
  // `weights_bytes`, when given, is the side file's content instead (a WebAssembly
  // output's loader passes it; it must outlive the model).
  explicit CompiledModel(int64_t n_ctx = 0, const std::string& weights_path = "", int max_sequences = 1,
                         std::span<const uint8_t> weights_bytes = {});
  CompiledModel(const CompiledModel&) = delete;
  CompiledModel& operator=(const CompiledModel&) = delete;

  bool external_weights() const { return header_.external_weights != 0; }

  const Tokenizer& tokenizer() const { return *tok_; }
  int64_t n_ctx() const { return graph_.n_ctx; }
  uint64_t fingerprint() const { return header_.source_fingerprint; }

  // Generates with the model's stop tokens. `on_text` gets printable text as it comes
  // and returns false to stop early; `on_logits` sees the logits before each sample;
  // `truncate_prompt` cuts a prompt longer than the context (else an error).
  Generation generate(std::string_view prompt, int32_t n_predict, const SamplerParams& sampling,
                      const std::function<bool(std::string_view)>& on_text = {},
                      const std::function<void(std::span<const float>)>& on_logits = {}, bool truncate_prompt = false);

  // The same with options from generate_options(), changed by the caller (--ignore-eos
  // clears stop_tokens, --no-special parse_special); the device fast paths are added.
  Generation generate(std::string_view prompt, GenerateOptions options,
                      const std::function<bool(std::string_view)>& on_text = {});

  // Generates every request, up to max_sequences at a time in one batched forward pass
  // (engine.h); each request gets the model's stop tokens and context. Results in
  // request order, each as generate() gives it alone.
  // `sequences`: which sequence ids the slots use (empty: 0 .. slots - 1).
  std::vector<Generation> generate_all(std::vector<SequenceRequest> requests, int slots,
                                       const std::function<void(size_t, const Generation&)>& on_finished = {},
                                       std::vector<int32_t> sequences = {});

  // generate() a piece at a time on sequence `seq` (0 .. max_sequences() - 1), which
  // the caller keeps to this generation until it frees the sequence (release()).
  // `lookup`: lookup decoding's drafts at most (GenerateOptions::lookup; 0: off).
  std::unique_ptr<PulledGeneration> pull(std::string_view prompt, int32_t n_predict, const SamplerParams& sampling,
                                         int32_t seq, int32_t lookup = 0);
  // The same, continuing sequence `seq` whose KV cache holds the first `fed` tokens of
  // `history` (a session): the rest are fed first.
  std::unique_ptr<PulledGeneration> pull_continued(std::vector<int32_t> history, int32_t fed, int32_t n_predict,
                                                   const SamplerParams& sampling, int32_t seq, int32_t lookup = 0);
  // Feeds tokens to sequence `seq` at positions pos, pos + 1, ... (no logits).
  void feed(int32_t seq, std::span<const int32_t> tokens, int32_t pos);
  // The options generate() runs with (the model's context and stop tokens).
  GenerateOptions generate_options(int32_t n_predict, const SamplerParams& sampling) const;
  int max_sequences() const { return forward_->max_sequences(); }
  // Frees sequence `seq`'s KV cache (it starts afresh when next fed).
  void release(int32_t seq) { forward_->release_sequence(seq); }

  // The forward pass itself (benchmarks feed it token ids directly).
  Forward& forward_pass() { return *forward_; }
  // Where the forward pass runs: "cpu", or the GPU's name for a CUDA output.
  std::string device() const;
  const ir::Graph& graph() const { return graph_; }

 private:
  // forward() on sequence `seq`; with `all_logits`, the logits after every token fed
  // (GenerateOptions::forward_all).
  ForwardFn sequence_forward(int32_t seq, bool all_logits = false);
  // The options a pulled generation on `seq` runs with.
  GenerateOptions pull_options(int32_t n_predict, const SamplerParams& sampling, int32_t seq, int32_t lookup);

  BlobHeader header_{};
  ir::Graph graph_;
  std::unique_ptr<Tokenizer> tok_;
  std::vector<int32_t> stop_;
  std::shared_ptr<const uint8_t> side_file_;  // the side file's bytes (external weights)
  std::unique_ptr<Forward> forward_;          // after side_file_: destroyed before the unmap
};

// The path of the executable or shared object this code is linked into.
std::string own_binary_path();

// What the model embedded in this binary is, read from its blob without loading the
// weights or a device (--version, and the artifact manifest of `--version --json`).
struct EmbeddedModelSummary {
  std::string architecture;
  int64_t n_layer = 0;
  uint64_t fingerprint = 0;                 // of the model file compiled (model_fingerprint.h)
  std::map<std::string, int> layouts;       // ternary weights per layout ("i2_s", "tl2", ...)
  bool external_weights = false;            // --weights=external
};
EmbeddedModelSummary summarize_embedded_model();

// A WebAssembly output's side file (--weights=external): its loader reads model.weights
// and hands its bytes over before a model loads (runtime_stub/wasm/wasm_api.cpp); a
// CompiledModel given no weights_bytes takes these; errors call them `name`. (The bytes
// must outlive the models.)
void set_loader_weights(std::span<const uint8_t> bytes, const std::string& name);
// "NAME, N layers, fingerprint HEX" (--version's line).
std::string describe_embedded_model();

// The embedded model's context length (positions), read without loading it.
int64_t embedded_n_ctx();

}  // namespace bitnetc::rt
