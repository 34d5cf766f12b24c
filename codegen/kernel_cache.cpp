#include "kernel_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include "loaded_objects.h"
#include "model_blob.h"

namespace bitnetc::codegen {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[] = "bitnetc kernel cache 1\n";

// A file's identity where no build ID says it: path, size and modification time.
std::string file_identity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return path + " (missing)";
  return path + " " + std::to_string(st.st_size) + " " + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

std::string entry_path(const std::string& dir, const std::string& key) {
  const uint64_t h = rt::fnv1a64(reinterpret_cast<const uint8_t*>(key.data()), key.size());
  char name[32];
  std::snprintf(name, sizeof name, "%016llx.kernel", static_cast<unsigned long long>(h));
  return (fs::path(dir) / name).string();
}

std::string entry_header(const std::string& key) { return kMagic + std::to_string(key.size()) + "\n" + key + "\n"; }

// An object's size and FNV-1a 64, the line after the key.
std::string object_summary(const char* p, size_t n) {
  char s[64];
  std::snprintf(s, sizeof s, "%zu %016llx", n,
                static_cast<unsigned long long>(rt::fnv1a64(reinterpret_cast<const uint8_t*>(p), n)));
  return s;
}

// A regular file's bytes (a FIFO or device put in the cache's place is refused, never
// waited on).
bool read_whole(const std::string& path, std::string& out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return false;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return false;
  }
  char buf[1 << 16];
  bool ok = true;
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) != 0;) {
    if (n > 0)
      out.append(buf, static_cast<size_t>(n));
    else if (errno != EINTR) {
      ok = false;
      break;
    }
  }
  ::close(fd);
  return ok;
}

bool write_whole(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

std::string default_dir() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return (fs::path(xdg) / "bitnetc" / "kernels").string();
  if (const char* home = std::getenv("HOME"); home && *home)
    return (fs::path(home) / ".cache" / "bitnetc" / "kernels").string();
  return "";
}

}  // namespace

const std::string& toolchain_identity() {
  static const std::string identity = [] {
    std::string s;
    for (const LoadedObject& o : loaded_objects()) {
      const bool program = o.path.empty();
      if (!program && o.path.find("Halide") == std::string::npos && o.path.find("LLVM") == std::string::npos) continue;
      const std::string path = program ? "/proc/self/exe" : o.path;
      s += (program ? std::string("bitnetc") : fs::path(o.path).filename().string()) + " " +
           (o.build_id.empty() ? file_identity(path) : o.build_id) + "\n";
    }
    std::error_code ec;
#ifdef BITNETC_LLC
    s += "llc " + file_identity(fs::canonical(BITNETC_LLC, ec).string()) + "\n";
#endif
#ifdef BITNETC_NVRTC_LIBRARY  // (loaded only when a CUDA target compiles)
    s += "nvrtc " + file_identity(fs::canonical(BITNETC_NVRTC_LIBRARY, ec).string()) + " " + BITNETC_NVRTC_INCLUDE_DIR +
         "\n";
#endif
    return s;
  }();
  return identity;
}

KernelCache KernelCache::open(const std::string& flag, const std::function<void(const std::string&)>& note) {
  std::string dir = flag, source = "--kernel-cache " + flag;
  if (dir.empty())
    if (const char* env = std::getenv("BITNETC_KERNEL_CACHE"); env && *env) {
      dir = env;
      source = std::string("BITNETC_KERNEL_CACHE=") + env;
    }
  if (dir == "off") return disabled();
  if (dir.empty()) {
    dir = default_dir();
    source = "the kernel cache " + dir;
  }
  if (dir.empty()) return disabled();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!ec && ::access(dir.c_str(), W_OK) != 0) ec = std::error_code(errno, std::generic_category());
  if (ec) {
    const std::string problem = source + ": cannot use the folder: " + ec.message();
    if (!flag.empty()) throw std::invalid_argument(problem);
    if (note) note(problem + "; compiling without the kernel cache");
    return disabled();
  }
  KernelCache c;
  c.dir_ = dir;
  return c;
}

bool KernelCache::fetch(const std::string& key, const std::string& object_path) const {
  if (!enabled()) return false;
  const std::string entry = entry_path(dir_, key);
  std::string bytes;
  if (!read_whole(entry, bytes)) return false;
  // The key, then the object's size and hash: a damaged entry is a miss.
  const std::string header = entry_header(key);
  if (bytes.compare(0, header.size(), header) != 0) return false;
  const size_t line_end = bytes.find('\n', header.size());
  if (line_end == std::string::npos) return false;
  const char* object = bytes.data() + line_end + 1;
  const size_t object_size = bytes.size() - line_end - 1;
  if (bytes.compare(header.size(), line_end - header.size(), object_summary(object, object_size)) != 0) return false;
  const int fd = ::open(object_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(object_path + ": cannot write: " + std::strerror(errno));
  const bool ok = write_whole(fd, object, object_size);
  if (::close(fd) != 0 || !ok) throw std::runtime_error(object_path + ": cannot write: " + std::strerror(errno));
  ::utimensat(AT_FDCWD, entry.c_str(), nullptr, 0);  // recently used: trim keeps it
  return true;
}

void KernelCache::store(const std::string& key, const std::string& object_path) const {
  if (!enabled()) return;
  std::string object;
  if (!read_whole(object_path, object) || object.empty()) return;
  const std::string entry = entry_path(dir_, key);
  std::string tmp = (fs::path(dir_) / ".tmp-XXXXXX").string();
  const int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) return;
  const std::string header = entry_header(key) + object_summary(object.data(), object.size()) + "\n";
  const bool ok = write_whole(fd, header.data(), header.size()) && write_whole(fd, object.data(), object.size());
  ::fchmod(fd, 0644);
  if (::close(fd) != 0 || !ok || ::rename(tmp.c_str(), entry.c_str()) != 0) ::unlink(tmp.c_str());
}

void KernelCache::trim(uint64_t limit) const {
  if (!enabled()) return;
  struct Entry {
    fs::path path;
    fs::file_time_type used;
    uint64_t bytes;
  };
  std::vector<Entry> entries;
  uint64_t total = 0;
  std::error_code ec;
  const auto stale = fs::file_time_type::clock::now() - std::chrono::hours(1);
  for (const fs::directory_entry& e : fs::directory_iterator(dir_, ec)) {
    std::error_code file_ec;
    const fs::file_time_type used = e.last_write_time(file_ec);
    const uint64_t bytes = e.file_size(file_ec);
    if (file_ec) continue;  // removed meanwhile by another compile's trim
    const std::string name = e.path().filename().string();
    if (name.starts_with(".tmp-")) {
      if (used < stale) fs::remove(e.path(), file_ec);
    } else if (name.ends_with(".kernel")) {
      entries.push_back({e.path(), used, bytes});
      total += bytes;
    }
  }
  if (total <= limit) return;
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.used < b.used; });
  for (const Entry& e : entries) {
    if (total <= limit) break;
    std::error_code file_ec;
    fs::remove(e.path, file_ec);
    total -= e.bytes;
  }
}

}  // namespace bitnetc::codegen
