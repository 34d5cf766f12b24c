// libFuzzer target: the runtime tokenizers on arbitrary prompt bytes. Every compiled model
// runs them on user input, so any input must give ids or a TokenizerError, and ids must
// decode. Vocabularies: a synthetic SentencePiece one, GPT-2's (hand-written
// pre-tokenizer) and falcon's (regex pre-tokenizer), from ../shared.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gguf.h"
#include "synthetic_model.h"
#include "tokenizer_import.h"

using namespace bitnetc;

namespace {
std::vector<std::unique_ptr<rt::Tokenizer>> tokenizers;
std::vector<uint8_t> synthetic_bytes;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  SyntheticSpec s;
  s.n_layer = 1;
  s.n_ff = 256;
  synthetic_bytes = make_synthetic_gguf(s).serialize();
  tokenizers.push_back(std::make_unique<rt::Tokenizer>(
      vocab_from_gguf(GgufFile::parse(MappedFile::from_memory("synthetic.gguf", synthetic_bytes)))));
  for (const char* name : {"ggml-vocab-gpt-2.gguf", "ggml-vocab-falcon.gguf"})
    tokenizers.push_back(std::make_unique<rt::Tokenizer>(
        vocab_from_gguf(GgufFile::open(std::string(BITNETC_SHARED_DIR) + "/golden/tokenizer/" + name))));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const auto& tok : tokenizers) {
    try {
      const auto ids = tok->encode(text, true, true);
      for (int32_t id : ids)
        if (id < 0 || id >= tok->n_tokens()) __builtin_trap();  // an id outside the vocabulary
      (void)tok->decode(ids);
    } catch (const rt::TokenizerError&) {
    }
  }
  return 0;
}
