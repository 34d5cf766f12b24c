#include "compiled_model.h"

#include "platform.h"
#if !BITNETC_WASM
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>

#include "cpu_features.h"
#include "cpu_forward.h"
#include "cuda_forward.h"
#include "cuda_plan.h"
#include "kernel_abi.h"
#include "serialize.h"
#include "thread_pool.h"
#include "vocab_io.h"

// Written by codegen for each output (codegen/cpu_kernels.cpp): per family of
// kernel_abi.h, the table of its kernels and their count.
#define BITNETC_KERNEL_TABLE_EXTERNS(family, signature)                                \
  extern "C" const bitnetc::rt::KernelTable::family##_fn bitnetc_##family##_kernels[]; \
  extern "C" const uint32_t bitnetc_##family##_kernel_count;
BITNETC_CPU_KERNEL_FAMILIES(BITNETC_KERNEL_TABLE_EXTERNS)
#undef BITNETC_KERNEL_TABLE_EXTERNS
extern "C" const uint32_t bitnetc_cpu_features;
extern "C" const char bitnetc_target_name[];
extern "C" const uint8_t bitnetc_blob_start[];
extern "C" const uint8_t bitnetc_blob_end[];

namespace bitnetc::rt {

std::string own_binary_path() {
#if BITNETC_WASM
  return {};  // a module has no file of its own (its loader reads it)
#else
  Dl_info info{};
  if (::dladdr(reinterpret_cast<const void*>(&bitnetc_blob_start), &info) && info.dli_fname && *info.dli_fname) {
    char resolved[PATH_MAX];
    if (::realpath(info.dli_fname, resolved)) {
      char exe[PATH_MAX];
      const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
      // The main program's dli_fname is its argv[0]; /proc/self/exe survives a chdir.
      if (n > 0 && std::string(exe, static_cast<size_t>(n)) == resolved)
        return std::string(exe, static_cast<size_t>(n));
      return resolved;
    }
  }
  char exe[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  return n > 0 ? std::string(exe, static_cast<size_t>(n)) : std::string();
#endif
}

namespace {

// The embedded blob's header, checked, without loading the model.
BlobHeader read_embedded_header(std::span<const uint8_t> blob) {
  BlobHeader h{};
  if (blob.size() < sizeof h) throw std::runtime_error("the embedded model is damaged");
  std::memcpy(&h, blob.data(), sizeof h);
  if (h.magic != kBlobMagic || h.version != kBlobVersion || h.graph_off > blob.size() ||
      h.graph_size > blob.size() - h.graph_off)
    throw std::runtime_error("the embedded model is damaged");
  return h;
}

// The side file of a model compiled with --weights=external, mapped, after checking
// that it has the blob's size.
std::shared_ptr<const uint8_t> map_side_file(const std::string& path, uint64_t expected_size) {
#if BITNETC_WASM
  (void)expected_size;
  throw std::runtime_error(path + ": a WebAssembly output reads no files; its loader gives it the weights file's bytes");
#else
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw std::runtime_error(path + ": cannot open the weights file (compiled with --weights=external): " +
                             std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_size) != expected_size) {
    ::close(fd);
    throw std::runtime_error(path + ": is not the weights file of this model (size differs)");
  }
  const auto size = static_cast<size_t>(st.st_size);
  // At a 2 MiB boundary, as the linker places an output's segments, so that its weights
  // can take 2 MiB pages (advise_huge_pages): a reservation 2 MiB larger, the file
  // mapped over its first aligned address, the rest given back.
  constexpr size_t kHuge = size_t{2} << 20;
  void* reserved = ::mmap(nullptr, size + kHuge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  void* map = MAP_FAILED;
  int map_errno = errno;
  if (reserved != MAP_FAILED) {
    const uintptr_t r = reinterpret_cast<uintptr_t>(reserved);
    const uintptr_t aligned = (r + kHuge - 1) & ~uintptr_t{kHuge - 1};
    map = ::mmap(reinterpret_cast<void*>(aligned), size, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
    if (map == MAP_FAILED) {
      map_errno = errno;
      ::munmap(reserved, size + kHuge);
    } else {
      if (aligned > r) ::munmap(reserved, aligned - r);
      const uintptr_t end = (aligned + size + 4095) & ~uintptr_t{4095}, reserved_end = r + size + kHuge;
      if (reserved_end > end) ::munmap(reinterpret_cast<void*>(end), reserved_end - end);
    }
  }
  ::close(fd);
  if (map == MAP_FAILED) throw std::runtime_error(path + ": cannot map the weights file: " + std::strerror(map_errno));
  return {static_cast<const uint8_t*>(map), [size](const uint8_t* p) { ::munmap(const_cast<uint8_t*>(p), size); }};
#endif
}

// Asks the kernel to map the weights with 2 MiB pages (THP for the page cache, in
// Linux 6.1 and later with ext4/xfs large folios): the whole 2 MiB runs inside
// [begin, begin + size). With 4 KiB pages, two threads streaming a 2B4T-shape model
// decoded at 1.4 tokens/s on this project's VMs, against 25-30 with 2 MiB pages (and 23
// with one thread either way): each step misses the TLB once per 4 KiB of weights.
// MADV_HUGEPAGE makes later faults and readahead use huge folios; MADV_COLLAPSE turns
// the small folios already cached (the file as the linker or a disk read left it) into
// huge ones, once per file. Both are advice: older kernels and other file systems
// refuse them, and the weights are read as before.
void advise_huge_pages(const uint8_t* begin, size_t size) {
#if defined(__linux__) && !BITNETC_WASM
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const uintptr_t first = (reinterpret_cast<uintptr_t>(begin) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t last = (reinterpret_cast<uintptr_t>(begin) + size) & ~(kHuge - 1);
  if (last <= first) return;
  void* at = reinterpret_cast<void*>(first);
  ::madvise(at, last - first, MADV_HUGEPAGE);
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
  ::madvise(at, last - first, MADV_COLLAPSE);
#else
  (void)begin;
  (void)size;
#endif
}

std::span<const uint8_t> loader_weights;  // set_loader_weights
std::string loader_weights_name;

std::span<const uint8_t> embedded_blob() {
  return {bitnetc_blob_start, static_cast<size_t>(bitnetc_blob_end - bitnetc_blob_start)};
}

}  // namespace

CompiledModel::CompiledModel(int64_t n_ctx, const std::string& weights_path, int max_sequences,
                             std::span<const uint8_t> weights_bytes) {
  if (max_sequences < 1) throw std::runtime_error("a model needs at least one sequence");
  if (const uint32_t missing = bitnetc_cpu_features & ~cpu_features())
    throw std::runtime_error(std::string("this output was compiled for ") + bitnetc_target_name + " and needs " +
                             describe_cpu_features(missing) +
                             ", which this CPU lacks; compile it for another target (`bitnetc targets` lists them)");
  const std::span<const uint8_t> blob = embedded_blob();
  header_ = read_embedded_header(blob);
  graph_ = ir::deserialize(blob.subspan(header_.graph_off, header_.graph_size));
  if (n_ctx > 0) {
    if (n_ctx > graph_.n_ctx)
      throw std::runtime_error("a context of " + std::to_string(n_ctx) + " is more than the model's " +
                               std::to_string(graph_.n_ctx));
    graph_.n_ctx = n_ctx;
  }
  tok_ = std::make_unique<Tokenizer>(deserialize_vocab(blob.subspan(header_.vocab_off, header_.vocab_size)));
  const auto stop = records_at<int32_t>(blob, header_.stop_off, header_.n_stop, "the embedded model (records)");
  stop_.assign(stop.begin(), stop.end());
  const auto ternary =
      records_at<TernaryRecord>(blob, header_.records_off, header_.n_records, "the embedded model (records)");
  const auto dense =
      records_at<DenseRecord>(blob, header_.dense_records_off, header_.n_dense_records, "the embedded model (records)");
  if (ternary.size() != graph_.ternary.size() || dense.size() != graph_.dense.size())
    throw std::runtime_error("the embedded model is damaged (weights)");
  const uint8_t* weights_base = blob.data();
  if (header_.external_weights) {
    // The side file holds the whole blob; its header must be this one.
    const uint64_t expected_size = header_.weights_off + header_.weights_size;
    std::string source;
    if (!weights_bytes.empty()) {
      source = "the weights given";
    } else if (!loader_weights.empty()) {
      weights_bytes = loader_weights;
      source = loader_weights_name;
    }
    if (!weights_bytes.empty()) {
      if (weights_bytes.size() != expected_size)
        throw std::runtime_error(source + ": is not the weights file of this model (size differs)");
      side_file_.reset(weights_bytes.data(), [](const uint8_t*) {});  // the caller's
    } else {
      source = weights_path.empty() ? own_binary_path() + ".weights" : weights_path;
      side_file_ = map_side_file(source, expected_size);
    }
    if (std::memcmp(side_file_.get(), &header_, sizeof header_) != 0)
      throw std::runtime_error(source + ": is not the weights file of this model (another compile)");
    weights_base = side_file_.get();
  } else if (header_.weights_off + header_.weights_size > blob.size()) {
    throw std::runtime_error("the embedded model is damaged (weights)");
  }
  advise_huge_pages(weights_base + header_.weights_off, header_.weights_size);
  if (header_.cuda_plan_size != 0) {
    if (header_.cuda_plan_off > blob.size() || header_.cuda_plan_size > blob.size() - header_.cuda_plan_off)
      throw std::runtime_error("the embedded model is damaged (CUDA plan)");
    forward_ = std::make_unique<CudaForwardPass>(graph_, blob.subspan(header_.cuda_plan_off, header_.cuda_plan_size),
                                                 weights_base, header_.weights_off, header_.weights_size, ternary,
                                                 dense, max_sequences);
    return;
  }
  KernelTable kernels;
#define BITNETC_BIND_KERNEL_TABLE(family, signature) \
  kernels.family = bitnetc_##family##_kernels;       \
  kernels.family##_count = bitnetc_##family##_kernel_count;
  BITNETC_CPU_KERNEL_FAMILIES(BITNETC_BIND_KERNEL_TABLE)
#undef BITNETC_BIND_KERNEL_TABLE
  const auto steps = records_at<CpuStep>(blob, header_.cpu_steps_off, header_.n_cpu_steps, "the embedded model (plan)");
  halide_set_custom_do_par_for(parallel_for);  // the kernels' parallel loops: thread_pool.h
  forward_ = std::make_unique<ForwardPass>(graph_, weights_base, ternary, dense, steps, static_cast<int>(header_.batch),
                                           kernels, max_sequences);
}

void set_loader_weights(std::span<const uint8_t> bytes, const std::string& name) {
  loader_weights = bytes;
  loader_weights_name = name;
}

EmbeddedModelSummary summarize_embedded_model() {
  const std::span<const uint8_t> blob = embedded_blob();
  const BlobHeader h = read_embedded_header(blob);
  const ir::Graph g = ir::deserialize(blob.subspan(h.graph_off, h.graph_size));
  EmbeddedModelSummary s;
  s.architecture = g.name;
  s.n_layer = g.n_layer;
  s.fingerprint = h.source_fingerprint;
  s.external_weights = h.external_weights != 0;
  if (h.records_off > blob.size() || h.n_records > (blob.size() - h.records_off) / sizeof(TernaryRecord))
    throw std::runtime_error("the embedded model's weight records lie outside its blob");
  for (uint64_t i = 0; i < h.n_records; ++i) {
    TernaryRecord r;
    std::memcpy(&r, blob.data() + h.records_off + i * sizeof(TernaryRecord), sizeof r);
    ++s.layouts[r.layout == TernaryLayout::I2S   ? "i2_s"
                : r.layout == TernaryLayout::TL1 ? "tl1"
                : r.layout == TernaryLayout::TL2 ? "tl2"
                                                 : "cuda"];
  }
  return s;
}

std::string describe_embedded_model() {
  const EmbeddedModelSummary s = summarize_embedded_model();
  char fp[32];
  std::snprintf(fp, sizeof fp, "%016llx", static_cast<unsigned long long>(s.fingerprint));
  return s.architecture + ", " + std::to_string(s.n_layer) + " layers, fingerprint " + fp;
}

int64_t embedded_n_ctx() {
  const std::span<const uint8_t> blob = embedded_blob();
  const BlobHeader h = read_embedded_header(blob);
  return ir::deserialize(blob.subspan(h.graph_off, h.graph_size)).n_ctx;
}

std::string CompiledModel::device() const {
  if (const auto* gpu = dynamic_cast<const CudaForwardPass*>(forward_.get())) return gpu->device_name();
  return "cpu";
}

std::vector<Generation> CompiledModel::generate_all(std::vector<SequenceRequest> requests, int slots,
                                                    const std::function<void(size_t, const Generation&)>& on_finished,
                                                    std::vector<int32_t> sequences) {
  for (SequenceRequest& r : requests) {
    r.options.n_ctx = graph_.n_ctx;
    r.options.stop_tokens = stop_;
    r.options.parse_special = true;
  }
  EngineOptions eo;
  eo.slots = slots;
  eo.step_rows = std::max(64, slots);
  eo.on_finished = on_finished;
  eo.sequences = std::move(sequences);
  return rt::generate_all(*forward_, *tok_, requests, eo);
}

Generation CompiledModel::generate(std::string_view prompt, int32_t n_predict, const SamplerParams& sampling,
                                   const std::function<bool(std::string_view)>& on_text,
                                   const std::function<void(std::span<const float>)>& on_logits, bool truncate_prompt) {
  GenerateOptions go = generate_options(n_predict, sampling);
  go.on_logits = on_logits;
  go.truncate_prompt = truncate_prompt;
  return generate(prompt, std::move(go), on_text);
}

Generation CompiledModel::generate(std::string_view prompt, GenerateOptions go,
                                   const std::function<bool(std::string_view)>& on_text) {
  go.forward_argmax = [&](std::span<const int32_t> tokens, int32_t pos, const RepeatPenalty& penalty) {
    return forward_->forward_argmax(tokens, pos, penalty);
  };
  go.forward_top_k = [&](std::span<const int32_t> tokens, int32_t pos, int k, const RepeatPenalty& penalty,
                         std::vector<int32_t>& ids, std::vector<float>& logits) {
    return forward_->forward_top_k(tokens, pos, k, penalty, ids, logits);
  };
  go.top_k_max = kCudaTopKMax;
  go.forward_all = [&](std::span<const int32_t> tokens, int32_t pos) {  // sequence 0, the logits after each token
    std::vector<BatchRow> rows = rows_of_one_sequence(tokens, pos);
    for (BatchRow& r : rows) r.logits = true;
    return forward_->step(rows);
  };
  auto forward = [&](std::span<const int32_t> tokens, int32_t pos) { return forward_->forward(tokens, pos); };
  return rt::generate(*tok_, forward, prompt, go, on_text);
}

GenerateOptions CompiledModel::generate_options(int32_t n_predict, const SamplerParams& sampling) const {
  GenerateOptions go;
  go.n_predict = n_predict;
  go.n_ctx = graph_.n_ctx;
  go.sampling = sampling;
  go.stop_tokens = stop_;
  go.parse_special = true;
  return go;
}

namespace {

void check_sequence(const Forward& f, int32_t seq) {
  if (seq < 0 || seq >= f.max_sequences())
    throw std::out_of_range("sequence " + std::to_string(seq) + " is not one of this model's " +
                            std::to_string(f.max_sequences()));
}

}  // namespace

void CompiledModel::feed(int32_t seq, std::span<const int32_t> tokens, int32_t pos) {
  check_sequence(*forward_, seq);
  if (tokens.empty()) return;
  std::vector<BatchRow> rows = rows_of_one_sequence(tokens, pos);
  for (BatchRow& r : rows) r.seq = seq, r.logits = false;
  forward_->step(rows);
}

GenerateOptions CompiledModel::pull_options(int32_t n_predict, const SamplerParams& sampling, int32_t seq,
                                            int32_t lookup) {
  check_sequence(*forward_, seq);
  GenerateOptions go = generate_options(n_predict, sampling);
  go.lookup = lookup;
  if (lookup > 0) go.forward_all = sequence_forward(seq, true);
  return go;
}

std::unique_ptr<PulledGeneration> CompiledModel::pull(std::string_view prompt, int32_t n_predict,
                                                      const SamplerParams& sampling, int32_t seq, int32_t lookup) {
  GenerateOptions go = pull_options(n_predict, sampling, seq, lookup);
  return std::make_unique<PulledGeneration>(*tok_, sequence_forward(seq), prompt, std::move(go));
}

std::unique_ptr<PulledGeneration> CompiledModel::pull_continued(std::vector<int32_t> history, int32_t fed,
                                                                int32_t n_predict, const SamplerParams& sampling,
                                                                int32_t seq, int32_t lookup) {
  GenerateOptions go = pull_options(n_predict, sampling, seq, lookup);
  return std::make_unique<PulledGeneration>(*tok_, sequence_forward(seq), std::move(history), fed, std::move(go));
}

ForwardFn CompiledModel::sequence_forward(int32_t seq, bool all_logits) {
  return [this, seq, all_logits](std::span<const int32_t> tokens, int32_t pos) {
    std::vector<BatchRow> rows = rows_of_one_sequence(tokens, pos);
    for (BatchRow& r : rows) {
      r.seq = seq;
      r.logits = r.logits || all_logits;
    }
    return forward_->step(rows);
  };
}

}  // namespace bitnetc::rt
