// `bitnetc verify MODEL --target=T [--prompts FILE] [-n N]`: is the compiled output
// correct? Compiles the model (or takes --binary), then for every prompt generates
// greedily with the output (a child process, `--json --top-logits K`) and with the
// reference interpreter, and compares the tokens and the top logits step by step.
// Prints a table and a verdict; exits non-zero on a mismatch, naming the first
// differing position.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "generate.h"
#include "input_file.h"
#include "interpreter.h"
#include "lower.h"
#include "model_import.h"
#include "process.h"
#include "tokenizer_import.h"

namespace bitnetc::cli {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr int kTopLogits = 5;

const std::vector<std::string>& default_prompts() {
  static const std::vector<std::string> p = {"Once upon a time", "The little dog", "Hello, my name is",
                                             "One day, a girl named Lily found a"};
  return p;
}

std::vector<std::string> read_prompts(const std::string& path) {
  std::istringstream in(rt::read_input_file("--prompts", path));
  std::vector<std::string> prompts;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) prompts.push_back(line);
  if (prompts.empty()) throw std::runtime_error(path + ": no prompts (one per line)");
  return prompts;
}

struct Reference {
  std::vector<int32_t> tokens;
  std::vector<std::vector<std::pair<int32_t, float>>> top;  // per generated step
};

}  // namespace

int verify(const VerifyOptions& o) {
  const std::vector<std::string> prompts = o.prompts_file.empty() ? default_prompts() : read_prompts(o.prompts_file);
  auto say = [&](const std::string& s) {
    if (!o.quiet) std::fprintf(stderr, "verify: %s\n", s.c_str());
  };
  const ImportedModel m = import_model(o.output.model);

  const PreparedOutput prepared = prepare_output(o.output, "verify", false, say, &m);
  const std::string& binary = prepared.binary;

  // The reference: the interpreter over the same lowered graph, greedy.
  const ir::Graph g = lower(m, lower_options("", o.output.numerics));
  const rt::Tokenizer tok(load_vocab(m));
  ir::Interpreter interp(g);
  auto reference = [&](const std::string& prompt) {
    Reference ref;
    rt::GenerateOptions go;
    go.n_predict = o.n_predict;
    go.n_ctx = g.n_ctx;
    go.sampling.temperature = 0;
    go.stop_tokens = stop_tokens(m, tok.vocab());
    go.parse_special = true;
    go.on_logits = [&](std::span<const float> logits) { ref.top.push_back(rt::top_logits(logits, kTopLogits)); };
    auto forward = [&](std::span<const int32_t> tokens, int32_t pos) -> std::span<const float> {
      std::span<const float> logits;
      for (int32_t t : tokens) logits = interp.forward(t, pos++);
      return logits;
    };
    interp.reset();
    ref.tokens = rt::generate(tok, forward, prompt, go).tokens;
    return ref;
  };

  bool ok = true;
  double worst = 0;
  std::string where = prepared.target_name.rfind("cuda-", 0) == 0 ? "on this machine's GPU" : "natively";
  for (const auto& w : prepared.runner) where = (where.starts_with("under ") ? where + " " : "under ") + w;
  std::printf("model %s, target %s (run %s), %d tokens per prompt, tolerance %g on the top-%d logits\n\n",
              o.output.model.c_str(), prepared.target_name.c_str(), where.c_str(), o.n_predict, o.tolerance,
              kTopLogits);
  std::printf("| %-36s | %-9s | %-12s | %s\n", "prompt", "tokens", "max |dlogit|", "verdict");
  std::printf("| %-36s | %-9s | %-12s | %s\n", std::string(36, '-').c_str(), "---------", "------------", "-------");
  for (const std::string& prompt : prompts) {
    say("prompt \"" + prompt + "\"");
    const Reference ref = reference(prompt);
    const ProcessResult r = run_process(prepared.command({"--json", "--temp", "0", "-n", std::to_string(o.n_predict),
                                                          "--top-logits", std::to_string(kTopLogits), "-p", prompt}));
    if (r.exit_code != 0)
      throw std::runtime_error(binary + " failed on prompt \"" + prompt + "\" (exit " + std::to_string(r.exit_code) +
                               "): " + r.err);
    const json out = json::parse(r.out);
    const auto tokens = out.at("tokens").get<std::vector<int32_t>>();
    const auto& top = out.at("top_logits");
    size_t same = 0;
    while (same < tokens.size() && same < ref.tokens.size() && tokens[same] == ref.tokens[same]) ++same;
    double max_d = 0;
    for (size_t step = 0; step < std::min(top.size(), ref.top.size()); ++step)
      for (const auto& [id, want] : ref.top[step])
        for (const auto& pair : top[step])
          if (pair.at(0).get<int32_t>() == id) max_d = std::max(max_d, std::fabs(pair.at(1).get<double>() - want));
    const bool tokens_ok = same == tokens.size() && same == ref.tokens.size();
    const bool pass = tokens_ok && max_d <= o.tolerance;
    worst = std::max(worst, max_d);
    ok &= pass;
    std::string shown = prompt.size() > 36 ? prompt.substr(0, 33) + "..." : prompt;
    char counts[32];
    std::snprintf(counts, sizeof counts, "%zu/%zu", same, ref.tokens.size());
    std::string verdict = pass ? "ok" : "MISMATCH";
    if (!tokens_ok)
      verdict += ": first differing token at generated position " + std::to_string(same) + " (output " +
                 (same < tokens.size() ? std::to_string(tokens[same]) : std::string("<end>")) + ", reference " +
                 (same < ref.tokens.size() ? std::to_string(ref.tokens[same]) : std::string("<end>")) + ")";
    else if (!pass)
      verdict += ": logits differ by more than the tolerance";
    std::printf("| %-36s | %-9s | %-12.3g | %s\n", shown.c_str(), counts, max_d, verdict.c_str());
  }
  std::printf("\n%s: %zu prompts, max |dlogit| %.3g\n", ok ? "PASS" : "FAIL", prompts.size(), worst);
  return ok ? 0 : 1;
}

Command add_verify(CLI::App& app) {
  auto o = std::make_shared<VerifyOptions>();
  CLI::App* cmd = app.add_subcommand("verify", "Compare a compiled model's greedy tokens and logits with the interpreter");
  add_output_under_test(cmd, o->output, "check");
  cmd->add_option("--prompts", o->prompts_file, "File of prompts, one per line");
  cmd->add_option("-n,--n-predict", o->n_predict, "Tokens to generate per prompt (default 32)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--tolerance", o->tolerance, "Largest allowed |difference| of a top logit")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("-q,--quiet", o->quiet, "No progress on stderr");
  return {cmd, [o] { return verify(*o); }};
}

}  // namespace bitnetc::cli
