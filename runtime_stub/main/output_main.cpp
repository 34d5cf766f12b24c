// `main` of every compiled executable: reads the embedded model, runs the step list with
// the generated kernels, and generates text with llama.cpp-style flags.
//
// The model itself is rt::CompiledModel (compiled_model.h).
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "HalideRuntime.h"
#include "chat.h"
#include "compiled_model.h"
#include "json_text.h"
#include "server.h"
#include "thread_pool.h"

using namespace bitnetc;
using rt::json_escape;

extern "C" const char bitnetc_target_name[];  // codegen/cpu_kernels.cpp writes it

namespace {

// -h / --help: every flag with its default.
void print_help(const char* argv0) {
  std::printf(
      "usage: %s [options]   (a model compiled by bitnetc for %s)\n\n"
      "  -p, --prompt TEXT        prompt (default: empty: BOS only)\n"
      "  -f, --file FILE          read the prompt from FILE\n"
      "  -n, --n-predict N        tokens to generate at most (default 64)\n"
      "  -c, --ctx-size N         context length, at most the model's (default: the model's)\n"
      "  -t, --threads N          CPU threads (default: every core)\n"
      "      --temp T             temperature, <= 0 greedy (default 0.8)\n"
      "      --top-k K            (default 40, <= 0 off)\n"
      "      --top-p P            (default 0.95, >= 1 off)\n"
      "      --min-p P            (default 0.05, <= 0 off)\n"
      "      --repeat-penalty R   (default 1: off; last 64 tokens)\n"
      "  -s, --seed N             sampling seed (default 0)\n"
      "      --json               print {prompt_tokens, tokens, text} instead of the text\n"
      "      --top-logits K       with --json: the K largest logits before each token\n"
      "  -i, --interactive        one prompt per line of stdin\n"
      "      --prompts FILE       every line of FILE, -np at once in batched steps\n"
      "  -np, --parallel N        sequences at once for --prompts and --server (default 4)\n"
      "      --truncate           cut a prompt longer than the context instead of an error\n"
      "      --weights FILE       the side file of a --weights=external compile (default: OUTPUT.weights)\n"
      "      --bench P,G,R[,S]    prefill P and generate G tokens R times (S sequences at once)\n"
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
      argv0, bitnetc_target_name);
}

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(
      stderr,
      "error: %s\n(usage: -p PROMPT | -f FILE, -n N, -c N, -t N, --temp T, --top-k K, --top-p P, "
      "--min-p P, --repeat-penalty R, -s SEED, --json, -i, --prompts FILE, -np N, --truncate, --weights FILE, "
      "--top-logits K, --bench P,G,R[,S], --profile R, --device cpu|cuda, --server [--host A --port N --api-key K "
      "--queue N --timeout S]; -h lists them with their defaults)\n",
      msg.c_str());
  std::exit(2);
}

