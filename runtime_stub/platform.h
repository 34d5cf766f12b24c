// What the platform an output runs on has. Native Linux outputs have everything; a
// WebAssembly output (wasm32-wasi, built with Debian's wasi-libc and libc++) has one
// thread, no signals, no dynamic loading, no memory mapping and no sockets. The runtime
// asks here instead of testing the architecture at each use.
//
// Locks: the standard ones natively. Single-threaded, a lock has nothing to exclude and
// does nothing, and waiting for another thread is a logic error (nothing could wake it).
#pragma once

#if defined(__wasi__)
#define BITNETC_WASM 1  // no signals, dlopen, mmap, sockets, /proc
#define BITNETC_SINGLE_THREADED 1
#else
#define BITNETC_WASM 0
#define BITNETC_SINGLE_THREADED 0
#endif

#if BITNETC_SINGLE_THREADED
#include <stdexcept>
#else
#include <condition_variable>
#include <mutex>
#endif

namespace bitnetc::rt {

#if BITNETC_SINGLE_THREADED
struct Mutex {
  void lock() {}
  void unlock() {}
  bool try_lock() { return true; }
};
template <typename M>
struct LockGuard {
  explicit LockGuard(M&) {}
};
template <typename M>
struct UniqueLock {
  explicit UniqueLock(M&) {}
};
struct CondVar {
  template <typename Lock, typename Ready>
  void wait(Lock&, Ready ready) {
    if (!ready()) throw std::logic_error("waiting for another thread in a single-threaded runtime");
  }
  void notify_one() {}
  void notify_all() {}
};
#else
using Mutex = std::mutex;
template <typename M>
using LockGuard = std::lock_guard<M>;
template <typename M>
using UniqueLock = std::unique_lock<M>;
using CondVar = std::condition_variable;
#endif

}  // namespace bitnetc::rt
