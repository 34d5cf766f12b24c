// The whole of a text file a command-line flag names (-f, --prompts, --chat-template), for
// the outputs and for bitnetc's own commands alike.
#pragma once

#include <stdexcept>
#include <string>

namespace bitnetc::rt {

class InputFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What a flag's file may hold at most: far more than any context.
inline constexpr size_t kMaxInputFileBytes = 16u << 20;

// `path` ("-": stdin) as text: a regular file of at most kMaxInputFileBytes. A directory,
// FIFO or device is refused before it is read, a larger file without reading it all.
// Throws InputFileError "FLAG PATH: reason".
std::string read_input_file(const std::string& flag, const std::string& path);

}  // namespace bitnetc::rt
