// JSON text for the outputs' --json lines and the C API's model info. The runtime links
// no JSON library (it is cross-compiled with only the C++ standard library), and writes
// only flat objects of numbers and strings: escaping strings is all it needs.
#pragma once

#include <cstdio>
#include <string>

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

}  // namespace bitnetc::rt
