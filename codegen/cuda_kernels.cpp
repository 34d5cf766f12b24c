#include "cuda_kernels.h"

#include <bit>
#include <cstdio>
#include <stdexcept>

#ifdef BITNETC_HAVE_NVRTC
#include <dlfcn.h>
#include <nvrtc.h>
#endif

namespace bitnetc::codegen {

int64_t cuda_padded_k(int64_t K) { return (K + 15) / 16 * 16; }

std::vector<uint32_t> pack_for_cuda_gemv(const TernaryWeights& w) {
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

// The index of this thread's element in x, returning when it is past `limit`; the token
// from y.
std::string element_index(const std::string& var, int64_t limit) {
  return "  const int " + var + " = blockIdx.x * blockDim.x + threadIdx.x;\n  if (" + var + " >= " + str(limit) +
         ") return;\n  const int m = blockIdx.y;\n";
}

}  // namespace

std::string cuda_module_preamble() { return kNumericsSource; }

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

CudaKernel cuda_ternary_matmul(const CudaGemvShape& s) {
  if (s.K <= 0 || s.N <= 0 || s.act_block <= 0 || s.K % s.act_block != 0 || s.batch < 1)
    throw std::invalid_argument("cuda_ternary_matmul: bad shape");
  if (s.act_block != s.K && s.act_block % 16 != 0)
    throw std::invalid_argument("cuda_ternary_matmul: activation blocks must cover whole 16-weight words");
  const int64_t Kp = cuda_padded_k(s.K);
  const int64_t blocks = s.K / s.act_block;
  // Words per activation block (the last block of a per-token row takes the padding,
  // whose weights are zero).
  const int64_t words_per_block = s.act_block == s.K ? Kp / 16 : s.act_block / 16;
  CudaKernel k;
  k.name = "bitnetc_ternary_" + str(s.K) + "x" + str(s.N) + "_b" + str(s.act_block) + "_m" + str(s.batch);
  k.params = {"const int* __restrict__ state", "const unsigned* __restrict__ packed", "const int* __restrict__ x",
              "const int* __restrict__ x_sum", "const float* __restrict__ d_act", "float w_scale",
              "float* __restrict__ y"};
  k.body = "  const int N = " + str(s.N) + ", KW = " + str(Kp / 4) + ", BLOCKS = " + str(blocks) +
           ", WORDS_PER_BLOCK = " + str(words_per_block) + ", MB = " + str(s.batch) + ";\n";
  k.body += R"(  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  if (n >= N) return;
  const int count = state[1];
  float acc[MB];
#pragma unroll
  for (int m = 0; m < MB; ++m) acc[m] = 0.0f;
  for (int b = 0; b < BLOCKS; ++b) {
    int dot[MB];
#pragma unroll
    for (int m = 0; m < MB; ++m) dot[m] = 0;
    for (int c = b * WORDS_PER_BLOCK; c < (b + 1) * WORDS_PER_BLOCK; ++c) {
      const unsigned word = packed[c * N + n];  // read once for every token of the chunk
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
    // The interpreter's rounding: no fused multiply-add, blocks added in order.
#pragma unroll
    for (int m = 0; m < MB; ++m)
      if (m < count)
        acc[m] = __fadd_rn(acc[m], __fmul_rn((float)(dot[m] - x_sum[m * BLOCKS + b]),
                                             __fmul_rn(d_act[m * BLOCKS + b], w_scale)));
  }
#pragma unroll
  for (int m = 0; m < MB; ++m)
    if (m < count) y[m * N + n] = acc[m];
)";
  return k;
}

CudaKernel cuda_norm(int64_t n, int norm_kind, bool has_weight, float eps) {
  CudaKernel k;
  k.name = "bitnetc_norm_" + str(n) + "_k" + str(norm_kind) + (has_weight ? "_w" : "") + "_e" +
           str(std::bit_cast<uint32_t>(eps));
  k.params = {"const int* __restrict__ state", "const float* __restrict__ x"};
  if (has_weight) k.params.push_back("const float* __restrict__ w");
  k.params.push_back("float* __restrict__ y");
  k.body = "  const int m = threadIdx.x;\n  if (m >= state[1]) return;\n  bitnetc_rms_norm(" + str(norm_kind) + ", x + m * " +
           str(n) + ", " + str(n) + ", " + (has_weight ? "w" : "0") + ", " + float_literal(eps) + ", y + m * " + str(n) +
           ");\n";
  return k;
}

CudaKernel cuda_quantize(int64_t n, int act_quant) {
  constexpr int kPerBlockQ8K = 3;  // ir::ActQuant::PerBlockQ8K
  if (n <= 0 || (act_quant == kPerBlockQ8K && n % 256 != 0)) throw std::invalid_argument("cuda_quantize: bad shape");
  const int64_t blocks = act_quant == kPerBlockQ8K ? n / 256 : 1;
  CudaKernel k;
  k.name = "bitnetc_quantize_" + str(n) + "_q" + str(act_quant);
  k.params = {"const int* __restrict__ state", "const float* __restrict__ x", "int* __restrict__ q",
              "int* __restrict__ x_sum", "float* __restrict__ d"};
  k.body = "  const int N = " + str(n) + ", KP = " + str(cuda_padded_k(n)) + ", BLOCKS = " + str(blocks) + ";\n";
  k.body += "  const int m = threadIdx.x;\n  if (m >= state[1]) return;\n";
  k.body += "  signed char* qm = (signed char*)q + m * KP;\n";
  k.body += "  bitnetc_quantize(" + str(act_quant) + ", x + m * N, N, qm, d + m * BLOCKS);\n";
  k.body += R"(  for (int i = N; i < KP; ++i) qm[i] = 0;
  for (int b = 0; b < BLOCKS; ++b) {
    int sum = 0;
    for (int i = b * (N / BLOCKS); i < (b + 1) * (N / BLOCKS); ++i) sum += qm[i];
    x_sum[m * BLOCKS + b] = sum;
  }
)";
  return k;
}

