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
// from two threads, or a loop inside a task) runs serially on its caller's thread.
#pragma once

#include <cstdint>

namespace bitnetc::rt {

// Threads that parallel loops use, the caller included (at least 1). Before the first
// loop or between loops; the default is HL_NUM_THREADS or the number of cores.
void set_cpu_threads(int threads);

// Runs task(user_context, i, closure) for i in [min, min + size) on the pool and returns
// the first non-zero result (0 when all succeed): Halide's halide_do_par_for_t, which
// CompiledModel installs with halide_set_custom_do_par_for.
int parallel_for(void* user_context, int (*task)(void*, int, uint8_t*), int min, int size, uint8_t* closure);

}  // namespace bitnetc::rt
