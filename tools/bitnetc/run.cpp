// `bitnetc run MODEL -p PROMPT -n N [...] [--json]`: generation with the reference
// interpreter (slow and exact), the oracle users compare compiled outputs against.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "generate.h"
#include "input_file.h"
#include "interpreter.h"
#include "lower.h"
#include "tokenizer_import.h"

namespace bitnetc::cli {

LowerOptions lower_options(const std::string& act_quant, const std::string& numerics) {
  LowerOptions lo;
  if (act_quant == "per-token") lo.act_quant = ActQuantGranularity::PerToken;
  if (act_quant == "per-block") lo.act_quant = ActQuantGranularity::PerBlock;
  const auto n = numerics_from_name(numerics);
  if (!n) throw std::invalid_argument("--numerics: unknown numerics \"" + numerics + "\"");
  lo.numerics = *n;
  return lo;
}

int run(const RunOptions& o) {
  const ImportedModel m = import_model(o.model);
  LowerOptions lo = lower_options(o.act_quant, o.numerics);
  lo.n_ctx = o.n_ctx;
  const ir::Graph g = lower(m, lo);
  const rt::Tokenizer tok(load_vocab(m));
  if (tok.n_tokens() > g.n_vocab)
    throw std::runtime_error("the tokenizer has " + std::to_string(tok.n_tokens()) + " tokens but the model only " +
                             std::to_string(g.n_vocab));
  ir::Interpreter interp(g);

  rt::GenerateOptions go;
  go.n_predict = o.n_predict;
  go.n_ctx = g.n_ctx;
  go.sampling = o.sampling;
  go.stop_tokens = o.ignore_eos ? std::vector<int32_t>{} : stop_tokens(m, tok.vocab());
  go.parse_special = true;
  if (o.n_predict > g.n_ctx)
    std::fprintf(stderr, "bitnetc: note: -n %d is more than the context (%lld); generation stops when it is full\n",
                 o.n_predict, static_cast<long long>(g.n_ctx));

  auto forward = [&](std::span<const int32_t> tokens, int32_t pos) -> std::span<const float> {
    std::span<const float> logits;
    for (int32_t t : tokens) logits = interp.forward(t, pos++);
    return logits;
  };
  std::function<bool(std::string_view)> stream = [&](std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return true;
  };
  std::string prompt = o.prompt;
  if (o.chat) {
    if (tok.vocab().chat_template == rt::ChatTemplate::None)
      throw std::runtime_error(
          "--chat: the model has no chat template bitnetc recognises (bitnet-2b4t, llama3, llama2, chatml, phi3)");
    prompt = rt::apply_chat_template(tok.vocab().chat_template, {{"user", o.prompt}}, true);
  }
  if (!o.json) stream(prompt);  // as llama.cpp's CLI: the prompt, then the continuation
  const rt::Generation gen =
      rt::generate(tok, forward, prompt, go, o.json ? std::function<bool(std::string_view)>() : stream);
  if (o.json) {
    nlohmann::json j = {{"prompt_tokens", gen.prompt_tokens}, {"tokens", gen.tokens}, {"text", gen.text}};
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    std::printf("\n");
  }
  return 0;
}

CLI::Validator finite_in(double lo, double hi, bool lo_open) {
  const std::string range = (lo_open ? "(" : "[") + CLI::detail::to_string(lo) + ", " + CLI::detail::to_string(hi) + "]";
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        errno = 0;
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size() || errno == ERANGE)
          return "\"" + text + "\" is not a number";
        if (!std::isfinite(v) || (lo_open ? v <= lo : v < lo) || v > hi)
          return "\"" + text + "\" is not a finite number in " + range;
        return "";
      },
      "FLOAT in " + range);
}

void add_act_quant_option(CLI::App* cmd, std::string& act_quant) {
  cmd->add_option("--act-quant", act_quant, "Override activation quantization: per-token or per-block")
      ->check(CLI::IsMember({"per-token", "per-block"}));
}

void add_numerics_option(CLI::App* cmd, std::string& numerics) {
  cmd->add_option("--numerics", numerics, kNumericsHelp)->check(CLI::IsMember(kNumericsNames));
}

Command add_run(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  auto prompt_file = std::make_shared<std::string>();
  o->sampling.temperature = 0.8f;
  CLI::App* cmd = app.add_subcommand("run", "Generate with the reference interpreter (slow, exact: the oracle)");
  cmd->add_option("model", o->model, "GGUF file, HF checkpoint folder, or bitllama2.c checkpoint")->required();
  cmd->add_option("-p,--prompt", o->prompt, "Prompt text");
  cmd->add_option("-f,--file", *prompt_file, "Read the prompt from a file (at most 16 MiB; - for stdin)");
  cmd->add_option("-n,--n-predict", o->n_predict, "Tokens to generate")->check(CLI::NonNegativeNumber);
  cmd->add_option("-c,--ctx-size", o->n_ctx, "Context length (default: the model's)")->check(CLI::PositiveNumber);
  cmd->add_option("--temp", o->sampling.temperature, "Temperature (0: greedy)")->check(finite_in(-1e6, 1e6));
  cmd->add_option("--top-k", o->sampling.top_k, "Top-k (0: off)");
  cmd->add_option("--top-p", o->sampling.top_p, "Top-p (1: off)")->check(finite_in(0, 1));
  cmd->add_option("--min-p", o->sampling.min_p, "Min-p (0: off)")->check(finite_in(0, 1));
  cmd->add_option("--repeat-penalty", o->sampling.repeat_penalty, "Repetition penalty (1: off)")
      ->check(finite_in(0, 100, /*lo_open=*/true));
  cmd->add_option("-s,--seed", o->sampling.seed, "Sampling seed");
  add_act_quant_option(cmd, o->act_quant);
  add_numerics_option(cmd, o->numerics);
  cmd->add_flag("--chat", o->chat, "Apply the model's chat template to the prompt (one user turn)");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Do not stop at end-of-sequence tokens");
  cmd->add_flag("--json", o->json, "Print one JSON object: prompt_tokens, tokens, text");
  return {cmd, [o, prompt_file] {
            if (!prompt_file->empty()) o->prompt = rt::read_input_file("-f", *prompt_file);
            return run(*o);
          }};
}

}  // namespace bitnetc::cli
