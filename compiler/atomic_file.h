// Writing output files so that they are complete or absent: the bytes go to a
// temporary file in the destination's folder, are flushed to disk, and only then
// renamed over the destination. A failure (full disk, kill, exception) leaves no
// partial file behind under the final name.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
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

// Like write_file_atomically, for a file a tool writes itself (a linker's -o):
// `produce_at(tmp)` writes the whole file at `tmp`, a temporary in the destination's
// folder, which is then flushed to disk and renamed into place; nothing is copied.
void produce_file_atomically(const std::string& path, const std::function<void(const std::string& tmp)>& produce_at,
                             bool executable = false);

// Temporary files and scratch folders that an interrupted process (SIGINT, SIGTERM,
// SIGHUP) removes before it dies; a guard registers a path for its lifetime. SIGKILL
// cannot be caught: then a `NAME.tmp.XXXXXX` may stay beside the output, never a file
// under the output's own name.
class RemovedOnInterrupt {
 public:
  explicit RemovedOnInterrupt(const std::string& path);
  ~RemovedOnInterrupt();
  RemovedOnInterrupt(const RemovedOnInterrupt&) = delete;
  RemovedOnInterrupt& operator=(const RemovedOnInterrupt&) = delete;

 private:
  int slot_ = -1;
};

// Refuses an output path that cannot be written (its folder missing or read-only, the
// path a directory) with an OutputError naming it: checked before a long compile starts.
void check_output_path(const std::string& path);

// A fresh folder under the system's temporary directory (prefix-XXXXXX), removed with
// everything in it when this goes out of scope or the process is interrupted. A process
// killed outright (SIGKILL) cannot remove its folder: each folder holds a lock for its
// owner's lifetime, and the next ScratchFolder with the same prefix removes the folders
// whose owner is gone.
class ScratchFolder {
 public:
  explicit ScratchFolder(const std::string& prefix = "bitnetc");
  ~ScratchFolder();
  ScratchFolder(const ScratchFolder&) = delete;
  ScratchFolder& operator=(const ScratchFolder&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
  std::unique_ptr<RemovedOnInterrupt> guard_;
  int owner_fd_ = -1;  // flock()ed while this process lives
};

// Installs the handlers (once, from main), and makes a write past `ulimit -f` fail with
// an error instead of killing the process (SIGXFSZ ignored).
void install_interrupt_cleanup();

}  // namespace bitnetc
