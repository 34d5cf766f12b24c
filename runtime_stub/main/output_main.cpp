// `main` of every compiled executable: reads the embedded model, runs the step list with
// the generated kernels, and generates text with llama.cpp-style flags.
//
// The model itself is rt::CompiledModel (compiled_model.h).
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "HalideRuntime.h"
#include "chat.h"
#include "compiled_model.h"
#include "input_file.h"
#include "json_text.h"
#include "output_args.h"
#include "platform.h"
#include "server.h"
#include "thread_pool.h"

#if !BITNETC_WASM
#include <csignal>
#include <thread>
#endif

using namespace bitnetc;
using rt::ids_json;
using rt::json_escape;

extern "C" const char bitnetc_target_name[];  // codegen/cpu_kernels.cpp writes it

namespace {

// -h / --help: every flag with its default.
void print_help(const char* argv0) {
  std::printf(
      "usage: %s [options]   (a model compiled by bitnetc for %s)\n\n"
      "  -p, --prompt TEXT        prompt (default: empty: BOS only)\n"
      "  -f, --file FILE          read the prompt from FILE (- : stdin; a regular file of at most 16 MiB)\n"
      "  -n, --n-predict N        tokens to generate at most (default 64; -1: until the context is full)\n"
      "  -c, --ctx-size N         context length, at most the model's (default 0: the model's)\n"
      "  -t, --threads N          CPU threads (default: every core)\n"
      "      --temp T             temperature, <= 0 greedy (default 0.8)\n"
      "      --top-k K            (default 40, <= 0 off)\n"
      "      --top-p P            from 0 to 1 (default 0.95, 1 off)\n"
      "      --min-p P            from 0 to 1 (default 0.05, 0 off)\n"
      "      --repeat-penalty R   above 0 (default 1: off; last 64 tokens)\n"
      "  -s, --seed N             sampling seed, 0 to 2^64-1 (default -1: a random seed, printed by -v and --json)\n"
      "  -r, --reverse-prompt S   stop when the text holds S (repeatable)\n"
      "      --lookup N           draft up to N tokens (0 to 64) from the context's repeated n-grams, checked in\n"
      "                           one step: the same tokens, faster on text that repeats (default 0: off)\n"
      "      --ignore-eos         generate past end-of-text tokens\n"
      "      --no-special         control-token text in the prompt (\"<|eot_id|>\") stays text\n"
      "  -v, --verbose            the seed, the context and the template used, on stderr\n"
      "      --json               print {prompt_tokens, tokens, text, seed} instead of the text\n"
      "      --top-logits K       with --json: the K largest logits before each token\n"
      "  -i, --interactive        a prompt per line of stdin (on a model with a chat template: -cnv)\n"
      "  -cnv, --conversation     chat with the model's template, its KV cache kept across turns\n"
      "  -sys, --system-prompt S  -cnv: the system message\n"
      "      --chat-template T    -cnv, -i, --server: a template name (%s) or a Jinja file, instead of the model's\n"
      "      --keep N             -cnv: the conversation's first N tokens are never dropped when it fills the context\n"
      "      --prompts FILE       every line of FILE, -np at once in batched steps\n"
      "  -np, --parallel N        sequences at once for --prompts and --server (default 4)\n"
      "      --truncate           cut a prompt longer than the context instead of an error\n"
      "      --weights FILE       the side file of a --weights=external compile (default: OUTPUT.weights)\n"
      "      --bench P,G,R[,S]    prefill P and generate G tokens R times (S sequences at once)\n"
      "      --bench-depth D      --bench: with D tokens already in each sequence's cache\n"
      "      --bench-draft K      --bench: each tg step also feeds K draft rows, with every row's logits\n"
      "      --profile R          CUDA outputs: time each launch of a decode step\n"
      "      --device cpu|cuda    insist on where the model runs\n"
      "\n"
      "      --server             serve OpenAI-style HTTP (/v1/completions, /v1/chat/completions, ...)\n"
      "      --host ADDR          address to listen on (default 127.0.0.1)\n"
      "      --port N             port (default 8080; 0: any free port)\n"
      "      --api-key KEY        require \"Authorization: Bearer KEY\" (all but /health)\n"
      "      --queue N            requests waiting for a slot at most; more get 503 (default 64)\n"
      "      --timeout S          a connection's read/write timeout in seconds (default 600)\n"
      "  -h, --help               this text\n"
      "      --version            bitnetc's version, the target and the model\n",
      argv0, bitnetc_target_name, "bitnet-2b4t, llama3, llama2, chatml, phi3, none");
}

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "error: %s\n(%s)\n", msg.c_str(), rt::output_usage_line());
  std::exit(2);
}

