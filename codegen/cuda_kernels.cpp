#include "cuda_kernels.h"

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

const char* const kNumericsSource =
#include "numerics_text.inc"
    ;

// A float as an exact C++ literal (hexadecimal).
std::string float_literal(float f) {
  char b[64];
  std::snprintf(b, sizeof b, "%af", static_cast<double>(f));
  return b;
}

std::string str(int64_t v) { return std::to_string(v); }

// "const float* __restrict__ x" -> "const float*"
std::string param_type(const std::string& param) {
  const size_t name = param.find_last_of(" *");
  std::string type = param.substr(0, name + 1);
  if (const size_t r = type.find(" __restrict__"); r != std::string::npos) type.erase(r, 13);
  while (!type.empty() && type.back() == ' ') type.pop_back();
  return type;
}

constexpr uint32_t kElementThreads = 128;  // threads per block of the one-thread-per-element kernels
constexpr uint32_t kTokenThreads = 256;    // threads per block of the one-block-per-token kernels

// The index of this thread's element in `var`, returning past `limit`; the token from y.
// Sets the kernel's launch: enough blocks for `limit` elements, per token.
std::string per_element(CudaKernel& k, const std::string& var, int64_t limit) {
  k.grid_x = static_cast<uint32_t>((limit + kElementThreads - 1) / kElementThreads);
  k.block_x = kElementThreads;
  k.per_token = true;
  return "  const int " + var + " = blockIdx.x * blockDim.x + threadIdx.x;\n  if (" + var + " >= " + str(limit) +
         ") return;\n  const int m = blockIdx.y;\n";
}

// The gated activation of one element, activate(gate) * up, as code (ir::Activation).
std::string gated_value(int activation, const std::string& gate, const std::string& up) {
  return "__fmul_rn(bitnetc_activate(" + str(activation) + ", " + gate + "), " + up + ")";
}

// A tree reduction of red[0..threads) into red[0] with `combine(a_index, b_index)`;
// every thread of the block must reach it.
std::string tree_reduce(uint32_t threads, const std::string& combine) {
  return "  __syncthreads();\n  for (int o = " + str(threads / 2) +
         "; o > 0; o >>= 1) {\n    if (tid < o) { const int a = tid, b = tid + o; " + combine +
         " }\n    __syncthreads();\n  }\n";
}

}  // namespace

std::string cuda_module_preamble() {
  // The warp matrix operations (the toolkit's header; the CPU emulation of the tests has
  // its own).
  return std::string("#ifndef BITNETC_CUDA_EMULATION\n#include <mma.h>\n#endif\n") + kNumericsSource;
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
// further segment's weight, scale and output.
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

// The factor block `b` of row `n` of the weight `bs` / `scale` names multiplies
// activation block b's dot by: the activations' factor times the weight's scale.
std::string block_factor(const CudaMatmulShape& s, const std::string& d, const std::string& scale, const std::string& bs,
                         const std::string& b) {
  return "__fmul_rn(" + d + ", " + (s.block_scales ? bs + "[" + b + " * N + n]" : scale) + ")";
}

// The store of a matmul output element `out[at]` from its value `v` (a residual added first).
std::string matmul_store(const CudaMatmulShape& s, const std::string& out, const std::string& at, const std::string& v) {
  return s.add_residual ? out + "[" + at + "] = __fadd_rn(residual[" + at + "], " + v + ");"
                        : out + "[" + at + "] = " + v + ";";
}

}  // namespace

