// Errors raised while importing a model file.
//
// Every import error names the file, the byte offset where the problem was found
// and the field being read, so that a user can open the file in a hex editor and see it:
//
//   model.gguf: byte 4120: tensor_infos[3].n_dims: 9 dimensions (at most 4 are allowed)
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace bitnetc {

class ImportError : public std::runtime_error {
 public:
  static constexpr uint64_t kNoOffset = UINT64_MAX;

  ImportError(std::string file, uint64_t offset, std::string field, std::string message)
      : std::runtime_error(format(file, offset, field, message)),
        file_(std::move(file)),
        offset_(offset),
        field_(std::move(field)) {}

  const std::string& file() const { return file_; }
  uint64_t offset() const { return offset_; }
  const std::string& field() const { return field_; }

 private:
  static std::string format(const std::string& file, uint64_t offset, const std::string& field,
                            const std::string& message) {
    std::string s = file;
    if (offset != kNoOffset) s += ": byte " + std::to_string(offset);
    if (!field.empty()) s += ": " + field;
    return s + ": " + message;
  }

  std::string file_;
  uint64_t offset_;
  std::string field_;
};

// Checked arithmetic for sizes read from untrusted files: true when it overflows.
inline bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_mul_overflow(a, b, out); }
inline bool checked_add(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_add_overflow(a, b, out); }

}  // namespace bitnetc
