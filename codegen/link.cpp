#include "link.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "atomic_file.h"
#include "process.h"

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

// The toolchains this bitnetc was built with, one per triple (CMake fills them in).
std::vector<Toolchain> toolchains() {
  std::vector<Toolchain> t;
  const char* env_cxx = std::getenv("CXX");
  // x86-64 outputs (CUDA outputs' host side too) use this build's own libraries.
  t.push_back({"x86_64-linux-gnu",
               env_cxx && *env_cxx ? env_cxx : BITNETC_CXX,
               "",
               {{"default", {BITNETC_EXE_LIBS, BITNETC_SO_LIBS, ""}}}});
#ifdef BITNETC_ASAN_SO_LIBS
  t.back().runtimes["asan"] = {BITNETC_ASAN_EXE_LIBS, BITNETC_ASAN_SO_LIBS, BITNETC_ASAN_FLAGS};
  t.back().runtimes["tsan"] = {BITNETC_TSAN_EXE_LIBS, BITNETC_TSAN_SO_LIBS, BITNETC_TSAN_FLAGS};
#endif
#ifdef BITNETC_AARCH64_CXX
  t.push_back({"aarch64-linux-gnu",
               BITNETC_AARCH64_CXX,
               "-static",
               {{"default", {BITNETC_AARCH64_EXE_LIBS, BITNETC_AARCH64_SO_LIBS, ""}}}});
#endif
  return t;
}

}  // namespace

Toolchain toolchain_for(const TargetInfo& target) {
  for (const Toolchain& t : toolchains())
    if (t.triple == target.triple) return t;
  throw std::invalid_argument("target " + target.name + ": this bitnetc was built without the " + target.triple +
                              " runtime (install its cross compiler, g++-" +
                              target.triple.substr(0, target.triple.find('-')) +
                              "-linux-gnu, then configure and build again)");
}

const RuntimeBuild& runtime_build(const Toolchain& toolchain, const std::string& name) {
  const auto it = toolchain.runtimes.find(name);
  if (it != toolchain.runtimes.end()) return it->second;
  std::string have;
  for (const auto& [n, r] : toolchain.runtimes) have += (have.empty() ? "" : ", ") + n;
  throw std::invalid_argument("--runtime=" + name + ": this bitnetc has no such runtime build for " + toolchain.triple +
                              " (it has: " + have + ")");
}

std::string link_output(const Toolchain& toolchain, const RuntimeBuild& runtime, const std::string& work_dir,
                        const std::vector<std::string>& objects, const std::string& table_source, EmitKind emit,
                        const std::string& output) {
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
                    quote(BITNETC_HALIDE_INCLUDE) + " -c kernels.cpp -o kernels.o 2> link.log && " + cxx +
                    " -c blob.S -o blob.o 2>> link.log && " + cxx + " kernels.o blob.o";
  for (const auto& obj : objects) cmd += " " + quote(obj);
  // A shared object's SONAME is its file name, so `-L DIR -lNAME` finds and records it
  // without an rpath to the build folder.
  cmd += emit == EmitKind::SharedObject ? " -shared -Wl,--version-script=exports.map -Wl,-soname," +
                                              quote(fs::path(output).filename().string()) + " " + runtime.so_libs
                                        : " " + toolchain.exe_flags + " " + runtime.exe_libs;
  if (!runtime.link_flags.empty()) cmd += " " + runtime.link_flags;
  cmd += " -lpthread -ldl -o linked 2>> link.log";
  if (run_shell(cmd) != 0) {
    std::ifstream log(work / "link.log");
    const std::string msg((std::istreambuf_iterator<char>(log)), {});
    throw OutputError(output + ": linking failed: " + msg.substr(0, 2000));
  }
  return (work / "linked").string();
}

}  // namespace bitnetc::codegen
