#include "output_args.h"

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <string_view>

namespace bitnetc::rt {

namespace {

[[noreturn]] void usage(const std::string& msg) { throw UsageError(msg); }

// A whole number in [lo, hi], read to its end (no "12abc", no "1e3", no out-of-range
// wrap-around).
int64_t whole(const std::string& flag, const std::string& text, int64_t lo, int64_t hi) {
  auto range = [&] {
    if (hi == INT64_MAX || hi == INT32_MAX) return flag + " must be at least " + std::to_string(lo);
    return flag + " must be a whole number from " + std::to_string(lo) + " to " + std::to_string(hi);
  };
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end || std::isspace(static_cast<unsigned char>(text[0])))
    usage(flag + ": \"" + text + "\" is not a whole number (" + range() + ")");
  if (errno == ERANGE || v < lo || v > hi) usage(range() + ", not " + text);
  return v;
}

// A finite number in [lo, hi] (lo excluded when `lo_open`).
double real(const std::string& flag, const std::string& text, double lo, double hi, bool lo_open = false) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end || std::isspace(static_cast<unsigned char>(text[0])))
    usage(flag + ": \"" + text + "\" is not a number");
  const bool in = std::isfinite(v) && (lo_open ? v > lo : v >= lo) && v <= hi;
  if (!in) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s must be a finite number %s %g and <= %g, not %s", flag.c_str(),
                  lo_open ? ">" : ">=", lo, hi, text.c_str());
    usage(buf);
  }
  return v;
}

// -s: 0 .. 2^64-1, or -1 for a fresh random seed (llama.cpp's convention).
bool seed(const std::string& text, uint64_t& out) {
  if (text == "-1") return false;
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0])) || *end)
    usage("-s: \"" + text + "\" is not a seed (a whole number from 0 to 18446744073709551615, or -1: random)");
  if (errno == ERANGE) usage("-s must be at most 18446744073709551615, not " + text);
  out = v;
  return true;
}

BenchSpec bench_spec(const std::string& text) {
  const std::string want = "--bench wants PROMPT_TOKENS,GENERATED_TOKENS,REPETITIONS[,SEQUENCES] (e.g. 128,128,3)";
  std::vector<std::string> parts(1);
  for (char c : text) {
    if (c == ',')
      parts.emplace_back();
    else
      parts.back().push_back(c);
  }
  if (parts.size() != 3 && parts.size() != 4) usage(want + ", not " + text);
  BenchSpec b;
  b.prompt = static_cast<int>(whole("--bench's PROMPT_TOKENS", parts[0], 0, 1 << 20));
  b.generated = static_cast<int>(whole("--bench's GENERATED_TOKENS", parts[1], 0, 1 << 20));
  b.repetitions = static_cast<int>(whole("--bench's REPETITIONS", parts[2], 1, 1000));
  if (parts.size() == 4) b.sequences = static_cast<int>(whole("--bench's SEQUENCES", parts[3], 1, 256));
  return b;
}

}  // namespace

const char* output_usage_line() {
  return "usage: -p PROMPT | -f FILE, -n N, -c N, -t N, --temp T, --top-k K, --top-p P, --min-p P, "
         "--repeat-penalty R, -s SEED, -r STOP, --ignore-eos, --no-special, -v, --json, --top-logits K, --lookup N, -i, "
         "-cnv [-sys TEXT --chat-template NAME|FILE --keep N], --prompts FILE, -np N, --truncate, --weights FILE, "
         "--bench P,G,R[,S] [--bench-depth D] [--bench-draft K], --profile R, --device cpu|cuda, --server [--host A --port N --api-key K --queue N "
         "--timeout S]; -h lists them with their defaults";
}