CudaKernel cuda_embedding(int64_t rows, int64_t cols, bool f16, bool k_major) {
  CudaKernel k;
  k.name = "bitnetc_embedding_" + str(rows) + "x" + str(cols) + (f16 ? "_f16" : "_f32") + (k_major ? "_kmajor" : "");
  k.params = {"const int* __restrict__ state", std::string(f16 ? "const unsigned short*" : "const float*") + " __restrict__ table",
              "float* __restrict__ out"};
  k.body = element_index("c", cols);
  k.body += "  const long long token = state[3 + m];\n";
  const std::string at = k_major ? "(long long)c * " + str(rows) + " + token" : "token * " + str(cols) + " + c";
  k.body += "  out[m * " + str(cols) + " + c] = " + (f16 ? "bitnetc_half_to_float(table[" + at + "])" : "table[" + at + "]") + ";\n";
  return k;
}

CudaKernel cuda_dense_matmul(int64_t K, int64_t N, bool f16, bool last_token_only) {
  CudaKernel k;
  k.name = "bitnetc_dense_" + str(K) + "x" + str(N) + (f16 ? "_f16" : "_f32") + (last_token_only ? "_last" : "");
  k.params = {"const int* __restrict__ state", std::string(f16 ? "const unsigned short*" : "const float*") + " __restrict__ w",
              "const float* __restrict__ x", "float* __restrict__ y"};
  k.body = "  const int K = " + str(K) + ", N = " + str(N) + ";\n";
  k.body += "  const int n = blockIdx.x * blockDim.x + threadIdx.x;\n  if (n >= N) return;\n";
  k.body += last_token_only ? "  const float* xm = x + (state[1] - 1) * K;\n  float* ym = y;\n"
                            : "  const float* xm = x + blockIdx.y * K;\n  float* ym = y + blockIdx.y * N;\n";
  k.body += "  float acc = 0.0f;\n  for (int c = 0; c < K; ++c)\n    acc = __fadd_rn(acc, __fmul_rn(" +
            std::string(f16 ? "bitnetc_half_to_float(w[(long long)c * N + n])" : "w[(long long)c * N + n]") +
            ", xm[c]));\n  ym[n] = acc;\n";
  return k;
}

CudaKernel cuda_rope(int64_t n, int head_dim, int rope_style) {
  CudaKernel k;
  k.name = "bitnetc_rope_" + str(n) + "_d" + str(head_dim) + "_s" + str(rope_style);
  k.params = {"const int* __restrict__ state", "const float* __restrict__ cos", "const float* __restrict__ sin",
              "const float* __restrict__ x", "float* __restrict__ y"};
  k.body = element_index("h", n / head_dim);
  k.body += "  const int D = " + str(head_dim) + ", HALF = " + str(head_dim / 2) + ";\n";
  k.body += "  const long long pos = state[0] + m;\n";
  k.body += "  float* v = y + m * " + str(n) + " + h * D;\n  const float* u = x + m * " + str(n) +
            " + h * D;\n  for (int i = 0; i < D; ++i) v[i] = u[i];\n";
  k.body += "  bitnetc_rope_rotate_head(" + str(rope_style) + ", D, cos + pos * HALF, sin + pos * HALF, v);\n";
  return k;
}