CudaKernel cuda_ternary_matmul(const CudaMatmulShape& s) {
  if (s.K <= 0 || s.N <= 0 || s.act_block <= 0 || s.K % s.act_block != 0 || s.batch < 1)
    throw std::invalid_argument("cuda_ternary_matmul: bad shape");
  if (s.act_block != s.K && s.act_block % 16 != 0)
    throw std::invalid_argument("cuda_ternary_matmul: activation blocks must cover whole 16-weight words");
  if (s.add_residual && !s.more_rows.empty())
    throw std::invalid_argument("cuda_ternary_matmul: a residual with several weights");
  const int64_t Kp = cuda_padded_k(s.K);
  const int64_t blocks = s.K / s.act_block;
  // Words per activation block (the last block of a per-token row takes the padding,
  // whose weights are zero).
  const int64_t words_per_block = s.act_block == s.K ? Kp / 16 : s.act_block / 16;
  // Slices of K per block (the threads of one row) and rows per block. Per-token
  // activations: 32 slices of 8 rows (a warp's four slices each read a whole 32-byte
  // sector), so that a 2560-row decode matmul is 320 blocks and every SM of a large GPU
  // keeps loads in flight (32 rows made it 80 blocks for H100's 132 SMs). Per-block
  // activations give each slice whole blocks: 8 slices of 32 rows (a warp's coalesced
  // 128 bytes). Fewer rows where the shared partial dots would pass 32 KB.
  const int64_t slices = blocks == 1 ? 32 : 8;
  const int64_t parts = std::max<int64_t>(slices, blocks);
  int64_t rows = blocks == 1 ? 8 : 32;
  while (rows > 1 && parts * rows * s.batch * 4 > 32 * 1024) rows /= 2;
  CudaKernel k;
  k.name = "bitnetc_ternary_" + str(s.K) + "x" + str(s.N);
  for (int64_t n : s.more_rows) k.name += "_" + str(n);
  k.name +=
      "_b" + str(s.act_block) + "_m" + str(s.batch) + (s.add_residual ? "_res" : "") + (s.block_scales ? "_bs" : "");
  k.params = matmul_params(s);
  k.block_x = static_cast<uint32_t>(rows * slices);
  k.per_token = false;
  k.body = "  const int KW = " + str(Kp / 4) + ", BLOCKS = " + str(blocks) +
           ", WORDS_PER_BLOCK = " + str(words_per_block) + ", MB = " + str(s.batch) + ", ROWS = " + str(rows) +
           ", SLICES = " + str(slices) + ";\n";
  // The block's weight (segment): its rows, words, scale and output.
  k.body += "  int blk = blockIdx.x, N = " + str(s.N) +
            ";\n  const unsigned* w = packed;\n  float scale = w_scale;\n  float* out = y;\n" +
            (s.block_scales ? "  const float* bs = w_block_scales;\n" : "");
  int64_t first_block = (s.N + rows - 1) / rows;
  for (size_t i = 0; i < s.more_rows.size(); ++i) {
    const std::string n = std::to_string(i + 1);
    k.body += "  if (blockIdx.x >= " + str(first_block) + ") { blk = blockIdx.x - " + str(first_block) +
              "; N = " + str(s.more_rows[i]) + "; w = packed_" + n + "; scale = w_scale_" + n + "; out = y_" + n +
              (s.block_scales ? "; bs = w_block_scales_" + n : std::string()) + "; }\n";
    first_block += (s.more_rows[i] + rows - 1) / rows;
  }
  k.grid_x = static_cast<uint32_t>(first_block);
  k.body += "  __shared__ int part[" + str(parts) + "][" + str(rows) + "][" + str(s.batch) + "];\n";
  k.body += R"(  const int r = threadIdx.x % ROWS, slice = threadIdx.x / ROWS;
  const int n = blk * ROWS + r;
  const int count = state[)" +
            str(rt::CudaState::kCount) + R"(];
  // The integer dot of words [c0, c1) of row n with every token's codes.
  auto dots = [&](int c0, int c1, int* dot) {
#pragma unroll
    for (int m = 0; m < MB; ++m) dot[m] = 0;
    if (n >= N) return;
    for (int c = c0; c < c1; ++c) {
      const unsigned word = w[c * N + n];  // read once for every token of the chunk
      const int w0 = (int)(word & 0x03030303u), w1 = (int)((word >> 2) & 0x03030303u);
      const int w2 = (int)((word >> 4) & 0x03030303u), w3 = (int)((word >> 6) & 0x03030303u);
#pragma unroll
      for (int m = 0; m < MB; ++m) {
        if (m < count) {
          const int* xm = x + m * KW + 4 * c;
          dot[m] = __dp4a(w3, xm[3], __dp4a(w2, xm[2], __dp4a(w1, xm[1], __dp4a(w0, xm[0], dot[m]))));
        }
      }
    }
  };
  int dot[MB];
)";
  if (blocks == 1) {  // one activation block: the slices split its words; partial dots add exactly
    k.body += R"(  const int words = WORDS_PER_BLOCK;
  dots(slice * words / SLICES, (slice + 1) * words / SLICES, dot);
#pragma unroll
  for (int m = 0; m < MB; ++m) part[slice][r][m] = dot[m];
  __syncthreads();
  if (slice != 0 || n >= N) return;
  for (int m = 0; m < count; ++m) {
    int total = 0;
    for (int t = 0; t < SLICES; ++t) total += part[t][r][m];
    // The interpreter's rounding: no fused multiply-add.
    const float v = __fadd_rn(0.0f, __fmul_rn((float)(total - x_sum[m]), )" +
              block_factor(s, "d_act[m]", "scale", "bs", "0") + R"());
    )" + matmul_store(s, "out", "m * N + n", "v") +
              R"(
  }
)";
  } else {  // per-block activations: each slice takes whole blocks; the float sum runs in block order
    k.body += R"(  for (int b = slice * BLOCKS / SLICES; b < (slice + 1) * BLOCKS / SLICES; ++b) {
    dots(b * WORDS_PER_BLOCK, (b + 1) * WORDS_PER_BLOCK, dot);
#pragma unroll
    for (int m = 0; m < MB; ++m) part[b][r][m] = dot[m];
  }
  __syncthreads();
  if (slice != 0 || n >= N) return;
  for (int m = 0; m < count; ++m) {
    float acc = 0.0f;
    for (int b = 0; b < BLOCKS; ++b)
      acc = __fadd_rn(acc, __fmul_rn((float)(part[b][r][m] - x_sum[m * BLOCKS + b]),
                                     )" +
              block_factor(s, "d_act[m * BLOCKS + b]", "scale", "bs", "b") + R"());
    )" + matmul_store(s, "out", "m * N + n", "acc") +
              R"(
  }
)";
  }
  return k;
}