std::string list_json(const std::vector<double>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.3f", i ? "," : "", v[i]);
    s += buf;
  }
  return s + "]";
}

// `--bench P,G,R[,S]`: llama-bench's two tests on this output, R times each: prefill P
// tokens into an empty context (pp), and generate G tokens one at a time after one
// token (tg); with S > 1, S sequences decode together, one row each per step, and tg
// is their aggregate tokens/s. With --bench-depth D each test starts with D tokens already
// in the cache (untimed), as llama-bench's -d: how speed holds as the context grows.
// With --bench-draft K each tg step is lookup decoding's: the token and K drafts, every
// row's logits, none kept (the next step starts one position on), so tg is steps/s and
// its ratio to K = 0 is what a step of drafts costs. Token ids are seeded
// pseudo-random. Prints one JSON object of tokens/s.
int run_bench(rt::CompiledModel& model, const rt::BenchSpec& spec, double load_s, int threads) {
  const int p = spec.prompt, g = spec.generated, r = spec.repetitions, sequences = spec.sequences;
  const int d = spec.depth;
  if (d + std::max(p, g + 1 + spec.draft) > model.n_ctx())
    usage_error("--bench: " + std::to_string(d + std::max(p, g + 1 + spec.draft)) + " tokens" +
                (d > 0 ? " (with --bench-depth " + std::to_string(d) + ")" : std::string()) +
                " do not fit the context of " + std::to_string(model.n_ctx()) + " (-c)");
  rt::Forward& f = model.forward_pass();
  const int32_t n_vocab = static_cast<int32_t>(model.graph().n_vocab);
  uint64_t state = 0x2545F4914F6CDD1Dull;
  auto next_token = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<int32_t>((state >> 33) % static_cast<uint64_t>(n_vocab));
  };
  using clock = std::chrono::steady_clock;
  auto seconds_since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };
  // Sequence `seq`'s cache filled with the depth's tokens (positions 0 .. d-1, untimed).
  auto fill_depth = [&](int32_t seq) {
    constexpr int kChunk = 256;
    std::vector<rt::BatchRow> rows;
    for (int at = 0; at < d; at += kChunk) {
      rows.clear();
      for (int i = at; i < std::min(d, at + kChunk); ++i) rows.push_back({seq, i, next_token(), false});
      f.step(rows);
    }
  };
  std::vector<double> pp, tg;
  // Repetition -1 is a warm-up, as llama-bench's: it faults the weights in and settles the
  // caches and clocks, and is not reported.
  for (int rep = -1; rep < r; ++rep) {
    const bool timed = rep >= 0;
    if (p > 0) {
      std::vector<int32_t> prompt(p);
      for (auto& t : prompt) t = next_token();
      fill_depth(0);
      const auto t0 = clock::now();
      f.forward(prompt, d);
      if (timed) pp.push_back(p / seconds_since(t0));
    }
    if (g > 0 && sequences == 1) {
      fill_depth(0);
      int32_t t = next_token();
      f.forward(std::span<const int32_t>(&t, 1), d);
      std::vector<rt::BatchRow> lookup_step(static_cast<size_t>(1 + spec.draft));
      const auto t0 = clock::now();
      for (int i = 1; i <= g; ++i) {
        if (spec.draft == 0) {
          t = next_token();
          f.forward(std::span<const int32_t>(&t, 1), d + i);
          continue;
        }
        for (size_t k = 0; k < lookup_step.size(); ++k)
          lookup_step[k] = {0, d + i + static_cast<int32_t>(k), next_token(), true};
        f.step(lookup_step);
      }
      if (timed) tg.push_back(g / seconds_since(t0));
    } else if (g > 0) {
      std::vector<rt::BatchRow> rows(static_cast<size_t>(sequences));
      for (int s = 0; s < sequences; ++s) fill_depth(s);
      for (int s = 0; s < sequences; ++s) rows[s] = {s, d, next_token(), true};
      f.step(rows);
      const auto t0 = clock::now();
      for (int i = 1; i <= g; ++i) {
        for (rt::BatchRow& row : rows) row.pos = d + i, row.token = next_token();
        f.step(rows);
      }
      if (timed) tg.push_back(static_cast<double>(g) * sequences / seconds_since(t0));
    }
  }
  // On a GPU, the roofline is the device's bandwidth, which only this process can measure.
  const double device_bw = p + g == 0 ? f.measure_device_read_bandwidth() : 0;
  std::printf(
      "{\"load_s\":%.4f,\"n_ctx\":%lld,\"n_prompt\":%d,\"n_gen\":%d,\"n_seq\":%d,\"n_depth\":%d,\"n_draft\":%d,\"pp_tps\":%s,"
      "\"tg_tps\":%s,\"decode_"
      "bytes_per_token\":%llu,"
      "\"threads\":%d,\"device\":\"%s\",\"device_read_GBps\":%.3f}\n",
      load_s, static_cast<long long>(model.n_ctx()), p, g, sequences, d, spec.draft, list_json(pp).c_str(),
      list_json(tg).c_str(),
      static_cast<unsigned long long>(f.decode_bytes_per_token()), threads, json_escape(model.device()).c_str(),
      device_bw / 1e9);
  return 0;
}

