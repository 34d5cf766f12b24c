// What the kernel benchmarks share: BitNet b1.58 2B4T's projection shapes, the x86
// targets this machine runs natively, and the compiled outputs' thread pool.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "Halide.h"
#include "synthetic_model.h"
#include "targets.h"
#include "ternary.h"
#include "thread_pool.h"

namespace bitnetc::bench {

struct Shape {
  const char* name;
  int64_t K, N;
};

inline constexpr Shape k2b4tProjections[] = {{"attn_q/o 2560x2560", 2560, 2560},
                                             {"attn_k/v 2560x640", 2560, 640},
                                             {"ffn_gate/up 2560x6912", 2560, 6912},
                                             {"ffn_down 6912x2560", 6912, 2560}};

inline std::vector<const TargetInfo*> native_x86_targets() {
  std::vector<const TargetInfo*> t;
  for (const TargetInfo& target : targets())
    if (target.triple == "x86_64-linux-gnu" && target.backend == Backend::Cpu && runs_on_this_cpu(target))
      t.push_back(&target);
  return t;
}

// Runs a JIT-compiled Func's or Pipeline's parallel loops on the pool the compiled
// outputs use (runtime_stub/cpu/thread_pool.h; HL_NUM_THREADS threads, default all cores),
// so that task sizes are measured as a model runs them. (Halide's own pool takes a lock
// per task and lets its workers sleep between calls.)
template <typename FuncOrPipeline>
void use_output_thread_pool(FuncOrPipeline& f) {
  using ParFor = int (*)(Halide::JITUserContext*, int (*)(Halide::JITUserContext*, int, uint8_t*), int, int, uint8_t*);
  f.jit_handlers().custom_do_par_for = reinterpret_cast<ParFor>(&rt::parallel_for);
}

// Microseconds per call over `reps` repetitions of `iters` calls, sorted.
template <typename F>
std::vector<double> time_calls(F call, int reps, int iters) {
  std::vector<double> us;
  for (int rep = 0; rep < reps; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) call();
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / iters);
  }
  std::sort(us.begin(), us.end());
  return us;
}

// Random codes for a K x N projection (SplitMix64(1), the same for every benchmark).
inline TernaryWeights random_weights(const Shape& s) {
  SplitMix64 rng(1);
  TernaryWeights w;
  w.rows = s.N;
  w.cols = s.K;
  w.codes.resize(static_cast<size_t>(s.K * s.N));
  for (auto& c : w.codes) c = static_cast<int8_t>(static_cast<int>(rng.next() % 3) - 1);
  return w;
}

}  // namespace bitnetc::bench
