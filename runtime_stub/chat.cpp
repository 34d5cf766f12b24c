#include "chat.h"

#include <cctype>

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

ChatTemplate detect_chat_template(const std::string& j) {
  if (has(j, "<|start_header_id|>") && has(j, "<|end_header_id|>")) return ChatTemplate::Llama3;
  if (has(j, "capitalize") && has(j, "<|eot_id|>") && has(j, "Assistant: ")) return ChatTemplate::BitNet2B4T;
  if (has(j, "<|im_start|>")) return ChatTemplate::ChatML;
  if (has(j, "<|user|>") && has(j, "<|end|>")) return ChatTemplate::Phi3;
  if (has(j, "[INST]")) return ChatTemplate::Llama2;
  return ChatTemplate::None;
}

std::string apply_chat_template(ChatTemplate t, const std::vector<ChatMessage>& messages, bool gen,
                                const std::string& bos) {
  std::string out;
  switch (t) {
    case ChatTemplate::BitNet2B4T:
      for (const auto& m : messages) out += capitalize(m.role) + ": " + trim(m.content) + "<|eot_id|>";
      if (gen) out += "Assistant: ";
      return out;
    case ChatTemplate::Llama3:
      for (size_t i = 0; i < messages.size(); ++i) {
        if (i == 0) out += bos;
        out += "<|start_header_id|>" + messages[i].role + "<|end_header_id|>\n\n" + trim(messages[i].content) +
               "<|eot_id|>";
      }
      if (gen) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;
    case ChatTemplate::ChatML:
      for (const auto& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      if (gen) out += "<|im_start|>assistant\n";
      return out;
    case ChatTemplate::Phi3:
      out += bos;
      for (const auto& m : messages) out += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
      if (gen) out += "<|assistant|>\n";
      return out;
    case ChatTemplate::Llama2: {
      // <s>[INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] assistant </s><s>[INST] ...
      std::string system;
      bool first_user = true;
      for (const auto& m : messages) {
        if (m.role == "system") {
          system = m.content;
        } else if (m.role == "user") {
          out += (first_user ? bos : std::string()) + "[INST] ";
          if (!system.empty()) {
            out += "<<SYS>>\n" + system + "\n<</SYS>>\n\n";
            system.clear();
          }
          out += trim(m.content) + " [/INST]";
          first_user = false;
        } else {
          out += " " + trim(m.content) + " </s>";
        }
      }
      return out;
    }
    case ChatTemplate::None: break;
  }
  for (const auto& m : messages) out += m.content;
  return out;
}

}  // namespace bitnetc::rt
