#include "link.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "atomic_file.h"
#include "process.h"
#include "runtime_folder.h"

namespace bitnetc::codegen {

namespace fs = std::filesystem;

namespace {

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
  out.flush();
  if (!out) throw OutputError(p.string() + ": cannot write");
}

// The default runtime build in `dir`: an executable links the runtime's main, a shared
// object the whole C API; both the forward pass, the runtime and the IR.
RuntimeBuild default_runtime(const fs::path& dir) {
  const std::string model_libs = " " + quote((dir / "libbitnetc_compiled.a").string()) + " " +
                                 quote((dir / "libbitnetc_runtime.a").string()) + " " +
                                 quote((dir / "libbitnetc_ir.a").string());
  return {quote((dir / "libbitnetc_output_main.a").string()) + model_libs,
          "-Wl,--whole-archive " + quote((dir / "libbitnetc_capi.a").string()) + " -Wl,--no-whole-archive" + model_libs,
          ""};
}

// A sanitized build in `dir`: one archive each for executables and shared objects
// (runtime_stub/CMakeLists.txt), and the sanitizer's link flags.
RuntimeBuild sanitized_runtime(const fs::path& dir, const std::string& name, const std::string& flags) {
  return {quote((dir / ("libbitnetc_output_main_" + name + ".a")).string()),
          "-Wl,--whole-archive " + quote((dir / ("libbitnetc_capi_" + name + ".a")).string()) +
              " -Wl,--no-whole-archive",
          flags};
}

// The toolchains this bitnetc can link with: one per triple whose runtime is in its
// runtime folder (runtime_folder.h), with the compiler driver CMake found for it.
std::vector<Toolchain> toolchains() {
  std::vector<Toolchain> t;
  const char* env_cxx = std::getenv("CXX");
  // x86-64 outputs (CUDA outputs' host side too).
  if (const fs::path dir = runtime_build_folder("x86_64-linux-gnu", "default"); !dir.empty()) {
    t.push_back({"x86_64-linux-gnu", env_cxx && *env_cxx ? env_cxx : BITNETC_CXX, "", {{"default", default_runtime(dir)}}});
#ifdef BITNETC_ASAN_FLAGS
    const std::pair<const char*, const char*> sanitizers[] = {{"asan", BITNETC_ASAN_FLAGS}, {"tsan", BITNETC_TSAN_FLAGS}};
    for (const auto& [name, flags] : sanitizers)
      if (const fs::path s = runtime_build_folder("x86_64-linux-gnu", name); !s.empty())
        t.back().runtimes[name] = sanitized_runtime(s, name, flags);
#endif
  }
#ifdef BITNETC_AARCH64_CXX
  if (const fs::path dir = runtime_build_folder("aarch64-linux-gnu", "default"); !dir.empty())
    t.push_back({"aarch64-linux-gnu", BITNETC_AARCH64_CXX, "-static", {{"default", default_runtime(dir)}}});
#endif
  return t;
}

}  // namespace

Toolchain toolchain_for(const TargetInfo& target) {
  for (const Toolchain& t : toolchains())
    if (t.triple == target.triple) return t;
  throw std::invalid_argument("target " + target.name + ": this bitnetc has no " + target.triple + " runtime in " +
                              (runtime_folder() / target.triple).string() + " (build bitnetc with its cross compiler, g++-" +
                              target.triple.substr(0, target.triple.find('-')) + "-linux-gnu, installed)");
}

const RuntimeBuild& runtime_build(const Toolchain& toolchain, const std::string& name) {
  const auto it = toolchain.runtimes.find(name);
  if (it != toolchain.runtimes.end()) return it->second;
  std::string have;
  for (const auto& [n, r] : toolchain.runtimes) have += (have.empty() ? "" : ", ") + n;
  throw std::invalid_argument("--runtime=" + name + ": this bitnetc has no such runtime build for " + toolchain.triple +
                              " (it has: " + have +
                              "; an install holds asan and tsan only when installed with --component sanitizers)");
}

void link_output(const Toolchain& toolchain, const RuntimeBuild& runtime, const std::string& work_dir,
                 const std::vector<std::string>& objects, const std::string& table_source, EmitKind emit,
                 const std::string& output, const std::string& linked) {
  const fs::path work(work_dir);
  write_text(work / "kernels.cpp", table_source);
  write_text(work / "blob.S",
             "  .section .rodata.bitnetc_blob,\"a\"\n  .balign 4096\n  .globl bitnetc_blob_start\nbitnetc_blob_start:\n"
             "  .incbin \"model.blob\"\n  .globl bitnetc_blob_end\nbitnetc_blob_end:\n  .section "
             ".note.GNU-stack,\"\",%progbits\n");
  // A shared object exports the C API of bitnet.h and nothing else.
  write_text(work / "exports.map", "{ global: bitnet_*; local: *; };\n");
  const std::string cxx = quote(toolchain.cxx);
  std::string cmd = "cd " + quote(work_dir) + " && " + cxx + " -O2 -std=c++17 -fPIC -I" +
                    quote((runtime_folder() / "include").string()) + " -c kernels.cpp -o kernels.o 2> link.log && " + cxx +
                    " -c blob.S -o blob.o 2>> link.log && " + cxx + " kernels.o blob.o";
  for (const auto& obj : objects) cmd += " " + quote(obj);
  // A shared object's SONAME is its file name, so `-L DIR -lNAME` finds and records it
  // without an rpath to the build folder.
  cmd += emit == EmitKind::SharedObject ? " -shared -Wl,--version-script=exports.map -Wl,-soname," +
                                              quote(fs::path(output).filename().string()) + " " + runtime.so_libs
                                        : " " + toolchain.exe_flags + " " + runtime.exe_libs;
  if (!runtime.link_flags.empty()) cmd += " " + runtime.link_flags;
  cmd += " -fuse-ld=lld -B" + quote(std::string(BITNETC_LLD_DIR) + "/");  // (codegen/CMakeLists.txt says why)
  cmd += " -lpthread -ldl -o " + quote(fs::absolute(linked).string()) + " 2>> link.log";
  if (run_shell(cmd) != 0) {
    std::ifstream log(work / "link.log");
    const std::string msg((std::istreambuf_iterator<char>(log)), {});
    throw OutputError(output + ": linking failed: " + msg.substr(0, 2000));
  }
}

}  // namespace bitnetc::codegen
