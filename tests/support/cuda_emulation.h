// Runs generated CUDA kernels on the CPU, for tests: the few CUDA names the kernels of
// codegen/cuda_kernels.h use, and a launch that walks the grid one thread at a time.
// Valid only for kernels without shared memory, warp shuffles or barriers, which is
// what that generator promises. Compile with -ffp-contract=off (as NVRTC gets
// -fmad=false) so that the float rounding is the device's.
#pragma once

#include <cstdint>

struct bitnetc_dim3 {
  unsigned x = 1, y = 1, z = 1;
};
// Per thread: separate models may launch kernels from separate threads.
static thread_local bitnetc_dim3 blockIdx, threadIdx, blockDim, gridDim;

#define __global__
#define __restrict__

// Four signed byte products added to c, as the PTX dp4a.s32.s32 instruction does.
inline int __dp4a(int a, int b, int c) {
  for (int i = 0; i < 4; ++i) c += static_cast<int8_t>(a >> (8 * i)) * static_cast<int8_t>(b >> (8 * i));
  return c;
}
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }

template <typename Kernel, typename... Args>
void bitnetc_launch(Kernel kernel, bitnetc_dim3 grid, bitnetc_dim3 block, Args... args) {
  gridDim = grid;
  blockDim = block;
  for (blockIdx.y = 0; blockIdx.y < grid.y; ++blockIdx.y)
    for (blockIdx.x = 0; blockIdx.x < grid.x; ++blockIdx.x)
      for (threadIdx.x = 0; threadIdx.x < block.x; ++threadIdx.x) kernel(args...);
}