CudaKernel cuda_kv_store(int kv_dim) {
  CudaKernel k;
  k.name = "bitnetc_kv_store_" + str(kv_dim);
  k.params = {"const int* __restrict__ state", "const float* __restrict__ k", "const float* __restrict__ v",
              "float* __restrict__ k_cache", "float* __restrict__ v_cache"};
  k.body = element_index("i", kv_dim);
  k.body += "  const long long at = (long long)(state[0] + m) * " + str(kv_dim) + " + i;\n";
  k.body += "  k_cache[at] = k[m * " + str(kv_dim) + " + i];\n  v_cache[at] = v[m * " + str(kv_dim) + " + i];\n";
  return k;
}

CudaKernel cuda_attention(const CudaAttentionShape& s) {
  CudaKernel k;
  k.name = "bitnetc_attention_h" + str(s.n_head) + "_kv" + str(s.n_head_kv) + "_d" + str(s.head_dim) + "_s" +
           str(s.score_scale) + str(s.softmax_sum);
  k.params = {"const int* __restrict__ state", "const float* __restrict__ q", "const float* __restrict__ k_cache",
              "const float* __restrict__ v_cache", "float* __restrict__ scores", "float* __restrict__ out"};
  const int64_t n = static_cast<int64_t>(s.n_head) * s.head_dim;
  k.body = element_index("h", s.n_head);
  k.body += "  const int pos = state[0] + m;\n";
  k.body += "  float* p = scores + (long long)(m * " + str(s.n_head) + " + h) * state[2];\n";
  k.body += "  bitnetc_attend_head(" + str(s.score_scale) + ", " + str(s.softmax_sum) + ", " + str(s.head_dim) + ", " +
            str(s.n_head) + ", " + str(s.n_head_kv) + ", h, q + m * " + str(n) + ", k_cache, v_cache, " + str(s.kv_dim) +
            ", pos, p, out + m * " + str(n) + ");\n";
  return k;
}

CudaKernel cuda_gated(int64_t n, int activation) {
  CudaKernel k;
  k.name = "bitnetc_gated_" + str(n) + "_a" + str(activation);
  k.params = {"const int* __restrict__ state", "const float* __restrict__ gate", "const float* __restrict__ up",
              "float* __restrict__ out"};
  k.body = element_index("i", n);
  k.body += "  const int at = m * " + str(n) + " + i;\n  out[at] = __fmul_rn(bitnetc_activate(" + str(activation) +
            ", gate[at]), up[at]);\n";
  return k;
}

CudaKernel cuda_add(int64_t n) {
  CudaKernel k;
  k.name = "bitnetc_add_" + str(n);
  k.params = {"const int* __restrict__ state", "const float* __restrict__ a", "const float* __restrict__ b",
              "float* __restrict__ out"};
  k.body = element_index("i", n);
  k.body += "  const int at = m * " + str(n) + " + i;\n  out[at] = __fadd_rn(a[at], b[at]);\n";
  return k;
}

CudaKernel cuda_argmax_partial(int64_t n, int parts) {
  CudaKernel k;
  k.name = "bitnetc_argmax_partial_" + str(n) + "_p" + str(parts);
  k.params = {"const int* __restrict__ state", "const float* __restrict__ logits", "float* __restrict__ partial"};
  k.body = element_index("t", parts);
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
  k.body = "  if (blockIdx.x * blockDim.x + threadIdx.x != 0) return;\n  const int P = " + str(parts) + R"(;
  const int* index = (const int*)(partial + P);
  int best = 0;
  for (int j = 1; j < P; ++j)
    if (partial[j] > partial[best] || (partial[j] == partial[best] && index[j] < index[best])) best = j;
  result[0] = index[best];
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
  // -fmad=false: products and sums round as the interpreter's do.
  const char* opts[] = {arch_opt.c_str(), "-fmad=false", "--std=c++17"};
  const nvrtcResult r = api.compile(prog, 3, opts);
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
  if (target.arch != TargetArch::Cuda) throw std::invalid_argument(target.name + " is not a CUDA target");
#ifdef BITNETC_HAVE_NVRTC
  const std::string sm = target.llc_cpu;  // "sm_80"
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
