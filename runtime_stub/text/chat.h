// Chat templates. A model's Jinja template (GGUF tokenizer.chat_template, or
// tokenizer_config.json's chat_template) is recognised at compile time as one of the
// common families and rendered here by plain code: the runtime has no Jinja engine.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace bitnetc::rt {

class Tokenizer;  // tokenizer.h (which includes this header)

enum class ChatTemplate : uint8_t {
  None,
  BitNet2B4T,  // "User: hi<|eot_id|>Assistant: " (BitNet b1.58 2B4T)
  Llama3,      // <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>
  Llama2,      // [INST] ... [/INST]
  ChatML,      // <|im_start|>role\ncontent<|im_end|>
  Phi3,        // <|user|>\ncontent<|end|>\n
};

const char* chat_template_name(ChatTemplate t);
// The template a name (chat_template_name's) stands for; false for an unknown name.
bool chat_template_by_name(std::string_view name, ChatTemplate& out);

// Recognises a template by the markers that distinguish the families. Returns None for
// anything else (the caller then says so instead of guessing).
ChatTemplate detect_chat_template(const std::string& jinja);

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

// Renders the conversation and, with `add_generation_prompt`, the opening of the
// assistant's turn. `bos` is the BOS text some templates put inside (Llama3 puts
// bos_token before the first message; callers that add BOS as a token pass "").
std::string apply_chat_template(ChatTemplate t, const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                const std::string& bos = "");

// The same rendering as pieces: the template's own text, and the messages' contents
// (content = true), so that a caller can tokenize the contents without parsing control
// tokens written in them.
struct ChatSegment {
  std::string text;
  bool content = false;
};
std::vector<ChatSegment> chat_segments(ChatTemplate t, const std::vector<ChatMessage>& messages,
                                       bool add_generation_prompt, const std::string& bos = "");

// The conversation as token ids (BOS first when the vocabulary adds one), rendered with
// the vocabulary's template: its own control tokens parsed, the contents as plain text.
std::vector<int32_t> chat_tokens(const Tokenizer& tok, const std::vector<ChatMessage>& messages,
                                 bool add_generation_prompt);
// The same with another template than the vocabulary's (--chat-template).
std::vector<int32_t> chat_tokens(const Tokenizer& tok, ChatTemplate t, const std::vector<ChatMessage>& messages,
                                 bool add_generation_prompt);

}  // namespace bitnetc::rt
