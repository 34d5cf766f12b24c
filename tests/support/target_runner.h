// Compiled outputs of any target, run on this machine: natively, under the target's
// emulator (aarch64 under qemu-aarch64 with the target's CPU model, WebAssembly under
// node), or, for a CUDA
// target, on the stand-in driver (tests/support/fake_cuda_driver.cpp) with the output's
// own generated kernels built for the CPU (tests/support/cuda_emulation.h). The suites
// that include it define BITNETC_BIN, BITNETC_CXX, BITNETC_TEST_SUPPORT_DIR and
// BITNETC_FAKE_CUDA_DIR.
#pragma once

#include <string>
#include <vector>

#include "support/test_support.h"
#include "targets.h"

namespace bitnetc::test {

struct TargetOutput {
  std::string exe;         // the output
  std::string run_prefix;  // what runs it here: "" natively, an emulator, or the stand-in driver's environment
  std::string stats;       // CUDA: where the stand-in driver writes its counts (see fake_cuda_driver.cpp)
};

// What an output of `target` named `name` is called: a WebAssembly output is its loader,
// NAME.mjs (beside NAME.wasm); others are `name` itself.
inline std::string output_name(const std::string& target, const std::string& name) {
  return find_target(target)->triple == "wasm32-wasi" ? name + ".mjs" : name;
}

// Compiles `model` for `target` into dir/name (with `flags`), and what runs it here.
inline TargetOutput compile_for(const std::string& model, const std::string& target, const std::string& name,
                                const ScratchDir& dir, const std::string& flags = "") {
  const TargetInfo& t = *find_target(target);
  TargetOutput o{dir.file(output_name(target, name)), "", ""};
  const bool cuda = t.backend == Backend::Cuda;
  const std::string source = dir.file(name + ".cu"), kernels = dir.file(name + "-kernels.so");
  const CommandResult c =
      run_command(std::string(BITNETC_BIN) + " " + shell_quote(model) + " --target=" + target + flags + " -q -o " +
                      shell_quote(o.exe) + (cuda ? " --cuda-source=" + shell_quote(source) : std::string()),
                  dir);
  EXPECT_EQ(c.status, 0) << target << ": " << c.err;
  if (!cuda) {
    o.run_prefix = runs_natively(t) ? "" : t.emulator + " ";
    return o;
  }
  // The rounding NVRTC gets: no contraction (-fmad=false).
  const CommandResult k = run_command(std::string(BITNETC_CXX) +
                                          " -std=c++17 -O2 -ffp-contract=off -fPIC -shared -w -DBITNETC_CUDA_EMULATION "
                                          "-include " +
                                          BITNETC_TEST_SUPPORT_DIR + "/cuda_emulation.h -x c++ " + shell_quote(source) +
                                          " -o " + shell_quote(kernels),
                                      dir);
  EXPECT_EQ(k.status, 0) << k.err;
  o.stats = dir.file(name + ".stats");
  o.run_prefix = "env LD_LIBRARY_PATH=" + shell_quote(BITNETC_FAKE_CUDA_DIR) +
                 " BITNETC_FAKE_CUDA_KERNELS=" + shell_quote(kernels) + " BITNETC_FAKE_CUDA_STATS=" +
                 shell_quote(o.stats) + " ";
  return o;
}

// Every target whose outputs run here: each CPU target this CPU runs natively or whose
// emulator is here, and one CUDA target on the stand-in driver.
inline std::vector<std::string> testable_targets() {
  std::vector<std::string> names;
  for (const TargetInfo& t : targets())
    if (t.backend == Backend::Cpu && (runs_on_this_cpu(t) || (!runs_natively(t) && !t.emulator.empty())))
      names.push_back(t.name);
  names.push_back("cuda-sm80");
  return names;
}

// A target's name as a test name ("x86-64-avx2" -> "x86_64_avx2").
inline std::string test_name(std::string target) {
  for (char& ch : target)
    if (ch == '-') ch = '_';
  return target;
}

}  // namespace bitnetc::test
