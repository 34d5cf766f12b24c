// The CPU outputs' thread pool: Halide's parallel loops (halide_do_par_for) run here
// instead of in Halide's own pool.
//
// Why: a decode step is ~250 parallel kernels with a few to a few tens of microseconds
// of serial work between them (norms, RoPE, adds). Halide's pool puts its workers to
// sleep after ~40 yields, and waking a sleeping (virtual) CPU took tens of microseconds
// each time. These workers spin, with a pause instruction, for kSpinMicroseconds after
// each job before they sleep, so the next kernel finds them awake.
//
// One job runs at a time: a parallel loop started while another runs (two models used
// from two threads, or a loop inside a task) runs serially on its caller's thread. A
// single-threaded runtime (platform.h: WebAssembly) runs every loop serially.
#pragma once

#include <cstdint>
#include <exception>

#include "platform.h"

namespace bitnetc::rt {

// Threads that parallel loops use, the caller included (at least 1). Before the first
// loop or between loops; the default is HL_NUM_THREADS or the number of cores.
void set_cpu_threads(int threads);

// Runs task(user_context, i, closure) for i in [min, min + size) on the pool and returns
// the first non-zero result (0 when all succeed): Halide's halide_do_par_for_t, which
// CompiledModel installs with halide_set_custom_do_par_for.
int parallel_for(void* user_context, int (*task)(void*, int, uint8_t*), int min, int size, uint8_t* closure);

// Runs fn(i) for i in [0, count) on the pool, for the runtime's own per-token steps; the
// first exception fn throws is rethrown here once all have run.
template <typename F>
void parallel_for_each(int count, F&& fn) {
  struct Closure {
    F& fn;
    std::exception_ptr error;
    Mutex mutex;
  } c{fn, nullptr, {}};
  auto task = [](void*, int i, uint8_t* closure) -> int {
    Closure& c = *reinterpret_cast<Closure*>(closure);
    try {
      c.fn(i);
    } catch (...) {
      LockGuard<Mutex> lock(c.mutex);
      if (!c.error) c.error = std::current_exception();
    }
    return 0;
  };
  parallel_for(nullptr, task, 0, count, reinterpret_cast<uint8_t*>(&c));
  if (c.error) std::rethrow_exception(c.error);
}

}  // namespace bitnetc::rt
