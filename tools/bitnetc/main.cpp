// bitnetc: the command line. Parsing and messages only; the work lives in compiler/.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>

#include "atomic_file.h"
#include "cpu_features.h"
#include "commands.h"
#include "convert.h"
#include "diagnostics.h"
#include "emit_executable.h"
#include "layouts.h"
#include "model_import.h"
#include "synthetic_model.h"
#include "targets.h"
#include "tokenizer.h"

using namespace bitnetc;

namespace {

int synth(const SyntheticSpec& spec, const std::string& out) {
  make_synthetic_gguf(spec).write(out);
  std::fprintf(stderr, "wrote %s\n", out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bitnetc: an ahead-of-time compiler for ternary (BitNet b1.58) language models"};
  const std::vector<std::string> kLayoutRequests = {"auto", "i2_s", "tl1", "tl2"};  // codegen/layouts.h
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("bitnetc ") + BITNETC_VERSION);

  cli::InspectOptions inspect_opts;
  auto* inspect = app.add_subcommand("inspect", "Show a model's metadata, hyperparameters, tensors and totals");
  inspect->add_option("model", inspect_opts.model, "GGUF file, HF checkpoint folder, or bitllama2.c checkpoint")
      ->required();
  inspect->add_flag("--json", inspect_opts.json, "Print one JSON object");
  inspect->add_flag("--full", inspect_opts.full, "Print metadata arrays in full (tokens, scores, ...)");
  inspect->add_flag("--ir", inspect_opts.ir, "Print the lowered ternary IR (text form)");
  inspect->add_option("--target", inspect_opts.target,
                      "Also show the weight layout each ternary tensor gets on this target, and why");
  inspect->add_option("--layout", inspect_opts.layout, "With --target: the layout request (see compile --layout)")
      ->check(CLI::IsMember(kLayoutRequests));
  inspect->add_option("--act-quant", inspect_opts.act_quant, "Override activation quantization: per-token or per-block")
      ->check(CLI::IsMember({"per-token", "per-block"}));
  inspect->add_option("--numerics", inspect_opts.numerics, cli::kNumericsHelp)
      ->check(CLI::IsMember(cli::kNumericsNames));

  cli::RunOptions run_opts;
  run_opts.sampling.temperature = 0.8f;
  std::string prompt_file;
  auto* run_cmd = app.add_subcommand("run", "Generate with the reference interpreter (slow, exact: the oracle)");
  run_cmd->add_option("model", run_opts.model, "GGUF file, HF checkpoint folder, or bitllama2.c checkpoint")
      ->required();
  run_cmd->add_option("-p,--prompt", run_opts.prompt, "Prompt text");
  run_cmd->add_option("-f,--file", prompt_file, "Read the prompt from a file")->check(CLI::ExistingFile);
  run_cmd->add_option("-n,--n-predict", run_opts.n_predict, "Tokens to generate")->check(CLI::NonNegativeNumber);
  run_cmd->add_option("-c,--ctx-size", run_opts.n_ctx, "Context length (default: the model's)")
      ->check(CLI::PositiveNumber);
  run_cmd->add_option("--temp", run_opts.sampling.temperature, "Temperature (0: greedy)");
  run_cmd->add_option("--top-k", run_opts.sampling.top_k, "Top-k (0: off)");
  run_cmd->add_option("--top-p", run_opts.sampling.top_p, "Top-p (1: off)");
  run_cmd->add_option("--min-p", run_opts.sampling.min_p, "Min-p (0: off)");
  run_cmd->add_option("--repeat-penalty", run_opts.sampling.repeat_penalty, "Repetition penalty (1: off)");
  run_cmd->add_option("-s,--seed", run_opts.sampling.seed, "Sampling seed");
  run_cmd->add_option("--act-quant", run_opts.act_quant, "Override activation quantization: per-token or per-block")
      ->check(CLI::IsMember({"per-token", "per-block"}));
  run_cmd->add_option("--numerics", run_opts.numerics, cli::kNumericsHelp)->check(CLI::IsMember(cli::kNumericsNames));
  run_cmd->add_flag("--chat", run_opts.chat, "Apply the model's chat template to the prompt (one user turn)");
  run_cmd->add_flag("--ignore-eos", run_opts.ignore_eos, "Do not stop at end-of-sequence tokens");
  run_cmd->add_flag("--json", run_opts.json, "Print one JSON object: prompt_tokens, tokens, text");

  std::string convert_in, convert_type, convert_layout = "x86";
  ConvertOptions convert_opts;
  bool convert_quiet = false;
  auto* convert_cmd = app.add_subcommand("convert", "Convert a checkpoint to GGUF, or re-encode a GGUF's weight type");
  convert_cmd->add_option("model", convert_in, "bitllama2.c checkpoint, HF checkpoint folder, or GGUF")->required();
  convert_cmd->add_option("-o,--output", convert_opts.output, "Output .gguf (written atomically)")->required();
  convert_cmd->add_option(
      "--type", convert_type,
      "Weight type: tq2_0 tq1_0 i2_s f32 f16 bf16 (default: tq2_0, or i2_s when rows are not multiples of 256)");
  convert_cmd->add_option("--i2s-layout", convert_layout, "I2_S byte order: x86 or arm")
      ->check(CLI::IsMember({"x86", "arm"}));
  convert_cmd
      ->add_option("--tokenizer", convert_opts.tokenizer,
                   "tokenizer.model, tokenizer.json or GGUF to take the vocabulary from")
      ->check(CLI::ExistingFile);
  convert_cmd->add_flag("-q,--quiet", convert_quiet, "No progress on stderr");

  std::string compile_in, compile_target = "host", compile_act_quant;
  codegen::CompileOptions compile_opts;
  bool compile_quiet = false;
  auto* compile_cmd =
      app.add_subcommand("compile", "Compile a model into one self-contained executable (also: bitnetc MODEL ...)");
  compile_cmd->add_option("model", compile_in, "GGUF file, HF checkpoint folder, or bitllama2.c checkpoint")
      ->required();
  compile_cmd->add_option("--target", compile_target, "Target (bitnetc targets lists them)");
  compile_cmd->add_option("-o,--output", compile_opts.output, "Output executable (written atomically)")->required();
  compile_cmd->add_option("--act-quant", compile_act_quant, "Override activation quantization: per-token or per-block")
      ->check(CLI::IsMember({"per-token", "per-block"}));
  std::string compile_numerics = "auto";
  compile_cmd->add_option("--numerics", compile_numerics, cli::kNumericsHelp)
      ->check(CLI::IsMember(cli::kNumericsNames));
  std::string compile_emit;
  compile_cmd->add_option("--emit", compile_emit, "exe or so (default: so when -o ends in .so)")
      ->check(CLI::IsMember({"exe", "so"}));
  compile_cmd->add_flag("-q,--quiet", compile_quiet, "No progress on stderr");
  std::string compile_weights = "embedded";
  compile_cmd->add_option("--weights", compile_weights,
                          "embedded (default) or external: the weights in OUTPUT.weights beside the output")
      ->check(CLI::IsMember({"embedded", "external"}));
  std::string compile_head = "exact";
  compile_cmd->add_option("--head", compile_head,
                          "exact (default: f16 when every value is a half, else f32) or q8 (int8 + row scales; "
                          "changes numerics, halves the head's bytes)")
      ->check(CLI::IsMember({"exact", "q8"}));
  compile_cmd->add_option("--layout", compile_opts.layout,
                          "Ternary weight layout: auto (default: the measured fastest per target and shape), "
                          "i2_s, tl1 (ARM targets) or tl2 (x86 targets)")
      ->check(CLI::IsMember(kLayoutRequests));
  compile_cmd->add_option("--cuda-source", compile_opts.cuda_source,
                          "CUDA targets: also write the generated CUDA C++ (every kernel of the model) to this file");
  bool compile_verbose = false;
  compile_cmd->add_flag("-v,--verbose", compile_verbose, "Show the plan and every tensor's layout, and why");

  // MODEL, --target, --binary and --layout of the commands that run a compiled output.
  auto add_output_under_test = [&](CLI::App* cmd, cli::OutputUnderTest& out, const std::string& verb) {
    cmd->add_option("model", out.model, "Model to compile and " + verb)->required();
    cmd->add_option("--target", out.target, "Target (must run on this machine)");
    cmd->add_option("--binary", out.binary, "Use this compiled executable instead of compiling");
    cmd->add_option("--layout", out.layout, "Ternary weight layout to compile with (see compile --layout)")
        ->check(CLI::IsMember(kLayoutRequests));
    cmd->add_option("--numerics", out.numerics, cli::kNumericsHelp)->check(CLI::IsMember(cli::kNumericsNames));
  };
  cli::BenchOptions bench_opts;
  auto* bench_cmd = app.add_subcommand("bench", "llama-bench-style figures of a compiled model (pp/tg t/s, roofline)");
  add_output_under_test(bench_cmd, bench_opts.output, "measure");
  bench_cmd->add_option("-p,--n-prompt", bench_opts.prompt_sizes, "Prefill sizes, comma-separated (default 128,512)");
  bench_cmd->add_option("-n,--n-gen", bench_opts.n_gen, "Generated tokens of the tg test (default 128)")
      ->check(CLI::NonNegativeNumber);
  bench_cmd->add_option("-r,--repetitions", bench_opts.repetitions, "Repetitions of each test (default 3)")
      ->check(CLI::PositiveNumber);
  bench_cmd->add_option("-t,--threads", bench_opts.threads, "Threads (default: every core)")
      ->check(CLI::PositiveNumber);
  std::string bench_head = "exact";
  bench_cmd->add_option("--head", bench_head, "Compile the head exact (default) or q8 (see compile --head)")
      ->check(CLI::IsMember({"exact", "q8"}));
  bench_cmd->add_flag("--json", bench_opts.json, "One JSON object instead of the table");
  bench_cmd->add_flag("-q,--quiet", bench_opts.quiet, "No progress on stderr");

  cli::VerifyOptions verify_opts;
  auto* verify_cmd = app.add_subcommand("verify", "Compare a compiled model's greedy tokens and logits with the interpreter");
  add_output_under_test(verify_cmd, verify_opts.output, "check");
  verify_cmd->add_option("--prompts", verify_opts.prompts_file, "File of prompts, one per line");
  verify_cmd->add_option("-n,--n-predict", verify_opts.n_predict, "Tokens to generate per prompt (default 32)")
      ->check(CLI::PositiveNumber);
  verify_cmd->add_option("--tolerance", verify_opts.tolerance, "Largest allowed |difference| of a top logit")
      ->check(CLI::NonNegativeNumber);
  verify_cmd->add_flag("-q,--quiet", verify_opts.quiet, "No progress on stderr");

  auto* targets_cmd = app.add_subcommand("targets", "List the compilation targets (and what `host` is here)");

  SyntheticSpec spec;
  std::string synth_out, weight_type = "tq2_0", embd_type = "f32", i2s_layout = "x86", shape;
  auto* synth_cmd = app.add_subcommand("synth", "Write a seeded synthetic BitNet GGUF (for tests and benchmarks)");
  synth_cmd->add_option("-o,--output", synth_out, "Output .gguf")->required();
  synth_cmd->add_option("--arch", spec.arch, "bitnet or bitnet-b1.58")
      ->check(CLI::IsMember({"bitnet", "bitnet-b1.58"}));
  synth_cmd->add_option("--type", weight_type, "Weight type: tq1_0 tq2_0 i2_s tl1 tl2 q8_0 f16 bf16 f32");
  synth_cmd->add_option("--embd-type", embd_type, "Embedding type: f32 f16 bf16");
  synth_cmd->add_option("--i2s-layout", i2s_layout, "I2_S byte order: x86 or arm")
      ->check(CLI::IsMember({"x86", "arm"}));
  synth_cmd->add_option("--shape", shape, "Preset shape: 2b4t (BitNet b1.58 2B4T) or tiny")
      ->check(CLI::IsMember({"2b4t", "tiny"}));
  synth_cmd->add_option("--vocab", spec.n_vocab, "Vocabulary size");
  synth_cmd->add_option("--embd", spec.n_embd, "Embedding width");
  synth_cmd->add_option("--ff", spec.n_ff, "FFN width");
  synth_cmd->add_option("--layers", spec.n_layer, "Number of blocks");
  synth_cmd->add_option("--heads", spec.n_head, "Attention heads");
  synth_cmd->add_option("--kv-heads", spec.n_head_kv, "KV heads");
  synth_cmd->add_option("--ctx", spec.n_ctx, "Context length");
  synth_cmd->add_option("--seed", spec.seed, "Seed");
  synth_cmd->add_flag("--block-scales", spec.block_scales,
                      "TQ1_0/TQ2_0: a different scale per 256-weight block, as llama.cpp's quantizer writes");

  // `bitnetc MODEL --target=T -o OUT` is `bitnetc compile MODEL ...` (DESIGN.md).
  std::vector<std::string> args(argv + 1, argv + argc);
  bool is_command = false;
  for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
    is_command |= !args.empty() && sub->get_name() == args[0];
  if (!args.empty() && args[0][0] != '-' && !is_command) args.insert(args.begin(), "compile");
  std::reverse(args.begin(), args.end());  // CLI11 takes the arguments reversed

  install_interrupt_cleanup();
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    if (*inspect) return cli::inspect(inspect_opts);
    if (*run_cmd) {
      if (!prompt_file.empty()) {
        std::ifstream in(prompt_file, std::ios::binary);
        run_opts.prompt.assign(std::istreambuf_iterator<char>(in), {});
      }
      return cli::run(run_opts);
    }
    if (*convert_cmd) {
      if (!convert_type.empty()) {
        const auto t = type_from_name(convert_type);
        if (!t) throw std::invalid_argument("unknown weight type \"" + convert_type + "\"");
        convert_opts.type = *t;
      }
      convert_opts.i2s_layout = convert_layout == "arm" ? I2SLayout::Arm : I2SLayout::X86;
      const auto start = std::chrono::steady_clock::now();
      if (!convert_quiet)
        convert_opts.progress = [&](const std::string& step) {
          const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
          std::fprintf(stderr, "[%6.2fs] %s\n", s, step.c_str());
        };
      convert_to_gguf(import_model(convert_in), convert_opts);
      return 0;
    }
    if (*compile_cmd) {
      const TargetInfo* t = find_target(compile_target);
      if (!t) throw std::invalid_argument("unknown target \"" + compile_target + "\" (bitnetc targets lists them)");
      compile_opts.lower = cli::lower_options(compile_act_quant, compile_numerics);
      const auto start = std::chrono::steady_clock::now();
      if (!compile_quiet)
        compile_opts.progress = [&](const std::string& step) {
          const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
          std::fprintf(stderr, "[%6.2fs] %s\n", s, step.c_str());
        };
      compile_opts.external_weights = compile_weights == "external";
      compile_opts.head_q8 = compile_head == "q8";
      if (compile_opts.head_q8 && !compile_quiet)
        std::fprintf(stderr, "note: --head=q8 quantizes the head to int8: logits differ from the reference\n");
      if (compile_verbose) compile_opts.explain = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
      const bool so_suffix = compile_opts.output.size() > 3 && compile_opts.output.ends_with(".so");
      compile_opts.emit = compile_emit == "so" || (compile_emit.empty() && so_suffix) ? codegen::EmitKind::SharedObject
                                                                                      : codegen::EmitKind::Executable;
      codegen::compile_executable(import_model(compile_in), *t, compile_opts);
      if (!compile_quiet) std::fprintf(stderr, "wrote %s (target %s)\n", compile_opts.output.c_str(), t->name.c_str());
      return 0;
    }
    if (*bench_cmd) {
      bench_opts.head_q8 = bench_head == "q8";
      return cli::bench(bench_opts);
    }
    if (*verify_cmd) return cli::verify(verify_opts);
    if (*targets_cmd) {
      std::printf("%-21s %-7s %-9s %-15s %s\n", "target", "vector", "layouts", "cpu", "Halide target");
      for (const auto& t : targets()) {
        const bool gpu = t.backend == Backend::Cuda;
        std::string layouts;
        for (auto l : t.layouts) layouts += (layouts.empty() ? "" : ",") + std::string(codegen::layout_label(l));
        const std::string here = runs_on_this_cpu(t) ? "runs natively"
                                 : runs_natively(t)  ? "runs natively on a CPU with " +
                                                          rt::describe_cpu_features(t.cpu_features)
                                 : gpu               ? "runs with an NVIDIA GPU of this SM or newer and its driver"
                                 : t.emulator.empty() ? "no way to run it on this machine"
                                                      : "runs under " + t.emulator;
        std::printf("%-21s %-7s %-9s %-15s %s\n    %s; here: %s\n", t.name.c_str(),
                    gpu ? "gpu" : std::to_string(t.vector_bytes * 8).c_str(), layouts.c_str(),
                    gpu ? t.cuda_sm.c_str() : t.llc_cpu.c_str(), gpu ? "(NVRTC)" : t.halide.c_str(),
                    t.description.c_str(), here.c_str());
      }
      std::printf("host                  = %s on this machine\n", host_target().name.c_str());
      return 0;
    }
    if (*synth_cmd) {
      // A preset fills the dimensions the command line does not give (--layers 4 wins).
      auto preset = [&](const char* flag, auto& field, auto value) {
        if (synth_cmd->count(flag) == 0) field = value;
      };
      auto apply = [&](int64_t vocab, int64_t embd, int64_t ff, int64_t layers, int64_t heads, int64_t kv_heads,
                       int64_t ctx) {
        preset("--vocab", spec.n_vocab, vocab);
        preset("--embd", spec.n_embd, embd);
        preset("--ff", spec.n_ff, ff);
        preset("--layers", spec.n_layer, layers);
        preset("--heads", spec.n_head, heads);
        preset("--kv-heads", spec.n_head_kv, kv_heads);
        preset("--ctx", spec.n_ctx, ctx);
      };
      if (shape == "2b4t") {  // BitNet b1.58 2B4T's shape (the benchmark model of DESIGN.md)
        apply(128256, 2560, 6912, 30, 20, 5, 4096);
        spec.rope_theta = 500000.0;
      } else if (shape == "tiny") {
        apply(320, 256, 512, 1, 4, 2, 64);
      }
      const auto wt = type_from_name(weight_type);
      if (!wt) throw std::invalid_argument("unknown weight type \"" + weight_type + "\"");
      spec.weight_type = *wt;
      const auto et = type_from_name(embd_type);
      if (!et) throw std::invalid_argument("unknown embedding type \"" + embd_type + "\"");
      spec.embd_type = *et;
      spec.i2s_layout = i2s_layout == "arm" ? I2SLayout::Arm : I2SLayout::X86;
      return synth(spec, synth_out);
    }
  } catch (const rt::TokenizerError& e) {
    std::fprintf(stderr, "bitnetc: error: prompt: %s\n", e.what());
    return 1;
  } catch (const ImportError& e) {
    std::fprintf(stderr, "bitnetc: error: %s\n", e.what());
    return 1;
  } catch (const OutputError& e) {
    std::fprintf(stderr, "bitnetc: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bitnetc: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