std::string ids_json(const std::vector<int32_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
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

// The S of `--bench P,G,R,S` (1 without it).
int bench_sequences(const std::string& spec) {
  int p = 0, g = 0, r = 0, s = 1;
  const int n = std::sscanf(spec.c_str(), "%d,%d,%d,%d", &p, &g, &r, &s);
  if ((n != 3 && n != 4) || p < 0 || g < 0 || r < 1 || s < 1 || s > 256)
    usage_error("--bench wants PROMPT_TOKENS,GENERATED_TOKENS,REPETITIONS[,SEQUENCES] (e.g. 128,128,3 or 0,64,3,8)");
  return n == 4 ? s : 1;
}

// `--bench P,G,R[,S]`: llama-bench's two tests on this output, R times each: prefill P
// tokens into an empty context (pp), and generate G tokens one at a time after one
// token (tg); with S > 1, S sequences decode together, one row each per step, and tg
// is their aggregate tokens/s. Token ids are seeded pseudo-random. Prints one JSON
// object of tokens/s.
int run_bench(rt::CompiledModel& model, const std::string& spec, double load_s, int threads) {
  int p = 0, g = 0, r = 0;
  std::sscanf(spec.c_str(), "%d,%d,%d", &p, &g, &r);
  const int sequences = bench_sequences(spec);
  if (std::max(p, g + 1) > model.n_ctx())
    usage_error("--bench: " + std::to_string(std::max(p, g + 1)) + " tokens do not fit the context of " +
                std::to_string(model.n_ctx()) + " (-c)");
  rt::Forward& f = model.forward_pass();
  const int32_t n_vocab = static_cast<int32_t>(model.graph().n_vocab);
  uint64_t state = 0x2545F4914F6CDD1Dull;
  auto next_token = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<int32_t>((state >> 33) % static_cast<uint64_t>(n_vocab));
  };
  using clock = std::chrono::steady_clock;
  auto seconds_since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };
  std::vector<double> pp, tg;
  for (int rep = 0; rep < r; ++rep) {
    if (p > 0) {
      std::vector<int32_t> prompt(p);
      for (auto& t : prompt) t = next_token();
      const auto t0 = clock::now();
      f.forward(prompt, 0);
      pp.push_back(p / seconds_since(t0));
    }
    if (g > 0 && sequences == 1) {
      int32_t t = next_token();
      f.forward(std::span<const int32_t>(&t, 1), 0);
      const auto t0 = clock::now();
      for (int i = 1; i <= g; ++i) {
        t = next_token();
        f.forward(std::span<const int32_t>(&t, 1), i);
      }
      tg.push_back(g / seconds_since(t0));
    } else if (g > 0) {
      std::vector<rt::BatchRow> rows(static_cast<size_t>(sequences));
      for (int s = 0; s < sequences; ++s) rows[s] = {s, 0, next_token(), true};
      f.step(rows);
      const auto t0 = clock::now();
      for (int i = 1; i <= g; ++i) {
        for (rt::BatchRow& row : rows) row.pos = i, row.token = next_token();
        f.step(rows);
      }
      tg.push_back(static_cast<double>(g) * sequences / seconds_since(t0));
    }
  }
  // On a GPU, the roofline is the device's bandwidth, which only this process can measure.
  const double device_bw = p + g == 0 ? f.measure_device_read_bandwidth() : 0;
  std::printf(
      "{\"load_s\":%.4f,\"n_ctx\":%lld,\"n_prompt\":%d,\"n_gen\":%d,\"n_seq\":%d,\"pp_tps\":%s,\"tg_tps\":%s,\"decode_"
      "bytes_per_token\":%llu,"
      "\"threads\":%d,\"device\":\"%s\",\"device_read_GBps\":%.3f}\n",
      load_s, static_cast<long long>(model.n_ctx()), p, g, sequences, list_json(pp).c_str(), list_json(tg).c_str(),
      static_cast<unsigned long long>(f.decode_bytes_per_token()), threads, json_escape(model.device()).c_str(),
      device_bw / 1e9);
  return 0;
}

