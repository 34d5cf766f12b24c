#include "cuda_kernels.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <stdexcept>

#include "cuda_plan.h"

#ifdef BITNETC_HAVE_NVRTC
#include <dlfcn.h>
#include <nvrtc.h>
#endif

namespace bitnetc::codegen {

int64_t cuda_padded_k(int64_t K) { return (K + 15) / 16 * 16; }

std::vector<uint32_t> pack_for_cuda_matmul(const TernaryWeights& w) {
  const int64_t chunks = cuda_padded_k(w.cols) / 16, N = w.rows;
  std::vector<uint32_t> out(static_cast<size_t>(chunks * N), 0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < chunks; ++c) {
      uint32_t word = 0;
      for (int s = 0; s < 4; ++s)
        for (int b = 0; b < 4; ++b) {
          const int64_t k = 16 * c + 4 * s + b;
          const uint32_t code = k < w.cols ? static_cast<uint32_t>(w.codes[n * w.cols + k] + 1) : 1;
          word |= code << (8 * b + 2 * s);
        }
      out[c * N + n] = word;
    }
  return out;
}

namespace {

// The texts every module embeds (the build writes them from the files named).
const char* const kNumericsSource =
#include "numerics_text.inc"  // ir/numerics.h
    ;
const char* const kCudaStateSource =
#include "cuda_state_text.inc"  // runtime_stub/cuda/cuda_state.h
    ;
const char* const kKernelTemplatesSource =
#include "cuda_kernels_text.inc"  // codegen/cuda/kernels.cuh
    ;

std::string str(int64_t v) { return std::to_string(v); }
std::string flag(bool b) { return b ? "true" : "false"; }
template <typename Enum>
std::string kind(Enum e) {  // an ir:: kind as its value in numerics.h
  return std::to_string(static_cast<int>(e));
}

// "const float* __restrict__ x" -> "const float*"
std::string param_type(const std::string& param) {
  const size_t name = param.find_last_of(" *");
  std::string type = param.substr(0, name + 1);
  if (const size_t r = type.find(" __restrict__"); r != std::string::npos) type.erase(r, 13);
  while (!type.empty() && type.back() == ' ') type.pop_back();
  return type;
}
// "const float* __restrict__ x" -> "x"
std::string param_name(const std::string& param) { return param.substr(param.find_last_of(" *") + 1); }

constexpr uint32_t kElementThreads = 128;  // threads per block of the one-thread-per-element kernels
constexpr uint32_t kRowThreads = 256;      // threads per block of the one-block-per-row kernels

// The body that calls `instance` (a template with its arguments) with `args`: the entry
// point's parameters by name, or "nullptr" where the template's parameter is unused.
std::string call(const std::string& instance, const std::vector<std::string>& args) {
  std::string s = "  " + instance + "(";
  for (size_t i = 0; i < args.size(); ++i) s += (i ? ", " : "") + args[i];
  return s + ");\n";
}
// The names of the kernel's parameters, in order.
std::vector<std::string> param_names(const CudaKernel& k) {
  std::vector<std::string> names;
  for (const std::string& p : k.params) names.push_back(param_name(p));
  return names;
}
// Whether the kernel has a parameter of this name.
bool has_param(const CudaKernel& k, const std::string& name) {
  for (const std::string& p : k.params)
    if (param_name(p) == name) return true;
  return false;
}
std::string arg_or_null(const CudaKernel& k, const std::string& name) { return has_param(k, name) ? name : "nullptr"; }

// One thread per element of `limit`, a block row per row of the chunk.
void per_element(CudaKernel& k, int64_t limit) {
  k.grid_x = static_cast<uint32_t>((limit + kElementThreads - 1) / kElementThreads);
  k.block_x = kElementThreads;
  k.grid_y = rt::CudaGridY::ChunkRows;
}

}  // namespace

std::string cuda_module_preamble() {
  // The warp matrix operations (the toolkit's header; the CPU emulation of the tests has
  // its own).
  return std::string("#ifndef BITNETC_CUDA_EMULATION\n#include <mma.h>\n#endif\n") + kNumericsSource +
         kCudaStateSource + kKernelTemplatesSource;
}

std::string cuda_kernel_text(const CudaKernel& k) {
  std::string params, emulated_args;
  for (size_t i = 0; i < k.params.size(); ++i) {
    params += (i ? ", " : "") + k.params[i];
    emulated_args += ", *(" + param_type(k.params[i]) + "*)p[" + str(static_cast<int64_t>(i)) + "]";
  }
  return "extern \"C\" __global__ void " + k.name + "(" + params + ") {\n" + k.body + "}\n" +
         "#ifdef BITNETC_CUDA_EMULATION\nextern \"C\" const int bitnetc_emulate_" + k.name +
         "_params = " + str(static_cast<int64_t>(k.params.size())) + ";\nextern \"C\" void bitnetc_emulate_" + k.name +
         "(unsigned gx, unsigned gy, unsigned bx, void** p) {\n  bitnetc_launch(" + k.name +
         ", bitnetc_dim3{gx, gy, 1}, bitnetc_dim3{bx, 1, 1}" + emulated_args + ");\n}\n#endif\n";
}

namespace {

// The matmul kernels' parameters: the first weight's, then any residual, then each
// further weight's words, scale and output.
std::vector<std::string> matmul_params(const CudaMatmulShape& s) {
  std::vector<std::string> p = {"const int* __restrict__ state",   "const unsigned* __restrict__ packed",
                                "const int* __restrict__ x",       "const int* __restrict__ x_sum",
                                "const float* __restrict__ d_act", "float w_scale"};
  if (s.block_scales) p.push_back("const float* __restrict__ w_block_scales");
  if (s.add_residual) p.push_back("const float* __restrict__ residual");
  p.push_back("float* __restrict__ y");
  for (size_t i = 1; i <= s.more_rows.size(); ++i) {
    const std::string n = std::to_string(i);
    p.push_back("const unsigned* __restrict__ packed_" + n);
    p.push_back("float w_scale_" + n);
    if (s.block_scales) p.push_back("const float* __restrict__ w_block_scales_" + n);
    p.push_back("float* __restrict__ y_" + n);
  }
  return p;
}

// The matmul templates' arguments for the first weight: state, words, activations,
// scale(s), residual, output.
std::vector<std::string> matmul_args(const CudaKernel& k) {
  return {"state",   "packed",
          "x",       "x_sum",
          "d_act",   "w_scale",
          arg_or_null(k, "w_block_scales"), arg_or_null(k, "residual"),
          "y"};
}

std::string matmul_suffix(const CudaMatmulShape& s) {
  return "_b" + str(s.act_block) + "_m" + str(static_cast<int64_t>(s.batch)) + (s.add_residual ? "_res" : "") +
         (s.block_scales ? "_bs" : "") + (s.q8k64 ? "_q8k64" : "");
}

}  // namespace

CudaKernel cuda_ternary_matmul(const CudaMatmulShape& s) {
  if (s.K <= 0 || s.N <= 0 || s.act_block <= 0 || s.K % s.act_block != 0 || s.batch < 1)
    throw std::invalid_argument("cuda_ternary_matmul: bad shape");
  if (s.act_block != s.K && s.act_block % 16 != 0)
    throw std::invalid_argument("cuda_ternary_matmul: activation blocks must cover whole 16-weight words");
  if (s.add_residual && !s.more_rows.empty())
    throw std::invalid_argument("cuda_ternary_matmul: a residual with several weights");
  if (s.more_rows.size() > 2) throw std::invalid_argument("cuda_ternary_matmul: at most three weights in one launch");
  if (s.q8k64 && s.act_block != s.K)
    throw std::invalid_argument("cuda_ternary_matmul: Q8_K64 activations are per row (one block of K)");
  const int64_t blocks = s.K / s.act_block;
  // Slices of K per block (the threads of one row) and rows per block. Per-token
  // activations: 32 slices of 8 rows (a warp's four slices each read a whole 32-byte
  // sector), so that a 2560-row decode matmul is 320 blocks and every SM of a large GPU
  // keeps loads in flight (32 rows made it 80 blocks for H100's 132 SMs). Per-block
  // activations give each slice whole blocks: 8 slices of 32 rows (a warp's coalesced
  // 128 bytes). Fewer rows where the shared partial dots would pass 32 KB.
  const int64_t slices = blocks == 1 ? 32 : 8;
  const int64_t parts = std::max<int64_t>(slices, blocks);
  int64_t rows = blocks == 1 ? 8 : 32;
  // (Q8_K64 keeps the four groups' partial dots too: five times the shared ints.)
  while (rows > 1 && parts * rows * s.batch * 4 * (s.q8k64 ? 5 : 1) > 32 * 1024) rows /= 2;
  CudaKernel k;
  k.name = "bitnetc_ternary_" + str(s.K) + "x" + str(s.N);
  for (int64_t n : s.more_rows) k.name += "_" + str(n);
  k.name += matmul_suffix(s);
  k.params = matmul_params(s);
  k.block_x = static_cast<uint32_t>(rows * slices);
  k.grid_x = 0;
  for (int64_t n : {s.N, s.more_rows.size() > 0 ? s.more_rows[0] : 0, s.more_rows.size() > 1 ? s.more_rows[1] : 0})
    k.grid_x += static_cast<uint32_t>((n + rows - 1) / rows);
  std::vector<std::string> args = matmul_args(k);
  for (size_t i = 1; i <= s.more_rows.size(); ++i) {
    const std::string n = std::to_string(i);
    args.insert(args.end(), {"packed_" + n, "w_scale_" + n, arg_or_null(k, "w_block_scales_" + n), "y_" + n});
  }
  std::string instance = "bitnetc_ternary_dp4a<" + str(s.K) + ", " + str(s.act_block) + ", " +
                         str(static_cast<int64_t>(s.batch)) + ", " + str(rows) + ", " + str(slices) + ", " +
                         flag(s.add_residual) + ", " + flag(s.block_scales) + ", " + flag(s.q8k64) + ", " + str(s.N);
  for (int64_t n : s.more_rows) instance += ", " + str(n);
  k.body = call(instance + ">", args);
  return k;
}

CudaKernel cuda_ternary_matmul_mma(const CudaMatmulShape& s) {
  if (s.K <= 0 || s.N <= 0 || s.act_block <= 0 || s.K % s.act_block != 0 || s.batch < 16 || s.batch % 16 != 0)
    throw std::invalid_argument("cuda_ternary_matmul_mma: bad shape");
  if (s.act_block != s.K && s.act_block % 64 != 0)
    throw std::invalid_argument("cuda_ternary_matmul_mma: activation blocks must cover whole stages");
  if (!s.more_rows.empty()) throw std::invalid_argument("cuda_ternary_matmul_mma: one weight at a time");
  if (s.q8k64) throw std::invalid_argument("cuda_ternary_matmul_mma: Q8_K64 activations take the dp4a kernel");
  constexpr int64_t kRows = 64, kThreads = 128;  // 4 warps of 16 rows
  CudaKernel k;
  k.name = "bitnetc_ternary_mma_" + str(s.K) + "x" + str(s.N) + matmul_suffix(s);
  k.params = matmul_params(s);
  k.grid_x = static_cast<uint32_t>((s.N + kRows - 1) / kRows);
  k.block_x = static_cast<uint32_t>(kThreads);
  k.body = call("bitnetc_ternary_mma<" + str(s.K) + ", " + str(s.N) + ", " + str(s.act_block) + ", " +
                    str(static_cast<int64_t>(s.batch)) + ", " + flag(s.add_residual) + ", " + flag(s.block_scales) + ">",
                matmul_args(k));
  return k;
}

namespace {

// A norm's part of a kernel name, and its template arguments (kind, weighted, eps bits).
std::string norm_name(const CudaNorm& norm) {
  return "_k" + kind(norm.kind) + (norm.has_weight ? "_w" : "") + "_e" + str(std::bit_cast<uint32_t>(norm.eps));
}
std::string norm_template_args(const CudaNorm& norm) {
  return kind(norm.kind) + ", " + flag(norm.has_weight) + ", " + std::to_string(std::bit_cast<uint32_t>(norm.eps)) + "u";
}

}  // namespace

CudaKernel cuda_norm(int64_t n, const CudaNorm& norm) {
  CudaKernel k;
  k.name = "bitnetc_norm_" + str(n) + norm_name(norm);
  k.params = {"const int* __restrict__ state", "const float* __restrict__ x"};
  if (norm.has_weight) k.params.push_back("const float* __restrict__ w");
  k.params.push_back("float* __restrict__ y");
  k.grid_x = 1;
  k.block_x = kRowThreads;
  k.grid_y = rt::CudaGridY::ChunkRows;
  k.body = call("bitnetc_norm<" + str(n) + ", " + norm_template_args(norm) + ">",
                {"state", "x", arg_or_null(k, "w"), "y"});
  return k;
}

CudaKernel cuda_quantize(int64_t n, ir::ActQuant quant, const std::optional<CudaNorm>& norm,
                         std::optional<ir::Activation> gated) {
  if (n <= 0 || (ir::act_quant_is_per_block(quant) && n % 256 != 0) ||
      (quant == ir::ActQuant::PerBlockQ8_0 && n % kBitnetcQ8_0Block != 0))
    throw std::invalid_argument("cuda_quantize: bad shape");
  CudaKernel k;
  k.name = std::string("bitnetc_") + (gated ? "gated_" : "") + (norm ? "norm_" : "") + "quantize_" + str(n) + "_q" +
           kind(quant) + (norm ? norm_name(*norm) : "") + (gated ? "_a" + kind(*gated) : "");
  k.params = {"const int* __restrict__ state"};
  if (gated) {
    k.params.push_back("const float* __restrict__ gate");
    k.params.push_back("const float* __restrict__ up");
  } else {
    k.params.push_back("const float* __restrict__ x");
  }
  if (norm && norm->has_weight) k.params.push_back("const float* __restrict__ w");
  for (const char* p : {"int* __restrict__ q", "int* __restrict__ x_sum", "float* __restrict__ d"})
    k.params.push_back(p);
  k.grid_x = 1;
  k.block_x = kRowThreads;
  k.grid_y = rt::CudaGridY::ChunkRows;
  const std::string norm_args = norm ? norm_template_args(*norm) : "-1, false, 0u";
  k.body = call("bitnetc_quantize<" + str(n) + ", " + kind(quant) + ", " + norm_args + ", " +
                    (gated ? kind(*gated) : "-1") + ">",
                {"state", gated ? "gate" : "x", gated ? "up" : "nullptr", arg_or_null(k, "w"), "q", "x_sum", "d"});
  return k;
}

namespace {

// A dense weight's element type in the kernels' parameters, and the kernel-name suffix
// of its storage.
std::string dense_element(rt::DenseStorage storage) {
  switch (storage) {
    case rt::DenseStorage::F16: return "unsigned short";
    case rt::DenseStorage::Q8: return "signed char";
    default: return "float";
  }
}
std::string dense_suffix(rt::DenseStorage storage) {
  return storage == rt::DenseStorage::F16 ? "_f16" : storage == rt::DenseStorage::Q8 ? "_q8" : "_f32";
}

}  // namespace

namespace {

// The k-quant parts' parameters, as packed (packing.cpp: kquant_sections, k-major).
const std::vector<std::string> kKQuantParams = {
    "const signed char* __restrict__ q", "const signed char* __restrict__ sc", "const signed char* __restrict__ m",
    "const float* __restrict__ d", "const float* __restrict__ dmin"};

}  // namespace

CudaKernel cuda_kquant_matmul(int64_t K, int64_t N, bool logit_rows) {
  if (K <= 0 || K % 256 != 0 || N <= 0) throw std::invalid_argument("cuda_kquant_matmul: bad shape");
  CudaKernel k;
  k.name = "bitnetc_kquant_" + str(K) + "x" + str(N) + (logit_rows ? "_logits" : "");
  k.params = {"const int* __restrict__ state"};
  k.params.insert(k.params.end(), kKQuantParams.begin(), kKQuantParams.end());
  for (const char* p : {"const int* __restrict__ x", "const float* __restrict__ xd", "float* __restrict__ y"})
    k.params.push_back(p);
  k.grid_x = static_cast<uint32_t>((N + kElementThreads - 1) / kElementThreads);
  k.block_x = kElementThreads;
  k.grid_y = logit_rows ? rt::CudaGridY::LogitRows : rt::CudaGridY::ChunkRows;
  k.body = call("bitnetc_kquant_matmul<" + str(K) + ", " + str(N) + ", " + flag(logit_rows) + ">", param_names(k));
  return k;
}

CudaKernel cuda_q8_0_matmul(int64_t K, int64_t N, bool logit_rows) {
  if (K <= 0 || K % kBitnetcQ8_0Block != 0 || N <= 0) throw std::invalid_argument("cuda_q8_0_matmul: bad shape");
  CudaKernel k;
  k.name = "bitnetc_q8_0_" + str(K) + "x" + str(N) + (logit_rows ? "_logits" : "");
  k.params = {"const int* __restrict__ state", "const signed char* __restrict__ q", "const float* __restrict__ d",
              "const int* __restrict__ x", "const float* __restrict__ xd", "float* __restrict__ y"};
  k.grid_x = static_cast<uint32_t>((N + kElementThreads - 1) / kElementThreads);
  k.block_x = kElementThreads;
  k.grid_y = logit_rows ? rt::CudaGridY::LogitRows : rt::CudaGridY::ChunkRows;
  k.body = call("bitnetc_q8_0_matmul<" + str(K) + ", " + str(N) + ", " + flag(logit_rows) + ">", param_names(k));
  return k;
}

CudaKernel cuda_embedding(int64_t rows, int64_t cols, rt::DenseStorage storage, bool k_major) {
  const bool q8 = storage == rt::DenseStorage::Q8;
  if (storage == rt::DenseStorage::Q8_0) {
    if (!k_major) throw std::invalid_argument("cuda_embedding: Q8_0 tables are k-major");
    CudaKernel k;
    k.name = "bitnetc_embedding_" + str(rows) + "x" + str(cols) + "_q8_0";
    k.params = {"const int* __restrict__ state", "const signed char* __restrict__ q", "const float* __restrict__ d",
                "float* __restrict__ out"};
    per_element(k, cols);
    k.body = call("bitnetc_q8_0_embedding<" + str(rows) + ", " + str(cols) + ">", param_names(k));
    return k;
  }
  if (storage == rt::DenseStorage::KQuant) {
    if (!k_major) throw std::invalid_argument("cuda_embedding: k-quant tables are k-major");
    CudaKernel k;
    k.name = "bitnetc_embedding_" + str(rows) + "x" + str(cols) + "_kquant";
    k.params = {"const int* __restrict__ state"};
    k.params.insert(k.params.end(), kKQuantParams.begin(), kKQuantParams.end());
    k.params.push_back("float* __restrict__ out");
    per_element(k, cols);
    k.body = call("bitnetc_kquant_embedding<" + str(rows) + ", " + str(cols) + ">", param_names(k));
    return k;
  }
  CudaKernel k;
  k.name = "bitnetc_embedding_" + str(rows) + "x" + str(cols) + dense_suffix(storage) + (k_major ? "_kmajor" : "");
  k.params = {"const int* __restrict__ state", "const " + dense_element(storage) + "* __restrict__ table"};
  if (q8) k.params.push_back("const float* __restrict__ scales");
  k.params.push_back("float* __restrict__ out");
  per_element(k, cols);
  k.body = call("bitnetc_embedding<" + dense_element(storage) + ", " + str(rows) + ", " + str(cols) + ", " + flag(q8) +
                    ", " + flag(k_major) + ">",
                {"state", "table", arg_or_null(k, "scales"), "out"});
  return k;
}

CudaKernel cuda_dense_matmul(int64_t K, int64_t N, rt::DenseStorage storage, bool logit_rows) {
  const bool q8 = storage == rt::DenseStorage::Q8;
  CudaKernel k;
  k.name = "bitnetc_dense_" + str(K) + "x" + str(N) + dense_suffix(storage) + (logit_rows ? "_logits" : "");
  k.params = {"const int* __restrict__ state", "const " + dense_element(storage) + "* __restrict__ w"};
  if (q8) k.params.push_back("const float* __restrict__ scales");
  k.params.push_back("const float* __restrict__ x");
  k.params.push_back("float* __restrict__ y");
  k.grid_x = static_cast<uint32_t>((N + kElementThreads - 1) / kElementThreads);
  k.block_x = kElementThreads;
  k.grid_y = logit_rows ? rt::CudaGridY::LogitRows : rt::CudaGridY::ChunkRows;
  k.body = call("bitnetc_dense_matmul<" + dense_element(storage) + ", " + str(K) + ", " + str(N) + ", " + flag(q8) +
                    ", " + flag(logit_rows) + ">",
                {"state", "w", arg_or_null(k, "scales"), "x", "y"});
  return k;
}

CudaKernel cuda_rope(int64_t n, int head_dim, ir::RopeStyle style) {
  CudaKernel k;
  k.name = "bitnetc_rope_" + str(n) + "_d" + str(static_cast<int64_t>(head_dim)) + "_s" + kind(style);
  k.params = {"const int* __restrict__ state", "const float* __restrict__ cos", "const float* __restrict__ sin",
              "const float* __restrict__ x", "float* __restrict__ y"};
  per_element(k, n / head_dim);
  k.body = call("bitnetc_rope<" + str(n) + ", " + str(static_cast<int64_t>(head_dim)) + ", " + kind(style) + ">",
                param_names(k));
  return k;
}

CudaKernel cuda_rope_kv_store(const CudaRopeKvShape& s) {
  if (s.head_dim <= 0 || s.q_n % s.head_dim != 0 || s.kv_dim % s.head_dim != 0)
    throw std::invalid_argument("cuda_rope_kv_store: bad shape");
  const int64_t q_heads = s.q_n / s.head_dim, k_heads = s.kv_dim / s.head_dim;
  CudaKernel k;
  k.name = "bitnetc_rope_kv_store_" + str(s.q_n) + "_" + str(static_cast<int64_t>(s.kv_dim)) + "_d" +
           str(static_cast<int64_t>(s.head_dim)) + "_s" + kind(s.style);
  k.params = {"const int* __restrict__ state",       "const float* __restrict__ cos_q",
              "const float* __restrict__ sin_q",     "const float* __restrict__ cos_k",
              "const float* __restrict__ sin_k",     "const float* __restrict__ q",
              "const float* __restrict__ k",         "const float* __restrict__ v",
              "float* __restrict__ q_out",           "float* const* __restrict__ k_caches",
              "float* const* __restrict__ v_caches"};
  per_element(k, std::max<int64_t>(q_heads + k_heads, s.kv_dim));
  k.body = call("bitnetc_rope_kv_store<" + str(s.q_n) + ", " + str(static_cast<int64_t>(s.kv_dim)) + ", " +
                    str(static_cast<int64_t>(s.head_dim)) + ", " + kind(s.style) + ">",
                param_names(k));
  return k;
}

CudaKernel cuda_kv_store(int kv_dim) {
  CudaKernel k;
  k.name = "bitnetc_kv_store_" + str(static_cast<int64_t>(kv_dim));
  k.params = {"const int* __restrict__ state", "const float* __restrict__ k", "const float* __restrict__ v",
              "float* const* __restrict__ k_caches", "float* const* __restrict__ v_caches"};
  per_element(k, kv_dim);
  k.body = call("bitnetc_kv_store<" + str(static_cast<int64_t>(kv_dim)) + ">", param_names(k));
  return k;
}

CudaKernel cuda_attention(const CudaAttentionShape& s) {
  if (s.n_head <= 0 || s.n_head_kv <= 0 || s.n_head % s.n_head_kv != 0 || s.head_dim <= 0)
    throw std::invalid_argument("cuda_attention: bad shape");
  CudaKernel k;
  k.name = "bitnetc_attention_h" + str(static_cast<int64_t>(s.n_head)) + "_kv" +
           str(static_cast<int64_t>(s.n_head_kv)) + "_d" + str(static_cast<int64_t>(s.head_dim)) + "_s" +
           kind(s.score_scale) + kind(s.softmax_sum);
  k.params = {"const int* __restrict__ state", "const float* __restrict__ q", "float* const* __restrict__ k_caches",
              "float* const* __restrict__ v_caches", "float* __restrict__ scores", "float* __restrict__ out"};
  k.grid_x = static_cast<uint32_t>(s.n_head);
  k.block_x = 128;  // bitnetc_attention's NT
  k.grid_y = rt::CudaGridY::ChunkRows;
  k.body = call("bitnetc_attention<" + str(static_cast<int64_t>(s.n_head)) + ", " +
                    str(static_cast<int64_t>(s.n_head_kv)) + ", " + str(static_cast<int64_t>(s.head_dim)) + ", " +
                    kind(s.score_scale) + ", " + kind(s.softmax_sum) + ">",
                param_names(k));
  return k;
}

CudaKernel cuda_gated(int64_t n, ir::Activation activation) {
  CudaKernel k;
  k.name = "bitnetc_gated_" + str(n) + "_a" + kind(activation);
  k.params = {"const int* __restrict__ state", "const float* __restrict__ gate", "const float* __restrict__ up",
              "float* __restrict__ out"};
  per_element(k, n);
  k.body = call("bitnetc_gated<" + str(n) + ", " + kind(activation) + ">", param_names(k));
  return k;
}

CudaKernel cuda_add(int64_t n) {
  CudaKernel k;
  k.name = "bitnetc_add_" + str(n);
  k.params = {"const int* __restrict__ state", "const float* __restrict__ a", "const float* __restrict__ b",
              "float* __restrict__ out"};
  per_element(k, n);
  k.body = call("bitnetc_add<" + str(n) + ">", param_names(k));
  return k;
}

CudaKernel cuda_argmax_partial(int64_t n, int parts) {
  CudaKernel k;
  k.name = "bitnetc_argmax_partial_" + str(n) + "_p" + str(static_cast<int64_t>(parts));
  k.params = {"const int* __restrict__ state", "const float* __restrict__ logits", "float* __restrict__ partial"};
  per_element(k, parts);
  k.grid_y = rt::CudaGridY::One;  // the head's first logit row
  k.body = call("bitnetc_argmax_partial<" + str(n) + ", " + str(static_cast<int64_t>(parts)) + ">", param_names(k));
  return k;
}

CudaKernel cuda_argmax_final(int parts) {
  CudaKernel k;
  k.name = "bitnetc_argmax_final_p" + str(static_cast<int64_t>(parts));
  k.params = {"const int* __restrict__ state", "const float* __restrict__ partial", "int* __restrict__ result"};
  k.grid_x = k.block_x = 1;
  k.body = call("bitnetc_argmax_final<" + str(static_cast<int64_t>(parts)) + ">", param_names(k));
  return k;
}

CudaKernel cuda_repeat_penalty(int64_t n) {
  CudaKernel k;
  k.name = "bitnetc_repeat_penalty_" + str(n);
  k.params = {"const int* __restrict__ state", "float* __restrict__ logits", "const int* __restrict__ tokens"};
  k.grid_x = 1;
  k.block_x = kRowThreads;
  k.body = call("bitnetc_repeat_penalty<" + str(n) + ">", param_names(k));
  return k;
}

CudaKernel cuda_topk_partial(int64_t n, int parts, int k_max) {
  CudaKernel k;
  k.name = "bitnetc_topk_partial_" + str(n) + "_p" + str(static_cast<int64_t>(parts)) + "_k" +
           str(static_cast<int64_t>(k_max));
  k.params = {"const int* __restrict__ state", "const float* __restrict__ logits", "float* __restrict__ lists"};
  per_element(k, parts);
  k.grid_y = rt::CudaGridY::One;
  k.body = call("bitnetc_topk_partial<" + str(n) + ", " + str(static_cast<int64_t>(parts)) + ", " +
                    str(static_cast<int64_t>(k_max)) + ">",
                param_names(k));
  return k;
}

CudaKernel cuda_topk_merge(int lists, int lists_per_thread, int k_max) {
  CudaKernel k;
  const int threads = lists / lists_per_thread;
  k.name = "bitnetc_topk_merge_l" + str(static_cast<int64_t>(lists)) + "_" +
           str(static_cast<int64_t>(lists_per_thread)) + "_k" + str(static_cast<int64_t>(k_max));
  k.params = {"const int* __restrict__ state", "const float* __restrict__ in", "float* __restrict__ out"};
  per_element(k, threads);
  k.grid_y = rt::CudaGridY::One;
  k.body = call("bitnetc_topk_merge<" + str(static_cast<int64_t>(lists)) + ", " +
                    str(static_cast<int64_t>(lists_per_thread)) + ", " + str(static_cast<int64_t>(k_max)) + ">",
                param_names(k));
  return k;
}

CudaKernel cuda_read_bandwidth() {
  CudaKernel k;
  k.name = rt::kCudaReadBandwidthKernel;
  k.params = {"const uint4* __restrict__ p", "unsigned long long n", "unsigned* __restrict__ sink"};
  k.grid_x = 1024;
  k.block_x = 256;
  k.body = call("bitnetc_read_words", param_names(k));
  return k;
}

bool have_nvrtc() {
#ifdef BITNETC_HAVE_NVRTC
  return true;
#else
  return false;
#endif
}

#ifdef BITNETC_HAVE_NVRTC
namespace {

// NVRTC is loaded when a CUDA target is compiled, not linked: bitnetc itself runs on
// machines without the CUDA toolkit.
struct Nvrtc {
  decltype(&nvrtcCreateProgram) create;
  decltype(&nvrtcCompileProgram) compile;
  decltype(&nvrtcGetProgramLogSize) log_size;
  decltype(&nvrtcGetProgramLog) log;
  decltype(&nvrtcGetCUBINSize) cubin_size;
  decltype(&nvrtcGetCUBIN) cubin;
  decltype(&nvrtcGetPTXSize) ptx_size;
  decltype(&nvrtcGetPTX) ptx;
  decltype(&nvrtcDestroyProgram) destroy;
  decltype(&nvrtcGetErrorString) error_string;
};

const Nvrtc& nvrtc() {
  static const Nvrtc api = [] {
    void* lib = ::dlopen(BITNETC_NVRTC_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (!lib) lib = ::dlopen("libnvrtc.so", RTLD_NOW | RTLD_LOCAL);
    if (!lib)
      throw std::runtime_error(std::string("cannot load NVRTC (" BITNETC_NVRTC_LIBRARY "): ") + ::dlerror() +
                               "; CUDA targets need the CUDA toolkit's libnvrtc");
    auto sym = [&](const char* name) {
      void* f = ::dlsym(lib, name);
      if (!f) throw std::runtime_error(std::string("NVRTC lacks ") + name);
      return f;
    };
    Nvrtc a;
    a.create = reinterpret_cast<decltype(a.create)>(sym("nvrtcCreateProgram"));
    a.compile = reinterpret_cast<decltype(a.compile)>(sym("nvrtcCompileProgram"));
    a.log_size = reinterpret_cast<decltype(a.log_size)>(sym("nvrtcGetProgramLogSize"));
    a.log = reinterpret_cast<decltype(a.log)>(sym("nvrtcGetProgramLog"));
    a.cubin_size = reinterpret_cast<decltype(a.cubin_size)>(sym("nvrtcGetCUBINSize"));
    a.cubin = reinterpret_cast<decltype(a.cubin)>(sym("nvrtcGetCUBIN"));
    a.ptx_size = reinterpret_cast<decltype(a.ptx_size)>(sym("nvrtcGetPTXSize"));
    a.ptx = reinterpret_cast<decltype(a.ptx)>(sym("nvrtcGetPTX"));
    a.destroy = reinterpret_cast<decltype(a.destroy)>(sym("nvrtcDestroyProgram"));
    a.error_string = reinterpret_cast<decltype(a.error_string)>(sym("nvrtcGetErrorString"));
    return a;
  }();
  return api;
}

void check(nvrtcResult r, const char* what) {
  if (r != NVRTC_SUCCESS) throw std::runtime_error(std::string("NVRTC: ") + what + ": " + nvrtc().error_string(r));
}

// One NVRTC compile of `source` with --gpu-architecture=`arch`; returns the program.
nvrtcProgram compile_program(const std::string& source, const std::string& arch) {
  const Nvrtc& api = nvrtc();
  nvrtcProgram prog;
  check(api.create(&prog, source.c_str(), "bitnetc_kernels.cu", 0, nullptr, nullptr), "create");
  const std::string arch_opt = "--gpu-architecture=" + arch;
  // -fmad=false: products and sums round as the interpreter's do. The toolkit's headers
  // give mma.h.
  const char* opts[] = {arch_opt.c_str(), "-fmad=false", "--std=c++17", "-I" BITNETC_NVRTC_INCLUDE_DIR};
  const nvrtcResult r = api.compile(prog, 4, opts);
  if (r != NVRTC_SUCCESS) {
    size_t n = 0;
    api.log_size(prog, &n);
    std::string log(n, '\0');
    api.log(prog, log.data());
    api.destroy(&prog);
    throw std::runtime_error("NVRTC could not compile the generated kernels for " + arch + ":\n" + log);
  }
  return prog;
}

}  // namespace
#endif

CudaImage compile_cuda(const std::string& source, const TargetInfo& target) {
  if (target.backend != Backend::Cuda) throw std::invalid_argument(target.name + " is not a CUDA target");
#ifdef BITNETC_HAVE_NVRTC
  const std::string& sm = target.cuda_sm;  // "sm_80"
  CudaImage image;
  const Nvrtc& api = nvrtc();
  nvrtcProgram prog = compile_program(source, sm);
  size_t n = 0;
  check(api.cubin_size(prog, &n), "cubin size");
  image.cubin.resize(n);
  check(api.cubin(prog, reinterpret_cast<char*>(image.cubin.data())), "cubin");
  api.destroy(&prog);
  // PTX of the matching virtual architecture: the driver JIT-compiles it on GPUs newer
  // than the cubin's.
  prog = compile_program(source, "compute_" + sm.substr(3));
  check(api.ptx_size(prog, &n), "ptx size");
  image.ptx.resize(n);
  check(api.ptx(prog, image.ptx.data()), "ptx");
  api.destroy(&prog);
  if (!image.ptx.empty() && image.ptx.back() == '\0') image.ptx.pop_back();
  return image;
#else
  (void)source;
  throw std::runtime_error("target " + target.name +
                           ": this bitnetc was built without CUDA's NVRTC (install the CUDA toolkit under "
                           "/usr/local/cuda, then configure and build again)");
#endif
}

}  // namespace bitnetc::codegen
