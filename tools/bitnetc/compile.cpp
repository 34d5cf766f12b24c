// `bitnetc compile MODEL --target=T -o OUT` (also `bitnetc MODEL ...`): one
// self-contained executable or shared object (codegen/emit_executable.h).
#include <chrono>
#include <cstdio>
#include <memory>

#include "atomic_file.h"
#include "commands.h"
#include "emit_executable.h"
#include "targets.h"

namespace bitnetc::cli {

std::function<void(const std::string&)> progress_printer() {
  const auto start = std::chrono::steady_clock::now();
  return [start](const std::string& step) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "[%6.2fs] %s\n", s, step.c_str());
  };
}

namespace {

struct CompileFlags {
  std::string model, target = "host", act_quant, numerics = "auto", emit, weights = "embedded", head = "exact";
  bool quiet = false, verbose = false;
  codegen::CompileOptions options;
};

int compile(CompileFlags& f) {
  const TargetInfo* t = find_target(f.target);
  if (!t) throw std::invalid_argument("unknown target \"" + f.target + "\" (bitnetc targets lists them)");
  codegen::CompileOptions& o = f.options;
  o.lower = lower_options(f.act_quant, f.numerics);
  if (!f.quiet) o.progress = progress_printer();
  o.external_weights = f.weights == "external";
  o.head_q8 = f.head == "q8";
  if (o.head_q8 && !f.quiet)
    std::fprintf(stderr, "note: --head=q8 quantizes the head to int8: logits differ from the reference\n");
  if (f.verbose) o.explain = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
  const bool so_suffix = o.output.size() > 3 && o.output.ends_with(".so");
  o.emit =
      f.emit == "so" || (f.emit.empty() && so_suffix) ? codegen::EmitKind::SharedObject : codegen::EmitKind::Executable;
  codegen::check_wasm_output_name(*t, o.output, o.emit);
  check_output_path(o.output);  // before minutes of lowering, not after
  codegen::compile_executable(import_model(f.model), *t, o);
  if (!f.quiet) std::fprintf(stderr, "wrote %s (target %s)\n", o.output.c_str(), t->name.c_str());
  return 0;
}

}  // namespace

void add_kernel_cache_option(CLI::App* cmd, std::string& kernel_cache) {
  cmd->add_option("--kernel-cache", kernel_cache,
                  "Folder of compiled kernel objects kept between compiles, or off (default: $BITNETC_KERNEL_CACHE, "
                  "else $XDG_CACHE_HOME/bitnetc/kernels or ~/.cache/bitnetc/kernels)");
}

Command add_compile(CLI::App& app) {
  auto f = std::make_shared<CompileFlags>();
  CLI::App* cmd =
      app.add_subcommand("compile", "Compile a model into one self-contained executable (also: bitnetc MODEL ...)");
  cmd->add_option("model", f->model, "GGUF file, HF checkpoint folder, or bitllama2.c checkpoint")->required();
  cmd->add_option("--target", f->target, "Target (bitnetc targets lists them)");
  cmd->add_option("-o,--output", f->options.output, "Output executable (written atomically)")->required();
  add_act_quant_option(cmd, f->act_quant);
  add_numerics_option(cmd, f->numerics);
  cmd->add_option("--emit", f->emit, "exe or so (default: so when -o ends in .so)")
      ->check(CLI::IsMember({"exe", "so"}));
  cmd->add_flag("-q,--quiet", f->quiet, "No progress on stderr");
  cmd->add_option("--weights", f->weights,
                  "embedded (default) or external: the weights in OUTPUT.weights beside the output")
      ->check(CLI::IsMember({"embedded", "external"}));
  cmd->add_option("--head", f->head,
                  "exact (default: f16 when every value is a half, else f32) or q8 (int8 + row scales; "
                  "changes numerics, halves the head's bytes)")
      ->check(CLI::IsMember({"exact", "q8"}));
  cmd->add_option("--layout", f->options.layout,
                  "Ternary weight layout: auto (default: the measured fastest per target and shape, else the target's "
                  "preferred), "
                  "i2_s, tl1 (ARM and wasm32-simd targets) or tl2 (x86 targets)")
      ->check(CLI::IsMember(kLayoutRequests));
  cmd->add_option("--cuda-source", f->options.cuda_source,
                  "CUDA targets: also write the generated CUDA C++ (every kernel of the model) to this file");
  cmd->add_option("--runtime", f->options.runtime,
                  "default, or asan / tsan: link the runtime built with AddressSanitizer+UBSan or ThreadSanitizer, "
                  "to check a program that uses the output with the same sanitizer (x86-64 targets, this build's)")
      ->check(CLI::IsMember({"default", "asan", "tsan"}));
  add_kernel_cache_option(cmd, f->options.kernel_cache);
  cmd->add_flag("-v,--verbose", f->verbose, "Show the plan and every tensor's layout, and why");
  return {cmd, [f] { return compile(*f); }};
}

}  // namespace bitnetc::cli
