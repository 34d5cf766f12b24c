// libFuzzer target: the chat template renderer (runtime_stub/text/chat.h) on arbitrary
// conversations (the input split into role/content pairs at NUL bytes), for every
// template family: the segments must join to the rendered text, and the conversation's
// tokens must be ids of the vocabulary (or a TokenizerError for invalid UTF-8), with no
// control token taken from a message's content.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "chat.h"
#include "gguf.h"
#include "nul_split.h"
#include "tokenizer_import.h"

using namespace bitnetc;

namespace {
std::unique_ptr<rt::Tokenizer> phi3;  // SentencePiece, with control tokens (<|user|>, <|end|>)

size_t control_tokens(const std::vector<int32_t>& ids) {
  size_t n = 0;
  for (int32_t id : ids) n += phi3->vocab().types[id] == rt::TokenType::Control;
  return n;
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  phi3 = std::make_unique<rt::Tokenizer>(
      vocab_from_gguf(GgufFile::open(std::string(BITNETC_SHARED_DIR) + "/golden/tokenizer/ggml-vocab-phi-3.gguf")));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<std::string> fields = split_at_nul(data, size);
  std::vector<rt::ChatMessage> messages;
  for (size_t i = 0; i + 1 < fields.size(); i += 2) messages.push_back({fields[i], fields[i + 1]});
  for (rt::ChatTemplate t : {rt::ChatTemplate::BitNet2B4T, rt::ChatTemplate::Llama3, rt::ChatTemplate::Llama2,
                             rt::ChatTemplate::ChatML, rt::ChatTemplate::Phi3}) {
    for (bool reply : {false, true}) {
      std::string joined;
      size_t content_bytes = 0;
      for (const rt::ChatSegment& s : rt::chat_segments(t, messages, reply)) {
        joined += s.text;
        if (s.content) content_bytes += s.text.size();
      }
      if (joined != rt::apply_chat_template(t, messages, reply)) __builtin_trap();
      size_t given = 0;
      for (const rt::ChatMessage& m : messages) given += m.content.size();
      if (content_bytes > given) __builtin_trap();  // template text counted as content
      try {
        const std::vector<int32_t> ids = rt::chat_tokens(*phi3, t, messages, reply);
        for (int32_t id : ids)
          if (id < 0 || id >= phi3->n_tokens()) __builtin_trap();
        // The same conversation without contents has as many control tokens: none came
        // from a content.
        std::vector<rt::ChatMessage> bare = messages;
        for (rt::ChatMessage& m : bare) m.content.clear();
        if (control_tokens(ids) != control_tokens(rt::chat_tokens(*phi3, t, bare, reply))) __builtin_trap();
      } catch (const rt::TokenizerError&) {
      }
    }
  }
  return 0;
}