namespace {

// The body's lines that leave the token's rms_norm scale in `const float r` (every
// thread of the block reaches them; N, NT, tid and input(i), element i of the token's
// row, are the kernel's).
std::string norm_scale_code(const CudaNorm& norm) {
  constexpr int kRmsF64Sum = 1;  // ir::NormKind::RmsF64Sum
  std::string s;
  if (norm.kind == kRmsF64Sum) {  // in double, the sum does not depend on the order: reduce in parallel
    s = "  __shared__ double norm_red[" + str(kTokenThreads) + "];\n";
    s += "  double ss = 0;\n  for (int i = tid; i < N; i += NT) {\n    const float v = input(i);\n"
         "    ss += (double)(v * v);\n  }\n";
    s += "  norm_red[tid] = ss;\n" + tree_reduce(kTokenThreads, "norm_red[a] += norm_red[b];");
  } else {  // a float sum rounds as it goes: one thread adds in the interpreter's order
    s = "  __shared__ float norm_red[1];\n";
    s += R"(  if (tid == 0) {
    float ss = 0;
#pragma unroll 8
    for (int i = 0; i < N; ++i) {
      const float v = input(i);
      ss += v * v;
    }
    norm_red[0] = ss;
  }
  __syncthreads();
)";
  }
  return s + "  const float r = bitnetc_rms_scale(" + str(norm.kind) + ", (double)norm_red[0], N, " +
         float_literal(norm.eps) + ");\n";
}

// Element i of the token's normalized row.
std::string norm_apply(const CudaNorm& norm, const std::string& i) {
  return "bitnetc_rms_apply(" + str(norm.kind) + ", input(" + i + "), " + (norm.has_weight ? "w" : "0") + ", " + i +
         ", r)";
}

std::string norm_name(const CudaNorm& norm) {
  return "_k" + str(norm.kind) + (norm.has_weight ? "_w" : "") + "_e" + str(std::bit_cast<uint32_t>(norm.eps));
}

}  // namespace

CudaKernel cuda_ternary_matmul_mma(const CudaMatmulShape& s) {
  if (s.K <= 0 || s.N <= 0 || s.act_block <= 0 || s.K % s.act_block != 0 || s.batch < 16 || s.batch % 16 != 0)
    throw std::invalid_argument("cuda_ternary_matmul_mma: bad shape");
  if (s.act_block != s.K && s.act_block % 64 != 0)
    throw std::invalid_argument("cuda_ternary_matmul_mma: activation blocks must cover whole stages");
  const int64_t Kp = cuda_padded_k(s.K);
  const int64_t blocks = s.K / s.act_block;
  const int64_t words_per_block = s.act_block == s.K ? Kp / 16 : s.act_block / 16;
  constexpr int64_t kRows = 64, kThreads = 128;  // 4 warps of 16 rows
  if (!s.more_rows.empty()) throw std::invalid_argument("cuda_ternary_matmul_mma: one weight at a time");
  CudaKernel k;
  k.name = "bitnetc_ternary_mma_" + str(s.K) + "x" + str(s.N) + "_b" + str(s.act_block) + "_m" + str(s.batch) +
           (s.add_residual ? "_res" : "") + (s.block_scales ? "_bs" : "");
  k.params = matmul_params(s);
  k.grid_x = static_cast<uint32_t>((s.N + kRows - 1) / kRows);
  k.block_x = static_cast<uint32_t>(kThreads);
  k.per_token = false;
  k.body = "  const int N = " + str(s.N) + ", KW = " + str(Kp / 4) + ", BLOCKS = " + str(blocks) +
           ", WORDS_PER_BLOCK = " + str(words_per_block) + ", MB = " + str(s.batch) + ", TILES = " + str(s.batch / 16) +
           ", ROWS = " + str(kRows) + ", NT = " + str(kThreads) + ";\n";
  // A stage is 4 words (64 weights) of every row. Tiles in shared memory are 16 x 16
  // int8 with ldm 16 (256 bytes each, so every tile pointer is 256-bit aligned as wmma
  // needs): a_tile[j][r] is word j of row r as 16 codes in k order; b_tile[j][m] is the
  // same 16 activations of token m. c_tile holds a block's integer dots, token-major
  // (read with the rows fastest: coalesced stores of y); f_acc the float sums across
  // activation blocks.
  k.body += "  __shared__ __align__(32) int a_tile[4][ROWS][4];\n  __shared__ __align__(32) int b_tile[4][MB][4];\n";
  k.body += "  __shared__ __align__(32) int c_tile[MB][ROWS];\n";
  if (blocks > 1) k.body += "  __shared__ float f_acc[MB][ROWS];\n";
  k.body += R"(  using namespace nvcuda;
  const int tid = threadIdx.x, warp = tid / 32;
  const int n0 = blockIdx.x * ROWS;
  const int count = state[)" +
            str(rt::CudaState::kCount) + R"(];
  const int tiles = (count + 15) / 16;  // the token tiles that hold tokens (the same in every warp)
  wmma::fragment<wmma::accumulator, 16, 16, 16, int> acc[TILES];
  for (int b = 0; b < BLOCKS; ++b) {
#pragma unroll
    for (int t = 0; t < TILES; ++t) wmma::fill_fragment(acc[t], 0);
    const int c_end = b * WORDS_PER_BLOCK + WORDS_PER_BLOCK;
    for (int c0 = b * WORDS_PER_BLOCK; c0 < c_end; c0 += 4) {
      __syncthreads();  // the previous stage's tiles (and the previous block's c_tile) are read
      // Weights: consecutive threads take consecutive rows of one word (coalesced). Codes
      // are w + 1; words past the block or rows past N are zero codes (never used: no
      // activation there, or no output).
      for (int e = tid; e < 4 * ROWS; e += NT) {
        const int j = e / ROWS, r = e % ROWS, c = c0 + j, n = n0 + r;
        const unsigned word = c < c_end && n < N ? packed[c * N + n] : 0u;
        int* a = a_tile[j][r];
        a[0] = (int)(word & 0x03030303u);
        a[1] = (int)((word >> 2) & 0x03030303u);
        a[2] = (int)((word >> 4) & 0x03030303u);
        a[3] = (int)((word >> 6) & 0x03030303u);
      }
      // Activations: 16 bytes of one token per thread, zero past the chunk's tokens or K.
      for (int e = tid; e < 4 * MB; e += NT) {
        const int j = e % 4, m = e / 4, c = c0 + j;
        int* bt = b_tile[j][m];
        const bool in = m < count && c < c_end;
        for (int q = 0; q < 4; ++q) bt[q] = in ? x[m * KW + 4 * c + q] : 0;
      }
      __syncthreads();
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, signed char, wmma::row_major> a;
        wmma::load_matrix_sync(a, (const signed char*)a_tile[j][warp * 16], 16);
#pragma unroll
        for (int t = 0; t < TILES; ++t) {
          if (t >= tiles) break;
          // Column m of B is token m's 16 activations: col_major with ldm 16.
          wmma::fragment<wmma::matrix_b, 16, 16, 16, signed char, wmma::col_major> bf;
          wmma::load_matrix_sync(bf, (const signed char*)b_tile[j][t * 16], 16);
          wmma::mma_sync(acc[t], a, bf, acc[t]);
        }
      }
    }
    // Element (row, token) of a tile goes to c_tile[token][row]: column-major, ldm ROWS.
#pragma unroll
    for (int t = 0; t < TILES; ++t) {
      if (t >= tiles) break;
      wmma::store_matrix_sync(&c_tile[t * 16][warp * 16], acc[t], ROWS, wmma::mem_col_major);
    }
    __syncthreads();
    // The float epilogue in the interpreter's order, rows fastest (coalesced stores).
    for (int e = tid; e < count * ROWS; e += NT) {
      const int m = e / ROWS, r = e % ROWS, n = n0 + r;
      if (n >= N) continue;
)";
  if (blocks == 1) {
    k.body += R"(      const float v = __fadd_rn(0.0f, __fmul_rn((float)(c_tile[m][r] - x_sum[m]), )" +
              block_factor(s, "d_act[m]", "w_scale", "w_block_scales", "0") + R"());
      )" + matmul_store(s, "y", "m * N + n", "v") +
              R"(
    }
  }
)";
  } else {
    k.body += R"(      const float term = __fmul_rn((float)(c_tile[m][r] - x_sum[m * BLOCKS + b]), )" +
              block_factor(s, "d_act[m * BLOCKS + b]", "w_scale", "w_block_scales", "b") + R"();
      const float sum = __fadd_rn(b == 0 ? 0.0f : f_acc[m][r], term);  // only this thread touches (m, r)
      if (b + 1 < BLOCKS) f_acc[m][r] = sum;
      else )" +
              matmul_store(s, "y", "m * N + n", "sum") + R"(
    }
  }
)";
  }
  return k;
}

