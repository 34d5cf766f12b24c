// Writing output files so that they are complete or absent: the bytes go to a
// temporary file in the destination's folder, are flushed to disk, and only then
// renamed over the destination. A failure (full disk, kill, exception) leaves no
// partial file behind under the final name.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <stdexcept>
#include <string>

namespace bitnetc {

class OutputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Calls `produce` with a sink that appends bytes to the temporary file, then publishes
// it as `path`. Throws OutputError naming `path` on any failure, after removing the
// temporary file.
void write_file_atomically(const std::string& path,
                           const std::function<void(const std::function<void(std::span<const uint8_t>)>&)>& produce,
                           bool executable = false);

inline void write_file_atomically(const std::string& path, std::span<const uint8_t> bytes, bool executable = false) {
  write_file_atomically(
      path, [&](const auto& sink) { sink(bytes); }, executable);
}

}  // namespace bitnetc