// `--profile R`: each launch of a decode step timed by the GPU, averaged over R steps:
// one JSON object, the launches in plan order with the weight bytes each reads and the
// bandwidth that makes. CUDA outputs only (perf profiles a CPU output).
int run_profile(rt::CompiledModel& model, long reps) {
  const std::vector<rt::StepProfile> steps = model.forward_pass().profile_decode_steps(static_cast<int>(reps));
  if (steps.empty()) {
    std::fprintf(stderr,
                 "error: --profile times the launches of a CUDA output on its GPU; this output runs on the "
                 "CPU (profile it with perf, or compare layouts with `bitnetc bench`)\n");
    return 1;
  }
  double total = 0;
  std::string list;
  for (const rt::StepProfile& s : steps) {
    total += s.us;
    char line[512];
    std::snprintf(line, sizeof line, "%s{\"kernel\":\"%s\",\"us\":%.3f,\"weight_bytes\":%llu,\"GBps\":%.1f}",
                  list.empty() ? "" : ",", json_escape(s.kernel).c_str(), s.us,
                  static_cast<unsigned long long>(s.weight_bytes), s.us > 0 ? s.weight_bytes / (s.us * 1e3) : 0.0);
    list += line;
  }
  std::printf("{\"device\":\"%s\",\"reps\":%ld,\"launches\":%zu,\"total_us\":%.3f,\"steps\":[%s]}\n",
              json_escape(model.device()).c_str(), reps, steps.size(), total, list.c_str());
  return 0;
}

// The K largest logits as JSON: [[id,logit],...] (logits printed round-trip exact).
std::string top_logits_json(std::span<const float> logits, int k) {
  std::string step;
  for (const auto& [id, v] : rt::top_logits(logits, k)) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s[%d,%.9g]", step.empty() ? "" : ",", id, static_cast<double>(v));
    step += buf;
  }
  return "[" + step + "]";
}

// Standard output, where a write error is not lost: a reader that went away (EPIPE,
// `| head`) ends the run quietly; any other error (a full disk, a closed stdout) is
// reported and the run exits 1.
class Output {
 public:
  bool write(std::string_view t) {
    if (failed_) return false;
    if (std::fwrite(t.data(), 1, t.size(), stdout) != t.size() || std::fflush(stdout) != 0) {
      errno_ = errno;
      failed_ = true;
    }
    return !failed_;
  }
  bool failed() const { return failed_; }
  // The exit status for the error, after saying what it was (0 for EPIPE).
  int status() const {
    if (!failed_ || errno_ == EPIPE) return 0;
    std::fprintf(stderr, "error: writing to standard output: %s\n", std::strerror(errno_));
    return 1;
  }

 private:
  bool failed_ = false;
  int errno_ = 0;
};