CudaKernel cuda_norm(int64_t n, const CudaNorm& norm) {
  CudaKernel k;
  k.name = "bitnetc_norm_" + str(n) + norm_name(norm);
  k.params = {"const int* __restrict__ state", "const float* __restrict__ x"};
  if (norm.has_weight) k.params.push_back("const float* __restrict__ w");
  k.params.push_back("float* __restrict__ y");
  k.grid_x = 1;
  k.block_x = kTokenThreads;
  k.per_token = true;
  k.body = "  const int N = " + str(n) + ", NT = " + str(kTokenThreads) + ";\n";
  k.body += "  const int tid = threadIdx.x, m = blockIdx.y;\n  const float* xm = x + m * N;\n";
  k.body += "  auto input = [&](int i) { return xm[i]; };\n";
  k.body += norm_scale_code(norm);
  k.body += "  for (int i = tid; i < N; i += NT) y[m * N + i] = " + norm_apply(norm, "i") + ";\n";
  return k;
}

CudaKernel cuda_quantize(int64_t n, int act_quant, const std::optional<CudaNorm>& norm, int gated_activation) {
  constexpr int kPerBlockQ8K = 3;  // ir::ActQuant::PerBlockQ8K
  if (n <= 0 || (act_quant == kPerBlockQ8K && n % 256 != 0)) throw std::invalid_argument("cuda_quantize: bad shape");
  const int64_t blocks = act_quant == kPerBlockQ8K ? n / 256 : 1;
  const bool gated = gated_activation >= 0;
  CudaKernel k;
  k.name = std::string("bitnetc_") + (gated ? "gated_" : "") + (norm ? "norm_" : "") + "quantize_" + str(n) + "_q" +
           str(act_quant) + (norm ? norm_name(*norm) : "") + (gated ? "_a" + str(gated_activation) : "");
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
  k.block_x = kTokenThreads;
  k.per_token = true;
  k.body = "  const int N = " + str(n) + ", KP = " + str(cuda_padded_k(n)) + ", BLOCKS = " + str(blocks) +
           ", BLOCK = " + str(n / blocks) + ", NT = " + str(kTokenThreads) + ", KIND = " + str(act_quant) + ";\n";
  k.body += "  const int tid = threadIdx.x, m = blockIdx.y;\n";
  // Element i of the token's input: x, or the gated activation of gate and up (as
  // cuda_gated computes it), recomputed where it is read.
  if (gated)
    k.body +=
        "  const float* gm = gate + m * N;\n  const float* um = up + m * N;\n  auto input = [&](int i) { return " +
        gated_value(gated_activation, "gm[i]", "um[i]") + "; };\n";
  else
    k.body += "  const float* xm = x + m * N;\n  auto input = [&](int i) { return xm[i]; };\n";
  if (norm) k.body += norm_scale_code(*norm);
  // The value quantized: element i of the input (normalized, when a norm is absorbed).
  k.body +=
      "  auto value = [&](int i) { return " + (norm ? norm_apply(*norm, "i") : std::string("input(i)")) + "; };\n";
  k.body += "  __shared__ float amax[" + str(kTokenThreads) + "], first[" + str(kTokenThreads) + "];\n";
  k.body += "  __shared__ int at[" + str(kTokenThreads) + "], sum[" + str(kTokenThreads) + "];\n";
  k.body += R"(  signed char* qm = (signed char*)q + m * KP;
  for (int b = 0; b < BLOCKS; ++b) {
    // The largest |x| and the first value that has it (as the interpreter's scan finds).
    float a = 0, f = 0;
    int i_a = BLOCK;
    for (int i = tid; i < BLOCK; i += NT) {
      const float xi = value(b * BLOCK + i), ax = fabsf(xi);
      if (ax > a) { a = ax; f = xi; i_a = i; }
    }
    amax[tid] = a; first[tid] = f; at[tid] = i_a;
)";
  k.body += tree_reduce(kTokenThreads,
                        "if (amax[b] > amax[a] || (amax[b] == amax[a] && at[b] < at[a])) { amax[a] = amax[b]; "
                        "first[a] = first[b]; at[a] = at[b]; }");
  k.body += R"(    const BitnetcQuantScale scale = bitnetc_quant_scale(KIND, amax[0], first[0]);
    int s = 0;
    for (int i = tid; i < BLOCK; i += NT) {
      const signed char c = bitnetc_quant_code(KIND, value(b * BLOCK + i), scale);
      qm[b * BLOCK + i] = c;
      s += c;
    }
    sum[tid] = s;
)";
  k.body += tree_reduce(kTokenThreads, "sum[a] += sum[b];");
  k.body += R"(    if (tid == 0) {
      x_sum[m * BLOCKS + b] = sum[0];
      d[m * BLOCKS + b] = scale.d;
    }
    __syncthreads();  // the shared arrays are reused by the next block
  }
  for (int i = N + tid; i < KP; i += NT) qm[i] = 0;
)";
  return k;
}