OutputArgs parse_output_args(const std::vector<std::string>& args) {
  OutputArgs o;
  bool prompt_given = false, interactive = false, conversation = false, serve = false;
  bool n_given = false, parallel_given = false, version = false, depth_given = false, draft_given = false;
  std::string bench, server_flag, conversation_flag;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) usage("option " + a + " needs a value");
      return args[++i];
    };
    if (a == "-h" || a == "--help") {
      o.mode = OutputArgs::Mode::Help;
      return o;
    } else if (a == "--version") {
      version = true;
    } else if (a == "-p" || a == "--prompt") {
      o.prompt = value();
      prompt_given = true;
    } else if (a == "-f" || a == "--file") {
      o.prompt_file = value();
      if (o.prompt_file.empty()) usage("-f wants a file (or - for stdin)");
    } else if (a == "-n" || a == "--n-predict") {
      o.n_predict = static_cast<int32_t>(whole(a, value(), -1, INT32_MAX - 1));
      n_given = true;
    } else if (a == "-c" || a == "--ctx-size") {
      o.n_ctx = whole(a, value(), 0, INT32_MAX);
    } else if (a == "-t" || a == "--threads") {
      o.threads = static_cast<int>(whole("-t", value(), 1, INT32_MAX));
    } else if (a == "--temp") {
      o.sampling.temperature = static_cast<float>(real(a, value(), -1e6, 1e6));
    } else if (a == "--top-k") {
      o.sampling.top_k = static_cast<int32_t>(whole(a, value(), -1, INT32_MAX));
    } else if (a == "--top-p") {
      o.sampling.top_p = static_cast<float>(real(a, value(), 0, 1));
    } else if (a == "--min-p") {
      o.sampling.min_p = static_cast<float>(real(a, value(), 0, 1));
    } else if (a == "--repeat-penalty") {
      o.sampling.repeat_penalty = static_cast<float>(real(a, value(), 0, 100, /*lo_open=*/true));
    } else if (a == "-s" || a == "--seed") {
      o.random_seed = !seed(value(), o.sampling.seed);
    } else if (a == "-r" || a == "--reverse-prompt") {
      o.reverse_prompts.push_back(value());
      if (o.reverse_prompts.back().empty()) usage(a + " wants a non-empty text");
    } else if (a == "--ignore-eos") {
      o.ignore_eos = true;
    } else if (a == "--no-special") {
      o.no_special = true;
    } else if (a == "-v" || a == "--verbose") {
      o.verbose = true;
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--top-logits") {
      o.top_logits = static_cast<int>(whole(a, value(), 1, 1000));
    } else if (a == "--lookup") {
      o.lookup = static_cast<int32_t>(whole(a, value(), 0, kMaxLookup));
    } else if (a == "--truncate") {
      o.truncate = true;
    } else if (a == "--weights") {
      o.weights_path = value();
      if (o.weights_path.empty()) usage("--weights wants a file");
    } else if (a == "-i" || a == "--interactive") {
      interactive = true;
    } else if (a == "-cnv" || a == "--conversation") {
      conversation = true;
    } else if (a == "-sys" || a == "--system-prompt") {
      o.system_prompt = value();
      conversation_flag = a;
    } else if (a == "--chat-template") {
      o.chat_template = value();
      if (o.chat_template.empty()) usage("--chat-template wants a name (llama3, chatml, ..., none) or a file");
    } else if (a == "--keep") {
      o.keep = static_cast<int32_t>(whole(a, value(), 0, INT32_MAX));
      conversation_flag = a;
    } else if (a == "--device") {
      o.device = value();
      if (o.device != "cpu" && o.device != "cuda") usage("--device must be cpu or cuda, not " + o.device);
    } else if (a == "--prompts") {
      o.prompts_path = value();
      if (o.prompts_path.empty()) usage("--prompts wants a file");
    } else if (a == "-np" || a == "--parallel") {
      o.parallel = static_cast<int>(whole("-np", value(), 1, 256));
      parallel_given = true;
    } else if (a == "--bench") {
      bench = value();
      const int depth = o.bench.depth, draft = o.bench.draft;
      o.bench = bench_spec(bench);
      o.bench.depth = depth;
      o.bench.draft = draft;
    } else if (a == "--bench-depth") {
      o.bench.depth = static_cast<int>(whole(a, value(), 0, 1 << 24));
      depth_given = true;
    } else if (a == "--bench-draft") {
      o.bench.draft = static_cast<int>(whole(a, value(), 0, kMaxLookup));
      draft_given = true;
    } else if (a == "--profile") {
      o.profile_reps = static_cast<long>(whole(a, value(), 1, 1000000));
    } else if (a == "--server") {
      serve = true;
    } else if (a == "--host") {
      o.server.host = value();
      if (o.server.host.empty()) usage("--host wants an address (e.g. 127.0.0.1)");
      server_flag = a;
    } else if (a == "--port") {
      o.server.port = static_cast<int>(whole(a, value(), 0, 65535));
      server_flag = a;
    } else if (a == "--api-key") {
      o.server.api_key = value();
      server_flag = a;
    } else if (a == "--queue") {
      o.server.queue = static_cast<int>(whole(a, value(), 0, 1000000));
      server_flag = a;
    } else if (a == "--timeout") {
      o.server.timeout_s = real(a, value(), 1, 86400);
      server_flag = a;
    } else {
      usage("unknown option " + a);
    }
  }

  // --version [--json]: the manifest of this output, nothing else.
  if (version) {
    if (args.size() != (o.json ? 2u : 1u)) usage("--version combines only with --json");
    o.mode = OutputArgs::Mode::Version;
    return o;
  }
  // The mode, and the flags that only mean something in another one.
  const int modes = (serve ? 1 : 0) + (interactive ? 1 : 0) + (conversation ? 1 : 0) + (!bench.empty() ? 1 : 0) +
                    (o.profile_reps > 0 ? 1 : 0) + (!o.prompts_path.empty() ? 1 : 0);
  if (modes > 1)
    usage("--server, -i, -cnv, --prompts, --bench and --profile each run the model their own way: give one");
  if (serve) o.mode = OutputArgs::Mode::Server;
  if (interactive) o.mode = OutputArgs::Mode::Interactive;
  if (conversation) o.mode = OutputArgs::Mode::Conversation;
  if (!bench.empty()) o.mode = OutputArgs::Mode::Bench;
  if (o.profile_reps > 0) o.mode = OutputArgs::Mode::Profile;
  if (!o.prompts_path.empty()) o.mode = OutputArgs::Mode::Prompts;
  using Mode = OutputArgs::Mode;
  const bool reads_prompt = o.mode == Mode::Generate || o.mode == Mode::Conversation;
  if (prompt_given && !o.prompt_file.empty()) usage("give the prompt with -p or -f, not both");
  if ((prompt_given || !o.prompt_file.empty()) && !reads_prompt)
    usage(o.mode == Mode::Server ? "--server takes its prompts from HTTP requests: it does not combine with -p or -f"
                                 : "-p and -f do not combine with -i, --prompts, --bench or --profile");
  if (o.mode == Mode::Server &&
      (o.json || o.top_logits > 0 || !o.reverse_prompts.empty() || o.ignore_eos || o.no_special || o.truncate))
    usage(
        "--server takes its sampling and stop strings from HTTP requests: it does not combine with --json, "
        "--top-logits, -r, --ignore-eos, --no-special or --truncate");
  if (!server_flag.empty() && o.mode != Mode::Server) usage(server_flag + " is an option of --server; add --server");
  if (!conversation_flag.empty() && o.mode != Mode::Conversation && o.mode != Mode::Interactive)
    usage(conversation_flag + " is an option of the conversation mode; add -cnv");
  if (!o.chat_template.empty() && o.mode != Mode::Conversation && o.mode != Mode::Interactive &&
      o.mode != Mode::Server)
    usage("--chat-template is an option of -cnv, -i and --server");
  if (o.mode == Mode::Conversation && (o.json || o.top_logits > 0))
    usage("-cnv prints the conversation: it does not combine with --json or --top-logits");
  if (o.mode == Mode::Prompts && (!o.reverse_prompts.empty() || o.ignore_eos || o.no_special))
    usage("-r, --ignore-eos and --no-special apply to -p, -f, -i and -cnv, not --prompts");
  if (o.top_logits > 0 && !o.json) usage("--top-logits prints its logits in --json's object: add --json");
  if (o.lookup > 0 && (o.mode == Mode::Bench || o.mode == Mode::Profile))
    usage("--lookup drafts from a generation's own text; --bench and --profile feed fixed tokens");
  o.server.lookup = o.lookup;  // --server: what requests without a "lookup" field draft
  if (depth_given && o.mode != Mode::Bench) usage("--bench-depth is an option of --bench; add --bench");
  if (draft_given && o.mode != Mode::Bench) usage("--bench-draft is an option of --bench; add --bench");
  if (o.bench.draft > 0 && o.bench.sequences > 1)
    usage("--bench-draft times one sequence's lookup steps: it does not combine with S > 1 in --bench P,G,R,S");
  if (parallel_given && o.mode != Mode::Prompts && o.mode != Mode::Server)
    usage("-np runs the prompts of --prompts FILE (or --server's requests) at once; give --prompts or --server");
  if ((o.mode == Mode::Bench || o.mode == Mode::Profile) && (n_given || o.json))
    usage("--bench and --profile print their own JSON and take their sizes from their values: no -n or --json");
  if (o.mode == Mode::Server) o.server.slots = o.parallel > 0 ? o.parallel : 4;
  return o;
}

}  // namespace bitnetc::rt
