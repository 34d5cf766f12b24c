#include "atomic_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "process.h"

namespace bitnetc {

namespace {

// Fixed slots, so that the signal handler reads no allocator state.
constexpr int kSlots = 16;
char g_paths[kSlots][4096];
volatile std::sig_atomic_t g_used[kSlots];

// Removes a file, or a folder and the files in it (scratch folders are flat).
void remove_path(const char* path) {
  if (::unlink(path) == 0) return;
  if (DIR* d = ::opendir(path)) {
    char child[4096 + 256];
    while (const dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
      std::snprintf(child, sizeof child, "%s/%s", path, e->d_name);
      ::unlink(child);
    }
    ::closedir(d);
    ::rmdir(path);
  }
}

void on_interrupt(int sig) {
  stop_children_on_interrupt();  // no tool writes into a scratch folder while it is removed
  for (int i = 0; i < kSlots; ++i)
    if (g_used[i]) remove_path(g_paths[i]);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

std::string dir_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}
}  // namespace

RemovedOnInterrupt::RemovedOnInterrupt(const std::string& path) {
  if (path.size() >= sizeof g_paths[0]) return;
  for (int i = 0; i < kSlots; ++i)
    if (!g_used[i]) {
      std::memcpy(g_paths[i], path.c_str(), path.size() + 1);
      g_used[i] = 1;
      slot_ = i;
      return;
    }
}

RemovedOnInterrupt::~RemovedOnInterrupt() {
  if (slot_ >= 0) g_used[slot_] = 0;
}

namespace {

constexpr const char* kOwnerFile = "/.owner";

// Removes prefix-XXXXXX folders in `tmp` whose owner's lock is free (its process died).
// A folder without an owner file is being created, or is not ours: it is left alone.
void remove_abandoned_scratch(const std::filesystem::path& tmp, const std::string& prefix) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(tmp, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() != prefix.size() + 7 || name.compare(0, prefix.size() + 1, prefix + "-") != 0) continue;
    const int fd = ::open((entry.path().string() + kOwnerFile).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    const bool abandoned = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
    if (abandoned) std::filesystem::remove_all(entry.path(), ec);
    ::close(fd);
  }
}

}  // namespace

void check_output_path(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) throw OutputError(path + ": is a directory");
  const std::string dir = dir_of(path);
  if (::stat(dir.c_str(), &st) != 0)
    throw OutputError(path + ": cannot write it: its folder " + dir + ": " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) throw OutputError(path + ": cannot write it: " + dir + " is not a folder");
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw OutputError(path + ": cannot write it in " + dir + ": " + std::strerror(errno));
}

ScratchFolder::ScratchFolder(const std::string& prefix) {
  std::error_code ec;
  const auto tmp = std::filesystem::temp_directory_path(ec);
  const std::filesystem::path base = ec ? std::filesystem::path("/tmp") : tmp;
  remove_abandoned_scratch(base, prefix);
  std::string tmpl = base / (prefix + "-XXXXXX");
  if (!::mkdtemp(tmpl.data()))
    throw OutputError("cannot create a temporary folder " + tmpl + ": " + std::strerror(errno));
  path_ = tmpl;
  guard_ = std::make_unique<RemovedOnInterrupt>(path_);
  owner_fd_ = ::open((path_ + kOwnerFile).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (owner_fd_ < 0 || ::flock(owner_fd_, LOCK_EX) != 0)
    throw OutputError("cannot lock the temporary folder " + path_ + ": " + std::strerror(errno));
}

ScratchFolder::~ScratchFolder() {
  guard_.reset();
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  if (owner_fd_ >= 0) ::close(owner_fd_);
}

void install_interrupt_cleanup() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) std::signal(sig, on_interrupt);
  std::signal(SIGXFSZ, SIG_IGN);
}

namespace {

// A fresh temporary beside `path` (NAME.tmp.XXXXXX), open.
std::pair<std::string, int> temporary_beside(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) throw OutputError(path + ": is a directory");
  std::string tmp = path + ".tmp.XXXXXX";
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) {
    const int err = errno;
    throw OutputError(path + ": cannot create a file in " + dir_of(path) + ": " + std::strerror(err));
  }
  return {tmp, fd};
}

// Sets the mode of the finished temporary, flushes it to disk and renames it to `path`;
// removes it on failure.
void publish(const std::string& path, const std::string& tmp, int fd, bool executable) {
  auto fail = [&](const std::string& what, int err) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw OutputError(path + ": " + what + (err ? std::string(": ") + std::strerror(err) : std::string()));
  };
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

}  // namespace

void produce_file_atomically(const std::string& path, const std::function<void(const std::string& tmp)>& produce_at,
                             bool executable) {
  auto [tmp, fd] = temporary_beside(path);
  ::close(fd);  // the name stays reserved; the tool replaces the file
  const RemovedOnInterrupt guard(tmp);
  try {
    produce_at(tmp);
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw OutputError(path + ": the finished file is gone: " + std::strerror(err));
  }
  publish(path, tmp, fd, executable);
}

void write_file_atomically(const std::string& path,
                           const std::function<void(const std::function<void(std::span<const uint8_t>)>&)>& produce,
                           bool executable) {
  const auto [tmp_name, tmp_fd] = temporary_beside(path);
  const std::string tmp = tmp_name;  // (lambdas below capture them)
  const int fd = tmp_fd;
  const RemovedOnInterrupt guard(tmp);
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
  publish(path, tmp, fd, executable);
}

}  // namespace bitnetc