namespace {

// A dense weight's element type in the kernels' parameters, its value as a float (an
// int8 code before its row's scale), and the kernel-name suffix of its storage.
std::string dense_param(rt::DenseStorage storage, const std::string& name) {
  switch (storage) {
    case rt::DenseStorage::F16: return "const unsigned short* __restrict__ " + name;
    case rt::DenseStorage::Q8: return "const signed char* __restrict__ " + name;
    default: return "const float* __restrict__ " + name;
  }
}
std::string dense_value(rt::DenseStorage storage, const std::string& element) {
  switch (storage) {
    case rt::DenseStorage::F16: return "bitnetc_half_to_float(" + element + ")";
    case rt::DenseStorage::Q8: return "(float)" + element;
    default: return element;
  }
}
std::string dense_suffix(rt::DenseStorage storage) {
  return storage == rt::DenseStorage::F16 ? "_f16" : storage == rt::DenseStorage::Q8 ? "_q8" : "_f32";
}

}  // namespace

CudaKernel cuda_embedding(int64_t rows, int64_t cols, rt::DenseStorage storage, bool k_major) {
  const bool q8 = storage == rt::DenseStorage::Q8;
  CudaKernel k;
  k.name = "bitnetc_embedding_" + str(rows) + "x" + str(cols) + dense_suffix(storage) + (k_major ? "_kmajor" : "");
  k.params = {"const int* __restrict__ state", dense_param(storage, "table")};
  if (q8) k.params.push_back("const float* __restrict__ scales");
  k.params.push_back("float* __restrict__ out");
  k.body = per_element(k, "c", cols);
  k.body += "  const long long token = state[" + str(rt::CudaState::kTokens) + " + m];\n";
  const std::string at = k_major ? "(long long)c * " + str(rows) + " + token" : "token * " + str(cols) + " + c";
  const std::string value = dense_value(storage, "table[" + at + "]");
  k.body += "  out[m * " + str(cols) + " + c] = " + (q8 ? "__fmul_rn(" + value + ", scales[token])" : value) + ";\n";
  return k;
}

