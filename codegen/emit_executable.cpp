#include "emit_executable.h"

#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <tuple>

#include "atomic_file.h"
#include "cpu_features.h"
#include "cpu_program.h"
#include "cuda_kernels.h"
#include "cuda_program.h"
#include "kernel_objects.h"
#include "layouts.h"
#include "lut_gemv.h"
#include "model_blob.h"
#include "process.h"
#include "serialize.h"
#include "tokenizer_import.h"
#include "vocab_io.h"

namespace bitnetc::codegen {

namespace fs = std::filesystem;

namespace {

void write_file(const fs::path& p, const void* data, size_t n) {
  errno = 0;
  std::ofstream out(p, std::ios::binary);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
  out.flush();
  if (!out) throw OutputError(p.string() + ": cannot write" + (errno ? std::string(": ") + std::strerror(errno) : ""));
}

void align(std::vector<uint8_t>& b, size_t a) {
  while (b.size() % a) b.push_back(0);
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// What bitnet_model_load(path) checks a path against: FNV-1a 64 of the model file (for
// a checkpoint folder, its model.safetensors).
uint64_t source_fingerprint(const ImportedModel& m) {
  fs::path p = m.path;
  if (fs::is_directory(p)) p /= "model.safetensors";
  std::ifstream in(p, std::ios::binary);
  uint64_t h = 0xcbf29ce484222325ull;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h = rt::fnv1a64(reinterpret_cast<const uint8_t*>(buf.data()), static_cast<size_t>(in.gcount()), h);
  }
  return h;
}

// The compiler and runtime libraries an output for `target` links with. x86-64 outputs
// use this build's own libraries; aarch64 outputs the cross-built ones, and executables
// are static so that they run on any aarch64 Linux (and under qemu-aarch64 without a
// sysroot).
struct Toolchain {
  std::string cxx, exe_libs, so_libs, exe_flags;
};

Toolchain toolchain_for(const TargetInfo& target) {
  switch (target.arch) {
    case TargetArch::X86_64:
    case TargetArch::Cuda: {  // a CUDA output's host side is x86-64 (cuda_forward.cpp drives the GPU)
      const char* env_cxx = std::getenv("CXX");
      return {env_cxx && *env_cxx ? env_cxx : BITNETC_CXX, BITNETC_EXE_LIBS, BITNETC_SO_LIBS, ""};
    }
    case TargetArch::AArch64:
#ifdef BITNETC_AARCH64_CXX
      return {BITNETC_AARCH64_CXX, BITNETC_AARCH64_EXE_LIBS, BITNETC_AARCH64_SO_LIBS, "-static"};
#else
      throw std::invalid_argument("target " + target.name +
                                  ": this bitnetc was built without the aarch64 runtime (install "
                                  "g++-aarch64-linux-gnu, then configure and build again)");
#endif
  }
  throw std::logic_error("unknown target architecture");
}

// The CPU features the target's kernels use, which the output checks at load.
uint32_t required_cpu_features(const TargetInfo& target) {
  uint32_t f = 0;
  if (target.arch == TargetArch::X86_64) f |= rt::kCpuAvx2Fma;
  if (target.arch == TargetArch::X86_64 && target.vector_bytes == 64) f |= rt::kCpuAvx512Vnni;
  if (target.ternary_dot == TargetInfo::Dot::Sdot) f |= rt::kCpuDotProd;
  return f;
}

// Tokens per call of the prefill kernels: a prompt chunk of this many meets every
// unpacked weight group once (bench_gemv: batch 8 costs ~80 us per token on 2560x2560,
// against ~97 us for the GEMV at one thread).
constexpr int kPrefillBatch = 8;

// A ternary kernel shape: the I2_S-style pipeline or a lookup-table one.
struct TernaryKernel {
  rt::TernaryLayout layout;
  schedules::GemvShape i2s;      // I2S
  schedules::LutGemvShape lut;   // TL1, TL2
};

// The weights of a graph as the target's kernels read them, and the kernels they need.
struct PackedWeights {
  std::vector<rt::TernaryRecord> ternary;
  std::vector<std::vector<uint8_t>> ternary_bytes;
  std::vector<std::vector<float>> ternary_block_scales;  // per weight: empty, or [blocks][block_scale_rows]
  std::vector<TernaryKernel> ternary_kernels;  // one per distinct (K, N, activation block, layout, block scales)
  std::vector<LayoutChoice> layouts;          // per ternary weight, with the reason
  std::vector<rt::DenseRecord> dense;
  std::vector<std::vector<uint8_t>> dense_bytes;
  std::vector<std::vector<float>> dense_scales;  // q8 heads
  std::vector<schedules::DenseGemvShape> dense_kernels;  // one per distinct head (K, N, storage)
};

// Decodes and packs every weight, one at a time, and releases its decoded form as it
// goes (codes, floats): the decoded copies of a 2B4T-size model are several GB.
PackedWeights pack_weights(ir::Graph& g, const ImportedModel& m, const DecodeOptions& decode,
                           const TargetInfo& target, bool head_q8, LayoutRequest layout) {
  PackedWeights p;
  p.ternary.resize(g.ternary.size());
  p.ternary_bytes.resize(g.ternary.size());
  p.ternary_block_scales.resize(g.ternary.size());
  p.layouts = choose_layouts(g, target, layout);
  const bool cuda = target.arch == TargetArch::Cuda;
  std::map<std::tuple<int64_t, int64_t, int64_t, rt::TernaryLayout, bool>, uint32_t> kernel_of;
  std::vector<std::pair<std::string, float>> typical;  // each weight's scale, checked across layers
  for (const ir::Op& op : g.ops) {
    if (op.kind != ir::OpKind::TernaryMatmul || !p.ternary_bytes[op.weight].empty()) continue;
    if (g.ternary[op.weight].w.codes.empty()) load_weight_data(m, decode, g.ternary[op.weight]);
    TernaryWeights& w = g.ternary[op.weight].w;
    const int64_t act_block = act_block_of(g, op, w.cols);
    const schedules::GemvShape i2s = i2s_gemv_shape(target, w.cols, w.rows, act_block);
    const bool row_lanes = i2s.packing == schedules::GemvPacking::RowLanes;
    const int W = i2s.vector_bytes;
    if (!cuda && act_block != w.cols && act_block % (row_lanes ? 16 : 4 * W) != 0)
      throw std::invalid_argument(g.ternary[op.weight].name + ": activation blocks of " + std::to_string(act_block) +
                                  " do not cover whole " + std::to_string(row_lanes ? 16 : 4 * W) +
                                  "-weight groups of the target");
    const rt::TernaryLayout layout = p.layouts[op.weight].layout;
    // Scales per block (llama.cpp's TQ files) where they are not all one value: the I2_S
    // and CUDA kernels take one per (row, activation block) when the blocks are the same.
    const bool block_scales =
        std::any_of(w.scales.begin(), w.scales.end(), [&](float sc) { return sc != w.scales[0]; });
    const bool block_layout = layout == rt::TernaryLayout::I2S || layout == rt::TernaryLayout::Cuda;
    if (block_scales && (!block_layout || w.scale_block != static_cast<uint64_t>(act_block) || w.cols % act_block != 0))
      throw std::invalid_argument(g.ternary[op.weight].name + ": a weight scale per block of " +
                                  std::to_string(w.scale_block) + " needs activation blocks of the same size" +
                                  (block_layout ? std::string()
                                                : std::string(" and the i2_s layout (") + layout_label(layout) +
                                                      " takes one scale per tensor)") +
                                  "; the activations here come in blocks of " + std::to_string(act_block));
    const auto [it, added] = kernel_of.emplace(std::make_tuple(w.cols, w.rows, act_block, layout, block_scales),
                                               static_cast<uint32_t>(kernel_of.size()));
    rt::TernaryRecord& r = p.ternary[op.weight];
    r.gemv_kernel = r.gemm_kernel = it->second;
    r.K = w.cols;
    r.N = w.rows;
    r.act_block = act_block;
    r.w_scale = w.scales[0];
    r.layout = layout;
    r.gemm_min_rows =
        static_cast<uint32_t>(gemm_min_rows(target, tensor_type_of(layout), w.cols, w.rows, kPrefillBatch));
    r.block_scales = block_scales ? 1 : 0;
    if (layout == rt::TernaryLayout::Cuda) {  // kernels: codegen/cuda_program.cpp, from the records
      if (block_scales) r.block_scale_rows = w.rows;
      r.K_padded = cuda_padded_k(w.cols);
      r.group_bytes = 0;
      r.packed_dim0 = static_cast<int32_t>(r.K_padded / 4);
      r.packed_dim1 = static_cast<int32_t>(w.rows);
      const std::vector<uint32_t> words = pack_for_cuda_gemv(w);
      p.ternary_bytes[op.weight].resize(words.size() * 4);
      std::memcpy(p.ternary_bytes[op.weight].data(), words.data(), words.size() * 4);
    } else if (layout == rt::TernaryLayout::I2S) {
      schedules::GemvShape shape = i2s;
      shape.block_scales = block_scales;
      if (added) p.ternary_kernels.push_back({layout, shape, {}});
      if (block_scales) r.block_scale_rows = schedules::block_scale_rows(shape);
      r.K_padded = schedules::packed_k(i2s);
      r.group_bytes = static_cast<uint32_t>(W);
      const schedules::PackedDims dims = schedules::packed_dims(i2s);
      r.packed_dim0 = dims.bytes_per_tile;
      r.packed_dim1 = dims.tiles;
      p.ternary_bytes[op.weight] = schedules::pack_ternary(w, i2s);
    } else {
      const auto lut = layout == rt::TernaryLayout::TL1 ? schedules::LutLayout::TL1 : schedules::LutLayout::TL2;
      if (added) p.ternary_kernels.push_back({layout, {}, {w.cols, w.rows, lut, 1, false}});
      r.K_padded = schedules::lut_padded_k(w.cols, lut);
      r.group_bytes = 0;
      r.packed_dim0 = static_cast<int32_t>(schedules::lut_tile_bytes(w.cols, lut));
      r.packed_dim1 = static_cast<int32_t>(schedules::lut_tiles(w.rows, lut));
      p.ternary_bytes[op.weight] = schedules::pack_lut(w, lut);
    }
    if (block_scales) {  // [block][row], rows past N (row-lane padding) with zero scales
      const int64_t blocks = w.cols / act_block;
      std::vector<float>& bs = p.ternary_block_scales[op.weight];
      bs.assign(static_cast<size_t>(blocks * r.block_scale_rows), 0.0f);
      for (int64_t n = 0; n < w.rows; ++n)
        for (int64_t b = 0; b < blocks; ++b) bs[b * r.block_scale_rows + n] = w.scale_of(n, b * act_block);
    }
    std::vector<int8_t>().swap(w.codes);
    typical.push_back({g.ternary[op.weight].name, typical_scale(w)});
  }
  check_scales_across_layers(m, typical);

  // Dense weights: the head in the tiles of its kernel, half precision when that is
  // exact (an F16 checkpoint's head); norm vectors and untied embeddings row-major.
  const int V = target.vector_bytes;
  p.dense.resize(g.dense.size());
  p.dense_bytes.resize(g.dense.size());
  p.dense_scales.resize(g.dense.size());
  std::vector<bool> is_head(g.dense.size(), false);
  for (const ir::Op& op : g.ops)
    if (op.kind == ir::OpKind::DenseMatmul) is_head[op.weight] = true;
  std::map<std::tuple<int64_t, int64_t, bool, bool>, uint32_t> dense_kernel_of;
  for (size_t i = 0; i < g.dense.size(); ++i) {
    ir::DenseWeights& d = g.dense[i];
    if (d.format == ir::DenseFormat::KQuant) {
      // llama.cpp's k-quant embedding or head, its codes and scales as they are: the head
      // computes with them as ggml does (schedules/kquant_gemv.h), an embedding
      // dequantizes its row (ir/kquant.h). --head=q8 does not re-quantize it.
      if (cuda)
        throw std::invalid_argument(d.name +
                                    ": k-quant weights (llama.cpp's Q4_K/Q5_K/Q6_K embeddings and heads) have no CUDA "
                                    "kernel yet; CPU targets compute them");
      load_weight_data(m, d);
      rt::DenseRecord& r = p.dense[i];
      r.kernel = rt::kNoKernel;  // the plan's step names the head's kernel
      r.storage = rt::DenseStorage::KQuant;
      r.layout = rt::DenseLayout::HeadTiles;
      r.tile = static_cast<uint32_t>(schedules::dense_gemv_tile_rows(V));
      r.rows = d.rows;
      r.cols = d.cols;
      r.rows_padded = schedules::dense_gemv_padded_rows(d.rows, V);
      p.dense_bytes[i] = schedules::pack_for_kquant_gemv(d.kquant, V);
      d.kquant = {};
      continue;
    }
    if (d.data.empty() && d.rows == 1) load_weight_data(m, d);  // norm vectors; matrices stream by row
    const schedules::RowSource rows = weight_rows(m, d);
    rt::DenseRecord& r = p.dense[i];
    r.rows = d.rows;
    r.cols = d.cols;
    r.rows_padded = d.rows;
    r.kernel = rt::kNoKernel;
    const bool f16 = d.rows > 1 && schedules::exactly_finite_f16(rows, d.rows, d.cols);
    r.storage = f16 ? rt::DenseStorage::F16 : rt::DenseStorage::F32;
    if (is_head[i] && cuda) {  // k-major: neighbouring GPU threads read neighbouring rows
      r.layout = rt::DenseLayout::KMajor;
      r.tile = 0;
      if (head_q8) {
        r.storage = rt::DenseStorage::Q8;
        p.dense_scales[i].resize(static_cast<size_t>(d.rows));
      }
      const size_t elem = head_q8 ? 1 : (f16 ? 2 : 4);
      std::vector<uint8_t>& b = p.dense_bytes[i];
      b.resize(static_cast<size_t>(d.rows * d.cols) * elem);
      std::vector<float> row(static_cast<size_t>(d.cols));
      std::vector<int8_t> codes(head_q8 ? static_cast<size_t>(d.cols) : 0);
      for (int64_t n = 0; n < d.rows; ++n) {
        rows(n, row.data());
        if (head_q8) p.dense_scales[i][n] = schedules::quantize_row_q8(row.data(), d.cols, codes.data());
        for (int64_t k = 0; k < d.cols; ++k) {
          const size_t at = static_cast<size_t>(k * d.rows + n) * elem;
          if (head_q8) {
            b[at] = static_cast<uint8_t>(codes[k]);
          } else if (f16) {
            const uint16_t h = f32_to_fp16(row[k]);
            std::memcpy(&b[at], &h, 2);
          } else {
            std::memcpy(&b[at], &row[k], 4);
          }
        }
      }
    } else if (is_head[i]) {
      const bool q8 = head_q8;
      if (q8) r.storage = rt::DenseStorage::Q8;
      r.layout = rt::DenseLayout::HeadTiles;
      r.tile = static_cast<uint32_t>(schedules::dense_gemv_tile_rows(V));
      r.rows_padded = schedules::dense_gemv_padded_rows(d.rows, V);
      const auto [it, added] = dense_kernel_of.emplace(std::make_tuple(d.cols, d.rows, f16 && !q8, q8),
                                                       static_cast<uint32_t>(dense_kernel_of.size()));
      if (added) p.dense_kernels.push_back({d.cols, d.rows, V, f16 && !q8, q8});
      r.kernel = it->second;
      p.dense_bytes[i] = q8 ? schedules::quantize_for_dense_gemv_q8(rows, d.rows, d.cols, V, p.dense_scales[i])
                            : schedules::transpose_for_dense_gemv(rows, d.rows, d.cols, V, f16);
    } else {
      r.layout = rt::DenseLayout::RowMajor;
      r.tile = 0;
      std::vector<uint8_t>& b = p.dense_bytes[i];
      b.resize(static_cast<size_t>(d.rows * d.cols) * (f16 ? 2 : 4));
      std::vector<float> row(static_cast<size_t>(d.cols));
      for (int64_t n = 0; n < d.rows; ++n) {
        rows(n, row.data());
        for (int64_t k = 0; k < d.cols; ++k) {
          const size_t at = static_cast<size_t>(n * d.cols + k);
          if (f16) {
            const uint16_t h = f32_to_fp16(row[k]);
            std::memcpy(&b[2 * at], &h, 2);
          } else {
            std::memcpy(&b[4 * at], &row[k], 4);
          }
        }
      }
    }
    std::vector<float>().swap(d.data);
  }
  return p;
}

// -v: the step list, then each weight's layout and kernels, with the reason for each.
void explain_plan(const ir::Graph& g, const TargetInfo& target, const PackedWeights& p, const CpuPlan& cpu_plan,
                  const std::function<void(const std::string&)>& line) {
  const int chunk = target.arch == TargetArch::Cuda ? kCudaChunkTokens : kPrefillBatch;
  line("plan (" + std::to_string(g.ops.size()) + " steps, run for chunks of up to " + std::to_string(chunk) +
       " tokens):");
  std::istringstream steps(ir::print(g));
  for (std::string s; std::getline(steps, s);) line("  " + s);
  line("weights for " + target.name + ":");
  for (size_t i = 0; i < g.ternary.size(); ++i) {
    const rt::TernaryRecord& r = p.ternary[i];
    std::string packing;
    if (r.layout == rt::TernaryLayout::Cuda)
      packing = "i2_cuda: 2-bit codes in 16-weight words, chunk-major";
    else if (r.layout == rt::TernaryLayout::I2S &&
             i2s_gemv_shape(target, r.K, r.N, r.act_block).packing == schedules::GemvPacking::RowLanes)
      packing = "i2_s: 2-bit codes in " + std::to_string(r.group_bytes) + "-byte groups, one row per i32 lane (" +
                std::to_string(r.group_bytes / 4) + " rows a group, no horizontal sums)";
    else if (r.layout == rt::TernaryLayout::I2S)
      packing = "i2_s: 2-bit codes in " + std::to_string(r.group_bytes) + "-byte groups, tiles of " +
                std::to_string(r.packed_dim0 * 4 / r.K_padded) + " rows";
    else
      packing = std::string(layout_label(r.layout)) + ": " + std::to_string(r.packed_dim1) + " tiles of " +
                std::to_string(r.packed_dim0) + " bytes (" +
                (r.layout == rt::TernaryLayout::TL1 ? "4-bit pair indices, NEON tbl" : "4-bit triple indices + sign bits, AVX2 pshufb") +
                ")";
    line("  " + g.ternary[i].name + " [" + std::to_string(r.N) + "x" + std::to_string(r.K) + "]: " + packing +
         ", K padded to " + std::to_string(r.K_padded) +
         (r.layout == rt::TernaryLayout::Cuda ? std::string()
                                               : "; kernels gemv" + std::to_string(r.gemv_kernel) + "/gemm" +
                                                     std::to_string(r.gemm_kernel)) +
         ", activation blocks of " + std::to_string(r.act_block) +
         (r.act_block == r.K ? " (per token)" : " (per block)") + "; layout " + p.layouts[i].reason);
  }
  for (size_t i = 0; i < g.dense.size(); ++i) {
    const rt::DenseRecord& r = p.dense[i];
    const bool f16 = r.storage == rt::DenseStorage::F16;
    if (r.storage == rt::DenseStorage::KQuant) {
      line("  " + g.dense[i].name + " [" + std::to_string(r.rows) + "x" + std::to_string(r.cols) +
           "]: llama.cpp's k-quant codes and scales in head tiles of " + std::to_string(r.tile) +
           " rows (the head computes with Q8_K activations as ggml does; an embedding row is dequantized)");
      continue;
    }
    if (r.storage == rt::DenseStorage::Q8) {
      line("  " + g.dense[i].name + " [" + std::to_string(r.rows) + "x" + std::to_string(r.cols) + "]: " +
           (r.layout == rt::DenseLayout::KMajor ? std::string("k-major (the CUDA head)")
                                                : "head tiles of " + std::to_string(r.tile) + " rows") +
           ", int8 with a scale per row (--head=q8; changes numerics)");
      continue;
    }
    std::string why = r.layout == rt::DenseLayout::HeadTiles
                          ? "head tiles of " + std::to_string(r.tile) + " rows for kernel dense" +
                                std::to_string(r.kernel)
                      : r.layout == rt::DenseLayout::KMajor
                          ? std::string("k-major (the CUDA head: coalesced rows)")
                          : (r.rows == 1 ? "row-major (a norm vector)" : "row-major (an embedding table)");
    why += f16 ? ", f16: every value is exactly a half" : (r.rows == 1 ? ", f32" : ", f32: not every value is a half");
    line("  " + g.dense[i].name + " [" + std::to_string(r.rows) + "x" + std::to_string(r.cols) + "]: " + why);
  }
  if (target.arch == TargetArch::Cuda) return;
  std::istringstream plan_text(print_cpu_plan(g, cpu_plan));
  for (std::string l; std::getline(plan_text, l);) line((l.rfind("kernels:", 0) == 0 ? "step " : "") + l);
}

// The blob of model_blob.h: the graph without weight data, the vocabulary, the stop
// tokens, the records, then the weights (page aligned, each tensor 64-byte aligned).
std::vector<uint8_t> build_blob(ir::Graph g, const rt::Vocab& vocab, const std::vector<int32_t>& stop, PackedWeights& p,
                                const CpuPlan& cpu_plan, uint64_t fingerprint, bool external_weights,
                                const std::vector<uint8_t>& cuda_plan) {
  for (auto& t : g.ternary) t.w.codes.clear();
  for (auto& d : g.dense) std::vector<float>().swap(d.data);
  const std::vector<uint8_t> graph = ir::serialize(g), voc = rt::serialize_vocab(vocab);
  // Reserved up front: growing a model-size vector by doubling would hold two copies.
  size_t total = sizeof(rt::BlobHeader) + graph.size() + voc.size() + stop.size() * sizeof(int32_t) +
                 p.ternary.size() * sizeof(rt::TernaryRecord) + p.dense.size() * sizeof(rt::DenseRecord) +
                 cpu_plan.steps.size() * sizeof(rt::CpuStep) + cuda_plan.size() + 8 * 64 + 4096;
  for (const auto& b : p.ternary_bytes) total += b.size() + 64;
  for (const auto& b : p.ternary_block_scales) total += b.size() * sizeof(float) + 64;
  for (size_t i = 0; i < p.dense.size(); ++i) total += p.dense_bytes[i].size() + p.dense_scales[i].size() * 4 + 128;
  std::vector<uint8_t> blob;
  blob.reserve(total);
  blob.resize(sizeof(rt::BlobHeader), 0);
  rt::BlobHeader h{};
  h.magic = rt::kBlobMagic;
  h.version = rt::kBlobVersion;
  h.batch = kPrefillBatch;
  h.source_fingerprint = fingerprint;
  auto append = [&](const void* data, size_t size, uint64_t& off) {
    align(blob, 64);
    off = blob.size();
    blob.insert(blob.end(), static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + size);
  };
  append(graph.data(), graph.size(), h.graph_off);
  h.graph_size = graph.size();
  append(voc.data(), voc.size(), h.vocab_off);
  h.vocab_size = voc.size();
  append(stop.data(), stop.size() * sizeof(int32_t), h.stop_off);
  h.n_stop = stop.size();
  // Records are written once the weights' offsets are known.
  append(p.ternary.data(), p.ternary.size() * sizeof(rt::TernaryRecord), h.records_off);
  h.n_records = p.ternary.size();
  append(p.dense.data(), p.dense.size() * sizeof(rt::DenseRecord), h.dense_records_off);
  h.n_dense_records = p.dense.size();
  append(cpu_plan.steps.data(), cpu_plan.steps.size() * sizeof(rt::CpuStep), h.cpu_steps_off);
  h.n_cpu_steps = cpu_plan.steps.size();
  if (!cuda_plan.empty()) {
    append(cuda_plan.data(), cuda_plan.size(), h.cuda_plan_off);
    h.cuda_plan_size = cuda_plan.size();
  }
  align(blob, 4096);
  h.weights_off = blob.size();
  // Each packed tensor is released as it is copied in, and its pages handed back at once
  // (glibc keeps freed heap memory otherwise): the blob and the packed tensors never
  // both hold the whole model.
  for (size_t i = 0; i < p.ternary.size(); ++i) {
    append(p.ternary_bytes[i].data(), p.ternary_bytes[i].size(), p.ternary[i].off);
    std::vector<uint8_t>().swap(p.ternary_bytes[i]);
    if (p.ternary[i].block_scales)
      append(p.ternary_block_scales[i].data(), p.ternary_block_scales[i].size() * sizeof(float),
             p.ternary[i].block_scales_off);
    if (i % 16 == 15) ::malloc_trim(0);
  }
  for (size_t i = 0; i < p.dense.size(); ++i) {
    append(p.dense_bytes[i].data(), p.dense_bytes[i].size(), p.dense[i].off);
    std::vector<uint8_t>().swap(p.dense_bytes[i]);
    ::malloc_trim(0);
    append(p.dense_scales[i].data(), p.dense_scales[i].size() * sizeof(float), p.dense[i].scales_off);
  }
  h.weights_size = blob.size() - h.weights_off;
  if (external_weights) {
    h.external_weights = 1;
    h.weights_hash = rt::fnv1a64(blob.data() + h.weights_off, h.weights_size);
  }
  std::memcpy(blob.data() + h.records_off, p.ternary.data(), p.ternary.size() * sizeof(rt::TernaryRecord));
  std::memcpy(blob.data() + h.dense_records_off, p.dense.data(), p.dense.size() * sizeof(rt::DenseRecord));
  std::memcpy(blob.data(), &h, sizeof h);
  return blob;
}

// The Halide kernels of a CPU target, one object per kernel, and their tables
// (bitnetc_gemv_kernels[] ...) appended to `table`.
void generate_cpu_kernels(const ir::Graph& g, const TargetInfo& target, const PackedWeights& packed,
                          const CpuPlan& steps, const std::string& work_dir, std::string& table,
                          std::vector<std::string>& objects, const std::function<void(const std::string&)>& say) {
  const size_t n_kernels = 2 * packed.ternary_kernels.size() + packed.dense_kernels.size() + steps.norm_quant.size() +
                           steps.attention.size() + steps.rope.size() + steps.kquant.size();
  if (n_kernels != 0) say("generating " + std::to_string(n_kernels) + " kernels for " + target.name);
  auto emit = [&](const std::string& fn, const std::string& signature, auto&& emit_object) {
    const std::string obj = (fs::path(work_dir) / (fn + ".o")).string();
    emit_object(obj);
    objects.push_back(obj);
    table += "extern \"C\" int " + fn + signature + ";\n";
  };
  const std::string ternary_sig =
      "(halide_buffer_t*, halide_buffer_t*, halide_buffer_t*, halide_buffer_t*, float, halide_buffer_t*, "
      "halide_buffer_t*)";
  const std::string dense_sig = "(halide_buffer_t*, halide_buffer_t*, halide_buffer_t*, halide_buffer_t*)";
  std::string gemv_list, gemm_list, dense_list;
  for (size_t i = 0; i < packed.ternary_kernels.size(); ++i) {
    const TernaryKernel& k = packed.ternary_kernels[i];
    const std::string gemv = "bitnetc_gemv" + std::to_string(i), gemm = "bitnetc_gemm" + std::to_string(i);
    for (int batch : {1, kPrefillBatch}) {
      const std::string& fn = batch == 1 ? gemv : gemm;
      if (k.layout == rt::TernaryLayout::I2S) {
        schedules::GemvShape shape = k.i2s;
        shape.batch = batch;
        emit(fn, ternary_sig, [&](const std::string& obj) { emit_gemv_object(shape, target, fn, obj); });
      } else {
        schedules::LutGemvShape shape = k.lut;
        shape.batch = batch;
        emit(fn, ternary_sig, [&](const std::string& obj) { emit_lut_gemv_object(shape, target, fn, obj); });
      }
    }
    gemv_list += (i ? ", " : "") + gemv;
    gemm_list += (i ? ", " : "") + gemm;
  }
  for (size_t i = 0; i < packed.dense_kernels.size(); ++i) {
    const std::string fn = "bitnetc_dense" + std::to_string(i);
    emit(fn, dense_sig, [&](const std::string& obj) { emit_dense_gemv_object(packed.dense_kernels[i], target, fn, obj); });
    dense_list += (i ? ", " : "") + fn;
  }
  auto array = [](const std::string& name, const std::string& signature, const std::string& list) {
    return "extern \"C\" int (*const " + name + "[])" + signature + " = {" + (list.empty() ? "nullptr" : list) +
           "};\n";
  };
  table += array("bitnetc_gemv_kernels", ternary_sig, gemv_list) +
           array("bitnetc_gemm_kernels", ternary_sig, gemm_list) +
           array("bitnetc_dense_kernels", dense_sig, dense_list);

  // The step kernels (cpu_program.h): per family bitnetc_<family><i>, a table and a count.
  auto emit_family = [&](const std::string& family, const std::string& signature, size_t count, auto&& emit_object) {
    std::string list;
    for (size_t i = 0; i < count; ++i) {
      const std::string fn = "bitnetc_" + family + std::to_string(i);
      emit(fn, signature, [&](const std::string& obj) { emit_object(i, fn, obj); });
      list += (i ? ", " : "") + fn;
    }
    table += "extern \"C\" const uint32_t bitnetc_" + family + "_kernel_count = " + std::to_string(count) + ";\n" +
             array("bitnetc_" + family + "_kernels", signature, list);
  };
  const std::string buffers5 =
      "(halide_buffer_t*, halide_buffer_t*, halide_buffer_t*, halide_buffer_t*, halide_buffer_t*)";
  const std::string buffers3_pos_buffer =
      "(halide_buffer_t*, halide_buffer_t*, halide_buffer_t*, int32_t, halide_buffer_t*)";
  emit_family(
      "norm_quant", buffers5, steps.norm_quant.size(), [&](size_t i, const std::string& fn, const std::string& obj) {
        const NormQuantKernelKey& k = steps.norm_quant[i];
        emit_norm_quant_object({k.n, k.K_padded, k.block, k.norm, k.norm_weight, k.eps(), k.quant, target.vector_bytes},
                               target, fn, obj);
      });
  emit_family("attention", buffers3_pos_buffer, steps.attention.size(),
              [&](size_t i, const std::string& fn, const std::string& obj) {
                const AttentionKernelKey& k = steps.attention[i];
                emit_attention_object(
                    {k.head_dim, k.n_head, k.n_head_kv, k.score_scale, k.softmax_sum, target.vector_bytes}, target, fn,
                    obj);
              });
  emit_family("kquant",
              "(halide_buffer_t*, halide_buffer_t*, halide_buffer_t*, halide_buffer_t*, halide_buffer_t*, "
              "halide_buffer_t*, halide_buffer_t*, halide_buffer_t*)",
              steps.kquant.size(), [&](size_t i, const std::string& fn, const std::string& obj) {
                emit_kquant_gemv_object({steps.kquant[i].K, steps.kquant[i].N, target.vector_bytes}, target, fn, obj);
              });
  emit_family("rope", buffers3_pos_buffer, steps.rope.size(),
              [&](size_t i, const std::string& fn, const std::string& obj) {
                const RopeKernelKey& k = steps.rope[i];
                emit_rope_object({k.n, k.head_dim, k.style, target.vector_bytes}, target, fn, obj);
              });
}

// A CUDA target's module: every kernel of the plan in one CUDA C++ source, compiled by
// NVRTC; returns the blob's plan section.
std::vector<uint8_t> generate_cuda_module(const ir::Graph& g, const TargetInfo& target, const PackedWeights& packed,
                                          const CompileOptions& o, const std::function<void(const std::string&)>& say) {
  const CudaProgram program = build_cuda_program(g, packed.ternary, packed.dense, kCudaChunkTokens);
  size_t decode_launches = 0, chunk_launches = 0;
  for (const rt::CudaStep& st : program.steps) {
    decode_launches += st.run_for != rt::CudaRunFor::SeveralTokens;
    chunk_launches += st.run_for != rt::CudaRunFor::OneToken;
  }
  say("generating " + std::to_string(program.kernel_names.size()) + " CUDA kernels (" +
      std::to_string(decode_launches) + " launches per decoded token, " + std::to_string(chunk_launches) +
      " per prefill chunk) for " + target.name + " (NVRTC, " + target.llc_cpu + ")");
  if (!o.cuda_source.empty()) write_file_atomically(o.cuda_source, std::span<const uint8_t>(
      reinterpret_cast<const uint8_t*>(program.source.data()), program.source.size()));
  const CudaImage image = compile_cuda(program.source, target);
  return serialize_cuda_plan(program, image.cubin, image.ptx, target.llc_cpu, kCudaChunkTokens, g.n_vocab);
}

}  // namespace

void compile_executable(const ImportedModel& m, const TargetInfo& target, const CompileOptions& o) {
  auto say = [&](const std::string& s) {
    if (o.progress) o.progress(s);
  };
  const Toolchain toolchain = toolchain_for(target);
  say("lowering");
  // Weights are decoded one at a time as they are packed (see pack_weights).
  LowerOptions lower_options = o.lower;
  lower_options.weight_data = false;
  ir::Graph g = lower(m, lower_options);
  const rt::Vocab vocab = load_vocab(m);
  const std::vector<int32_t> stop = stop_tokens(m, vocab);

  const ScratchFolder work;
  say("packing weights");
  PackedWeights packed =
      pack_weights(g, m, lower_options.decode, target, o.head_q8, parse_layout_request(o.layout));
  // A CUDA output's steps all run on the GPU: no CPU plan, no CPU kernels, empty tables.
  const CpuPlan cpu_plan = target.arch == TargetArch::Cuda ? CpuPlan{} : plan_cpu(g, packed.ternary);
  if (o.explain) explain_plan(g, target, packed, cpu_plan, o.explain);

  std::string table = "#include \"HalideRuntime.h\"\n#include <cstdint>\n";
  table += "extern \"C\" const uint32_t bitnetc_cpu_features = " + std::to_string(required_cpu_features(target)) +
           ";\nextern \"C\" const char bitnetc_target_name[] = \"" + target.name + "\";\n";
  std::vector<std::string> objects;
  std::vector<uint8_t> cuda_plan;
  if (target.arch == TargetArch::Cuda) cuda_plan = generate_cuda_module(g, target, packed, o, say);
  generate_cpu_kernels(g, target, packed, cpu_plan, work.path(), table, objects, say);
  write_file(fs::path(work.path()) / "kernels.cpp", table.data(), table.size());
  emit_halide_runtime(target, (fs::path(work.path()) / "halide_runtime.o").string());
  objects.push_back((fs::path(work.path()) / "halide_runtime.o").string());

  say("writing the model blob");
  std::vector<uint8_t> blob =
      build_blob(std::move(g), vocab, stop, packed, cpu_plan, source_fingerprint(m), o.external_weights, cuda_plan);
  const std::string side_file = o.output + ".weights";
  // A side file written for an output that then fails is removed again: both or neither.
  struct SideFileGuard {
    std::string path;
    std::unique_ptr<RemovedOnInterrupt> on_interrupt;
    bool keep = false;
    ~SideFileGuard() {
      if (!path.empty() && !keep) ::unlink(path.c_str());
    }
  } side_guard;
  if (o.external_weights) {
    // The side file is the whole blob; the output embeds it up to the weights.
    say("writing " + side_file);
    write_file_atomically(side_file, blob);
    side_guard.path = side_file;
    side_guard.on_interrupt = std::make_unique<RemovedOnInterrupt>(side_file);
    rt::BlobHeader h;
    std::memcpy(&h, blob.data(), sizeof h);
    blob.resize(h.weights_off);
  }
  write_file(fs::path(work.path()) / "model.blob", blob.data(), blob.size());
  // The blob now lives in the scratch file; give its memory (and the heap the packed
  // tensors used, which glibc keeps otherwise) back before the assembler and linker run.
  std::vector<uint8_t>().swap(blob);
  ::malloc_trim(0);
  const std::string asm_src =
      "  .section .rodata.bitnetc_blob,\"a\"\n  .balign 4096\n  .globl bitnetc_blob_start\nbitnetc_blob_start:\n"
      "  .incbin \"model.blob\"\n  .globl bitnetc_blob_end\nbitnetc_blob_end:\n  .section "
      ".note.GNU-stack,\"\",%progbits\n";
  write_file(fs::path(work.path()) / "blob.S", asm_src.data(), asm_src.size());
  // A shared object exports the C API of bitnet.h and nothing else.
  const std::string exports = "{ global: bitnet_*; local: *; };\n";
  write_file(fs::path(work.path()) / "exports.map", exports.data(), exports.size());

  say("linking " + o.output);
  std::string cmd = "cd " + quote(work.path()) + " && " + quote(toolchain.cxx) + " -O2 -std=c++17 -I" +
                    quote(BITNETC_HALIDE_INCLUDE) + " kernels.cpp blob.S";
  for (const auto& obj : objects) cmd += " " + quote(obj);
  // A shared object's SONAME is its file name, so `-L DIR -lNAME` finds and records it
  // without an rpath to the build folder.
  cmd += o.emit == EmitKind::SharedObject ? " -shared -Wl,--version-script=exports.map -Wl,-soname," +
                                                quote(fs::path(o.output).filename().string()) + " " + toolchain.so_libs
                                          : " " + toolchain.exe_flags + " " + toolchain.exe_libs;
  cmd += " -lpthread -ldl -o linked 2> link.log";
  if (run_shell(cmd) != 0) {
    std::ifstream log(fs::path(work.path()) / "link.log");
    const std::string msg((std::istreambuf_iterator<char>(log)), {});
    throw OutputError(o.output + ": linking failed: " + msg.substr(0, 2000));
  }
  // Streamed into place: the linked file can be as large as the model.
  std::ifstream linked(fs::path(work.path()) / "linked", std::ios::binary);
  write_file_atomically(
      o.output,
      [&](const auto& sink) {
        std::vector<uint8_t> buf(1 << 20);
        while (linked) {
          linked.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
          sink(std::span<const uint8_t>(buf.data(), static_cast<size_t>(linked.gcount())));
        }
        if (linked.bad()) throw OutputError(o.output + ": cannot read the linked output back");
      },
      /*executable=*/o.emit == EmitKind::Executable);
  side_guard.keep = true;
}

}  // namespace bitnetc::codegen
