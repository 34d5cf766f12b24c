// Runs generated CUDA kernels on the CPU, for tests: the few CUDA names the kernel
// templates of codegen/cuda/kernels.cuh use, and a launch that runs every thread of a block as a fiber
// (ucontext), switching at __syncthreads() so that barriers and __shared__ memory
// behave as on a GPU. Blocks run one after another; within a block, the fibers run
// from barrier to barrier in forward and then reverse order, so a read of shared memory
// that lacks its barrier sees stale data in one of the two orders and fails a test.
// Compile with -ffp-contract=off (as NVRTC gets -fmad=false) so that the float
// rounding is the device's.
#pragma once

// Generated sources test this (e.g. to leave out the toolkit's mma.h).
#ifndef BITNETC_CUDA_EMULATION
#define BITNETC_CUDA_EMULATION
#endif

#include <setjmp.h>
#include <ucontext.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <type_traits>
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
#define __device__
#define __host__
#define __restrict__
#define __shared__ static thread_local  // one block runs at a time on an OS thread
#define __align__(n) __attribute__((aligned(n)))
#define __syncthreads() bitnetc_emulation::barrier()

// Four signed byte products added to c, as the PTX dp4a.s32.s32 instruction does.
inline int __dp4a(int a, int b, int c) {
  for (int i = 0; i < 4; ++i) c += static_cast<int8_t>(a >> (8 * i)) * static_cast<int8_t>(b >> (8 * i));
  return c;
}
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline double __dadd_rn(double a, double b) { return a + b; }

// The warp matrix operations (mma.h's nvcuda::wmma) the int8 tensor-core kernels use.
// Every thread's fragment holds the whole tile: a kernel cannot see how a real warp
// spreads it over its lanes, so any lane-layout dependence would be a bug the test
// cannot see, and the kernels have none (they only load, multiply and store). Loads and
// stores check the alignment the hardware needs (256-bit pointers, ldm a multiple of
// 16 bytes).
namespace nvcuda::wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  static constexpr int rows = std::is_same_v<Use, matrix_b> ? K : M;
  static constexpr int cols = std::is_same_v<Use, matrix_a> ? K : N;
  T x[rows * cols];  // element (r, c) at r * cols + c
};

inline void check_tile_address(const void* p, unsigned ldm, size_t element_bytes) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0 || ldm * element_bytes % 16 != 0) std::abort();
}
template <typename Use, int M, int N, int K, typename T, typename Layout, typename V>
void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, V v) {
  for (T& e : f.x) e = static_cast<T>(v);
}
template <typename Use, int M, int N, int K, typename T, typename Layout>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const T* p, unsigned ldm) {
  using F = fragment<Use, M, N, K, T, Layout>;
  check_tile_address(p, ldm, sizeof(T));
  for (int r = 0; r < F::rows; ++r)
    for (int c = 0; c < F::cols; ++c)
      f.x[r * F::cols + c] = std::is_same_v<Layout, row_major> ? p[r * ldm + c] : p[c * ldm + r];
}
template <int M, int N, int K, typename T, typename LA, typename LB>
void mma_sync(fragment<accumulator, M, N, K, int>& d, const fragment<matrix_a, M, N, K, T, LA>& a,
              const fragment<matrix_b, M, N, K, T, LB>& b, const fragment<accumulator, M, N, K, int>& c) {
  int out[M * N];
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      int acc = c.x[i * N + j];
      for (int k = 0; k < K; ++k) acc += int(a.x[i * K + k]) * int(b.x[k * N + j]);
      out[i * N + j] = acc;
    }
  for (int i = 0; i < M * N; ++i) d.x[i] = out[i];
}
template <int M, int N, int K>
void store_matrix_sync(int* p, const fragment<accumulator, M, N, K, int>& f, unsigned ldm, layout_t layout) {
  check_tile_address(p, ldm, sizeof(int));
  for (int r = 0; r < M; ++r)
    for (int c = 0; c < N; ++c) (layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.x[r * N + c];
}
}  // namespace nvcuda::wmma

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
