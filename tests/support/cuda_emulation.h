// Runs generated CUDA kernels on the CPU, for tests: the few CUDA names the kernels of
// codegen/cuda_kernels.h use, and a launch that runs every thread of a block as a fiber
// (ucontext), switching at __syncthreads() so that barriers and __shared__ memory
// behave as on a GPU. Blocks run one after another; within a block, the fibers run
// from barrier to barrier in forward and then reverse order, so a read of shared memory
// that lacks its barrier sees stale data in one of the two orders and fails a test.
// Compile with -ffp-contract=off (as NVRTC gets -fmad=false) so that the float
// rounding is the device's.
#pragma once

#include <setjmp.h>
#include <ucontext.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <vector>

struct bitnetc_dim3 {
  unsigned x = 1, y = 1, z = 1;
};
// Per OS thread: separate models may launch kernels from separate threads.
static thread_local bitnetc_dim3 blockIdx, threadIdx, blockDim, gridDim;

struct uint4 {
  unsigned x, y, z, w;
};

#define __global__
#define __restrict__
#define __shared__ static thread_local  // one block runs at a time on an OS thread
#define __syncthreads() bitnetc_emulation::barrier()

// Four signed byte products added to c, as the PTX dp4a.s32.s32 instruction does.
inline int __dp4a(int a, int b, int c) {
  for (int i = 0; i < 4; ++i) c += static_cast<int8_t>(a >> (8 * i)) * static_cast<int8_t>(b >> (8 * i));
  return c;
}
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline double __dadd_rn(double a, double b) { return a + b; }

namespace bitnetc_emulation {

// A fiber per thread of a block, made once per OS thread and reused for every block of
// every launch: it loops over body() calls. Switches use _setjmp/_longjmp (no signal-mask syscalls);
// ucontext only gives each fiber its stack and first entry.
struct Fiber {
  ucontext_t context;
  jmp_buf resume;
  std::unique_ptr<char[]> stack;
  unsigned thread = 0;
  bool started = false, done = false;
};
constexpr size_t kStackBytes = 64 * 1024;

struct Block {
  ucontext_t scheduler_context;
  jmp_buf scheduler;
  std::vector<Fiber> fibers;
  Fiber* current = nullptr;
  std::function<void()> body;
};
static thread_local Block* block = nullptr;

inline void barrier() {
  if (!_setjmp(block->current->resume)) _longjmp(block->scheduler, 1);
}

inline void fiber_main() {
  for (;;) {
    block->body();
    block->current->done = true;
    barrier();  // resumed for the next block
  }
}

// Runs body() once per thread of the current block, from barrier to barrier.
inline void run_block(Block& b, unsigned threads) {
  if (b.fibers.size() < threads) b.fibers.resize(threads);
  for (unsigned t = 0; t < threads; ++t) {
    Fiber& f = b.fibers[t];
    if (!f.stack) {
      f.stack.reset(new char[kStackBytes]);
      getcontext(&f.context);
      f.context.uc_stack.ss_sp = f.stack.get();
      f.context.uc_stack.ss_size = kStackBytes;
      f.context.uc_link = nullptr;
      makecontext(&f.context, fiber_main, 0);
    }
    f.thread = t;
    f.done = false;
  }
  for (bool forward = true;; forward = !forward) {
    bool any = false;
    for (unsigned i = 0; i < threads; ++i) {
      Fiber& f = b.fibers[forward ? i : threads - 1 - i];
      if (f.done) continue;
      any = true;
      b.current = &f;
      threadIdx.x = f.thread;
      if (!_setjmp(b.scheduler)) {
        if (!f.started) {
          f.started = true;
          swapcontext(&b.scheduler_context, &f.context);
        } else {
          _longjmp(f.resume, 1);
        }
      }
    }
    if (!any) break;
  }
}

}  // namespace bitnetc_emulation

template <typename Kernel, typename... Args>
void bitnetc_launch(Kernel kernel, bitnetc_dim3 grid, bitnetc_dim3 block, Args... args) {
  gridDim = grid;
  blockDim = block;
  // The fibers (and their stacks) stay from launch to launch on this OS thread.
  static thread_local bitnetc_emulation::Block b;
  b.body = [&] { kernel(args...); };
  bitnetc_emulation::block = &b;
  for (blockIdx.y = 0; blockIdx.y < grid.y; ++blockIdx.y)
    for (blockIdx.x = 0; blockIdx.x < grid.x; ++blockIdx.x) bitnetc_emulation::run_block(b, block.x);
}
