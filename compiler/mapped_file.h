// A read-only memory map of a whole file, and a bounds-checked cursor over it.
//
// Importers never copy tensor data: they hand out pointers into the map. Every read of
// the header goes through ByteCursor, which refuses to step past the end of the file and
// reports where it was and what it was reading.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "diagnostics.h"

namespace bitnetc {

class MappedFile {
 public:
  // Maps `path` read-only. Throws ImportError if it cannot be opened or is not a
  // regular file.
  explicit MappedFile(std::string path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;

  // Wraps bytes that already live in memory (fuzzers, tests). Nothing is copied: the
  // caller keeps `bytes` alive for as long as this object.
  static MappedFile from_memory(std::string name, std::span<const uint8_t> bytes);

  const std::string& path() const { return path_; }
  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, static_cast<size_t>(size_)}; }

  // Hands back the resident pages from the one holding p up to the one holding p + n
  // (that one stays: the next bytes may still be read) when they lie in this file's own
  // read-only mapping. Always safe: a later read faults them in again from the page
  // cache. A compile that has packed a tensor no longer holds its source bytes in its RSS.
  void drop_pages(const uint8_t* p, uint64_t n) const;

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  bool owns_mapping_ = false;
};

// The bytes of a small text file (a config.json, a tokenizer.json) through MappedFile:
// a FIFO, device or directory is refused before anything blocks on it.
std::string read_text_file(const std::string& path);

// `text` (read from `name`) as JSON; a syntax error is an ImportError at its byte offset.
nlohmann::json parse_json_text(const std::string& name, const std::string& text);
// read_text_file + parse_json_text: every JSON side file of a model is read this way.
nlohmann::json read_json_file(const std::string& path);

// Little-endian reader over a byte range. All methods throw ImportError (naming the
// file, the offset and the current field) instead of reading out of bounds.
class ByteCursor {
 public:
  ByteCursor(std::string file, std::span<const uint8_t> bytes, uint64_t base_offset = 0)
      : file_(std::move(file)), bytes_(bytes), base_(base_offset) {}

  uint64_t offset() const { return base_ + pos_; }  // absolute offset in the file
  uint64_t remaining() const { return bytes_.size() - pos_; }
  void seek(uint64_t pos) { pos_ = pos; }
  uint64_t pos() const { return pos_; }

  template <typename T>
  T read(std::string_view field) {
    need(sizeof(T), field);
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  // Returns a view of `n` bytes in place and advances past them.
  std::span<const uint8_t> take(uint64_t n, std::string_view field) {
    need(n, field);
    auto s = bytes_.subspan(pos_, n);
    pos_ += n;
    return s;
  }

  void need(uint64_t n, std::string_view field) const {
    if (n > remaining()) {
      fail(field, "needs " + std::to_string(n) + " bytes but only " + std::to_string(remaining()) +
                      " are left (file truncated?)");
    }
  }

  [[noreturn]] void fail(std::string_view field, const std::string& message) const {
    throw ImportError(file_, offset(), std::string(field), message);
  }
  [[noreturn]] void fail_at(uint64_t offset, std::string_view field, const std::string& message) const {
    throw ImportError(file_, offset, std::string(field), message);
  }

  const std::string& file() const { return file_; }

 private:
  std::string file_;
  std::span<const uint8_t> bytes_;
  uint64_t base_ = 0;
  uint64_t pos_ = 0;
};

// True when `s` is well-formed UTF-8 (no overlong forms, no surrogates, <= U+10FFFF).
bool is_valid_utf8(std::string_view s);

}  // namespace bitnetc
