#include "packing.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <optional>
#include <stdexcept>
#include <thread>
#include <tuple>

#include "cpu_program.h"
#include "cuda_kernels.h"
#include "fp16.h"
#include "huge_pages.h"
#include "kernel_objects.h"
#include "kquant_matmul.h"
#include "process.h"
#include "q8_0_matmul.h"

namespace bitnetc::codegen {

namespace {

// Runs body(0 .. n-1) on every core; once all have stopped, rethrows what the lowest
// index that failed threw (indices start in order, so that is the one a loop would
// have thrown).
void parallel_for(size_t n, const std::function<void(size_t)>& body) {
  const size_t workers = std::min<size_t>(n, static_cast<size_t>(available_cpus()));
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::vector<std::exception_ptr> errors(n);
  auto work = [&] {
    for (size_t i; !failed && (i = next++) < n;) try {
        body(i);
      } catch (...) {
        errors[i] = std::current_exception();
        failed = true;
      }
  };
  {
    std::vector<std::jthread> threads;
    for (size_t t = 1; t < workers; ++t) threads.emplace_back(work);
    work();
  }
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
}


// ---- ternary packers, one per layout ---------------------------------------------------

// What a ternary packer knows of the weight it packs.
struct TernaryJob {
  const std::string& name;
  const TernaryWeights& w;
  const TargetInfo& target;
  int64_t act_block;  // K (per-token activations) or 256 (Q8_K blocks)
  bool block_scales;  // a scale per (row, activation block)
  bool q8k64;         // ik_llama.cpp's Q8_K64 activations (act_block K)
};
// A packer sets the record's layout fields (K_padded, group_bytes, the packed dims and
// the block scales' row count) and returns the packed bytes and, for a CPU layout, the
// kernel shape the weight needs.
struct TernaryPacked {
  std::vector<uint8_t> bytes;
  std::optional<TernaryKernel> kernel;
};
using TernaryPackFn = TernaryPacked (*)(const TernaryJob&, rt::TernaryRecord&);

// I2_S: 2-bit codes in groups of the target's width (schedules/ternary_matmul.h), in row
// tiles or, where the target has a 4-way dot product, row lanes.
TernaryPacked pack_i2s(const TernaryJob& j, rt::TernaryRecord& r) {
  const schedules::TernaryMatmulShape i2s = i2s_matmul_shape(j.target, j.w.cols, j.w.rows, j.act_block);
  const bool row_lanes = i2s.packing == schedules::MatmulPacking::RowLanes;
  const int group = row_lanes ? 16 : 4 * i2s.vector_bytes;
  if (j.act_block != j.w.cols && j.act_block % group != 0)
    throw std::invalid_argument(j.name + ": activation blocks of " + std::to_string(j.act_block) +
                                " do not cover whole " + std::to_string(group) + "-weight groups of the target");
  schedules::TernaryMatmulShape shape = i2s;
  shape.block_scales = j.block_scales;
  shape.q8k64 = j.q8k64;
  if (j.block_scales) r.block_scale_rows = schedules::block_scale_rows(shape);
  r.K_padded = schedules::packed_k(i2s);
  r.group_bytes = static_cast<uint32_t>(i2s.vector_bytes);
  const schedules::PackedDims dims = schedules::packed_dims(i2s);
  r.packed_dim0 = dims.bytes_per_tile;
  r.packed_dim1 = dims.tiles;
  return {schedules::pack_ternary(j.w, i2s), TernaryKernel{rt::TernaryLayout::I2S, shape, {}}};
}

// TL1 / TL2: bitnet.cpp's lookup-table tiles (runtime_stub/cpu/lut_tiles.h).
TernaryPacked pack_lut(const TernaryJob& j, rt::TernaryRecord& r) {
  if (j.q8k64)
    throw std::invalid_argument(j.name + ": the lookup-table kernels do not take ik_llama.cpp's Q8_K64 activations");
  const auto lut = r.layout == rt::TernaryLayout::TL1 ? schedules::LutLayout::TL1 : schedules::LutLayout::TL2;
  r.K_padded = schedules::lut_padded_k(j.w.cols, lut);
  r.group_bytes = 0;
  r.packed_dim0 = static_cast<int32_t>(schedules::lut_tile_bytes(j.w.cols, lut));
  r.packed_dim1 = static_cast<int32_t>(schedules::lut_tiles(j.w.rows, lut));
  return {schedules::pack_lut(j.w, lut), TernaryKernel{r.layout, {}, {j.w.cols, j.w.rows, lut, 1}}};
}

// CUDA: 16-weight words, chunk-major (codegen/cuda_kernels.h); the kernels come from
// the CUDA plan (codegen/cuda_program.h), not from the records.
TernaryPacked pack_cuda_words(const TernaryJob& j, rt::TernaryRecord& r) {
  if (j.block_scales) r.block_scale_rows = j.w.rows;
  r.K_padded = cuda_padded_k(j.w.cols);
  r.group_bytes = 0;
  r.packed_dim0 = static_cast<int32_t>(r.K_padded / 4);
  r.packed_dim1 = static_cast<int32_t>(j.w.rows);
  const std::vector<uint32_t> words = pack_for_cuda_matmul(j.w);
  std::vector<uint8_t> bytes(words.size() * 4);
  std::memcpy(bytes.data(), words.data(), bytes.size());
  return {std::move(bytes), std::nullopt};
}

struct TernaryPacker {
  rt::TernaryLayout layout;
  TernaryPackFn pack;
};
constexpr TernaryPacker kTernaryPackers[] = {
    {rt::TernaryLayout::I2S, pack_i2s},
    {rt::TernaryLayout::TL1, pack_lut},
    {rt::TernaryLayout::TL2, pack_lut},
    {rt::TernaryLayout::Cuda, pack_cuda_words},
};

TernaryPackFn ternary_packer(rt::TernaryLayout layout) {
  for (const TernaryPacker& p : kTernaryPackers)
    if (p.layout == layout) return p.pack;
  throw std::logic_error("no packer for ternary layout " + std::to_string(static_cast<int>(layout)));
}

// Whether an F16 source tensor holds no infinity or NaN: then every value is exactly a
// half (exactly_finite_f16 without decoding 2B4T's 328M values twice). Its pages leave
// the RSS a chunk at a time, as weight_rows's do.
bool finite_halves(const ImportedModel& m, const ModelTensor& t) {
  constexpr uint64_t kChunk = ImportedModel::kDropPagesChunk;
  for (uint64_t off = 0; off < t.nbytes; off += kChunk) {
    const uint64_t n = std::min(kChunk, t.nbytes - off);
    bool finite = true;
    for (uint64_t i = 0; i + 1 < n; i += 2) {
      uint16_t h;
      std::memcpy(&h, t.data + off + i, 2);
      finite &= (h & 0x7c00) != 0x7c00;  // exponent all ones: an infinity or a NaN
    }
    m.drop_pages(t, off, n);
    if (!finite) return false;
  }
  return true;
}

// ---- dense packers, one per layout -----------------------------------------------------

// What a dense packer knows of the weight it packs: the record's rows, cols and storage
// are set; `rows` streams its float rows (matrices are never decoded whole).
struct DenseJob {
  const ir::DenseWeights& d;
  const schedules::RowSource& rows;
  int vector_bytes;  // the target's (head tiles)
  // An F16 source with every value finite, stored as f16: packers may copy its halves
  // (their pages dropped as they go) instead of reading `rows`.
  const ModelTensor* f16_source = nullptr;
  const ImportedModel* model = nullptr;
};
using DensePackFn = std::vector<uint8_t> (*)(const DenseJob&, rt::DenseRecord&, std::vector<float>& scales);

// Writes `value` (a row's element) in the record's storage at element index `at`.
void store_element(std::vector<uint8_t>& b, size_t at, rt::DenseStorage storage, float value) {
  if (storage == rt::DenseStorage::F16) {
    const uint16_t h = f32_to_fp16(value);
    std::memcpy(&b[2 * at], &h, 2);
  } else {
    std::memcpy(&b[4 * at], &value, 4);
  }
}

// Row-major: norm vectors and embedding tables (an embedding reads one row per token).
std::vector<uint8_t> pack_row_major(const DenseJob& j, rt::DenseRecord& r, std::vector<float>&) {
  std::vector<uint8_t> b = huge_page_vector<uint8_t>(static_cast<size_t>(r.rows * r.cols) * rt::element_bytes(r.storage));
  std::vector<float> row(static_cast<size_t>(r.cols));
  for (int64_t n = 0; n < r.rows; ++n) {
    j.rows(n, row.data());
    for (int64_t k = 0; k < r.cols; ++k) store_element(b, static_cast<size_t>(n * r.cols + k), r.storage, row[k]);
  }
  return b;
}

// Head tiles (schedules/dense_matmul.h): the CPU head kernel's layout, f32/f16 values,
// int8 codes with row scales (--head=q8), or llama.cpp's k-quant codes and scales.
std::vector<uint8_t> pack_head_tiles(const DenseJob& j, rt::DenseRecord& r, std::vector<float>& scales) {
  const int V = j.vector_bytes;
  r.tile = static_cast<uint32_t>(schedules::dense_matmul_tile_rows(V));
  r.rows_padded = schedules::dense_matmul_padded_rows(r.rows, V);
  switch (r.storage) {
    case rt::DenseStorage::KQuant: {  // rows in the kernel's lane groups (rt::kquant_lane_sections)
      const int kquant_bytes = schedules::kquant_vector_bytes(V);
      r.tile = static_cast<uint32_t>(schedules::kquant_lanes(kquant_bytes));
      r.rows_padded = schedules::dense_matmul_padded_rows(r.rows, kquant_bytes);
      return schedules::pack_for_kquant_matmul(j.d.kquant, kquant_bytes);
    }
    case rt::DenseStorage::Q8_0: return schedules::pack_for_q8_0_matmul(j.d.q8_0, V);
    case rt::DenseStorage::Q8: return schedules::quantize_for_dense_matmul_q8(j.rows, r.rows, r.cols, V, scales);
    case rt::DenseStorage::F16:
    case rt::DenseStorage::F32: break;
  }
  if (j.f16_source && r.storage == rt::DenseStorage::F16) {
    // The halves as they are, a page-drop chunk of source rows at a time, on every core.
    std::vector<uint8_t> t = huge_page_vector<uint8_t>(static_cast<size_t>(r.rows_padded * r.cols) * 2, 0);
    const int64_t chunk_rows =
        std::max<int64_t>(1, static_cast<int64_t>(ImportedModel::kDropPagesChunk) / (2 * r.cols));
    const int64_t chunks = (r.rows + chunk_rows - 1) / chunk_rows;
    parallel_for(static_cast<size_t>(chunks), [&](size_t c) {
      const int64_t n0 = static_cast<int64_t>(c) * chunk_rows, n1 = std::min(r.rows, n0 + chunk_rows);
      schedules::put_half_rows_for_dense_matmul(reinterpret_cast<const uint16_t*>(j.f16_source->data), n0, n1, r.cols,
                                                V, reinterpret_cast<uint16_t*>(t.data()));
      j.model->drop_pages(*j.f16_source, static_cast<uint64_t>(n0 * r.cols) * 2,
                          static_cast<uint64_t>((n1 - n0) * r.cols) * 2);
    });
    return t;
  }
  return schedules::transpose_for_dense_matmul(j.rows, r.rows, r.cols, V, r.storage == rt::DenseStorage::F16);
}

// llama.cpp's k-quant codes and scales in k-major parts (rt::kquant_sections, each part
// k-major): the CUDA k-quant head and embedding (codegen/cuda/kernels.cuh).
std::vector<uint8_t> pack_kquant_k_major(const KQuantWeights& w) {
  const int64_t N = w.rows, K = w.cols, G = K / KQuantWeights::kGroup, B = K / KQuantWeights::kBlock;
  const rt::KQuantSections at = rt::kquant_sections(N, K);
  std::vector<uint8_t> b(at.end, 0);
  for (int64_t r = 0; r < N; ++r) {
    for (int64_t c = 0; c < K; ++c) b[at.q + c * N + r] = static_cast<uint8_t>(w.q[r * K + c]);
    for (int64_t g = 0; g < G; ++g) {
      b[at.sc + g * N + r] = static_cast<uint8_t>(w.sc[r * G + g]);
      b[at.m + g * N + r] = static_cast<uint8_t>(w.m[r * G + g]);
    }
    for (int64_t k = 0; k < B; ++k) {
      std::memcpy(&b[at.d + 4 * (k * N + r)], &w.d[r * B + k], 4);
      std::memcpy(&b[at.dmin + 4 * (k * N + r)], &w.dmin[r * B + k], 4);
    }
  }
  return b;
}

// llama.cpp's Q8_0 codes and factors in k-major parts (rt::q8_0_sections): the CUDA Q8_0
// head and embedding.
std::vector<uint8_t> pack_q8_0_k_major(const Q8_0Weights& w) {
  const int64_t N = w.rows, K = w.cols, B = K / Q8_0Weights::kBlock;
  const rt::Q8_0Sections at = rt::q8_0_sections(N, K);
  std::vector<uint8_t> b(at.end, 0);
  for (int64_t r = 0; r < N; ++r) {
    for (int64_t c = 0; c < K; ++c) b[at.q + c * N + r] = static_cast<uint8_t>(w.q[r * K + c]);
    for (int64_t k = 0; k < B; ++k) std::memcpy(&b[at.d + 4 * (k * N + r)], &w.d[r * B + k], 4);
  }
  return b;
}

// K-major (element (row, col) at col * rows + row): the CUDA head, whose neighbouring
// threads read neighbouring rows.
std::vector<uint8_t> pack_k_major(const DenseJob& j, rt::DenseRecord& r, std::vector<float>& scales) {
  if (r.storage == rt::DenseStorage::KQuant) return pack_kquant_k_major(j.d.kquant);
  if (r.storage == rt::DenseStorage::Q8_0) return pack_q8_0_k_major(j.d.q8_0);
  const bool q8 = r.storage == rt::DenseStorage::Q8;
  if (q8) scales.resize(static_cast<size_t>(r.rows));
  const size_t elem = rt::element_bytes(r.storage);
  std::vector<uint8_t> b(static_cast<size_t>(r.rows * r.cols) * elem);
  std::vector<float> row(static_cast<size_t>(r.cols));
  std::vector<int8_t> codes(q8 ? static_cast<size_t>(r.cols) : 0);
  for (int64_t n = 0; n < r.rows; ++n) {
    j.rows(n, row.data());
    if (q8) scales[n] = schedules::quantize_row_q8(row.data(), r.cols, codes.data());
    for (int64_t k = 0; k < r.cols; ++k) {
      const size_t at = static_cast<size_t>(k * r.rows + n);
      if (q8)
        b[at] = static_cast<uint8_t>(codes[k]);
      else
        store_element(b, at, r.storage, row[k]);
    }
  }
  return b;
}

struct DensePacker {
  rt::DenseLayout layout;
  DensePackFn pack;
};
constexpr DensePacker kDensePackers[] = {
    {rt::DenseLayout::RowMajor, pack_row_major},
    {rt::DenseLayout::HeadTiles, pack_head_tiles},
    {rt::DenseLayout::KMajor, pack_k_major},
};

DensePackFn dense_packer(rt::DenseLayout layout) {
  for (const DensePacker& p : kDensePackers)
    if (p.layout == layout) return p.pack;
  throw std::logic_error("no packer for dense layout " + std::to_string(static_cast<int>(layout)));
}

}  // namespace

PackedWeights pack_weights(ir::Graph& g, const ImportedModel& m, const DecodeOptions& decode,
                           const TargetInfo& target, bool head_q8, LayoutRequest layout) {
  PackedWeights p;
  p.ternary.resize(g.ternary.size());
  p.ternary_bytes.resize(g.ternary.size());
  p.ternary_block_scales.resize(g.ternary.size());
  p.layouts = choose_layouts(g, target, layout, &m);
  const bool cuda = target.backend == Backend::Cuda;
  // Each ternary weight once, with the first op that uses it, in op order.
  std::vector<const ir::Op*> first_use(g.ternary.size(), nullptr);
  std::vector<uint32_t> order;
  for (const ir::Op& op : g.ops)
    if (op.kind == ir::OpKind::TernaryMatmul && !first_use[op.weight]) {
      first_use[op.weight] = &op;
      order.push_back(op.weight);
    }
  std::vector<std::optional<TernaryKernel>> kernel(g.ternary.size());
  std::vector<float> typical_scales(g.ternary.size());
  // The weights decode and pack independently, on every core; their kernels are numbered
  // afterwards, in op order.
  parallel_for(order.size(), [&](size_t i) {
    const ir::Op& op = *first_use[order[i]];
    const std::string& name = g.ternary[op.weight].name;
    if (g.ternary[op.weight].w.codes.empty()) load_weight_data(m, decode, g.ternary[op.weight]);
    TernaryWeights& w = g.ternary[op.weight].w;
    const int64_t act_block = act_block_of(g, op, w.cols);
    const bool q8k64 = act_quant_of(g, op) == ir::ActQuant::PerRowQ8K64;
    if (q8k64)
      if (const std::string problem = q8k64_scale_problem(w); !problem.empty())
        throw std::invalid_argument(name + ": " + problem);
    const rt::TernaryLayout l = p.layouts[op.weight].layout;
    // Scales per block (llama.cpp's TQ files) where they are not all one value: the I2_S
    // and CUDA kernels take one per (row, activation block) when the blocks are the same.
    const bool block_scales =
        std::any_of(w.scales.begin(), w.scales.end(), [&](float sc) { return sc != w.scales[0]; });
    const bool block_layout = l == rt::TernaryLayout::I2S || l == rt::TernaryLayout::Cuda;
    // (A scale per row or per several blocks is constant over each activation block too.)
    if (block_scales &&
        (!block_layout || w.scale_block % static_cast<uint64_t>(act_block) != 0 || w.cols % act_block != 0))
      throw std::invalid_argument(name + ": a weight scale per block of " + std::to_string(w.scale_block) +
                                  " needs activation blocks of the same size" +
                                  (block_layout ? std::string()
                                                : std::string(" and the i2_s layout (") + layout_label(l) +
                                                      " takes one scale per tensor)") +
                                  "; the activations here come in blocks of " + std::to_string(act_block));
    rt::TernaryRecord& r = p.ternary[op.weight];
    r.K = w.cols;
    r.N = w.rows;
    r.act_block = act_block;
    r.w_scale = w.scales[0];
    r.layout = l;
    // I2_S's GEMM takes a chunk's rows as they are; the figures price calls of 8 rows, so
    // below 8 the GEMM is priced as today's padded call of 8 (never cheaper than measured).
    // The lookup-table GEMM is padded to the batch.
    const int priced_rows =
        l == rt::TernaryLayout::I2S ? std::min(kCpuPrefillBatch, kLayoutFigureBatch) : kCpuPrefillBatch;
    r.gemm_min_rows = static_cast<uint32_t>(gemm_min_rows(target, tensor_type_of(l), w.cols, w.rows, priced_rows));
    // Without figures to price it (wasm32-simd's TL1, ARM's), a padded lookup-table GEMM
    // is taken by full chunks only: a step of 2 rows ran 32 rows of lookups.
    if (l != rt::TernaryLayout::I2S && target.layout_figures.empty())
      r.gemm_min_rows = static_cast<uint32_t>(kCpuPrefillBatch);
    r.block_scales = block_scales ? 1 : 0;
    r.act_groups = q8k64 ? kBitnetcQ8K64Groups : 0;
    TernaryPacked packed = ternary_packer(l)({name, w, target, act_block, block_scales, q8k64}, r);
    p.ternary_bytes[op.weight] = std::move(packed.bytes);
    kernel[op.weight] = packed.kernel;
    if (block_scales) {  // [block][row], rows past N (row-lane padding) with zero scales
      const int64_t blocks = w.cols / act_block;
      std::vector<float>& bs = p.ternary_block_scales[op.weight];
      bs.assign(static_cast<size_t>(blocks * r.block_scale_rows), 0.0f);
      for (int64_t n = 0; n < w.rows; ++n)
        for (int64_t b = 0; b < blocks; ++b) bs[b * r.block_scale_rows + n] = w.scale_of(n, b * act_block);
    }
    std::vector<int8_t>().swap(w.codes);
    if (const ModelTensor* t = m.find(name)) m.drop_pages(*t);  // packed: its source bytes leave the RSS
    typical_scales[op.weight] = typical_scale(w);
  });
  std::map<std::tuple<int64_t, int64_t, int64_t, rt::TernaryLayout, bool, bool>, uint32_t> kernel_of;
  std::vector<std::pair<std::string, float>> typical;  // each weight's scale, checked across layers
  for (uint32_t i : order) {
    rt::TernaryRecord& r = p.ternary[i];
    r.gemv_kernel = r.gemm_kernel = rt::kNoKernel;
    if (kernel[i]) {  // weights of one shape share their kernels
      const auto [it, added] =
          kernel_of.emplace(std::make_tuple(r.K, r.N, r.act_block, r.layout, r.block_scales != 0, r.act_groups != 0),
                            static_cast<uint32_t>(p.ternary_kernels.size()));
      if (added) p.ternary_kernels.push_back(*kernel[i]);
      r.gemv_kernel = r.gemm_kernel = it->second;
    }
    typical.push_back({g.ternary[i].name, typical_scales[i]});
  }
  check_scales_across_layers(m, typical);

  // Dense weights: a head in its kernel's layout (half precision when that is exact, as
  // an F16 checkpoint's head is), norm vectors and untied embeddings row-major.
  p.dense.resize(g.dense.size());
  p.dense_bytes.resize(g.dense.size());
  p.dense_scales.resize(g.dense.size());
  std::vector<bool> is_head(g.dense.size(), false);
  for (const ir::Op& op : g.ops)
    if (op.kind == ir::OpKind::DenseMatmul || op.kind == ir::OpKind::KQuantMatmul ||
        op.kind == ir::OpKind::Q8_0Matmul)
      is_head[op.weight] = true;
  std::map<std::tuple<int64_t, int64_t, bool, bool>, uint32_t> dense_kernel_of;
  for (size_t i = 0; i < g.dense.size(); ++i) {
    ir::DenseWeights& d = g.dense[i];
    rt::DenseRecord& r = p.dense[i];
    r.rows = r.rows_padded = d.rows;
    r.cols = d.cols;
    r.kernel = rt::kNoKernel;
    r.tile = 0;
    const bool quantized = d.format != ir::DenseFormat::F32;
    if (quantized) {
      // llama.cpp's k-quant or Q8_0 embedding or head, its codes and scales as they are:
      // the head computes with them as ggml does (schedules/kquant_matmul.h,
      // q8_0_matmul.h and the CUDA bitnetc_kquant_matmul, bitnetc_q8_0_matmul; the plan
      // names the kernel), an embedding dequantizes its row (ir/kquant.h). --head=q8 does
      // not re-quantize it.
      load_weight_data(m, d);
      r.storage = d.format == ir::DenseFormat::KQuant ? rt::DenseStorage::KQuant : rt::DenseStorage::Q8_0;
    } else if (d.data.empty() && d.rows == 1) {
      load_weight_data(m, d);  // norm vectors; matrices stream by row
    }
    const schedules::RowSource rows = quantized ? schedules::RowSource() : weight_rows(m, d);
    const ModelTensor* source = quantized || !d.data.empty() ? nullptr : m.find(d.name);
    if (!quantized) {
      const bool f16 = d.rows > 1 && (source && source->type == TensorType::F16
                                          ? finite_halves(m, *source)
                                          : schedules::exactly_finite_f16(rows, d.rows, d.cols));
      r.storage = is_head[i] && head_q8 ? rt::DenseStorage::Q8 : f16 ? rt::DenseStorage::F16 : rt::DenseStorage::F32;
    }
    r.layout = !is_head[i] && !quantized ? rt::DenseLayout::RowMajor
               : cuda                    ? rt::DenseLayout::KMajor
                                         : rt::DenseLayout::HeadTiles;
    const bool raw_halves = source && source->type == TensorType::F16 && r.storage == rt::DenseStorage::F16;
    p.dense_bytes[i] = dense_packer(r.layout)(
        {d, rows, target.vector_bytes, raw_halves ? source : nullptr, &m}, r, p.dense_scales[i]);
    if (r.layout == rt::DenseLayout::HeadTiles && !quantized) {  // the CPU head's kernel, one per shape
      const bool f16 = r.storage == rt::DenseStorage::F16, q8 = r.storage == rt::DenseStorage::Q8;
      const auto [it, added] = dense_kernel_of.emplace(std::make_tuple(d.cols, d.rows, f16, q8),
                                                       static_cast<uint32_t>(dense_kernel_of.size()));
      if (added) p.dense_kernels.push_back({d.cols, d.rows, target.vector_bytes, f16, q8});
      r.kernel = it->second;
    }
    std::vector<float>().swap(d.data);
    d.kquant = {};
    d.q8_0 = {};
    if (const ModelTensor* t = m.find(d.name)) m.drop_pages(*t);
  }
  return p;
}

std::vector<std::string> explain_packing(const ir::Graph& g, const TargetInfo& target, const PackedWeights& p) {
  std::vector<std::string> lines;
  for (size_t i = 0; i < g.ternary.size(); ++i) {
    const rt::TernaryRecord& r = p.ternary[i];
    std::string packing;
    if (r.layout == rt::TernaryLayout::Cuda)
      packing = "i2_cuda: 2-bit codes in 16-weight words, chunk-major";
    else if (r.layout == rt::TernaryLayout::I2S &&
             i2s_matmul_shape(target, r.K, r.N, r.act_block).packing == schedules::MatmulPacking::RowLanes)
      packing = "i2_s: 2-bit codes in " + std::to_string(r.group_bytes) + "-byte groups, one row per i32 lane (" +
                std::to_string(r.group_bytes / 4) + " rows a group, no horizontal sums)";
    else if (r.layout == rt::TernaryLayout::I2S)
      packing = "i2_s: 2-bit codes in " + std::to_string(r.group_bytes) + "-byte groups, tiles of " +
                std::to_string(r.packed_dim0 * 4 / r.K_padded) + " rows";
    else
      packing = std::string(layout_label(r.layout)) + ": " + std::to_string(r.packed_dim1) + " tiles of " +
                std::to_string(r.packed_dim0) + " bytes (" +
                (r.layout == rt::TernaryLayout::TL1 ? "4-bit pair indices, NEON tbl"
                                                    : "4-bit triple indices + sign bits, AVX2 pshufb") +
                ")";
    lines.push_back("  " + g.ternary[i].name + " [" + std::to_string(r.N) + "x" + std::to_string(r.K) +
                    "]: " + packing + ", K padded to " + std::to_string(r.K_padded) +
                    (r.gemv_kernel == rt::kNoKernel ? std::string()
                                                    : "; kernels gemv" + std::to_string(r.gemv_kernel) + "/gemm" +
                                                          std::to_string(r.gemm_kernel)) +
                    (r.act_groups ? std::string(", Q8_K64 activations (four groups interleaved across the row)")
                                  : ", activation blocks of " + std::to_string(r.act_block) +
                                        (r.act_block == r.K ? " (per token)" : " (per block)")) +
                    "; layout " + p.layouts[i].reason);
  }
  for (size_t i = 0; i < g.dense.size(); ++i) {
    const rt::DenseRecord& r = p.dense[i];
    const std::string head = g.dense[i].name + " [" + std::to_string(r.rows) + "x" + std::to_string(r.cols) + "]: ";
    if (r.storage == rt::DenseStorage::KQuant) {
      lines.push_back("  " + head + "llama.cpp's k-quant codes and scales in " +
                      (r.layout == rt::DenseLayout::KMajor
                           ? std::string("k-major parts")
                           : "lane groups of " + std::to_string(r.tile) + " rows, the codes in 6 bits") +
                      " (the head computes with Q8_K activations as ggml does; an embedding row is dequantized)");
      continue;
    }
    if (r.storage == rt::DenseStorage::Q8_0) {
      lines.push_back("  " + head + "llama.cpp's Q8_0 codes and factors in " +
                      (r.layout == rt::DenseLayout::KMajor ? std::string("k-major parts")
                                                           : "head tiles of " + std::to_string(r.tile) + " rows") +
                      " (the head computes with Q8_0 activations as ggml does; an embedding row is dequantized)");
      continue;
    }
    if (r.storage == rt::DenseStorage::Q8) {
      lines.push_back("  " + head +
                      (r.layout == rt::DenseLayout::KMajor ? std::string("k-major (the CUDA head)")
                                                           : "head tiles of " + std::to_string(r.tile) + " rows") +
                      ", int8 with a scale per row (--head=q8; changes numerics)");
      continue;
    }
    const bool f16 = r.storage == rt::DenseStorage::F16;
    std::string why = r.layout == rt::DenseLayout::HeadTiles
                          ? "head tiles of " + std::to_string(r.tile) + " rows for kernel dense" +
                                std::to_string(r.kernel)
                      : r.layout == rt::DenseLayout::KMajor
                          ? std::string("k-major (the CUDA head: coalesced rows)")
                          : (r.rows == 1 ? "row-major (a norm vector)" : "row-major (an embedding table)");
    why += f16 ? ", f16: every value is exactly a half" : (r.rows == 1 ? ", f32" : ", f32: not every value is a half");
    lines.push_back("  " + head + why);
  }
  return lines;
}

}  // namespace bitnetc::codegen