CudaKernel cuda_dense_matmul(int64_t K, int64_t N, rt::DenseStorage storage, bool last_token_only) {
  const bool q8 = storage == rt::DenseStorage::Q8;
  CudaKernel k;
  k.name = "bitnetc_dense_" + str(K) + "x" + str(N) + dense_suffix(storage) + (last_token_only ? "_last" : "");
  k.params = {"const int* __restrict__ state", dense_param(storage, "w")};
  if (q8) k.params.push_back("const float* __restrict__ scales");
  k.params.push_back("const float* __restrict__ x");
  k.params.push_back("float* __restrict__ y");
  k.grid_x = static_cast<uint32_t>((N + kElementThreads - 1) / kElementThreads);
  k.block_x = kElementThreads;
  k.per_token = !last_token_only;
  k.body = "  const int K = " + str(K) + ", N = " + str(N) + ";\n";
  k.body += "  const int n = blockIdx.x * blockDim.x + threadIdx.x;\n  if (n >= N) return;\n";
  k.body += last_token_only
                ? "  const float* xm = x + (state[" + str(rt::CudaState::kCount) + "] - 1) * K;\n  float* ym = y;\n"
                : "  const float* xm = x + blockIdx.y * K;\n  float* ym = y + blockIdx.y * N;\n";
  k.body += "  float acc = 0.0f;\n  for (int c = 0; c < K; ++c)\n    acc = __fadd_rn(acc, __fmul_rn(" +
            dense_value(storage, "w[(long long)c * N + n]") + ", xm[c]));\n";
  k.body += q8 ? "  ym[n] = __fmul_rn(acc, scales[n]);\n" : "  ym[n] = acc;\n";
  return k;
}

CudaKernel cuda_rope(int64_t n, int head_dim, int rope_style) {
  CudaKernel k;
  k.name = "bitnetc_rope_" + str(n) + "_d" + str(head_dim) + "_s" + str(rope_style);
  k.params = {"const int* __restrict__ state", "const float* __restrict__ cos", "const float* __restrict__ sin",
              "const float* __restrict__ x", "float* __restrict__ y"};
  k.body = per_element(k, "h", n / head_dim);
  k.body += "  const int D = " + str(head_dim) + ", HALF = " + str(head_dim / 2) + ";\n";
  k.body += "  const long long pos = state[" + str(rt::CudaState::kPos0) + "] + m;\n";
  k.body += "  float* v = y + m * " + str(n) + " + h * D;\n  const float* u = x + m * " + str(n) +
            " + h * D;\n  for (int i = 0; i < D; ++i) v[i] = u[i];\n";
  k.body += "  bitnetc_rope_rotate_head(" + str(rope_style) + ", D, cos + pos * HALF, sin + pos * HALF, v);\n";
  return k;
}

CudaKernel cuda_rope_kv_store(const CudaRopeKvShape& s) {
  if (s.head_dim <= 0 || s.q_n % s.head_dim != 0 || s.kv_dim % s.head_dim != 0)
    throw std::invalid_argument("cuda_rope_kv_store: bad shape");
  const int64_t q_heads = s.q_n / s.head_dim, k_heads = s.kv_dim / s.head_dim;
  CudaKernel k;
  k.name =
      "bitnetc_rope_kv_store_" + str(s.q_n) + "_" + str(s.kv_dim) + "_d" + str(s.head_dim) + "_s" + str(s.rope_style);
  k.params = {"const int* __restrict__ state",   "const float* __restrict__ cos_q", "const float* __restrict__ sin_q",
              "const float* __restrict__ cos_k", "const float* __restrict__ sin_k", "const float* __restrict__ q",
              "const float* __restrict__ k",     "const float* __restrict__ v",     "float* __restrict__ q_out",
              "float* __restrict__ k_cache",     "float* __restrict__ v_cache"};
  k.body = per_element(k, "t", std::max<int64_t>(q_heads + k_heads, s.kv_dim));
  k.body += "  const int D = " + str(s.head_dim) + ", HALF = " + str(s.head_dim / 2) + ", QH = " + str(q_heads) +
            ", KH = " + str(k_heads) + ", QN = " + str(s.q_n) + ", KV = " + str(s.kv_dim) + ";\n";
  k.body += "  const long long pos = state[" + str(rt::CudaState::kPos0) + "] + m;\n";
  k.body += R"(  if (t < QH + KH) {
    const bool is_q = t < QH;
    const int h = is_q ? t : t - QH;
    const float* u = is_q ? q + m * QN + h * D : k + m * KV + h * D;
    float* o = is_q ? q_out + m * QN + h * D : k_cache + pos * KV + h * D;
    for (int i = 0; i < D; ++i) o[i] = u[i];
    const float* c = (is_q ? cos_q : cos_k) + pos * HALF;
    const float* sn = (is_q ? sin_q : sin_k) + pos * HALF;
)";
  k.body += "    bitnetc_rope_rotate_head(" + str(s.rope_style) + ", D, c, sn, o);\n  }\n";
  k.body += "  if (t < KV) v_cache[pos * KV + t] = v[m * KV + t];\n";
  return k;
}

CudaKernel cuda_kv_store(int kv_dim) {
  CudaKernel k;
  k.name = "bitnetc_kv_store_" + str(kv_dim);
  k.params = {"const int* __restrict__ state", "const float* __restrict__ k", "const float* __restrict__ v",
              "float* __restrict__ k_cache", "float* __restrict__ v_cache"};
  k.body = per_element(k, "i", kv_dim);
  k.body +=
      "  const long long at = (long long)(state[" + str(rt::CudaState::kPos0) + "] + m) * " + str(kv_dim) + " + i;\n";
  k.body += "  k_cache[at] = k[m * " + str(kv_dim) + " + i];\n  v_cache[at] = v[m * " + str(kv_dim) + " + i];\n";
  return k;
}