// `--prompts FILE`: every prompt of the file, `slots` at a time in batched forward steps
// (rt::generate_all), each as it would be generated alone. Prints each result in the
// file's order as soon as it and those before it are done: the text, or with --json one
// object per line.
int run_prompts(rt::CompiledModel& model, const std::vector<std::string>& prompts, int slots, int32_t n_predict,
                const rt::SamplerParams& sp, int32_t lookup, int top_logits, bool truncate, bool json, double load_s,
                Output& out) {
  std::vector<rt::SequenceRequest> requests(prompts.size());
  std::vector<std::string> logits_json(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    rt::SequenceRequest& r = requests[i];
    r.prompt = prompts[i];
    r.options.n_predict = n_predict;
    r.options.sampling = sp;
    r.options.truncate_prompt = truncate;
    r.options.lookup = lookup;
    if (top_logits > 0)
      r.options.on_logits = [&logits_json, i, top_logits](std::span<const float> logits) {
        logits_json[i] += (logits_json[i].empty() ? "" : ",") + top_logits_json(logits, top_logits);
      };
  }
  std::vector<const rt::Generation*> done(prompts.size(), nullptr);
  std::vector<rt::Generation> kept(prompts.size());
  size_t printed = 0, generated = 0, prompt_tokens = 0;
  auto on_finished = [&](size_t i, const rt::Generation& g) {
    kept[i] = g;
    done[i] = &kept[i];
    generated += g.tokens.size();
    prompt_tokens += g.prompt_tokens.size();
    for (; printed < done.size() && done[printed]; ++printed) {
      const rt::Generation& d = *done[printed];
      if (d.prompt_tokens_dropped > 0)
        std::fprintf(stderr, "note: prompt %zu was cut by %zu tokens to fit the context of %lld\n", printed,
                     d.prompt_tokens_dropped, static_cast<long long>(model.n_ctx()));
      if (json)
        out.write("{\"index\":" + std::to_string(printed) + ",\"prompt_tokens\":" + ids_json(d.prompt_tokens) +
                  ",\"tokens\":" + ids_json(d.tokens) + ",\"text\":\"" + json_escape(d.text) +
                  "\",\"seed\":" + std::to_string(sp.seed) +
                  (lookup > 0
                       ? ",\"drafted\":" + std::to_string(d.drafted) + ",\"accepted\":" + std::to_string(d.accepted)
                       : "") +
                  (top_logits > 0 ? ",\"top_logits\":[" + logits_json[printed] + "]" : "") + "}\n");
      else
        out.write(prompts[printed] + d.text + "\n");
    }
  };
  const auto t0 = std::chrono::steady_clock::now();
  model.generate_all(std::move(requests), slots, on_finished);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "load %.3f s | %zu prompts, %d at once: %zu prompt tokens, %zu generated in %.3f s (%.1f t/s)\n",
               load_s, prompts.size(), slots, prompt_tokens, generated, s, generated / std::max(s, 1e-9));
  return out.status();
}

// A line of -i / -cnv at most: far more than any context holds.
constexpr size_t kMaxLineBytes = 1u << 20;

// The file a flag names (-f, --prompts, --chat-template; "-" is stdin; text/input_file.h);
// a bad one is a usage error.
std::string read_input_file(const std::string& flag, const std::string& path) {
  try {
    return rt::read_input_file(flag, path);
  } catch (const rt::InputFileError& e) {
    usage_error(e.what());
  }
}

// -i marks the line it handles, for the wasm loader (wasm/wasm_api.cpp); a no-op natively.
#if defined(__wasm__)
extern "C" void bitnetc_wasm_mark_interactive_line(bool in_line);  // wasm/wasm_api.cpp
extern "C" bool bitnetc_wasm_interactive_resuming();
void mark_interactive_line(bool in_line) { bitnetc_wasm_mark_interactive_line(in_line); }
#else
void mark_interactive_line(bool) {}
#endif

// A line of stdin without its newline, or false at the end; a line longer than
// kMaxLineBytes (stdin from /dev/zero) is an error.
bool read_line(std::string& line) {
  line.clear();
  int c;
  while ((c = std::getchar()) != EOF && c != '\n') {
    line.push_back(static_cast<char>(c));
    if (line.size() > kMaxLineBytes) throw std::runtime_error("standard input: a line longer than 1 MiB");
  }
  return c != EOF || !line.empty();
}

