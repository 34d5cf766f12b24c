// Tokenizers baked into every compiled model: SentencePiece-style (LLaMA-2, the
// bitllama2.c models) and byte-level BPE (GPT-2, LLaMA-3 / BitNet b1.58 2B4T).
//
// Plain C++ with no dependencies: the vocabulary arrives as data (a Vocab), filled at
// compile time by compiler/tokenizer_import.cpp from GGUF metadata, a SentencePiece
// tokenizer.model or an HF tokenizer.json.
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "chat.h"

namespace bitnetc::rt {

// llama.cpp's token types (tokenizer.ggml.token_type).
enum class TokenType : uint8_t {
  Undefined = 0,
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6
};

enum class VocabKind : uint8_t {
  Spm,  // pieces with U+2581 for spaces, merged by score, <0xXX> byte fallback
  Bpe,  // byte-level pieces (GPT-2's byte-to-unicode map), merged by rank
};

enum class PreTokenizer : uint8_t {
  None,
  Gpt2,     // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  Llama3,   // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
            //  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  Regexes,  // Vocab::pre_regexes applied in turn (matches and the gaps between them split)
};

struct Vocab {
  VocabKind kind = VocabKind::Spm;
  PreTokenizer pre = PreTokenizer::None;
  std::vector<std::string> tokens;
  std::vector<float> scores;  // SPM merge priority (higher first)
  std::vector<TokenType> types;
  std::vector<std::string> merges;  // BPE, "left right", rank = index
  int32_t bos = -1, eos = -1, eot = -1, unk = -1;
  bool add_bos = true;
  bool add_space_prefix = true;                     // SPM: a space before the text (SentencePiece's dummy prefix)
  bool ignore_merges = false;                       // BPE: a pre-token that is itself in the vocab is taken whole
  std::vector<std::string> pre_regexes;             // PreTokenizer::Regexes, in llama.cpp's dialect
  ChatTemplate chat_template = ChatTemplate::None;  // recognised from the model's Jinja template
};

class TokenizerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Tokenizer {
 public:
  explicit Tokenizer(Vocab v);

  // `parse_special`: control tokens written in the text (e.g. "<|eot_id|>") become their
  // ids; user-defined tokens are always split out. Throws TokenizerError for text that
  // is not valid UTF-8 (naming the byte offset).
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special = false) const;
  // The same, with control tokens never matched where they overlap one of `plain` (byte
  // ranges [first, second) of `text`: a chat message's content, say).
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special,
                              std::span<const std::pair<size_t, size_t>> plain) const;

  // The bytes a token stands for (control tokens: none, unless `special`).
  std::string token_bytes(int32_t id, bool special = false) const;
  std::string decode(const std::vector<int32_t>& ids, bool special = false) const;
  // The text of a whole sequence of ids, as SentencePiece decodes it: the dummy prefix's
  // space at the start is not text (the C API's bitnet_detokenize).
  std::string detokenize(const std::vector<int32_t>& ids) const;

  const Vocab& vocab() const { return v_; }
  int32_t n_tokens() const { return static_cast<int32_t>(v_.tokens.size()); }
  int32_t find(std::string_view token) const;  // -1 when absent

 private:
  void encode_spm(std::string_view text, bool prefix_space, std::vector<int32_t>& out) const;
  void encode_bpe(std::string_view text, std::vector<int32_t>& out) const;
  void bpe_word(const std::string& word, std::vector<int32_t>& out) const;

  Vocab v_;
  std::unordered_map<std::string, int32_t> ids_;
  std::unordered_map<std::string, int32_t> merge_rank_;
  std::vector<int32_t> byte_tokens_;  // SPM: id of <0xXX>, per byte
  std::vector<int32_t> specials_;     // splittable tokens, longest first
};

// Turns a stream of token bytes into text that never splits a UTF-8 sequence: bytes of
// an incomplete character are held back until the rest arrives. Bytes that can never
// form a valid character are replaced with U+FFFD.
class StreamDecoder {
 public:
  std::string push(std::string_view bytes);
  std::string flush();  // whatever is left, incomplete sequences as U+FFFD

 private:
  std::string pending_;
};

// UTF-8 helpers shared by the runtime.
bool utf8_valid(std::string_view s, size_t* bad_offset = nullptr);

}  // namespace bitnetc::rt