CudaKernel cuda_attention(const CudaAttentionShape& s) {
  constexpr int kF32Divide = 0;  // ir::SoftmaxSum::F32Divide
  constexpr uint32_t kThreads = 128;
  CudaKernel k;
  k.name = "bitnetc_attention_h" + str(s.n_head) + "_kv" + str(s.n_head_kv) + "_d" + str(s.head_dim) + "_s" +
           str(s.score_scale) + str(s.softmax_sum);
  k.params = {"const int* __restrict__ state", "const float* __restrict__ q", "const float* __restrict__ k_cache",
              "const float* __restrict__ v_cache", "float* __restrict__ scores", "float* __restrict__ out"};
  k.grid_x = static_cast<uint32_t>(s.n_head);
  k.block_x = kThreads;
  k.per_token = true;
  const int64_t n = static_cast<int64_t>(s.n_head) * s.head_dim;
  k.body = "  const int D = " + str(s.head_dim) + ", KV = " + str(s.kv_dim) + ", QN = " + str(n) +
           ", GROUP = " + str(s.n_head / s.n_head_kv) + ", NH = " + str(s.n_head) + ", NT = " + str(kThreads) + ";\n";
  k.body += "  __shared__ float red[" + str(kThreads) + "];\n  __shared__ double red_d[" + str(kThreads) +
            "];\n  __shared__ int has[" + str(kThreads) + "];\n";
  k.body += R"(  const int tid = threadIdx.x, h = blockIdx.x, m = blockIdx.y;
  const int pos = state[)" +
            str(rt::CudaState::kPos0) + R"(] + m;
  float* p = scores + (long long)(m * NH + h) * state[)" +
            str(rt::CudaState::kCtx) + R"(];
  const float* qh = q + m * QN + h * D;
  const long long kv_off = (long long)(h / GROUP) * D;
  float mx = 0;
  for (int t = tid; t <= pos; t += NT) {
    const float s = bitnetc_attention_score()" +
            str(s.score_scale) + R"(, D, qh, k_cache + (long long)t * KV + kv_off);
    p[t] = s;
    if (t == tid || s > mx) mx = s;
  }
  // The maximum over the threads that have a position (has[]: the others hold none).
  red[tid] = mx;
  has[tid] = tid <= pos;
)";
  k.body += tree_reduce(kThreads, "if (has[b] && (!has[a] || red[b] > red[a])) { red[a] = red[b]; has[a] = 1; }");
  k.body += "  const float top = red[0];\n  __syncthreads();\n";
  if (s.softmax_sum == kF32Divide) {  // the interpreter's f32 sum, in position order
    k.body += R"(  for (int t = tid; t <= pos; t += NT) p[t] = bitnetc_expf(p[t] - top);
  __syncthreads();
  if (tid == 0) {
    float sum = 0;
    for (int t = 0; t <= pos; ++t) sum += p[t];
    red[0] = sum;
  }
  __syncthreads();
  const float sum = red[0];
  for (int t = tid; t <= pos; t += NT) p[t] /= sum;
)";
  } else {  // ggml: the sum in double (order-free in all but astronomically rare cases)
    k.body += R"(  double part = 0;
  for (int t = tid; t <= pos; t += NT) part += (double)(p[t] = bitnetc_expf(p[t] - top));
  red_d[tid] = part;
)";
    k.body += tree_reduce(kThreads, "red_d[a] += red_d[b];");
    k.body += R"(  const float inv = (float)(1.0 / red_d[0]);
  for (int t = tid; t <= pos; t += NT) p[t] *= inv;
)";
  }
  k.body += R"(  __syncthreads();
  for (int i = tid; i < D; i += NT) {
    float o = 0.0f;
    for (int t = 0; t <= pos; ++t) o += p[t] * v_cache[(long long)t * KV + kv_off + i];
    out[m * QN + h * D + i] = o;
  }
)";
  return k;
}

CudaKernel cuda_gated(int64_t n, int activation) {
  CudaKernel k;
  k.name = "bitnetc_gated_" + str(n) + "_a" + str(activation);
  k.params = {"const int* __restrict__ state", "const float* __restrict__ gate", "const float* __restrict__ up",
              "float* __restrict__ out"};
  k.body = per_element(k, "i", n);
  k.body +=
      "  const int at = m * " + str(n) + " + i;\n  out[at] = " + gated_value(activation, "gate[at]", "up[at]") + ";\n";
  return k;
}

CudaKernel cuda_add(int64_t n) {
  CudaKernel k;
  k.name = "bitnetc_add_" + str(n);
  k.params = {"const int* __restrict__ state", "const float* __restrict__ a", "const float* __restrict__ b",
              "float* __restrict__ out"};
  k.body = per_element(k, "i", n);
  k.body += "  const int at = m * " + str(n) + " + i;\n  out[at] = __fadd_rn(a[at], b[at]);\n";
  return k;
}

CudaKernel cuda_argmax_partial(int64_t n, int parts) {
  CudaKernel k;
  k.name = "bitnetc_argmax_partial_" + str(n) + "_p" + str(parts);
  k.params = {"const int* __restrict__ state", "const float* __restrict__ logits", "float* __restrict__ partial"};
  k.body = per_element(k, "t", parts);
  k.per_token = false;  // the logits of the chunk's last token only
  k.body += "  const int N = " + str(n) + ", P = " + str(parts) + R"(;
  int best = t < N ? t : 0;
  for (int i = t + P; i < N; i += P)
    if (logits[i] > logits[best]) best = i;
  partial[t] = logits[best];
  ((int*)(partial + P))[t] = best;
)";
  return k;
}