uint64_t random_seed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

// -r: true when the text generated so far holds one of the stop strings.
bool holds_reverse_prompt(const std::string& text, const std::vector<std::string>& stops) {
  for (const std::string& s : stops)
    if (text.find(s) != std::string::npos) return true;
  return false;
}

// -cnv (or -i on a chat model): a conversation on sequence 0, its KV cache kept across
// turns. Each turn renders the whole conversation as tokens and processes only those
// after the prefix the cache already holds (tokens that re-render differently, such as a
// reply's at a turn boundary, are processed again). When a turn would not fit, the
// oldest turns are dropped whole, never the system prompt nor those within the first
// --keep tokens.
int run_conversation(rt::CompiledModel& model, const rt::OutputArgs& args, rt::ChatTemplate tmpl, Output& out) {
  const rt::Tokenizer& tok = model.tokenizer();
  const int64_t n_ctx = model.n_ctx();
  std::vector<rt::ChatMessage> messages;
  if (!args.system_prompt.empty()) messages.push_back({"system", args.system_prompt});
  const size_t first_turn = messages.size();
  // The conversation as tokens: rendered by the template, or (none) the texts in turn.
  auto render = [&](const std::vector<rt::ChatMessage>& m, bool for_reply) {
    if (tmpl != rt::ChatTemplate::None) return rt::chat_tokens(tok, tmpl, m, for_reply);
    std::string text;
    for (const rt::ChatMessage& msg : m) text += msg.content;
    return tok.encode(text, tok.vocab().add_bos, !args.no_special);
  };
  const int32_t n_predict = args.n_predict < 0 ? static_cast<int32_t>(n_ctx) : args.n_predict;
  const int64_t room = std::max<int64_t>(1, std::min<int64_t>(n_predict, n_ctx / 4));
  std::vector<int32_t> history;  // what the cache holds, and the last token (not yet fed)
  std::string line;
  bool first = true;
  for (;;) {
    if (first && (!args.prompt.empty() || !args.prompt_file.empty())) {
      line = !args.prompt_file.empty() ? read_input_file("-f", args.prompt_file) : args.prompt;
    } else {
      std::fprintf(stderr, "\n> ");
      std::fflush(stderr);
      if (!read_line(line)) break;
      if (line.empty()) continue;
    }
    first = false;
    messages.push_back({"user", tmpl == rt::ChatTemplate::None ? line + "\n" : line});
    std::vector<int32_t> tokens;
    try {
      tokens = render(messages, true);
      size_t dropped_turns = 0, dropped_tokens = 0;
      while (static_cast<int64_t>(tokens.size()) + room > n_ctx) {
        // The oldest turn (a user message and the replies after it) that starts after the
        // system prompt and past the conversation's first --keep tokens.
        size_t start = first_turn, end = first_turn;
        bool found = false;
        while (!found && start + 1 < messages.size()) {
          end = start + 1;
          while (end + 1 < messages.size() && messages[end].role != "user") ++end;
          const std::vector<rt::ChatMessage> before(messages.begin(), messages.begin() + start);
          found = static_cast<int64_t>(render(before, false).size()) >= args.keep;
          if (!found) start = end;
        }
        if (!found) break;
        const size_t had = tokens.size();
        messages.erase(messages.begin() + start, messages.begin() + end);
        tokens = render(messages, true);
        ++dropped_turns;
        dropped_tokens += had - tokens.size();
      }
      if (dropped_turns > 0)
        std::fprintf(stderr, "[the context of %lld is full: dropped the oldest %zu turn%s (%zu tokens)]\n",
                     static_cast<long long>(n_ctx), dropped_turns, dropped_turns == 1 ? "" : "s", dropped_tokens);
      if (static_cast<int64_t>(tokens.size()) >= n_ctx)
        throw rt::GenerateError("this turn needs " + std::to_string(tokens.size()) +
                                " tokens with what must be kept; the context holds " + std::to_string(n_ctx) + " (-c)");
    } catch (const std::exception& e) {  // a turn that cannot be taken is reported; the chat goes on
      std::fprintf(stderr, "error: %s\n", e.what());
      messages.pop_back();
      continue;
    }
    // The cache holds history[0 .. history.size() - 2]: keep what the new rendering shares.
    size_t fed = 0;
    const size_t cached = history.empty() ? 0 : history.size() - 1;
    while (fed < cached && fed < tokens.size() - 1 && history[fed] == tokens[fed]) ++fed;
    const auto t0 = std::chrono::steady_clock::now();
    auto gen = model.pull_continued(tokens, static_cast<int32_t>(fed), n_predict, args.sampling, 0, args.lookup);
    std::string reply, piece;
    while (gen->next(piece)) {
      reply += piece;
      if (!out.write(piece)) return out.status();
      if (holds_reverse_prompt(reply, args.reverse_prompts)) gen->stop();
    }
    if (!out.write("\n")) return out.status();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const rt::Generation& g = gen->generation();
    std::fprintf(stderr, "[%zu new prompt tokens, %zu generated in %.3f s (%.1f t/s); %zu of %lld positions]",
                 tokens.size() - fed, g.tokens.size(), s, g.tokens.size() / std::max(s, 1e-9),
                 tokens.size() + g.tokens.size(), static_cast<long long>(n_ctx));
    history = tokens;
    history.insert(history.end(), g.tokens.begin(), g.tokens.end());
    if (g.stopped) history.push_back(g.stop_token);
    messages.push_back({"assistant", tmpl == rt::ChatTemplate::None ? reply + "\n" : reply});
  }
  std::fprintf(stderr, "\n");
  return out.status();
}

}  // namespace

