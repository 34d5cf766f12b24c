// Reading a model's tokenizer into the runtime's Vocab (runtime_stub/text/tokenizer.h):
// from GGUF `tokenizer.ggml.*`, a SentencePiece `tokenizer.model` (through the
// sentencepiece library) or an HF `tokenizer.json`.
#pragma once

#include <string>

#include "model_import.h"
#include "tokenizer.h"

namespace bitnetc {

rt::Vocab vocab_from_gguf(const GgufFile& g);
rt::Vocab vocab_from_sentencepiece(const std::string& model_path);
// `config_dir` may hold tokenizer_config.json (bos/eos tokens by name).
rt::Vocab vocab_from_tokenizer_json(const std::string& path);

// Tokens that end generation: BOS for bitllama2.c models (runbit.c stops there, EOS is
// an ordinary token to it), EOS and EOT otherwise.
std::vector<int32_t> stop_tokens(const ImportedModel& m, const rt::Vocab& v);

// The tokenizer that goes with an imported model; throws ImportError when it has none.
rt::Vocab load_vocab(const ImportedModel& m);

// A tokenizer file on its own (bitnet_py's Tokenizer("tokenizer.model")): a GGUF's
// tokenizer.ggml.*, an HF tokenizer.json (BOS/EOS from the config.json beside it, as
// load_vocab takes them for a checkpoint folder) or a SentencePiece model. Its ids are
// those of a model imported with the same file. Throws ImportError naming the file.
rt::Vocab load_tokenizer_file(const std::string& path);

}  // namespace bitnetc
