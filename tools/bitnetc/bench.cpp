// `bitnetc bench MODEL --target=T [--json]`: llama-bench's figures for a compiled output.
//
// Compiles the model (or takes --binary), then runs the output's own `--bench` mode in
// child processes: prefill of each -p size into an empty context (pp) and generation
// of -n tokens (tg), -r times each after one untimed warm-up repetition (as llama-bench).
// Reports mean, median and standard deviation of tokens/s (the roofline fraction is the
// median's),
// compile time and peak memory, output size, start-up time, the child's peak RSS, and
// the decode roofline: the machine's read bandwidth (measured in the same run) over
// the weight bytes one decode step reads.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>
#include <thread>

#include "commands.h"
#include "model_import.h"
#include "process.h"

namespace bitnetc::cli {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Best of three passes reading 1 GiB with `threads` threads, in bytes per second.
double measure_read_bandwidth(int threads) {
  const size_t bytes = size_t{1} << 30, words = bytes / sizeof(uint64_t);
  std::unique_ptr<uint64_t[]> buf(new uint64_t[words]);
  for (size_t i = 0; i < words; ++i) buf[i] = i;
  double best = 0;
  std::vector<uint64_t> sums(threads);
  for (int pass = 0; pass < 3; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        const uint64_t* p = buf.get() + words / threads * t;
        uint64_t a = 0, b = 0, c = 0, d = 0;
        for (size_t i = 0; i < words / threads; i += 4) {
          a += p[i];
          b += p[i + 1];
          c += p[i + 2];
          d += p[i + 3];
        }
        sums[t] = a + b + c + d;
      });
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(bytes) / s);
  }
  if (std::accumulate(sums.begin(), sums.end(), uint64_t{0}) == 42) std::fputc(' ', stderr);  // keep the reads
  return best;
}

struct Stats {
  double mean = 0, stddev = 0, median = 0;
  std::vector<double> samples;
};

Stats stats_of(const std::vector<double>& v) {
  Stats s;
  s.samples = v;
  if (v.empty()) return s;
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  double ss = 0;
  for (double x : v) ss += (x - s.mean) * (x - s.mean);
  s.stddev = v.size() > 1 ? std::sqrt(ss / static_cast<double>(v.size() - 1)) : 0.0;
  // The median resists the one slow repetition a shared machine's neighbour causes.
  std::vector<double> sorted = v;
  std::sort(sorted.begin(), sorted.end());
  const size_t n = sorted.size();
  s.median = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  return s;
}

std::vector<int> parse_sizes(const std::string& list) {
  std::vector<int> sizes;
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end || v < 0) throw std::invalid_argument("-p: \"" + list + "\" is not a list of sizes");
    if (v > 0) sizes.push_back(static_cast<int>(v));
  }
  return sizes;
}

std::string human_bytes(double b) {
  char buf[32];
  if (b >= 1e9)
    std::snprintf(buf, sizeof buf, "%.2f GB", b / 1e9);
  else
    std::snprintf(buf, sizeof buf, "%.1f MB", b / 1e6);
  return buf;
}

}  // namespace