// `--profile R`: each launch of a decode step timed by the GPU, averaged over R steps:
// one JSON object, the launches in plan order with the weight bytes each reads and the
// bandwidth that makes. CUDA outputs only (perf profiles a CPU output).
int run_profile(rt::CompiledModel& model, const std::string& spec) {
  char* end = nullptr;
  const long reps = std::strtol(spec.c_str(), &end, 10);
  if (spec.empty() || *end != '\0' || reps < 1 || reps > 100000)
    usage_error("--profile wants a repetition count (e.g. 20)");
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

// `--prompts FILE`: every prompt of the file, `slots` at a time in batched forward steps
// (rt::generate_all), each as it would be generated alone. Prints each result in the
// file's order as soon as it and those before it are done: the text, or with --json one
// object per line.
int run_prompts(rt::CompiledModel& model, const std::vector<std::string>& prompts, int slots, int32_t n_predict,
                const rt::SamplerParams& sp, int top_logits, bool truncate, bool json, double load_s) {
  std::vector<rt::SequenceRequest> requests(prompts.size());
  std::vector<std::string> logits_json(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    rt::SequenceRequest& r = requests[i];
    r.prompt = prompts[i];
    r.options.n_predict = n_predict;
    r.options.sampling = sp;
    r.options.truncate_prompt = truncate;
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
        std::printf("{\"index\":%zu,\"prompt_tokens\":%s,\"tokens\":%s,\"text\":\"%s\"%s}\n", printed,
                    ids_json(d.prompt_tokens).c_str(), ids_json(d.tokens).c_str(), json_escape(d.text).c_str(),
                    top_logits > 0 ? (",\"top_logits\":[" + logits_json[printed] + "]").c_str() : "");
      else
        std::printf("%s%s\n", prompts[printed].c_str(), d.text.c_str());
      std::fflush(stdout);
    }
  };
  const auto t0 = std::chrono::steady_clock::now();
  model.generate_all(std::move(requests), slots, on_finished);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "load %.3f s | %zu prompts, %d at once: %zu prompt tokens, %zu generated in %.3f s (%.1f t/s)\n",
               load_s, prompts.size(), slots, prompt_tokens, generated, s, generated / std::max(s, 1e-9));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string prompt;
  bool json = false;
  int32_t n_predict = 64;
  int64_t n_ctx = 0;
  int threads = 0;
  bool threads_given = false;
  rt::SamplerParams sp;
  std::string bench, profile;
  int top_logits = 0;
  bool truncate = false, interactive = false;
  std::string weights_path, device, prompts_path;
  int parallel = 0;
  bool serve = false;
  rt::ServerOptions server;
  std::string server_flag;  // a flag of --server's seen (an error without --server)
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error("option " + a + " needs a value");
      return argv[++i];
    };
    auto number = [&](const std::string& v) {
      char* end = nullptr;
      const double d = std::strtod(v.c_str(), &end);
      if (v.empty() || *end) usage_error("option " + a + ": \"" + v + "\" is not a number");
      return d;
    };
    if (a == "-h" || a == "--help") {
      print_help(argv[0]);
      return 0;
    } else if (a == "--version") {
      try {
        std::printf("bitnetc %s output for %s: %s\n", BITNETC_VERSION, bitnetc_target_name,
                    rt::describe_embedded_model().c_str());
      } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
      }
      return 0;
    } else if (a == "-p" || a == "--prompt")
      prompt = value();
    else if (a == "-f" || a == "--file") {
      const std::string path = value();
      std::ifstream in(path, std::ios::binary);
      if (!in) usage_error("cannot read prompt file " + path);
      prompt.assign(std::istreambuf_iterator<char>(in), {});
    } else if (a == "-n" || a == "--n-predict")
      n_predict = static_cast<int32_t>(number(value()));
    else if (a == "-c" || a == "--ctx-size")
      n_ctx = static_cast<int64_t>(number(value()));
    else if (a == "-t" || a == "--threads") {
      threads = static_cast<int>(number(value()));
      threads_given = true;
    } else if (a == "--temp")
      sp.temperature = static_cast<float>(number(value()));
    else if (a == "--top-k")
      sp.top_k = static_cast<int32_t>(number(value()));
    else if (a == "--top-p")
      sp.top_p = static_cast<float>(number(value()));
    else if (a == "--min-p")
      sp.min_p = static_cast<float>(number(value()));
    else if (a == "--repeat-penalty")
      sp.repeat_penalty = static_cast<float>(number(value()));
    else if (a == "-s" || a == "--seed")
      sp.seed = static_cast<uint64_t>(number(value()));
    else if (a == "--json")
      json = true;
    else if (a == "--bench")
      bench = value();
    else if (a == "--profile")
      profile = value();
    else if (a == "--top-logits")
      top_logits = static_cast<int>(number(value()));
    else if (a == "--truncate")
      truncate = true;
    else if (a == "--weights")
      weights_path = value();
    else if (a == "-i" || a == "--interactive")
      interactive = true;
    else if (a == "--device")
      device = value();
    else if (a == "--prompts")
      prompts_path = value();
    else if (a == "-np" || a == "--parallel") {
      const double v = number(value());
      if (v < 1 || v > 256 || v != static_cast<int>(v)) usage_error("-np must be a whole number from 1 to 256");
      parallel = static_cast<int>(v);
    } else if (a == "--server") {
      serve = true;
    } else if (a == "--host") {
      server.host = value();
      if (server.host.empty()) usage_error("--host wants an address (e.g. 127.0.0.1)");
      server_flag = a;
    } else if (a == "--port") {
      const double v = number(value());
      if (v < 0 || v > 65535 || v != static_cast<int>(v)) usage_error("--port must be a whole number from 0 to 65535");
      server.port = static_cast<int>(v);
      server_flag = a;
    } else if (a == "--api-key") {
      server.api_key = value();
      server_flag = a;
    } else if (a == "--queue") {
      const double v = number(value());
      if (v < 0 || v > 1e6 || v != static_cast<int>(v)) usage_error("--queue must be a whole number from 0 to 1000000");
      server.queue = static_cast<int>(v);
      server_flag = a;
    } else if (a == "--timeout") {
      server.timeout_s = number(value());
      if (!(server.timeout_s >= 1 && server.timeout_s <= 86400))
        usage_error("--timeout must be from 1 to 86400 seconds");
      server_flag = a;
    } else {
      usage_error("unknown option " + a);
    }
  }
  if (n_predict < 0) usage_error("-n must not be negative");
  // --prompts FILE: one prompt per line, -np of them generated at once.
  std::vector<std::string> prompts;
  if (!prompts_path.empty()) {
    if (interactive || !bench.empty() || !profile.empty())
      usage_error("--prompts does not combine with -i, --bench or --profile");
    std::ifstream in(prompts_path, std::ios::binary);
    if (!in) usage_error("cannot read prompt file " + prompts_path);
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) prompts.push_back(line);
    if (prompts.empty()) usage_error(prompts_path + " holds no prompt (one per line)");
  } else if (parallel > 0 && !serve) {
    usage_error("-np runs the prompts of --prompts FILE (or --server's requests) at once; give --prompts or --server");
  }
  if (serve && (!prompt.empty() || interactive || !prompts_path.empty() || !bench.empty() || !profile.empty() || json ||
                top_logits > 0))
    usage_error(
        "--server takes its prompts from HTTP requests: it does not combine with -p, -f, -i, --prompts, "
        "--bench, --profile, --json or --top-logits");
  if (!server_flag.empty() && !serve) usage_error(server_flag + " is an option of --server; add --server");
  server.slots = parallel > 0 ? parallel : 4;
  const int slots = serve             ? server.slots
                    : prompts.empty() ? 1
                                      : std::min<int>(parallel > 0 ? parallel : 4, static_cast<int>(prompts.size()));
  // --device names where the forward pass must run; an output runs where it was compiled
  // for, never silently somewhere else.
  if (!device.empty()) {
    if (device != "cpu" && device != "cuda") usage_error("--device must be cpu or cuda");
    const bool gpu_output = std::string(bitnetc_target_name).rfind("cuda-", 0) == 0;
    if ((device == "cuda") != gpu_output) {
      std::fprintf(stderr,
                   "error: --device=%s: this output was compiled for %s, which runs on %s; compile the model "
                   "for %s (`bitnetc targets` lists them)\n",
                   device.c_str(), bitnetc_target_name, gpu_output ? "an NVIDIA GPU only" : "the CPU only",
                   gpu_output ? "a CPU target" : "a cuda-sm* target");
      return 1;
    }
  }
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (threads_given && threads < 1) usage_error("-t must be at least 1");
  if (!threads_given) threads = cores;
  if (threads > cores) {
    std::fprintf(stderr, "note: -t %d is more than the %d cores here; using %d threads\n", threads, cores, cores);
    threads = cores;
  }
  if (serve) rt::block_stop_signals();  // before any thread starts: the server handles them
  rt::set_cpu_threads(threads);
  // A closed stdout (`| head`) ends generation quietly instead of killing the process.
  std::signal(SIGPIPE, SIG_IGN);

  try {
    const auto t0 = std::chrono::steady_clock::now();
    const int sequences = !bench.empty() ? bench_sequences(bench) : slots;
    rt::CompiledModel model(n_ctx, weights_path, sequences);
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!bench.empty()) return run_bench(model, bench, load_s, threads);
    if (!profile.empty()) return run_profile(model, profile);
    if (serve) return rt::run_server(model, server);
    bool stdout_closed = false;
    auto stream = [&](std::string_view t) {
      if (std::fwrite(t.data(), 1, t.size(), stdout) != t.size() || std::fflush(stdout) != 0) stdout_closed = true;
      return !stdout_closed;
    };
    // --top-logits K (with --json): the K largest logits before each generated token.
    std::string logits_json;
    auto on_logits = [&](std::span<const float> logits) {
      logits_json += (logits_json.empty() ? "" : ",") + top_logits_json(logits, top_logits);
    };
    if (n_predict > model.n_ctx())
      std::fprintf(stderr, "note: -n %d is more than the context (%lld); generation stops when it is full\n", n_predict,
                   static_cast<long long>(model.n_ctx()));
    auto generate_one = [&](const std::string& text) {
      if (!json) stream(text);
      rt::Generation gen =
          model.generate(text, n_predict, sp, json ? std::function<bool(std::string_view)>() : stream,
                         top_logits > 0 ? std::function<void(std::span<const float>)>(on_logits) : nullptr, truncate);
      if (gen.prompt_tokens_dropped > 0)
        std::fprintf(stderr, "note: the prompt was cut by %zu tokens to fit the context of %lld\n",
                     gen.prompt_tokens_dropped, static_cast<long long>(model.n_ctx()));
      if (stdout_closed) return gen;
      if (json)
        std::printf("{\"prompt_tokens\":%s,\"tokens\":%s,\"text\":\"%s\"%s}\n", ids_json(gen.prompt_tokens).c_str(),
                    ids_json(gen.tokens).c_str(), json_escape(gen.text).c_str(),
                    top_logits > 0 ? (",\"top_logits\":[" + logits_json + "]").c_str() : "");
      else
        stream("\n");
      std::fflush(stdout);
      return gen;
    };
    if (!prompts.empty()) return run_prompts(model, prompts, slots, n_predict, sp, top_logits, truncate, json, load_s);
    if (interactive) {
      // -i: one prompt per line of stdin, each answered in a fresh context. A model with a
      // chat template gets the whole conversation so far, rendered by that template.
      const rt::ChatTemplate chat = model.tokenizer().vocab().chat_template;
      std::vector<rt::ChatMessage> conversation;
      std::string line;
      if (!json) std::fprintf(stderr, "interactive: one prompt per line, end with Ctrl-D\n> ");
      while (!stdout_closed && std::getline(std::cin, line)) {
        if (line.empty()) {
          if (!json) std::fprintf(stderr, "> ");
          continue;
        }
        std::string text = line;
        if (chat != rt::ChatTemplate::None) {
          conversation.push_back({"user", line});
          text = rt::apply_chat_template(chat, conversation, true);
        }
        try {
          const rt::Generation gen = generate_one(text);
          if (chat != rt::ChatTemplate::None) conversation.push_back({"assistant", gen.text});
        } catch (const std::exception& e) {  // a bad line is reported; the session goes on
          std::fprintf(stderr, "error: %s\n", e.what());
          if (chat != rt::ChatTemplate::None) conversation.pop_back();
        }
        if (!json) std::fprintf(stderr, "> ");
      }
      return 0;
    }
    const rt::Generation gen = generate_one(prompt);
    if (stdout_closed) return 0;
    std::fprintf(stderr,
                 "load %.3f s | prompt %zu tokens in %.3f s (%.1f t/s) | generated %zu tokens in %.3f s (%.1f t/s)\n",
                 load_s, gen.prompt_tokens.size(), gen.prompt_seconds,
                 gen.prompt_tokens.size() / std::max(gen.prompt_seconds, 1e-9), gen.tokens.size(), gen.decode_seconds,
                 gen.tokens.size() / std::max(gen.decode_seconds, 1e-9));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
