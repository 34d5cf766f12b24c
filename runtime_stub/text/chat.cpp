#include "chat.h"

#include <cctype>

#include "tokenizer.h"

namespace bitnetc::rt {

namespace {

// Jinja's `trim`: strips leading and trailing whitespace.
std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

// Jinja's `capitalize`: first character upper case, the rest lower case.
std::string capitalize(const std::string& s) {
  std::string out = s;
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<char>(i == 0 ? std::toupper(static_cast<unsigned char>(out[i]))
                                      : std::tolower(static_cast<unsigned char>(out[i])));
  return out;
}

bool has(const std::string& s, const char* marker) { return s.find(marker) != std::string::npos; }

}  // namespace

const char* chat_template_name(ChatTemplate t) {
  switch (t) {
    case ChatTemplate::None: return "none";
    case ChatTemplate::BitNet2B4T: return "bitnet-2b4t";
    case ChatTemplate::Llama3: return "llama3";
    case ChatTemplate::Llama2: return "llama2";
    case ChatTemplate::ChatML: return "chatml";
    case ChatTemplate::Phi3: return "phi3";
  }
  return "?";
}

bool chat_template_by_name(std::string_view name, ChatTemplate& out) {
  for (ChatTemplate t : {ChatTemplate::None, ChatTemplate::BitNet2B4T, ChatTemplate::Llama3, ChatTemplate::Llama2,
                         ChatTemplate::ChatML, ChatTemplate::Phi3})
    if (name == chat_template_name(t)) {
      out = t;
      return true;
    }
  return false;
}

ChatTemplate detect_chat_template(const std::string& j) {
  if (has(j, "<|start_header_id|>") && has(j, "<|end_header_id|>")) return ChatTemplate::Llama3;
  if (has(j, "capitalize") && has(j, "<|eot_id|>") && has(j, "Assistant: ")) return ChatTemplate::BitNet2B4T;
  if (has(j, "<|im_start|>")) return ChatTemplate::ChatML;
  if (has(j, "<|user|>") && has(j, "<|end|>")) return ChatTemplate::Phi3;
  if (has(j, "[INST]")) return ChatTemplate::Llama2;
  return ChatTemplate::None;
}

std::vector<ChatSegment> chat_segments(ChatTemplate t, const std::vector<ChatMessage>& messages, bool gen,
                                       const std::string& bos) {
  std::vector<ChatSegment> out;
  auto lit = [&](const std::string& text) {
    if (text.empty()) return;
    if (!out.empty() && !out.back().content)
      out.back().text += text;
    else
      out.push_back({text, false});
  };
  auto content = [&](const std::string& text) {
    if (!text.empty()) out.push_back({text, true});
  };
  switch (t) {
    case ChatTemplate::BitNet2B4T:
      for (const auto& m : messages) lit(capitalize(m.role) + ": "), content(trim(m.content)), lit("<|eot_id|>");
      if (gen) lit("Assistant: ");
      return out;
    case ChatTemplate::Llama3:
      for (size_t i = 0; i < messages.size(); ++i) {
        if (i == 0) lit(bos);
        lit("<|start_header_id|>" + messages[i].role + "<|end_header_id|>\n\n");
        content(trim(messages[i].content));
        lit("<|eot_id|>");
      }
      if (gen) lit("<|start_header_id|>assistant<|end_header_id|>\n\n");
      return out;
    case ChatTemplate::ChatML:
      for (const auto& m : messages) lit("<|im_start|>" + m.role + "\n"), content(m.content), lit("<|im_end|>\n");
      if (gen) lit("<|im_start|>assistant\n");
      return out;
    case ChatTemplate::Phi3:
      lit(bos);
      for (const auto& m : messages) lit("<|" + m.role + "|>\n"), content(m.content), lit("<|end|>\n");
      if (gen) lit("<|assistant|>\n");
      return out;
    case ChatTemplate::Llama2: {
      // <s>[INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] assistant </s><s>[INST] ...
      std::string system;
      bool first_user = true;
      for (const auto& m : messages) {
        if (m.role == "system") {
          system = m.content;
        } else if (m.role == "user") {
          lit((first_user ? bos : std::string()) + "[INST] ");
          if (!system.empty()) {
            lit("<<SYS>>\n"), content(system), lit("\n<</SYS>>\n\n");
            system.clear();
          }
          content(trim(m.content));
          lit(" [/INST]");
          first_user = false;
        } else {
          lit(" "), content(trim(m.content)), lit(" </s>");
        }
      }
      return out;
    }
    case ChatTemplate::None: break;
  }
  for (const auto& m : messages) content(m.content);
  return out;
}

std::string apply_chat_template(ChatTemplate t, const std::vector<ChatMessage>& messages, bool gen,
                                const std::string& bos) {
  std::string out;
  for (const ChatSegment& s : chat_segments(t, messages, gen, bos)) out += s.text;
  return out;
}

std::vector<int32_t> chat_tokens(const Tokenizer& tok, const std::vector<ChatMessage>& messages,
                                 bool add_generation_prompt) {
  return chat_tokens(tok, tok.vocab().chat_template, messages, add_generation_prompt);
}

std::vector<int32_t> chat_tokens(const Tokenizer& tok, ChatTemplate t, const std::vector<ChatMessage>& messages,
                                 bool add_generation_prompt) {
  // One text, tokenized as a whole (as the rendered template is), the contents' bytes
  // protected from control-token matching.
  std::string text;
  std::vector<std::pair<size_t, size_t>> contents;
  for (const ChatSegment& seg : chat_segments(t, messages, add_generation_prompt)) {
    if (seg.content) contents.emplace_back(text.size(), text.size() + seg.text.size());
    text += seg.text;
  }
  return tok.encode(text, tok.vocab().add_bos, /*parse_special=*/true, contents);
}

}  // namespace bitnetc::rt
