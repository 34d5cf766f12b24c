// `main` of every compiled executable: reads the embedded model, runs the step list with
// the generated kernels, and generates text with llama.cpp-style flags.
//
// This first version executes the plan with the reference interpreter's loop (ir/),
// dispatching every ternary matmul to its generated kernel; the other ops still run the
// interpreter's scalar code until their Halide kernels land.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "HalideBuffer.h"
#include "HalideRuntime.h"
#include "generate.h"
#include "interpreter.h"
#include "model_blob.h"
#include "serialize.h"
#include "vocab_io.h"

using KernelFn = int (*)(halide_buffer_t*, halide_buffer_t*, halide_buffer_t*, halide_buffer_t*, float,
                         halide_buffer_t*);
extern "C" const KernelFn bitnetc_kernels[];
extern "C" const uint8_t bitnetc_blob_start[];
extern "C" const uint8_t bitnetc_blob_end[];

using namespace bitnetc;

namespace {

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr,
               "error: %s\n(usage: -p PROMPT | -f FILE, -n N, -c N, -t N, --temp T, --top-k K, --top-p P, "
               "--min-p P, --repeat-penalty R, -s SEED, --json)\n",
               msg.c_str());
  std::exit(2);
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\')
      o += '\\', o += static_cast<char>(c);
    else if (c == '\n')
      o += "\\n";
    else if (c == '\t')
      o += "\\t";
    else if (c == '\r')
      o += "\\r";
    else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
    } else
      o += static_cast<char>(c);
  }
  return o;
}

std::string ids_json(const std::vector<int32_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}

}  // namespace

int main(int argc, char** argv) {
  std::string prompt;
  bool json = false;
  int32_t n_predict = 64;
  int64_t n_ctx = 0;
  int threads = 0;
  rt::SamplerParams sp;
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
    if (a == "-p" || a == "--prompt")
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
    else if (a == "-t" || a == "--threads")
      threads = static_cast<int>(number(value()));
    else if (a == "--temp")
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
    else
      usage_error("unknown option " + a);
  }
  if (n_predict < 0) usage_error("-n must not be negative");
  if (threads < 0) usage_error("-t must not be negative");
  if (threads > 0) halide_set_num_threads(threads);

  const std::span<const uint8_t> blob(bitnetc_blob_start, static_cast<size_t>(bitnetc_blob_end - bitnetc_blob_start));
  rt::BlobHeader h;
  std::memcpy(&h, blob.data(), sizeof h);
  if (h.magic != rt::kBlobMagic || h.version != rt::kBlobVersion) {
    std::fprintf(stderr, "error: the embedded model is damaged\n");
    return 1;
  }
  try {
    const auto t0 = std::chrono::steady_clock::now();
    ir::Graph g = ir::deserialize(blob.subspan(h.graph_off, h.graph_size));
    if (n_ctx > 0) {
      if (n_ctx > g.n_ctx)
        usage_error("-c " + std::to_string(n_ctx) + " is more than the model's context " + std::to_string(g.n_ctx));
      g.n_ctx = n_ctx;
    }
    const rt::Tokenizer tok(rt::deserialize_vocab(blob.subspan(h.vocab_off, h.vocab_size)));
    std::vector<int32_t> stop(h.n_stop);
    std::memcpy(stop.data(), blob.data() + h.stop_off, h.n_stop * 4);
    std::vector<rt::TernaryRecord> rec(h.n_records);
    std::memcpy(rec.data(), blob.data() + h.records_off, h.n_records * sizeof(rt::TernaryRecord));

    std::vector<int8_t> xpad;
    std::vector<int32_t> xsum;
    auto matmul = [&](size_t op_index, const int8_t* q, const float* d, float* out) {
      const rt::TernaryRecord& r = rec[g.ops[op_index].weight];
      xpad.assign(r.K_padded, 0);
      std::memcpy(xpad.data(), q, r.K);
      const int64_t nb = r.K / r.act_block;
      xsum.assign(nb, 0);
      for (int64_t k = 0; k < r.K; ++k) xsum[k / r.act_block] += q[k];
      Halide::Runtime::Buffer<uint8_t> pb(const_cast<uint8_t*>(blob.data() + r.packed_off),
                                          static_cast<int>(r.K_padded / 4), static_cast<int>(r.N));
      Halide::Runtime::Buffer<int8_t> xb(xpad.data(), static_cast<int>(r.K_padded));
      Halide::Runtime::Buffer<int32_t> sb(xsum.data(), static_cast<int>(nb));
      Halide::Runtime::Buffer<float> db(const_cast<float*>(d), static_cast<int>(nb));
      Halide::Runtime::Buffer<float> yb(out, static_cast<int>(r.N));
      if (int err = bitnetc_kernels[r.kernel](pb, xb, sb, db, r.w_scale, yb))
        throw std::runtime_error("kernel " + std::to_string(r.kernel) + " failed (" + std::to_string(err) + ")");
    };
    ir::Interpreter exec(g, matmul);
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    rt::GenerateOptions go;
    go.n_predict = n_predict;
    go.n_ctx = g.n_ctx;
    go.sampling = sp;
    go.stop_tokens = stop;
    go.parse_special = true;
    auto forward = [&](int32_t token, int32_t pos) -> std::span<const float> { return exec.forward(token, pos); };
    std::function<void(std::string_view)> stream = [](std::string_view t) {
      std::fwrite(t.data(), 1, t.size(), stdout);
      std::fflush(stdout);
    };
    if (!json) stream(prompt);
    const auto t1 = std::chrono::steady_clock::now();
    const rt::Generation gen =
        rt::generate(tok, forward, prompt, go, json ? std::function<void(std::string_view)>() : stream);
    const double gen_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    if (json)
      std::printf("{\"prompt_tokens\":%s,\"tokens\":%s,\"text\":\"%s\"}\n", ids_json(gen.prompt_tokens).c_str(),
                  ids_json(gen.tokens).c_str(), json_escape(gen.text).c_str());
    else
      std::printf("\n");
    std::fprintf(stderr, "load %.3f s, %zu prompt + %zu generated tokens in %.3f s (%.1f t/s)\n", load_s,
                 gen.prompt_tokens.size(), gen.tokens.size(), gen_s,
                 (gen.prompt_tokens.size() + gen.tokens.size()) / std::max(gen_s, 1e-9));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
