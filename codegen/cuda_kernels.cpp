#include "cuda_kernels.h"

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

std::string cuda_gemv_name(const CudaGemvShape& s) {
  return "bitnetc_cuda_gemv_" + std::to_string(s.K) + "x" + std::to_string(s.N) + "_b" + std::to_string(s.act_block) +
         "_m" + std::to_string(s.batch);
}

std::string cuda_gemv_source(const CudaGemvShape& s) {
  if (s.K <= 0 || s.N <= 0 || s.act_block <= 0 || s.K % s.act_block != 0 || s.batch < 1)
    throw std::invalid_argument("cuda_gemv_source: bad shape");
  if (s.act_block != s.K && s.act_block % 16 != 0)
    throw std::invalid_argument("cuda_gemv_source: activation blocks must cover whole 16-weight words");
  const int64_t Kp = cuda_padded_k(s.K);
  const int64_t blocks = s.K / s.act_block;
  // Words per activation block (the last block of a per-token row takes the padding,
  // whose weights are zero).
  const int64_t words_per_block = s.act_block == s.K ? Kp / 16 : s.act_block / 16;
  std::string src;
  src += "// " + cuda_gemv_name(s) + ": y = w_scale * sum over activation blocks of d_act * (codes . x - sum x)\n";
  src += "extern \"C\" __global__ void " + cuda_gemv_name(s) +
         "(const unsigned* __restrict__ packed, const int* __restrict__ x, const int* __restrict__ x_sum,\n"
         "    const float* __restrict__ d_act, float w_scale, float* __restrict__ y) {\n";
  src += "  const int N = " + std::to_string(s.N) + ", KW = " + std::to_string(Kp / 4) +  // int8 words per token
         ", BLOCKS = " + std::to_string(blocks) + ", WORDS_PER_BLOCK = " + std::to_string(words_per_block) + ";\n";
  src += R"(  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  const int m = blockIdx.y;
  if (n >= N) return;
  const int* xm = x + m * KW;
  float acc = 0.0f;
  for (int b = 0; b < BLOCKS; ++b) {
    int dot = 0;
    for (int c = b * WORDS_PER_BLOCK; c < (b + 1) * WORDS_PER_BLOCK; ++c) {
      const unsigned word = packed[c * N + n];
      dot = __dp4a((int)(word & 0x03030303u), xm[4 * c + 0], dot);
      dot = __dp4a((int)((word >> 2) & 0x03030303u), xm[4 * c + 1], dot);
      dot = __dp4a((int)((word >> 4) & 0x03030303u), xm[4 * c + 2], dot);
      dot = __dp4a((int)((word >> 6) & 0x03030303u), xm[4 * c + 3], dot);
    }
    // The interpreter's rounding: no fused multiply-add, blocks added in order.
    acc = __fadd_rn(acc, __fmul_rn((float)(dot - x_sum[m * BLOCKS + b]), __fmul_rn(d_act[m * BLOCKS + b], w_scale)));
  }
  y[m * N + n] = acc;
}
)";
  return src;
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

}  // namespace

std::string cuda_norm_quant_name(const CudaNormQuantShape& s) {
  return "bitnetc_cuda_norm_quant_" + std::to_string(s.n) + "_n" + std::to_string(s.norm) + "_q" +
         std::to_string(s.quant) + (s.has_weight ? "_w" : "") + "_m" + std::to_string(s.batch);
}

std::string cuda_norm_quant_source(const CudaNormQuantShape& s) {
  constexpr int kPerBlockQ8K = 3;  // ir::ActQuant::PerBlockQ8K
  if (s.n <= 0 || s.batch < 1 || (s.quant == kPerBlockQ8K && s.n % 256 != 0))
    throw std::invalid_argument("cuda_norm_quant_source: bad shape");
  const int64_t blocks = s.quant == kPerBlockQ8K ? s.n / 256 : 1;
  std::string src = kNumericsSource;
  src += "\n// " + cuda_norm_quant_name(s) + ": one thread per token\n";
  src += "extern \"C\" __global__ void " + cuda_norm_quant_name(s) +
         "(const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ y, int* __restrict__ q,\n"
         "    int* __restrict__ x_sum, float* __restrict__ d) {\n";
  src += "  const int M = " + std::to_string(s.batch) + ", N = " + std::to_string(s.n) +
         ", KP = " + std::to_string(cuda_padded_k(s.n)) + ", BLOCKS = " + std::to_string(blocks) + ";\n";
  src += "  const int m = blockIdx.x * blockDim.x + threadIdx.x;\n  if (m >= M) return;\n";
  src += "  bitnetc_rms_norm(" + std::to_string(s.norm) + ", x + m * N, N, " + (s.has_weight ? "w" : "0") + ", " +
         float_literal(s.eps) + ", y + m * N);\n";
  src += "  signed char* qm = (signed char*)q + m * KP;\n";
  src += "  bitnetc_quantize(" + std::to_string(s.quant) + ", y + m * N, N, qm, d + m * BLOCKS);\n";
  src += R"(  for (int k = N; k < KP; ++k) qm[k] = 0;
  for (int b = 0; b < BLOCKS; ++b) {
    int sum = 0;
    for (int k = b * (N / BLOCKS); k < (b + 1) * (N / BLOCKS); ++k) sum += qm[k];
    x_sum[m * BLOCKS + b] = sum;
  }
}
)";
  return src;
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
