// bitnetc: the command line. Each command registers its own subcommand and options
// (commands.h); main only dispatches and turns errors into messages and exit codes.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>

#include "atomic_file.h"
#include "commands.h"
#include "diagnostics.h"
#include "runtime_folder.h"
#include "tokenizer.h"

using namespace bitnetc;

int main(int argc, char** argv) {
  CLI::App app{"bitnetc: an ahead-of-time compiler for ternary (BitNet b1.58) language models"};
  app.require_subcommand(1);
  // The version, and where this bitnetc takes the runtime it links outputs with.
  app.set_version_flag("--version", [] {
    std::string runtime;
    try {
      runtime = codegen::runtime_folder().string();
    } catch (const std::exception& e) {
      runtime = std::string("missing: ") + e.what();
    }
    return std::string("bitnetc ") + BITNETC_VERSION + "\nruntime: " + runtime;
  });
  const std::vector<cli::Command> commands = {cli::add_inspect(app), cli::add_run(app),    cli::add_convert(app),
                                              cli::add_compile(app), cli::add_bench(app),  cli::add_verify(app),
                                              cli::add_targets(app), cli::add_synth(app)};

  // `bitnetc MODEL --target=T -o OUT` is `bitnetc compile MODEL ...` (DESIGN.md).
  std::vector<std::string> args(argv + 1, argv + argc);
  bool is_command = false;
  for (const cli::Command& c : commands) is_command |= !args.empty() && c.app->get_name() == args[0];
  if (!args.empty() && args[0][0] != '-' && !is_command) args.insert(args.begin(), "compile");
  std::reverse(args.begin(), args.end());  // CLI11 takes the arguments reversed

  install_interrupt_cleanup();
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every usage error exits 2 (as the outputs do), whatever
    // CLI11's own code for its kind of error.
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    for (const cli::Command& c : commands)
      if (*c.app) return c.run();
  } catch (const rt::TokenizerError& e) {
    std::fprintf(stderr, "bitnetc: error: prompt: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {  // ImportError and OutputError name the file themselves
    std::fprintf(stderr, "bitnetc: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
