// Synthetic BitNet GGUFs for tests and benchmarks: either architecture, any weight type
// bitnetc reads, any shape, fully determined by a seed (splitmix64, integer-only, so the
// same spec gives the same bytes on every machine).
//
// Weights follow ../shared/golden/gguf/synth-b158's recipe: ternary codes uniform over
// {-1, 0, +1}, one bf16-exact scale per matrix in [0.02, 0.10], norm weights near 1,
// embedding ~ 0.1 N(0,1). The vocabulary is a small SentencePiece-style one (<unk>,
// <s>, </s>, 256 byte tokens, then word pieces) so the files also tokenize.
#pragma once

#include <cstdint>
#include <string>

#include "gguf_writer.h"
#include "tensor_types.h"

namespace bitnetc {

struct SyntheticSpec {
  std::string arch = "bitnet";  // "bitnet" (llama.cpp) or "bitnet-b1.58" (bitnet.cpp)
  int64_t n_vocab = 512;
  int64_t n_embd = 256;
  int64_t n_ff = 768;
  int64_t n_layer = 2;
  int64_t n_head = 4;
  int64_t n_head_kv = 2;
  int64_t n_ctx = 256;
  double rope_theta = 10000.0;
  double rms_eps = 1e-5;
  TensorType weight_type = TensorType::TQ2_0;  // the seven projection matrices
  TensorType embd_type = TensorType::F32;      // token embedding (tied head): F32, F16, BF16 or Q8_0
  I2SLayout i2s_layout = I2SLayout::X86;
  // TQ1_0/TQ2_0: a scale per block of 256 weights, each different, as llama.cpp's own
  // quantizer writes them (else one scale per tensor).
  bool block_scales = false;
  uint64_t seed = 1;
};

// Deterministic 64-bit generator (splitmix64) with integer-derived floats.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float uniform() { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }  // [0, 1)
  float normal() {  // Irwin-Hall: sum of 12 uniforms - 6 (arithmetic only, portable)
    float s = 0;
    for (int k = 0; k < 12; ++k) s += uniform();
    return s - 6.0f;
  }

 private:
  uint64_t s_;
};

// Builds the GGUF in memory. Throws std::invalid_argument when the spec's shapes do not
// fit the chosen weight type (e.g. TQ2_0 needs row lengths that are multiples of 256).
GgufWriter make_synthetic_gguf(const SyntheticSpec& spec);

}  // namespace bitnetc
