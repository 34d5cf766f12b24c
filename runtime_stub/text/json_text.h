// JSON text for the outputs' --json lines and the C API's model info. The runtime links
// no JSON library (it is cross-compiled with only the C++ standard library), and writes
// only flat objects of numbers, strings and id lists: escaping strings is most of it.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace bitnetc::rt {

// `s` with JSON's escapes (quotes, backslashes, control characters), without the quotes.
inline std::string json_escape(const std::string& s) {
  std::string o;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\')
      o += '\\', o += static_cast<char>(c);
    else if (c == '\n')
      o += "\\n";
    else if (c == '\t')
      o += "\\t";
    else if (c == '\r')
      o += "\\r";
    else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
    } else
      o += static_cast<char>(c);
  }
  return o;
}

// Token ids as a JSON array: [1,2,3].
inline std::string ids_json(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s + "]";
}

}  // namespace bitnetc::rt
