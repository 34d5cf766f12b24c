// A stand-in for the NVIDIA driver (built as libcuda.so.1) for tests on machines
// without a GPU: a CUDA output loaded with LD_LIBRARY_PATH pointing here runs its whole
// real runtime (runtime_stub/cuda/cuda_forward.cpp: module load, weight upload, buffers,
// launches, graph capture and replay) against "device memory" that is host memory and
// kernels that run on the CPU.
//
// The kernels come from the output's own generated source (bitnetc compile
// --cuda-source) built as C++ with tests/support/cuda_emulation.h and
// -DBITNETC_CUDA_EMULATION into a shared object named by BITNETC_FAKE_CUDA_KERNELS;
// cuModuleGetFunction finds each kernel's bitnetc_emulate_<name> launcher there.
//
// Other knobs: BITNETC_FAKE_CUDA_SM="90" (the compute capability reported, default 80);
// BITNETC_FAKE_CUDA_REJECT_CUBIN=1 refuses cubins as a GPU of another architecture
// would (so the runtime must fall back to the PTX); BITNETC_FAKE_CUDA_STATS=FILE writes
// "launches L graph_launches G module IMAGE dtoh_bytes B" there at exit.
//
// Only what bitnetc's runtime calls, with its ABI (runtime_stub/cuda/cuda_driver.h). Kernel
// parameters are copied as 8-byte slots, which is how that runtime passes them.
#include <dlfcn.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "cuda_driver.h"

using namespace bitnetc::rt;

namespace {

constexpr CUresult kInvalidValue = 1, kNotInitialized = 3, kInvalidImage = 200, kNotFound = 500,
                   kNoBinaryForGpu = 209, kStreamCaptureUnsupported = 900;

struct Function {
  void (*launch)(unsigned, unsigned, unsigned, void**);
  int n_params;
};
struct Launch {
  const Function* fn;
  unsigned gx, gy, bx;
  std::vector<uint64_t> params;
};
struct Graph {
  std::vector<Launch> launches;
};
struct Stream {
  Graph* capturing = nullptr;  // between cuStreamBeginCapture and cuStreamEndCapture
};

struct State {
  std::mutex mutex;  // separate models load from separate threads
  bool initialized = false;
  void* kernels = nullptr;  // the emulated module
  std::vector<Function*> functions;
  std::atomic<long> launches{0}, graph_launches{0}, dtoh_bytes{0};
  std::string module_kind = "none";
  ~State() {
    if (const char* f = std::getenv("BITNETC_FAKE_CUDA_STATS")) {
      if (FILE* out = std::fopen(f, "w")) {
        std::fprintf(out, "launches %ld graph_launches %ld module %s dtoh_bytes %ld\n", launches.load(),
                     graph_launches.load(), module_kind.c_str(), dtoh_bytes.load());
        std::fclose(out);
      }
    }
    for (Function* fn : functions) delete fn;
  }
} state;

int sm() {
  const char* s = std::getenv("BITNETC_FAKE_CUDA_SM");
  return s ? std::atoi(s) : 80;
}

Stream* stream_of(CUstream s) { return reinterpret_cast<Stream*>(s); }

void run(const Launch& l) {
  std::vector<void*> p;
  for (const uint64_t& v : l.params) p.push_back(const_cast<uint64_t*>(&v));
  l.fn->launch(l.gx, l.gy, l.bx, p.data());
}

}  // namespace