CudaKernel cuda_argmax_final(int parts) {
  CudaKernel k;
  k.name = "bitnetc_argmax_final_p" + str(parts);
  k.params = {"const int* __restrict__ state", "const float* __restrict__ partial", "int* __restrict__ result"};
  k.grid_x = k.block_x = 1;
  k.body = "  if (blockIdx.x * blockDim.x + threadIdx.x != 0) return;\n  const int P = " + str(parts) + R"(;
  const int* index = (const int*)(partial + P);
  int best = 0;
  for (int j = 1; j < P; ++j)
    if (partial[j] > partial[best] || (partial[j] == partial[best] && index[j] < index[best])) best = j;
  result[0] = index[best];
)";
  return k;
}

CudaKernel cuda_repeat_penalty(int64_t n) {
  CudaKernel k;
  k.name = "bitnetc_repeat_penalty_" + str(n);
  k.params = {"const int* __restrict__ state", "float* __restrict__ logits", "const int* __restrict__ tokens"};
  k.grid_x = 1;
  k.block_x = kTokenThreads;
  k.body = "  const int N = " + str(n) + ", count = state[" + str(rt::CudaState::kPenaltyCount) + "];\n";
  k.body += "  const float penalty = bitnetc_float_from_bits((unsigned)state[" + str(rt::CudaState::kPenalty) + "]);\n";
  k.body += R"(  for (int j = threadIdx.x; j < count; j += blockDim.x) {
    const int t = tokens[j];
    if (t >= 0 && t < N) logits[t] = bitnetc_repeat_penalty(logits[t], penalty);
  }
)";
  return k;
}

namespace {

// Inserts (v, id) into the sorted list (vals, ids) of `have` entries, at most K kept,
// largest first and lower ids first among equal values (the host sampler's order).
const char* const kTopKInsert = R"(    if (have < K || v > vals[have - 1] || (v == vals[have - 1] && id < ids[have - 1])) {
      int j = have < K ? have++ : K - 1;
      while (j > 0 && (v > vals[j - 1] || (v == vals[j - 1] && id < ids[j - 1]))) {
        vals[j] = vals[j - 1];
        ids[j] = ids[j - 1];
        --j;
      }
      vals[j] = v;
      ids[j] = id;
    }
)";

}  // namespace

CudaKernel cuda_topk_partial(int64_t n, int parts, int k_max) {
  CudaKernel k;
  k.name = "bitnetc_topk_partial_" + str(n) + "_p" + str(parts) + "_k" + str(k_max);
  k.params = {"const int* __restrict__ state", "const float* __restrict__ logits", "float* __restrict__ lists"};
  k.body = per_element(k, "t", parts);
  k.per_token = false;
  k.body += "  const int N = " + str(n) + ", P = " + str(parts) + ", KMAX = " + str(k_max) + R"(;
  const int K = state[)" +
            str(rt::CudaState::kTopK) + R"(];
  if (K <= 0) return;
  float vals[KMAX];
  int ids[KMAX];
  int have = 0;
  for (int id = t; id < N; id += P) {
    const float v = logits[id];
)" + std::string(kTopKInsert) +
            R"(  }
  float* out = lists + t * KMAX;
  int* out_ids = (int*)(lists + P * KMAX) + t * KMAX;
  for (int j = 0; j < KMAX; ++j) {
    out[j] = j < have ? vals[j] : 0.0f;
    out_ids[j] = j < have ? ids[j] : -1;  // -1: no entry
  }
)";
  return k;
}

CudaKernel cuda_topk_merge(int lists, int lists_per_thread, int k_max) {
  CudaKernel k;
  const int threads = lists / lists_per_thread;
  k.name = "bitnetc_topk_merge_l" + str(lists) + "_" + str(lists_per_thread) + "_k" + str(k_max);
  k.params = {"const int* __restrict__ state", "const float* __restrict__ in", "float* __restrict__ out"};
  k.body = per_element(k, "t", threads);
  k.per_token = false;
  k.body += "  const int L = " + str(lists) + ", PER = " + str(lists_per_thread) + ", T = " + str(threads) +
            ", KMAX = " + str(k_max) + R"(;
  const int K = state[)" +
            str(rt::CudaState::kTopK) + R"(];
  if (K <= 0) return;
  const int* in_ids = (const int*)(in + L * KMAX);
  float vals[KMAX];
  int ids[KMAX];
  int have = 0;
  for (int e = t * PER * KMAX; e < (t + 1) * PER * KMAX; ++e) {
    const int id = in_ids[e];
    if (id < 0) continue;
    const float v = in[e];
)" + std::string(kTopKInsert) +
            R"(  }
  float* o = out + t * KMAX;
  int* o_ids = (int*)(out + T * KMAX) + t * KMAX;
  for (int j = 0; j < KMAX; ++j) {
    o[j] = j < have ? vals[j] : 0.0f;
    o_ids[j] = j < have ? ids[j] : -1;
  }
)";
  return k;
}

CudaKernel cuda_read_bandwidth() {
  CudaKernel k;
  k.name = rt::kCudaReadBandwidthKernel;
  k.params = {"const uint4* __restrict__ p", "unsigned long long n", "unsigned* __restrict__ sink"};
  k.grid_x = 1024;
  k.block_x = 256;
  k.body = R"(  unsigned acc = 0;
  for (unsigned long long i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (unsigned long long)gridDim.x * blockDim.x) {
    const uint4 v = p[i];
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9E3779B9u) *sink = acc;  // (almost) never taken, but the loads must happen
)";
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
