// The compiled output that bench and verify run (commands.h: prepare_output).
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "atomic_file.h"
#include "commands.h"
#include "emit_executable.h"
#include "model_import.h"

namespace bitnetc::cli {

namespace {

std::vector<std::string> split_words(const std::string& s) {
  std::vector<std::string> words;
  std::istringstream in(s);
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

// The target a given binary was built for, from its ELF header: an aarch64 binary runs
// under the emulator of the aarch64 target with the most features, a WebAssembly
// output's loader (NAME.mjs) under node.
std::vector<std::string> runner_for_binary(const std::string& path) {
  if (path.ends_with(".mjs")) return split_words(find_target("wasm32-simd")->emulator);  // a WebAssembly output's loader
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument(path + ": cannot open: " + std::strerror(errno));
  unsigned char h[20] = {};
  in.read(reinterpret_cast<char*>(h), sizeof h);
  if (!in || h[0] != 0x7f || h[1] != 'E' || h[2] != 'L' || h[3] != 'F')
    throw std::invalid_argument(path + ": not an ELF executable");
  constexpr unsigned kMachineAArch64 = 183;
  const unsigned machine = h[18] | (h[19] << 8);  // e_machine, little-endian
  const TargetInfo* t = find_target(machine == kMachineAArch64 ? "aarch64-neon-dotprod" : "host");
  if (runs_natively(*t)) return {};
  auto words = split_words(t->emulator);
  words.back() = "max";  // unknown features: the emulator's fullest CPU
  return words;
}

}  // namespace

std::vector<std::string> PreparedOutput::command(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = runner;
  argv.push_back(std::filesystem::absolute(binary).string());
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

PreparedOutput prepare_output(const OutputUnderTest& o, const std::string& command, bool head_q8,
                              const std::function<void(const std::string&)>& say, const ImportedModel* imported) {
  PreparedOutput p;
  if (!o.binary.empty()) {
    p.binary = o.binary;
    p.target_name = "(given binary)";
    p.runner = runner_for_binary(o.binary);
    return p;
  }
  const TargetInfo* t = find_target(o.target);
  if (!t) throw std::invalid_argument("unknown target \"" + o.target + "\" (bitnetc targets lists them)");
  // A CUDA output is a host program for this machine; finding a GPU is its own job (it
  // says clearly when there is none).
  if (!runs_natively(*t) && t->backend != Backend::Cuda) {
    if (t->emulator.empty())
      throw std::invalid_argument(command + ": target " + t->name + " cannot run on this machine");
    p.runner = split_words(t->emulator);
  }
  auto scratch = std::make_shared<ScratchFolder>("bitnetc-" + command);
  p.binary = scratch->file(t->triple == "wasm32-wasi" ? "model.mjs" : "model");  // (a module's loader)
  p.target_name = t->name;
  p.scratch = scratch;
  say("compiling " + o.model + " for " + t->name);
  const auto t0 = std::chrono::steady_clock::now();
  codegen::CompileOptions co;
  co.output = p.binary;
  co.head_q8 = head_q8;
  co.layout = o.layout;
  co.lower = lower_options("", o.numerics);
  co.kernel_cache = o.kernel_cache;
  if (imported)
    codegen::compile_executable(*imported, *t, co);
  else
    codegen::compile_executable(import_model(o.model), *t, co);
  p.compile_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return p;
}

void add_output_under_test(CLI::App* cmd, OutputUnderTest& out, const std::string& verb) {
  cmd->add_option("model", out.model, "Model to compile and " + verb)->required();
  cmd->add_option("--target", out.target, "Target (must run on this machine)");
  cmd->add_option("--binary", out.binary, "Use this compiled executable instead of compiling");
  cmd->add_option("--layout", out.layout, "Ternary weight layout to compile with (see compile --layout)")
      ->check(CLI::IsMember(kLayoutRequests));
  add_numerics_option(cmd, out.numerics);
  add_kernel_cache_option(cmd, out.kernel_cache);
}

}  // namespace bitnetc::cli
