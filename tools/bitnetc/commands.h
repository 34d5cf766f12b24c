// The bitnetc subcommands. Each command's file registers its subcommand and options on
// the CLI11 app (add_*) and returns what runs it; main.cpp only dispatches. The work
// itself takes plain option structs (inspect(), run(), ...), so tests and other
// commands can call it without a command line.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lower.h"
#include "model_import.h"
#include "sampler.h"

namespace bitnetc::cli {

// A subcommand: its CLI11 definition, and what runs it once the command line is parsed
// (the exit status).
struct Command {
  CLI::App* app;
  std::function<int()> run;
};
Command add_inspect(CLI::App& app);
Command add_run(CLI::App& app);
Command add_convert(CLI::App& app);
Command add_compile(CLI::App& app);  // also `bitnetc MODEL ...` (main.cpp)
Command add_bench(CLI::App& app);
Command add_verify(CLI::App& app);
Command add_targets(CLI::App& app);
Command add_synth(CLI::App& app);

// Options several commands share.
inline const std::vector<std::string> kLayoutRequests = {"auto", "i2_s", "tl1", "tl2"};  // codegen/layouts.h
void add_act_quant_option(CLI::App* cmd, std::string& act_quant);
void add_numerics_option(CLI::App* cmd, std::string& numerics);
// --kernel-cache DIR|off of the commands that compile (codegen/kernel_cache.h).
void add_kernel_cache_option(CLI::App* cmd, std::string& kernel_cache);
// A number that must be finite and within [lo, hi] ((lo, hi] when lo_open): CLI11's Range
// lets NaN through, since every comparison with NaN is false.
CLI::Validator finite_in(double lo, double hi, bool lo_open = false);
// Prints "[  0.00s] step" lines on stderr from now on (the compile and convert progress).
std::function<void(const std::string&)> progress_printer();

// --act-quant ("", "per-token", "per-block") and --numerics ("auto", "llama.cpp", ...) as
// lowering options; main.cpp has checked both against their choices.
LowerOptions lower_options(const std::string& act_quant, const std::string& numerics);
inline const std::vector<std::string> kNumericsNames = {"auto",         "llama.cpp",    "bitnet.cpp",
                                                        "ik_llama.cpp", "transformers", "bitllama2c"};
inline constexpr const char* kNumericsHelp =
    "Whose arithmetic to compute with: auto (default: the weight type's home engine, or the numerics the file "
    "records), llama.cpp, bitnet.cpp, ik_llama.cpp, transformers or bitllama2c";

struct InspectOptions {
  std::string model;
  bool json = false;
  bool full = false;  // print whole metadata arrays (tokens, scores, ...)
  bool ir = false;    // print the lowered IR's text form instead
  std::string act_quant;
  std::string numerics = "auto";
  std::string target;           // also print the layout plan for this target
  std::string layout = "auto";  // the layout request for that plan
};
int inspect(const InspectOptions& o);

struct RunOptions {
  std::string model;
  std::string prompt;
  int32_t n_predict = 64;
  int64_t n_ctx = 0;      // 0: the model's
  std::string act_quant;  // "", "per-token", "per-block"
  std::string numerics = "auto";
  rt::SamplerParams sampling;
  bool ignore_eos = false;
  bool chat = false;  // wrap the prompt as one user turn of the model's chat template
  bool json = false;
};
int run(const RunOptions& o);

// What bench and verify run: MODEL compiled for --target into a scratch folder, or a
// given --binary.
struct OutputUnderTest {
  std::string model;
  std::string target = "host";
  std::string binary;  // a compiled output to use instead of compiling
  std::string layout = "auto";  // --layout of the compile
  std::string numerics = "auto";  // --numerics of the compile (and of verify's reference)
  std::string kernel_cache;       // --kernel-cache of the compile
};

struct BenchOptions {
  OutputUnderTest output;
  std::string prompt_sizes = "128,512";  // pp tests
  int n_gen = 128;                       // the tg test (0: none)
  int repetitions = 3;
  int depth = 0;    // tokens already in the cache before each test (llama-bench's -d)
  int threads = 0;  // 0: every core
  bool head_q8 = false;  // compile with --head=q8
  bool json = false;
  bool quiet = false;
};
int bench(const BenchOptions& o);
// MODEL, --target, --binary, --layout and --numerics of the commands that run a compiled output.
void add_output_under_test(CLI::App* cmd, OutputUnderTest& out, const std::string& verb);

struct VerifyOptions {
  OutputUnderTest output;
  std::string prompts_file;  // one prompt per line; default: a built-in set
  int n_predict = 32;
  double tolerance = 1e-4;  // on the top logits (the kernels are bit-exact by design)
  bool quiet = false;
};
int verify(const VerifyOptions& o);

// The compiled output of `o`, ready to run here: compiled now (into a scratch folder
// kept alive by the result) unless o.binary names one. `imported`, when given, is
// o.model already imported (so a caller that needs it too reads the file once).
struct PreparedOutput {
  std::string binary;
  std::string target_name;
  // The command line prefix that runs `binary` here: empty when it is native code, else
  // the target's emulator (qemu-aarch64 with the target's CPU) or, for WebAssembly, node.
  std::vector<std::string> runner;
  // Under an emulator (qemu); node runs a WebAssembly output at the engine's own speed.
  bool emulated() const { return !runner.empty() && runner.front() != "node"; }
  // argv to run the output with `args`.
  std::vector<std::string> command(const std::vector<std::string>& args) const;
  double compile_s = 0;
  std::shared_ptr<void> scratch;  // keeps the scratch folder alive
};
PreparedOutput prepare_output(const OutputUnderTest& o, const std::string& command, bool head_q8,
                              const std::function<void(const std::string&)>& say,
                              const ImportedModel* imported = nullptr);

}  // namespace bitnetc::cli