extern "C" {

CUresult cuInit(unsigned) {
  state.initialized = true;
  return kCudaSuccess;
}
CUresult cuDeviceGetCount(int* n) {
  if (!state.initialized) return kNotInitialized;
  *n = 1;
  return kCudaSuccess;
}
CUresult cuDeviceGet(CUdevice* d, int ordinal) {
  if (ordinal != 0) return kInvalidValue;
  *d = 0;
  return kCudaSuccess;
}
CUresult cuDeviceGetAttribute(int* v, int attr, CUdevice) {
  if (attr == kCuAttrComputeCapabilityMajor) *v = sm() / 10;
  else if (attr == kCuAttrComputeCapabilityMinor) *v = sm() % 10;
  else return kInvalidValue;
  return kCudaSuccess;
}
CUresult cuDeviceGetName(char* name, int len, CUdevice) {
  std::snprintf(name, static_cast<size_t>(len), "bitnetc fake GPU (CPU emulation)");
  return kCudaSuccess;
}
CUresult cuDevicePrimaryCtxRetain(CUcontext* c, CUdevice) {
  *c = reinterpret_cast<CUcontext>(&state);
  return kCudaSuccess;
}
CUresult cuDevicePrimaryCtxRelease_v2(CUdevice) { return kCudaSuccess; }
CUresult cuCtxSetCurrent(CUcontext) { return kCudaSuccess; }

CUresult cuModuleLoadData(CUmodule* m, const void* image) {
  const auto* b = static_cast<const unsigned char*>(image);
  const bool cubin = std::memcmp(b, "\x7f" "ELF", 4) == 0 && (b[18] | b[19] << 8) == 190;  // EM_CUDA
  const bool ptx = !cubin && std::strstr(static_cast<const char*>(image), ".target sm_") != nullptr;
  if (!cubin && !ptx) return kInvalidImage;
  if (cubin && std::getenv("BITNETC_FAKE_CUDA_REJECT_CUBIN")) return kNoBinaryForGpu;
  const char* path = std::getenv("BITNETC_FAKE_CUDA_KERNELS");
  if (!path) return kInvalidImage;
  std::lock_guard<std::mutex> lock(state.mutex);
  if (!state.kernels) state.kernels = ::dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!state.kernels) {
    std::fprintf(stderr, "fake libcuda: %s\n", ::dlerror());
    return kInvalidImage;
  }
  state.module_kind = cubin ? "cubin" : "ptx";
  *m = reinterpret_cast<CUmodule>(state.kernels);
  return kCudaSuccess;
}
CUresult cuModuleUnload(CUmodule) { return kCudaSuccess; }
CUresult cuModuleGetFunction(CUfunction* f, CUmodule m, const char* name) {
  const std::string launcher = std::string("bitnetc_emulate_") + name;
  void* launch = ::dlsym(reinterpret_cast<void*>(m), launcher.c_str());
  void* n_params = ::dlsym(reinterpret_cast<void*>(m), (launcher + "_params").c_str());
  if (!launch || !n_params) return kNotFound;
  auto* fn = new Function{reinterpret_cast<void (*)(unsigned, unsigned, unsigned, void**)>(launch),
                          *static_cast<const int*>(n_params)};
  std::lock_guard<std::mutex> lock(state.mutex);
  state.functions.push_back(fn);
  *f = reinterpret_cast<CUfunction>(fn);
  return kCudaSuccess;
}

CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t bytes) {
  void* m = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (!m) return 2;  // CUDA_ERROR_OUT_OF_MEMORY
  std::memset(m, 0xA5, bytes);  // device memory is not zeroed: the runtime must clear it
  *p = reinterpret_cast<CUdeviceptr>(m);
  return kCudaSuccess;
}
CUresult cuMemFree_v2(CUdeviceptr p) {
  std::free(reinterpret_cast<void*>(p));
  return kCudaSuccess;
}
CUresult cuMemsetD8_v2(CUdeviceptr p, unsigned char v, size_t n) {
  std::memset(reinterpret_cast<void*>(p), v, n);
  return kCudaSuccess;
}
CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void* src, size_t n) {
  std::memcpy(reinterpret_cast<void*>(dst), src, n);
  return kCudaSuccess;
}
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void* src, size_t n, CUstream s) {
  if (stream_of(s)->capturing) return kStreamCaptureUnsupported;  // the runtime copies outside captures
  return cuMemcpyHtoD_v2(dst, src, n);
}
CUresult cuMemcpyDtoHAsync_v2(void* dst, CUdeviceptr src, size_t n, CUstream s) {
  if (stream_of(s)->capturing) return kStreamCaptureUnsupported;
  state.dtoh_bytes += static_cast<long>(n);
  std::memcpy(dst, reinterpret_cast<const void*>(src), n);
  return kCudaSuccess;
}

CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shared, CUstream s, void** params, void** extra) {
  if (gz != 1 || by != 1 || bz != 1 || shared != 0 || extra || bx > 1024) return kInvalidValue;
  const auto* fn = reinterpret_cast<const Function*>(f);
  Launch l{fn, gx, gy, bx, {}};
  for (int i = 0; i < fn->n_params; ++i) l.params.push_back(*static_cast<const uint64_t*>(params[i]));
  if (Graph* g = stream_of(s)->capturing) {
    g->launches.push_back(l);
    return kCudaSuccess;
  }
  ++state.launches;
  run(l);
  return kCudaSuccess;
}

CUresult cuStreamCreate(CUstream* s, unsigned) {
  *s = reinterpret_cast<CUstream>(new Stream);
  return kCudaSuccess;
}
CUresult cuStreamDestroy_v2(CUstream s) {
  delete stream_of(s);
  return kCudaSuccess;
}
CUresult cuStreamSynchronize(CUstream s) { return stream_of(s)->capturing ? kStreamCaptureUnsupported : kCudaSuccess; }
CUresult cuStreamBeginCapture_v2(CUstream s, int) {
  if (stream_of(s)->capturing) return kStreamCaptureUnsupported;
  stream_of(s)->capturing = new Graph;
  return kCudaSuccess;
}
CUresult cuStreamEndCapture(CUstream s, CUgraph* g) {
  if (!stream_of(s)->capturing) return kInvalidValue;
  *g = reinterpret_cast<CUgraph>(stream_of(s)->capturing);
  stream_of(s)->capturing = nullptr;
  return kCudaSuccess;
}
CUresult cuGraphInstantiateWithFlags(CUgraphExec* e, CUgraph g, unsigned long long) {
  *e = reinterpret_cast<CUgraphExec>(new Graph(*reinterpret_cast<Graph*>(g)));
  return kCudaSuccess;
}
CUresult cuGraphLaunch(CUgraphExec e, CUstream) {
  ++state.graph_launches;
  for (const Launch& l : reinterpret_cast<Graph*>(e)->launches) {
    ++state.launches;
    run(l);
  }
  return kCudaSuccess;
}
// Events hold the host time they were recorded at: launches run synchronously here, so
// two events bracket the CPU time of the kernels between them.
CUresult cuEventCreate(CUevent* e, unsigned) {
  *e = reinterpret_cast<CUevent>(new std::chrono::steady_clock::time_point());
  return kCudaSuccess;
}
CUresult cuEventRecord(CUevent e, CUstream s) {
  if (stream_of(s)->capturing) return kStreamCaptureUnsupported;
  *reinterpret_cast<std::chrono::steady_clock::time_point*>(e) = std::chrono::steady_clock::now();
  return kCudaSuccess;
}
CUresult cuEventSynchronize(CUevent) { return kCudaSuccess; }
CUresult cuEventElapsedTime(float* ms, CUevent start, CUevent end) {
  const auto* a = reinterpret_cast<std::chrono::steady_clock::time_point*>(start);
  const auto* b = reinterpret_cast<std::chrono::steady_clock::time_point*>(end);
  *ms = std::chrono::duration<float, std::milli>(*b - *a).count();
  return kCudaSuccess;
}
CUresult cuEventDestroy_v2(CUevent e) {
  delete reinterpret_cast<std::chrono::steady_clock::time_point*>(e);
  return kCudaSuccess;
}

CUresult cuGraphExecDestroy(CUgraphExec e) {
  delete reinterpret_cast<Graph*>(e);
  return kCudaSuccess;
}
CUresult cuGraphDestroy(CUgraph g) {
  delete reinterpret_cast<Graph*>(g);
  return kCudaSuccess;
}
// NVRTC (bitnetc's CUDA compiler) probes the driver's private tables when it finds one;
// a stand-in has none, so bitnetc can compile with this library on its path.
CUresult cuGetExportTable(const void** table, const void*) {
  *table = nullptr;
  return 801;  // CUDA_ERROR_NOT_SUPPORTED
}
CUresult cuGetErrorString(CUresult r, const char** s) {
  switch (r) {
    case kCudaSuccess: *s = "no error"; break;
    case kInvalidImage: *s = "device kernel image is invalid"; break;
    case kNoBinaryForGpu: *s = "no kernel image is available for execution on the device"; break;
    case kNotFound: *s = "named symbol not found"; break;
    default: *s = "fake driver error"; break;
  }
  return kCudaSuccess;
}

}  // extern "C"
