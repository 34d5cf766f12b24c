// Large buffers that the compiler fills once (decoded codes, packed weights): asked of
// the kernel as 2 MiB pages (MADV_HUGEPAGE before the first touch). On VMs where a TLB
// miss costs a nested page walk, 4 KiB pages made packing and writing the 2B4T shape's
// 1.2 GB of weights 1.6x slower (bench/RESULTS.md, "Compile"). Advice only: where the
// kernel does not take it, the buffer is an ordinary one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace bitnetc {

// n copies of `value`, in memory advised to be backed by 2 MiB pages when it is 4 MiB or more.
template <class T>
std::vector<T> huge_page_vector(size_t n, T value = T()) {
  std::vector<T> v;
#if defined(__linux__)
  constexpr uintptr_t kHugePage = uintptr_t{2} << 20;
  if (n * sizeof(T) >= 2 * kHugePage) {
    v.reserve(n);
    const uintptr_t at = reinterpret_cast<uintptr_t>(v.data());
    const uintptr_t begin = (at + kHugePage - 1) & ~(kHugePage - 1), end = (at + n * sizeof(T)) & ~(kHugePage - 1);
    if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
  }
#endif
  v.assign(n, value);
  return v;
}

}  // namespace bitnetc
