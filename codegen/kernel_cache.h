// The kernel cache: compiled kernel objects (and CUDA targets' NVRTC images, keyed by
// their whole source: cuda_program.cpp) kept between compiles, so that compiling a model
// again, or another model of the same shapes, skips Halide, LLVM and NVRTC.
//
// An entry is one file, NAME.kernel (NAME: FNV-1a 64 of its key), holding its whole key,
// the object's size and FNV-1a 64, and the object's bytes. The key is everything that decides the object's bytes:
// the kernel's family, exported name and shape, the target, and the toolchain (this
// bitnetc's build ID, the build IDs of the Halide and LLVM libraries it runs, llc's
// identity). A lookup compares the whole key and the object's hash, so a hash collision
// or a damaged entry is a miss, never a wrong kernel. Entries are written to a temporary name and renamed: concurrent
// compiles see a complete entry or none. Since each kernel compiles in a fresh copy of bitnetc (cpu_kernels.cpp), an
// object from the cache is the same bytes as one compiled now, and an output is the same with or without the cache.
//
// Where: --kernel-cache DIR, else $BITNETC_KERNEL_CACHE, else $XDG_CACHE_HOME/bitnetc/kernels,
// else ~/.cache/bitnetc/kernels; "off" (flag or variable) turns it off. A folder given by
// the flag that cannot be used is an error; the variable's or the default one is skipped
// with a note. Least recently used entries are removed past kKernelCacheBytes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace bitnetc::codegen {

inline constexpr uint64_t kKernelCacheBytes = uint64_t{512} << 20;

class KernelCache {
 public:
  // `flag`: --kernel-cache's folder or "off", empty when not given (see above).
  static KernelCache open(const std::string& flag, const std::function<void(const std::string&)>& note);
  static KernelCache disabled() { return KernelCache(); }

  bool enabled() const { return !dir_.empty(); }
  const std::string& dir() const { return dir_; }

  // Writes the object cached under `key` to `object_path`; false on a miss.
  bool fetch(const std::string& key, const std::string& object_path) const;
  // Keeps a copy of the object at `object_path` under `key`; best effort.
  void store(const std::string& key, const std::string& object_path) const;
  // Removes least recently used entries while the cache holds more than `limit` bytes,
  // and temporary files that a killed compile left.
  void trim(uint64_t limit = kKernelCacheBytes) const;

 private:
  std::string dir_;
};

// The toolchain part of every key: this bitnetc's build ID and those of the loaded Halide
// and LLVM libraries, and llc's path, size and modification time.
const std::string& toolchain_identity();

}  // namespace bitnetc::codegen
