#include "mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

namespace bitnetc {

MappedFile::MappedFile(std::string path) : path_(std::move(path)) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below).
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    throw ImportError(path_, ImportError::kNoOffset, "", std::string("cannot open: ") + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw ImportError(path_, ImportError::kNoOffset, "", "not a regular file (a directory, FIFO, socket or device)");
  }
  size_ = static_cast<uint64_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      throw ImportError(path_, ImportError::kNoOffset, "", std::string("cannot map: ") + std::strerror(err));
    }
    data_ = static_cast<const uint8_t*>(p);
    owns_mapping_ = true;
  }
  ::close(fd);
}

MappedFile MappedFile::from_memory(std::string name, std::span<const uint8_t> bytes) {
  MappedFile f;
  f.path_ = std::move(name);
  f.data_ = bytes.data();
  f.size_ = bytes.size();
  return f;
}

void MappedFile::drop_pages(const uint8_t* p, uint64_t n) const {
  if (!owns_mapping_ || p < data_ || p + n > data_ + size_) return;
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t first = reinterpret_cast<uintptr_t>(p) / page * page,
                 end = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
  if (end > first) ::madvise(reinterpret_cast<void*>(first), end - first, MADV_DONTNEED);
}

MappedFile::~MappedFile() {
  if (owns_mapping_ && data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

MappedFile::MappedFile(MappedFile&& o) noexcept
    : path_(std::move(o.path_)), data_(o.data_), size_(o.size_), owns_mapping_(o.owns_mapping_) {
  o.data_ = nullptr;
  o.owns_mapping_ = false;
}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    if (owns_mapping_ && data_) ::munmap(const_cast<uint8_t*>(data_), size_);
    path_ = std::move(o.path_);
    data_ = o.data_;
    size_ = o.size_;
    owns_mapping_ = o.owns_mapping_;
    o.data_ = nullptr;
    o.owns_mapping_ = false;
  }
  return *this;
}

bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<uint8_t>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else
      return false;
    if (i + len > n) return false;
    for (int k = 1; k < len; ++k) {
      const auto cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

std::string read_text_file(const std::string& path) {
  const MappedFile f(path);
  return std::string(reinterpret_cast<const char*>(f.data()), static_cast<size_t>(f.size()));
}

nlohmann::json parse_json_text(const std::string& name, const std::string& text) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw ImportError(name, e.byte > 0 ? e.byte - 1 : 0, "", std::string("invalid JSON: ") + e.what());
  } catch (const nlohmann::json::exception& e) {  // e.g. out_of_range: a number too large for a double
    throw ImportError(name, 0, "", std::string("invalid JSON: ") + e.what());
  }
}

nlohmann::json read_json_file(const std::string& path) { return parse_json_text(path, read_text_file(path)); }

}  // namespace bitnetc