int bench(const BenchOptions& o) {
  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<int> pp = parse_sizes(o.prompt_sizes);
  if (o.repetitions < 1) throw std::invalid_argument("-r must be at least 1");
  auto say = [&](const std::string& s) {
    if (!o.quiet) std::fprintf(stderr, "bench: %s\n", s.c_str());
  };

  const PreparedOutput prepared = prepare_output(o.output, "bench", o.head_q8, say);
  if (prepared.emulated())
    throw std::invalid_argument("bench: " + prepared.target_name + " outputs run under " + prepared.runner[0] +
                                " here, and timings under emulation say nothing about the device; "
                                "use `bitnetc verify` for correctness and bench on the device itself");
  const std::string& binary = prepared.binary;
  rusage self{};
  ::getrusage(RUSAGE_SELF, &self);
  const long compile_rss_kb = prepared.compile_s > 0 ? self.ru_maxrss : 0;
  // A WebAssembly output is its loader and the module beside it (NAME.mjs, NAME.wasm).
  uint64_t size = fs::file_size(binary);
  if (binary.ends_with(".mjs")) size += fs::file_size(binary.substr(0, binary.size() - 4) + ".wasm");

  // Each test runs with a context just large enough for it (the KV cache it touches).
  auto run_bench = [&](int p, int g, int reps) {
    std::vector<std::string> argv = prepared.command(
        {"--bench", std::to_string(p) + "," + std::to_string(g) + "," + std::to_string(reps), "-t",
         std::to_string(threads)});
    if (p + g > 0) {
      argv.insert(argv.end(), {"-c", std::to_string(o.depth + std::max(p, g + 1))});
      if (o.depth > 0) argv.insert(argv.end(), {"--bench-depth", std::to_string(o.depth)});
    }
    ProcessResult r = run_process(argv);
    if (r.exit_code != 0) throw std::runtime_error(binary + " --bench failed (exit " + std::to_string(r.exit_code) + "): " + r.err);
    return std::make_pair(json::parse(r.out), r);
  };

  say("start-up");
  auto [startup_json, startup_run] = run_bench(0, 0, 1);
  const uint64_t decode_bytes = startup_json.at("decode_bytes_per_token").get<uint64_t>();
  const int64_t n_ctx = startup_json.at("n_ctx").get<int64_t>();
  std::erase_if(pp, [&](int p) {
    if (o.depth + p <= n_ctx) return false;
    say("pp" + std::to_string(p) + " skipped: the model's context is " + std::to_string(n_ctx) +
        (o.depth > 0 ? " (depth " + std::to_string(o.depth) + ")" : ""));
    return true;
  });
  int n_gen = o.n_gen;
  if (o.depth >= n_ctx)
    throw std::invalid_argument("--depth " + std::to_string(o.depth) + ": the model's context is " +
                                std::to_string(n_ctx));
  if (o.depth + n_gen + 1 > n_ctx) {
    say("tg" + std::to_string(n_gen) + " shortened to the model's context");
    n_gen = static_cast<int>(n_ctx - 1 - o.depth);
  }
  json tests = json::array();
  long peak_rss_kb = startup_run.peak_rss_kb;
  for (int p : pp) {
    say("pp" + std::to_string(p));
    auto [j, r] = run_bench(p, 0, o.repetitions);
    peak_rss_kb = std::max(peak_rss_kb, r.peak_rss_kb);
    const Stats s = stats_of(j.at("pp_tps").get<std::vector<double>>());
    tests.push_back({{"test", "pp" + std::to_string(p)}, {"depth", o.depth}, {"tps", s.mean}, {"median_tps", s.median},
                     {"stddev", s.stddev}, {"samples", s.samples}});
  }
  // A GPU output measured its device's bandwidth in the start-up run; else the host's,
  // right before and right after the decode test: on a shared machine it moves with the
  // neighbours, and the larger of the two keeps the roofline from flattering decode.
  const std::string device = startup_json.value("device", std::string("cpu"));
  const double device_bw = startup_json.value("device_read_GBps", 0.0) * 1e9;
  double host_bw_before = 0;
  if (device_bw == 0 && n_gen > 0) {
    say("memory bandwidth");
    host_bw_before = measure_read_bandwidth(threads);
  }
  Stats tg;
  if (n_gen > 0) {
    say("tg" + std::to_string(n_gen));
    auto [j, r] = run_bench(0, n_gen, o.repetitions);
    peak_rss_kb = std::max(peak_rss_kb, r.peak_rss_kb);
    tg = stats_of(j.at("tg_tps").get<std::vector<double>>());
    tests.push_back({{"test", "tg" + std::to_string(n_gen)}, {"depth", o.depth}, {"tps", tg.mean},
                     {"median_tps", tg.median}, {"stddev", tg.stddev}, {"samples", tg.samples}});
  }
  if (device_bw == 0) say("memory bandwidth");
  const double bandwidth = device_bw > 0 ? device_bw : std::max(host_bw_before, measure_read_bandwidth(threads));
  const double roofline = bandwidth / static_cast<double>(decode_bytes);

  json out = {{"model", o.output.model},
              {"target", prepared.target_name},
              {"device", device},
              {"threads", threads},
              {"depth", o.depth},
              {"head", o.output.binary.empty() ? (o.head_q8 ? "q8" : "exact") : "(given binary)"},
              {"layout", o.output.binary.empty() ? o.output.layout : "(given binary)"},  // the --layout request
              {"output_bytes", size},
              {"compile_s", prepared.compile_s},
              {"compile_peak_rss_kb", compile_rss_kb},
              {"startup_s", startup_run.seconds},
              {"load_s", startup_json.at("load_s")},
              {"peak_rss_kb", peak_rss_kb},
              {"read_GBps", bandwidth / 1e9},
              {"decode_bytes_per_token", decode_bytes},
              {"decode_roofline_tps", roofline},
              {"tg_roofline_fraction", n_gen > 0 ? tg.median / roofline : 0.0},  // the median's
              {"tests", tests}};
  if (o.json) {
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("model %s, target %s, --layout=%s, %d threads\n", o.output.model.c_str(), prepared.target_name.c_str(),
              o.output.layout.c_str(), threads);
  if (prepared.compile_s > 0)
    std::printf("compile %.1f s (peak RSS %s), ", prepared.compile_s, human_bytes(compile_rss_kb * 1024.0).c_str());
  std::printf("output %s, start-up %.3f s, peak RSS running %s\n", human_bytes(static_cast<double>(size)).c_str(),
              startup_run.seconds, human_bytes(peak_rss_kb * 1024.0).c_str());
  std::printf("device %s; read bandwidth %.1f GB/s; decode reads %s per token -> roofline %.1f t/s\n\n", device.c_str(), bandwidth / 1e9,
              human_bytes(static_cast<double>(decode_bytes)).c_str(), roofline);
  std::printf("| %-14s | %10s | %10s | %8s | %8s |\n", "test", "t/s", "median", "stddev", "roofline");
  std::printf("| %-14s | %10s | %10s | %8s | %8s |\n", "--------------", "----------", "----------", "--------",
              "--------");
  for (const auto& t : tests) {
    const std::string name = t.at("test");
    const std::string label = o.depth > 0 ? name + " @ d" + std::to_string(o.depth) : name;  // llama-bench's form
    char frac[16] = "";
    if (name.starts_with("tg"))
      std::snprintf(frac, sizeof frac, "%.1f %%", 100.0 * t.at("median_tps").get<double>() / roofline);
    std::printf("| %-14s | %10.2f | %10.2f | %8.2f | %8s |\n", label.c_str(), t.at("tps").get<double>(),
                t.at("median_tps").get<double>(), t.at("stddev").get<double>(), frac);
  }
  return 0;
}

Command add_bench(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  auto head = std::make_shared<std::string>("exact");
  CLI::App* cmd = app.add_subcommand("bench", "llama-bench-style figures of a compiled model (pp/tg t/s, roofline)");
  add_output_under_test(cmd, o->output, "measure");
  cmd->add_option("-p,--n-prompt", o->prompt_sizes, "Prefill sizes, comma-separated (default 128,512)");
  cmd->add_option("-n,--n-gen", o->n_gen, "Generated tokens of the tg test (default 128)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("-d,--depth", o->depth, "Tokens already in the cache before each test, as llama-bench's -d (default 0)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("-r,--repetitions", o->repetitions, "Repetitions of each test (default 3)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("-t,--threads", o->threads, "Threads (default: every core)")->check(CLI::PositiveNumber);
  cmd->add_option("--head", *head, "Compile the head exact (default) or q8 (see compile --head)")
      ->check(CLI::IsMember({"exact", "q8"}));
  cmd->add_flag("--json", o->json, "One JSON object instead of the table");
  cmd->add_flag("-q,--quiet", o->quiet, "No progress on stderr");
  return {cmd, [o, head] {
            o->head_q8 = *head == "q8";
            return bench(*o);
          }};
}

}  // namespace bitnetc::cli
