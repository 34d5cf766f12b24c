#include "cpu_kernels.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <type_traits>

#include "kernel_abi.h"
#include "kernel_objects.h"

namespace bitnetc::codegen {

namespace {

// One object to produce: its exported function, its file, its cache key and how to
// compile it.
struct KernelJob {
  std::string fn, object, key;
  std::function<void()> compile;
};

template <class T>
struct IsOptional : std::false_type {};
template <class T>
struct IsOptional<std::optional<T>> : std::true_type {};

template <class T>
void put_field(std::string& s, const T& v) {
  if constexpr (IsOptional<T>::value) {
    if (v)
      put_field(s, *v);
    else
      s += "none ";
    return;
  } else if constexpr (std::is_enum_v<T>) {
    s += std::to_string(static_cast<long long>(v));
  } else if constexpr (std::is_floating_point_v<T>) {
    char b[48];
    std::snprintf(b, sizeof b, "%a", static_cast<double>(v));  // exact
    s += b;
  } else {
    s += std::to_string(v);
  }
  s += ' ';
}

// A shape's every field (its fields()), as text.
template <class Shape>
std::string describe(const Shape& shape) {
  std::string s;
  std::apply([&](const auto&... f) { (put_field(s, f), ...); }, shape.fields());
  return s;
}

// Compiles `jobs` on up to `n_workers` forked workers, which take the jobs' indices from
// a pipe (each read of 4 bytes takes one whole index); a worker compiles each job in a
// fork of its own, which starts from the state this process had (kernel_objects.h's
// objects then never depend on the order) and stores its object in the cache.
std::vector<std::unique_ptr<ForkedTask>> start_workers(const std::vector<KernelJob>& jobs, int n_workers,
                                                       const KernelCache& cache) {
  int queue[2];
  if (::pipe2(queue, O_CLOEXEC) != 0)
    throw std::runtime_error(std::string("cannot create a pipe: ") + std::strerror(errno));
  // Every index goes into the pipe's buffer before the workers start, so the writes must
  // never block: a pipe holds 64 KiB (16384 jobs) unless it is grown.
  const size_t queue_bytes = jobs.size() * sizeof(uint32_t);
  if (queue_bytes > 65536 && ::fcntl(queue[1], F_SETPIPE_SZ, static_cast<int>(queue_bytes)) < 0) {
    ::close(queue[0]);
    ::close(queue[1]);
    throw std::runtime_error("cannot queue " + std::to_string(jobs.size()) +
                             " kernels in one pipe (see /proc/sys/fs/pipe-max-size): " + std::strerror(errno));
  }
  for (uint32_t i = 0; i < jobs.size(); ++i)
    if (::write(queue[1], &i, sizeof i) != sizeof i) {
      ::close(queue[0]);
      ::close(queue[1]);
      throw std::runtime_error(std::string("cannot queue the kernels: ") + std::strerror(errno));
    }
  ::close(queue[1]);
  std::vector<std::unique_ptr<ForkedTask>> workers;
  try {
    for (int w = 0; w < n_workers; ++w)
      workers.push_back(std::make_unique<ForkedTask>([&jobs, &cache, fd = queue[0]] {
        for (uint32_t i; ::read(fd, &i, sizeof i) == sizeof i;) {
          const KernelJob& job = jobs[i];
          ForkedTask task(
              [&] {
                job.compile();
                cache.store(job.key, job.object);
              },
              /*in_parents_group=*/true);
          if (const std::string problem = task.wait(); !problem.empty())
            throw std::runtime_error("kernel " + job.fn + ": " + problem);
        }
      }));
  } catch (...) {
    ::close(queue[0]);
    throw;
  }
  ::close(queue[0]);
  return workers;
}

}  // namespace

void CpuKernels::finish() {
  std::string problems;
  for (std::unique_ptr<ForkedTask>& w : workers)
    if (const std::string problem = w->wait(); !problem.empty() && problems.find(problem) == std::string::npos)
      problems += (problems.empty() ? "" : "; ") + problem;
  workers.clear();
  if (!problems.empty()) throw std::runtime_error("generating kernels: " + problems);
}

CpuKernels emit_cpu_kernels(const TargetInfo& target, const PackedWeights& packed, const CpuPlan& plan,
                            const std::string& work_dir, const KernelCache& cache,
                            const std::function<void(const std::string&)>& say) {
  // Per family, the kernels in table order: each writes its object under its name. `key`
  // is the shape's text for the cache.
  using Emit = std::function<void(const std::string& fn, const std::string& object)>;
  struct Pending {
    std::string key;
    Emit emit;
  };
  std::map<std::string, std::vector<Pending>> jobs;
  for (const TernaryKernel& k : packed.ternary_kernels)
    for (int batch : {1, kCpuPrefillBatch}) {
      Pending job;
      if (k.layout == rt::TernaryLayout::I2S) {
        schedules::TernaryMatmulShape shape = k.i2s;
        shape.batch = batch;
        job = {"i2s " + describe(shape), [&target, shape](const std::string& fn, const std::string& obj) {
                 emit_ternary_matmul_object(shape, target, fn, obj);
               }};
      } else {
        schedules::LutMatmulShape shape = k.lut;
        shape.batch = batch;
        job = {"lut " + describe(shape), [&target, shape](const std::string& fn, const std::string& obj) {
                 emit_lut_matmul_object(shape, target, fn, obj);
               }};
      }
      jobs[batch == 1 ? "gemv" : "gemm"].push_back(std::move(job));
    }
  for (const schedules::DenseMatmulShape& shape : packed.dense_kernels)
    jobs["dense"].push_back({describe(shape), [&target, shape](const std::string& fn, const std::string& obj) {
                               emit_dense_matmul_object(shape, target, fn, obj);
                             }});
  const int V = target.vector_bytes;
  for (const NormQuantKernelKey& k : plan.norm_quant) {
    const schedules::NormQuantShape shape{k.n, k.K_padded, k.block, k.norm, k.norm_weight, k.eps(), k.quant, V};
    jobs["norm_quant"].push_back({describe(shape), [&target, shape](const std::string& fn, const std::string& obj) {
                                    emit_norm_quant_object(shape, target, fn, obj);
                                  }});
  }
  for (const AttentionKernelKey& k : plan.attention)  // rt::attention_kernel's pair
    for (const int tokens : {1, rt::kAttentionBlockTokens}) {
      const schedules::AttentionShape shape{k.head_dim, k.n_head, k.n_head_kv, k.score_scale, k.softmax_sum, V, tokens};
      jobs["attention"].push_back({describe(shape), [&target, shape](const std::string& fn, const std::string& obj) {
                                     emit_attention_object(shape, target, fn, obj);
                                   }});
    }
  static_assert(rt::kAttentionKernelsPerKey == 2);
  for (const RopeKernelKey& k : plan.rope) {
    const schedules::RopeShape shape{k.n, k.head_dim, k.style, V};
    jobs["rope"].push_back({describe(shape), [&target, shape](const std::string& fn, const std::string& obj) {
                              emit_rope_object(shape, target, fn, obj);
                            }});
  }
  for (const KQuantKernelKey& k : plan.kquant) {
    const schedules::KQuantMatmulShape shape = kquant_matmul_shape(target, k.K, k.N);
    jobs["kquant"].push_back({describe(shape), [&target, shape](const std::string& fn, const std::string& obj) {
                                emit_kquant_matmul_object(shape, target, fn, obj);
                              }});
  }
  for (const KQuantKernelKey& k : plan.q8_0) {
    const schedules::Q8_0MatmulShape shape{k.K, k.N, V};
    jobs["q8_0"].push_back({describe(shape), [&target, shape](const std::string& fn, const std::string& obj) {
                              emit_q8_0_matmul_object(shape, target, fn, obj);
                            }});
  }

  CpuKernels out;
  std::vector<KernelJob> all;
  const std::string key_tail =
      "target " + target.name + " " + target.halide + " " + target.llc_cpu + "\n" + toolchain_identity();
  std::string& table = out.table_source;
  table = "#include \"HalideRuntime.h\"\n#include <cstdint>\n";
  table += "extern \"C\" const uint32_t bitnetc_cpu_features = " + std::to_string(target.cpu_features) +
           ";\nextern \"C\" const char bitnetc_target_name[] = \"" + target.name + "\";\n";
  for (const rt::KernelFamily& family : rt::kCpuKernelFamilies) {
    const std::vector<Pending>& list = jobs[family.name];
    std::string names;
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string fn = "bitnetc_" + std::string(family.name) + std::to_string(i);
      const std::string obj = (std::filesystem::path(work_dir) / (fn + ".o")).string();
      const Emit& emit = list[i].emit;
      all.push_back({fn, obj, "kernel " + std::string(family.name) + " " + fn + " " + list[i].key + "\n" + key_tail,
                     [emit, fn, obj] { emit(fn, obj); }});
      table += "extern \"C\" int " + fn + family.signature + ";\n";
      names += (i ? ", " : "") + fn;
    }
    const std::string prefix = "bitnetc_" + std::string(family.name);
    table += "extern \"C\" const uint32_t " + prefix + "_kernel_count = " + std::to_string(list.size()) + ";\n";
    table += "extern \"C\" int (*const " + prefix + "_kernels[])" + family.signature + " = {" +
             (names.empty() ? "nullptr" : names) + "};\n";
  }
  const size_t n_kernels = all.size();
  const std::string runtime = (std::filesystem::path(work_dir) / "halide_runtime.o").string();
  all.push_back({"halide_runtime", runtime, "halide runtime\n" + key_tail,
                 [&target, runtime] { emit_halide_runtime(target, runtime); }});

  std::vector<KernelJob> misses;
  for (KernelJob& job : all) {
    out.objects.push_back(job.object);
    if (cache.fetch(job.key, job.object))
      ++out.cached;
    else
      misses.push_back(std::move(job));
  }
  const int n_workers = std::min(static_cast<int>(misses.size()), available_cpus());
  if (n_kernels != 0)
    say("generating " + std::to_string(n_kernels) + " kernels for " + target.name +
        (out.cached == 0 ? std::string()
                         : " (" + std::to_string(out.cached) + " of " + std::to_string(all.size()) +
                               " objects from the kernel cache)") +
        (n_workers > 0 ? ", " + std::to_string(n_workers) + (n_workers == 1 ? " process" : " processes") : ""));
  // Each worker reads the jobs from its own copy of this memory: `misses` may go now.
  if (!misses.empty()) out.workers = start_workers(misses, n_workers, cache);
  return out;
}

}  // namespace bitnetc::codegen
