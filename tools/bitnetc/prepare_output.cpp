// The compiled output that bench and verify run (commands.h: prepare_output).
#include <chrono>

#include "atomic_file.h"
#include "commands.h"
#include "emit_executable.h"
#include "model_import.h"

namespace bitnetc::cli {

PreparedOutput prepare_output(const OutputUnderTest& o, const std::string& command, bool head_q8,
                              const std::function<void(const std::string&)>& say, const ImportedModel* imported) {
  PreparedOutput p;
  if (!o.binary.empty()) {
    p.binary = o.binary;
    p.target_name = "(given binary)";
    return p;
  }
  const TargetInfo* t = find_target(o.target);
  if (!t) throw std::invalid_argument("unknown target \"" + o.target + "\" (bitnetc targets lists them)");
  if (t->arch != TargetArch::X86_64)
    throw std::invalid_argument(command + ": target " + t->name +
                                " cannot run on this machine, and no emulator for it is wired up yet");
  auto scratch = std::make_shared<ScratchFolder>("bitnetc-" + command);
  p.binary = scratch->file("model");
  p.target_name = t->name;
  p.scratch = scratch;
  say("compiling " + o.model + " for " + t->name);
  const auto t0 = std::chrono::steady_clock::now();
  codegen::CompileOptions co;
  co.output = p.binary;
  co.head_q8 = head_q8;
  if (imported)
    codegen::compile_executable(*imported, *t, co);
  else
    codegen::compile_executable(import_model(o.model), *t, co);
  p.compile_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return p;
}

}  // namespace bitnetc::cli
