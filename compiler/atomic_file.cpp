#include "atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace bitnetc {

namespace {
std::string dir_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}
}  // namespace

void write_file_atomically(const std::string& path,
                           const std::function<void(const std::function<void(std::span<const uint8_t>)>&)>& produce,
                           bool executable) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) throw OutputError(path + ": is a directory");
  std::string tmp = path + ".tmp.XXXXXX";
  int fd = ::mkstemp(tmp.data());
  if (fd < 0) {
    const int err = errno;
    throw OutputError(path + ": cannot create a file in " + dir_of(path) + ": " + std::strerror(err));
  }
  auto fail = [&](const std::string& what, int err) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw OutputError(path + ": " + what + (err ? std::string(": ") + std::strerror(err) : std::string()));
  };
  try {
    produce([&](std::span<const uint8_t> bytes) {
      const uint8_t* p = bytes.data();
      size_t left = bytes.size();
      while (left > 0) {
        const ssize_t n = ::write(fd, p, left);
        if (n < 0) {
          if (errno == EINTR) continue;
          fail("write failed", errno);
        }
        p += n;
        left -= static_cast<size_t>(n);
      }
    });
  } catch (const OutputError&) {
    throw;
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::fchmod(fd, executable ? 0755 : 0644) != 0) fail("cannot set permissions", errno);
  if (::fsync(fd) != 0) fail("cannot flush to disk", errno);
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw OutputError(path + ": close failed: " + std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw OutputError(path + ": cannot rename the finished file into place: " + std::strerror(err));
  }
}

}  // namespace bitnetc