int main(int argc, char** argv) {
  rt::OutputArgs args;
  try {
    args = rt::parse_output_args(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const rt::UsageError& e) {
    usage_error(e.what());
  }
  using Mode = rt::OutputArgs::Mode;
  if (args.mode == Mode::Help) {
    print_help(argv[0]);
    return 0;
  }
  if (args.mode == Mode::Version) {
    try {
      if (!args.json) {
        std::printf("bitnetc %s output for %s: %s\n", BITNETC_VERSION, bitnetc_target_name,
                    rt::describe_embedded_model().c_str());
        return 0;
      }
      // The manifest a fleet checks what it runs against (scripts/build-artifacts.sh writes
      // the same fields, plus the file's sha256, beside each artifact).
      const rt::EmbeddedModelSummary s = rt::summarize_embedded_model();
      char fp[32];
      std::snprintf(fp, sizeof fp, "%016llx", static_cast<unsigned long long>(s.fingerprint));
      std::string layouts;
      for (const auto& [name, count] : s.layouts)
        layouts += (layouts.empty() ? "" : ",") + ("\"" + name + "\":" + std::to_string(count));
      std::printf(
          "{\"bitnetc_version\":\"%s\",\"target\":\"%s\",\"architecture\":\"%s\",\"n_layer\":%lld,"
          "\"fingerprint\":\"%s\",\"layouts\":{%s},\"weights\":\"%s\"}\n",
          BITNETC_VERSION, bitnetc_target_name, rt::json_escape(s.architecture).c_str(),
          static_cast<long long>(s.n_layer), fp, layouts.c_str(), s.external_weights ? "external" : "embedded");
    } catch (const std::exception& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      return 1;
    }
    return 0;
  }
  rt::SamplerParams sp = args.sampling;
  if (args.random_seed) sp.seed = random_seed();
  args.sampling = sp;
  // --prompts FILE: one prompt per line, -np of them generated at once.
  std::vector<std::string> prompts;
  if (args.mode == Mode::Prompts) {
    std::istringstream in(read_input_file("--prompts", args.prompts_path));
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) prompts.push_back(line);
    if (prompts.empty()) usage_error(args.prompts_path + " holds no prompt (one per line)");
  }
  const int slots = args.mode == Mode::Server ? args.server.slots
                    : prompts.empty()
                        ? 1
                        : std::min<int>(args.parallel > 0 ? args.parallel : 4, static_cast<int>(prompts.size()));
  // --device names where the forward pass must run; an output runs where it was compiled
  // for, never silently somewhere else.
  if (!args.device.empty()) {
    const bool gpu_output = std::string(bitnetc_target_name).rfind("cuda-", 0) == 0;
    if ((args.device == "cuda") != gpu_output) {
      std::fprintf(stderr,
                   "error: --device=%s: this output was compiled for %s, which runs on %s; compile the model "
                   "for %s (`bitnetc targets` lists them)\n",
                   args.device.c_str(), bitnetc_target_name, gpu_output ? "an NVIDIA GPU only" : "the CPU only",
                   gpu_output ? "a CPU target" : "a cuda-sm* target");
      return 1;
    }
  }
#if BITNETC_SINGLE_THREADED
  const int cores = 1;
#else
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
#endif
  int threads = args.threads > 0 ? args.threads : cores;
  if (threads > cores) {
    std::fprintf(stderr, "note: -t %d is more than the %d cores here; using %d threads\n", threads, cores, cores);
    threads = cores;
  }
  // The prompt, before anything loads (a bad file is a usage error).
  std::string prompt = args.prompt;
  if (args.mode == Mode::Generate && !args.prompt_file.empty()) prompt = read_input_file("-f", args.prompt_file);
#if BITNETC_WASM
  if (args.mode == Mode::Server) usage_error("--server: a WebAssembly output has no sockets; serve a native output");
#else
  if (args.mode == Mode::Server) rt::block_stop_signals();  // before any thread starts: the server handles them
  // A closed pipe (`| head`) is an EPIPE from write, handled by Output.
  std::signal(SIGPIPE, SIG_IGN);
#endif
  rt::set_cpu_threads(threads);
  Output out;

  try {
    const auto t0 = std::chrono::steady_clock::now();
    const int sequences = args.mode == Mode::Bench ? args.bench.sequences : slots;
    rt::CompiledModel model(args.n_ctx, args.weights_path, sequences);
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!args.weights_path.empty() && !model.external_weights()) {
      std::fprintf(stderr,
                   "error: --weights %s: this output holds its weights itself; --weights is for outputs compiled "
                   "with --weights=external\n",
                   args.weights_path.c_str());
      return 2;
    }
    if (args.mode == Mode::Bench) return run_bench(model, args.bench, load_s, threads);
    if (args.mode == Mode::Profile) return run_profile(model, args.profile_reps);

    // The chat template a conversation (or the server's chat endpoint) uses: the model's,
    // or --chat-template's.
    rt::ChatTemplate tmpl = model.tokenizer().vocab().chat_template;
    if (!args.chat_template.empty() && !rt::chat_template_by_name(args.chat_template, tmpl)) {
      const std::string jinja = read_input_file("--chat-template", args.chat_template);
      tmpl = rt::detect_chat_template(jinja);
      if (tmpl == rt::ChatTemplate::None)
        usage_error("--chat-template " + args.chat_template +
                    ": neither a template name (bitnet-2b4t, llama3, llama2, chatml, phi3, none) nor a Jinja "
                    "template of one of those families");
    }
#if !BITNETC_WASM
    if (args.mode == Mode::Server) {
      args.server.chat_template = tmpl;
      return rt::run_server(model, args.server);
    }
#endif
    const bool chat =
        args.mode == Mode::Conversation || (args.mode == Mode::Interactive && tmpl != rt::ChatTemplate::None);
    if (args.mode == Mode::Conversation && tmpl == rt::ChatTemplate::None && args.chat_template != "none")
      usage_error(
          "-cnv: this model has no chat template; name one with --chat-template (llama3, chatml, ...) or "
          "--chat-template none to chat in plain text");
    if (args.verbose)
      std::fprintf(stderr, "seed %llu%s | context %lld | %d threads | target %s | chat template %s%s\n",
                   static_cast<unsigned long long>(sp.seed), args.random_seed ? " (random)" : "",
                   static_cast<long long>(model.n_ctx()), threads, bitnetc_target_name, rt::chat_template_name(tmpl),
                   chat ? "" : " (not applied: -p sends the prompt as is)");
    else if (args.mode == Mode::Generate && tmpl != rt::ChatTemplate::None && !args.json)
      std::fprintf(stderr, "note: this model has a chat template (%s), not applied to -p; -cnv chats with it applied\n",
                   rt::chat_template_name(tmpl));
    if (chat && args.json)
      usage_error("-i on a model with a chat template chats as -cnv does, printing the conversation: no --json");
    if (chat) return run_conversation(model, args, tmpl, out);

    // --top-logits K (with --json): the K largest logits before each generated token.
    std::string logits_json;
    auto on_logits = [&](std::span<const float> logits) {
      logits_json += (logits_json.empty() ? "" : ",") + top_logits_json(logits, args.top_logits);
    };
    const int32_t n_predict = args.n_predict < 0 ? static_cast<int32_t>(model.n_ctx()) : args.n_predict;
    if (n_predict > model.n_ctx())
      std::fprintf(stderr, "note: -n %d is more than the context (%lld); generation stops when it is full\n", n_predict,
                   static_cast<long long>(model.n_ctx()));
    if (!prompts.empty())
      return run_prompts(model, prompts, slots, n_predict, sp, args.lookup, args.top_logits, args.truncate, args.json,
                         load_s, out);
    auto generate_one = [&](const std::string& text) {
      if (!args.json) out.write(text);
      rt::GenerateOptions go = model.generate_options(n_predict, sp);
      if (args.ignore_eos) go.stop_tokens.clear();
      go.parse_special = !args.no_special;
      go.truncate_prompt = args.truncate;
      if (args.top_logits > 0) go.on_logits = on_logits;
      go.lookup = args.lookup;
      std::string generated;
      rt::Generation gen = model.generate(text, std::move(go), [&](std::string_view piece) {
        generated += piece;
        if (!args.json && !out.write(piece)) return false;
        return !holds_reverse_prompt(generated, args.reverse_prompts);
      });
      if (gen.prompt_tokens_dropped > 0)
        std::fprintf(stderr, "note: the prompt was cut by %zu tokens to fit the context of %lld\n",
                     gen.prompt_tokens_dropped, static_cast<long long>(model.n_ctx()));
      if (args.json)
        out.write("{\"prompt_tokens\":" + ids_json(gen.prompt_tokens) + ",\"tokens\":" + ids_json(gen.tokens) +
                  ",\"text\":\"" + json_escape(gen.text) + "\",\"seed\":" + std::to_string(sp.seed) +
                  (args.top_logits > 0 ? ",\"top_logits\":[" + logits_json + "]" : "") +
                  (args.lookup > 0 ? ",\"drafted\":" + std::to_string(gen.drafted) +
                                         ",\"accepted\":" + std::to_string(gen.accepted)
                                   : "") +
                  "}\n");
      else
        out.write("\n");
      return gen;
    };
    if (args.mode == Mode::Interactive) {
      // -i on a model without a chat template: one prompt per line of stdin, each
      // answered in a fresh context; a bad line is reported and the session goes on.
#if defined(__wasm__)
      // There a bad line's throw traps (wasm/wasm_api.cpp): the loader reports it and
      // runs main again, which goes on from the next line of the unbuffered stdin.
      std::setvbuf(stdin, nullptr, _IONBF, 0);
      const bool resuming = bitnetc_wasm_interactive_resuming();
#else
      const bool resuming = false;
#endif
      if (!args.json) std::fprintf(stderr, resuming ? "> " : "interactive: one prompt per line, end with Ctrl-D\n> ");
      std::string line;
      while (!out.failed() && read_line(line)) {
        if (!line.empty()) {
          mark_interactive_line(true);
          try {
            logits_json.clear();
            generate_one(line);
          } catch (const std::exception& e) {
            std::fprintf(stderr, "error: %s\n", e.what());
          }
          mark_interactive_line(false);
        }
        if (!args.json) std::fprintf(stderr, "> ");
      }
      return out.status();
    }
    const rt::Generation gen = generate_one(prompt);
    if (out.failed()) return out.status();
    std::fprintf(stderr,
                 "load %.3f s | prompt %zu tokens in %.3f s (%.1f t/s) | generated %zu tokens in %.3f s (%.1f t/s)\n",
                 load_s, gen.prompt_tokens.size(), gen.prompt_seconds,
                 gen.prompt_tokens.size() / std::max(gen.prompt_seconds, 1e-9), gen.tokens.size(), gen.decode_seconds,
                 gen.tokens.size() / std::max(gen.decode_seconds, 1e-9));
    if (args.lookup > 0)
      std::fprintf(stderr, "lookup: %d of %d drafted tokens kept (%.0f %%)\n", gen.accepted, gen.drafted,
                   gen.drafted ? 100.0 * gen.accepted / gen.drafted : 0.0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return out.status();
}
