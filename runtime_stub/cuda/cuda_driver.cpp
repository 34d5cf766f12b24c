#include "cuda_driver.h"

#include "platform.h"
#if !BITNETC_WASM
#include <dlfcn.h>
#endif

#include <stdexcept>
#include <type_traits>

namespace bitnetc::rt {

namespace {

CudaDriver load_driver() {
#if BITNETC_WASM
  throw std::runtime_error("a WebAssembly output has no CUDA executor (compile the model for a cuda-sm* target)");
#else
  void* lib = ::dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib)
    throw std::runtime_error(std::string("this output runs on an NVIDIA GPU through the CUDA driver, and the driver "
                                         "library libcuda.so.1 cannot be loaded (") +
                             ::dlerror() +
                             "); install the NVIDIA driver, or compile the model for a CPU target "
                             "(`bitnetc targets` lists them)");
  CudaDriver d{};
  auto sym = [&](auto& fn, const char* name) {
    void* f = ::dlsym(lib, name);
    if (!f)
      throw std::runtime_error(std::string("the CUDA driver (libcuda.so.1) lacks ") + name +
                               "; it is too old for this output (CUDA 11.4 or newer is needed)");
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(f);
  };
#define BITNETC_CUDA_SYM(name) sym(d.name, #name)
  BITNETC_CUDA_SYM(cuInit);
  BITNETC_CUDA_SYM(cuDeviceGetCount);
  BITNETC_CUDA_SYM(cuDeviceGet);
  BITNETC_CUDA_SYM(cuDeviceGetAttribute);
  BITNETC_CUDA_SYM(cuDeviceGetName);
  BITNETC_CUDA_SYM(cuDevicePrimaryCtxRetain);
  BITNETC_CUDA_SYM(cuDevicePrimaryCtxRelease_v2);
  BITNETC_CUDA_SYM(cuCtxSetCurrent);
  BITNETC_CUDA_SYM(cuModuleLoadData);
  BITNETC_CUDA_SYM(cuModuleUnload);
  BITNETC_CUDA_SYM(cuModuleGetFunction);
  BITNETC_CUDA_SYM(cuMemAlloc_v2);
  BITNETC_CUDA_SYM(cuMemFree_v2);
  BITNETC_CUDA_SYM(cuMemsetD8_v2);
  BITNETC_CUDA_SYM(cuMemcpyHtoD_v2);
  BITNETC_CUDA_SYM(cuMemcpyHtoDAsync_v2);
  BITNETC_CUDA_SYM(cuMemcpyDtoHAsync_v2);
  BITNETC_CUDA_SYM(cuLaunchKernel);
  BITNETC_CUDA_SYM(cuStreamCreate);
  BITNETC_CUDA_SYM(cuStreamDestroy_v2);
  BITNETC_CUDA_SYM(cuStreamSynchronize);
  BITNETC_CUDA_SYM(cuStreamBeginCapture_v2);
  BITNETC_CUDA_SYM(cuStreamEndCapture);
  BITNETC_CUDA_SYM(cuGraphInstantiateWithFlags);
  BITNETC_CUDA_SYM(cuGraphLaunch);
  BITNETC_CUDA_SYM(cuGraphExecDestroy);
  BITNETC_CUDA_SYM(cuGraphDestroy);
  BITNETC_CUDA_SYM(cuEventCreate);
  BITNETC_CUDA_SYM(cuEventRecord);
  BITNETC_CUDA_SYM(cuEventSynchronize);
  BITNETC_CUDA_SYM(cuEventElapsedTime);
  BITNETC_CUDA_SYM(cuEventDestroy_v2);
  BITNETC_CUDA_SYM(cuGetErrorString);
#undef BITNETC_CUDA_SYM
  return d;
#endif
}

}  // namespace

const CudaDriver& cuda_driver() {
  // A failed load throws from here every time it is asked (the static stays unset).
  static const CudaDriver driver = [] {
    CudaDriver d = load_driver();
    const CUresult r = d.cuInit(0);
    if (r != kCudaSuccess) {
      const char* msg = nullptr;
      d.cuGetErrorString(r, &msg);
      throw std::runtime_error(std::string("the CUDA driver failed to initialize (") + (msg ? msg : "unknown error") +
                               "); is an NVIDIA GPU present and visible (CUDA_VISIBLE_DEVICES)?");
    }
    return d;
  }();
  return driver;
}

void cuda_check(CUresult r, const std::string& what) {
  if (r == kCudaSuccess) return;
  const char* msg = nullptr;
  cuda_driver().cuGetErrorString(r, &msg);
  throw std::runtime_error("CUDA: " + what + ": " + (msg ? msg : "error " + std::to_string(r)));
}

}  // namespace bitnetc::rt
