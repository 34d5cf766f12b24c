// CUDA outputs on a machine without a GPU. `bitnetc MODEL --target=cuda-smXX` must
// write an output that
//  - embeds a valid module: a cubin (an ELF for EM_CUDA) and PTX for the target's SM,
//    naming every kernel of the generated source;
//  - without a driver, exits with the documented error (never a crash, never the CPU);
//  - with a driver, runs the whole model on the device. Here the driver is
//    tests/support/fake_cuda_driver.cpp (a libcuda.so.1 that runs the output's own
//    generated kernels on the CPU, see there), so everything but the GPU itself is the
//    real thing: module loading (and the PTX fallback), the weight upload, the buffers,
//    the launches with their grids and arguments, decode as a captured CUDA graph,
//    greedy sampling on the device. The goldens' tokens and the interpreter's logits
//    must come out, bit for bit (the kernels use only IEEE-rounded float operations and
//    ir/numerics.h's own expf, so a real GPU gives the same bits).
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "support/test_support.h"

using namespace bitnetc::test;
using nlohmann::json;

namespace {

// A CUDA output with the emulated kernels of its own generated source, and the
// environment that runs it on the fake driver.
struct FakeGpuOutput {
  std::string exe, source, kernels, stats;
  std::string env(const std::string& extra = "") const {
    return "env LD_LIBRARY_PATH=" + shell_quote(BITNETC_FAKE_CUDA_DIR) + " BITNETC_FAKE_CUDA_KERNELS=" +
           shell_quote(kernels) + " BITNETC_FAKE_CUDA_STATS=" + shell_quote(stats) + " " + extra + " ";
  }
};

FakeGpuOutput compile_for_fake_gpu(const std::string& model, const std::string& target, const std::string& name,
                                   const ScratchDir& dir, const std::string& flags = "") {
  FakeGpuOutput o{dir.file(name), dir.file(name + ".cu"), dir.file(name + "-kernels.so"), dir.file(name + ".stats")};
  const CommandResult c =
      run_command(std::string(BITNETC_BIN) + " " + shell_quote(model) + " --target=" + target + flags + " -q -o " +
                      shell_quote(o.exe) + " --cuda-source=" + shell_quote(o.source),
                  dir);
  EXPECT_EQ(c.status, 0) << c.err;
  // The rounding NVRTC gets: no contraction (-fmad=false).
  const CommandResult k = run_command(std::string(BITNETC_CXX) +
                                          " -std=c++17 -O2 -ffp-contract=off -fPIC -shared -DBITNETC_CUDA_EMULATION "
                                          "-include " +
                                          BITNETC_TEST_SUPPORT_DIR + "/cuda_emulation.h -x c++ " +
                                          shell_quote(o.source) + " -o " + shell_quote(o.kernels),
                                      dir);
  EXPECT_EQ(k.status, 0) << k.err;
  return o;
}

json load(const std::filesystem::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

// "launches L graph_launches G module M dtoh_bytes B" from the fake driver.
struct Stats {
  long launches = -1, graph_launches = -1, dtoh_bytes = -1;
  std::string module;
};
Stats read_stats(const std::string& path) {
  Stats s;
  std::ifstream in(path);
  std::string a, b, c, d;
  in >> a >> s.launches >> b >> s.graph_launches >> c >> s.module >> d >> s.dtoh_bytes;
  return s;
}

}  // namespace

// The golden models' tokens on the device are in compile_tests' Golden suite (with every
// other target). Here: what only a GPU output does. Every token fed alone (a one-token
// prompt, each decoded token) is one replay of the captured decode graph, and greedy
// tokens are picked on the device: 4 bytes come back per forward pass. And outputs are
// reproducible: the plan's structs have no padding left unwritten, with or without the
// kernel cache.
TEST(Cuda, DecodeReplaysOneGraphAndReturnsOnlyTheToken) {
  ScratchDir dir;
  const auto s = shared_dir();
  const std::string model = (s / "models/tinystories-bitnet-3m/model.bin").string();
  const FakeGpuOutput o = compile_for_fake_gpu(model, "cuda-sm80", "model", dir);
  const json golden = load(s / "golden/tinystories-bitnet-3m/golden.json");
  for (const auto& c : {golden["cases"][0], golden["cases"][1]}) {
    const CommandResult r =
        run_command(o.env() + shell_quote(o.exe) + " -p " + shell_quote(c["prompt"]) + " -n 24 --temp 0 --json", dir);
    ASSERT_EQ(r.status, 0) << r.err;
    const json j = json::parse(r.out);
    EXPECT_EQ(j["tokens"], json(std::vector<int>(c["tokens"].begin(), c["tokens"].begin() + j["tokens"].size())));
    const Stats st = read_stats(o.stats);
    EXPECT_EQ(st.module, "cubin");
    const long fed = static_cast<long>(j["tokens"].size()) - (j["stopped"] == true ? 0 : 1);
    EXPECT_EQ(st.graph_launches, fed + (j["prompt_tokens"].size() == 1 ? 1 : 0)) << c["prompt"];
    EXPECT_EQ(st.dtoh_bytes, 4 * (fed + 1)) << c["prompt"];
  }
  std::string bytes[2];
  for (int i = 0; i < 2; ++i) {
    const std::string out = dir.file("m" + std::to_string(i));
    const CommandResult c = run_command(
        std::string(BITNETC_BIN) + " " + shell_quote(model) + " --target=cuda-sm80 -q -o " + shell_quote(out), dir);
    ASSERT_EQ(c.status, 0) << c.err;
    bytes[i] = read_text(out);
  }
  EXPECT_EQ(bytes[0], bytes[1]) << "the same inputs must give a byte-identical output";
}

// llama.cpp's own TQ2_0 and TQ1_0 files of the TinyStories model (a scale per block of
// 256 weights, every one different): the device writes llama.cpp's greedy text, and
// its logits are the CPU output's (top logits, printed round-trip exact).
TEST(Cuda, PeerFilesGiveThePeersTextAndTheCpusLogitsOnTheDevice) {
  ScratchDir dir;
  const auto d = shared_dir() / "golden/peer-files";
  const json golden = load(d / "golden.json");
  const std::string n = " -n " + std::to_string(golden["n_predict"].get<int>()) + " --temp 0 --json --top-logits 3";
  // llama.cpp's TQ files (a scale per 256-weight block, Q8_K activations) and ik_llama.cpp's
  // IQ files (its Q8_K64 activations; the story every peer wrote, bitnet.cpp's text).
  for (const char* file : {"llamacpp-tq2_0", "llamacpp-tq1_0", "ikllama-iq2_bn", "ikllama-iq1_bn"}) {
    const std::string peer = std::string(file).rfind("ikllama", 0) == 0 ? "bitnetcpp-i2_s" : file;
    const std::string model = (d / (std::string(file) + ".gguf")).string();
    const FakeGpuOutput o = compile_for_fake_gpu(model, "cuda-sm80", file, dir);
    const std::string cpu = dir.file(std::string(file) + "-cpu");
    const CommandResult c = run_command(
        std::string(BITNETC_BIN) + " " + shell_quote(model) + " --target=x86-64-avx2 -q -o " + shell_quote(cpu), dir);
    ASSERT_EQ(c.status, 0) << c.err;
    for (const auto& cs : golden["files"][peer]["cases"]) {
      const CommandResult r = run_command(o.env() + shell_quote(o.exe) + " -p " + shell_quote(cs["prompt"]) + n, dir);
      ASSERT_EQ(r.status, 0) << r.err;
      const CommandResult h = run_command(shell_quote(cpu) + " -p " + shell_quote(cs["prompt"]) + n, dir);
      ASSERT_EQ(h.status, 0) << h.err;
      const json gpu = json::parse(r.out), host = json::parse(h.out);
      EXPECT_EQ(gpu["text"], cs["text"]) << file << " " << cs["prompt"];
      EXPECT_EQ(gpu["top_logits"], host["top_logits"]) << file << " " << cs["prompt"];
    }
  }
}

// The logits themselves, through `bitnetc verify` (greedy tokens and top logits against
// the interpreter), on the golden models the tests above leave out, for an SM whose
// cubin the "GPU" refuses, so the module comes from the PTX.
TEST(Cuda, LogitsMatchTheInterpreterWithThePtxFallback) {
  ScratchDir dir;
  const auto g = shared_dir() / "golden";
  int i = 0;
  for (const auto& model : {g / "gguf/synth-b158/synth-b158-tq1_0.gguf"}) {
    const FakeGpuOutput o = compile_for_fake_gpu(model.string(), "cuda-sm90", "m" + std::to_string(i++), dir);
    const CommandResult r = run_command(o.env("BITNETC_FAKE_CUDA_SM=100 BITNETC_FAKE_CUDA_REJECT_CUBIN=1") +
                                            BITNETC_BIN + " verify " + shell_quote(model.string()) + " --binary " +
                                            shell_quote(o.exe) + " -q -n 16",
                                        dir);
    EXPECT_EQ(r.status, 0) << model << "\n" << r.out << r.err;
    EXPECT_NE(r.out.find("PASS: 4 prompts"), std::string::npos) << r.out;
    EXPECT_EQ(read_stats(o.stats).module, "ptx");
  }
}

// Seeded sampling gives `bitnetc run`'s tokens: the device selects the top-k logits
// (only they come back, not the vocabulary's), the host draws from them, and the
// logits are the interpreter's, for the float recipes (llama2.c) and for ggml's
// (double sums reduced in parallel) alike. A repetition penalty is applied on the
// device too, before the top-k or the greedy pick. Without a top-k, all logits come
// back.
TEST(Cuda, SeededSamplingMatchesTheInterpreter) {
  ScratchDir dir;
  const auto s = shared_dir();
  int i = 0;
  for (const auto& model : {s / "models/tinystories-bitnet-3m/model.bin", s / "golden/gguf/synth-b158/synth-b158-tq2_0.gguf"}) {
    const FakeGpuOutput o = compile_for_fake_gpu(model.string(), "cuda-sm86", "m" + std::to_string(i++), dir);
    // bytes_per_pass: what comes back from the device per forward pass.
    for (const auto& [flags, bytes_per_pass] : std::vector<std::pair<std::string, long>>{
             {" -p 'Once upon a time' -n 40 --temp 0.9 --top-k 20 --top-p 0.9 -s 1234 --json", 64 * 8},
             {" -p 'Once upon a time' -n 40 --temp 0.9 --top-k 20 --repeat-penalty 1.5 -s 5 --json", 64 * 8},
             {" -p 'Once upon a time' -n 40 --temp 0 --repeat-penalty 2 --json", 4}}) {
      const CommandResult gpu = run_command(o.env() + shell_quote(o.exe) + flags, dir);
      const CommandResult ref =
          run_command(std::string(BITNETC_BIN) + " run " + shell_quote(model.string()) + flags, dir);
      ASSERT_EQ(gpu.status, 0) << gpu.err;
      ASSERT_EQ(ref.status, 0) << ref.err;
      const json got = json::parse(gpu.out);
      EXPECT_EQ(got["tokens"], json::parse(ref.out)["tokens"]) << model << flags;
      EXPECT_GE(got["tokens"].size(), 20u) << model << flags << ": too few draws to compare";
      const long fed = static_cast<long>(got["tokens"].size()) - (got["stopped"] == true ? 0 : 1);
      const Stats stats = read_stats(o.stats);
      EXPECT_EQ(stats.graph_launches, fed) << model << flags;
      EXPECT_EQ(stats.dtoh_bytes, bytes_per_pass * (fed + 1)) << model << flags << ": never the logits";
    }
    // No top-k: the sampler needs every logit.
    const std::string all = " -p 'Once upon a time' -n 12 --temp 0.9 --top-k 0 --top-p 0.9 -s 99 --json";
    const CommandResult gpu_all = run_command(o.env() + shell_quote(o.exe) + all, dir);
    const CommandResult ref_all = run_command(std::string(BITNETC_BIN) + " run " + shell_quote(model.string()) + all, dir);
    ASSERT_EQ(gpu_all.status, 0) << gpu_all.err;
    ASSERT_EQ(ref_all.status, 0) << ref_all.err;
    EXPECT_EQ(json::parse(gpu_all.out)["tokens"], json::parse(ref_all.out)["tokens"]) << model;
  }
}

// --head=q8 on the device: the int8 head (and the tied embedding reading it) computes
// what the CPU outputs' q8 head computes, so greedy and seeded sampling from all logits
// give the CPU output's tokens.
TEST(Cuda, Q8HeadGivesTheCpuOutputsTokens) {
  ScratchDir dir;
  const std::string model = (shared_dir() / "models/tinystories-bitnet-3m/model.bin").string();
  const FakeGpuOutput o = compile_for_fake_gpu(model, "cuda-sm80", "q8", dir, " --head=q8");
  const CommandResult cpu = run_command(std::string(BITNETC_BIN) + " " + shell_quote(model) +
                                            " --target=x86-64-avx2 --head=q8 -q -o " + shell_quote(dir.file("q8cpu")),
                                        dir);
  ASSERT_EQ(cpu.status, 0) << cpu.err;
  for (const std::string flags : {" -p 'Once upon a time' -n 48 --temp 0 --json",
                                  " -p 'The dog' -n 40 --temp 0.9 --top-k 0 --top-p 0.95 -s 7 --json"}) {
    const CommandResult g = run_command(o.env() + shell_quote(o.exe) + flags, dir);
    const CommandResult c = run_command(shell_quote(dir.file("q8cpu")) + flags, dir);
    ASSERT_EQ(g.status, 0) << g.err;
    ASSERT_EQ(c.status, 0) << c.err;
    const json got = json::parse(g.out);
    EXPECT_EQ(got["tokens"], json::parse(c.out)["tokens"]) << flags;
    EXPECT_GE(got["tokens"].size(), 20u) << flags;
  }
}

// Every CUDA target's output carries a cubin for its SM and PTX for the same, each
// naming every kernel of the generated source; without a driver the output says what
// is missing and exits 1.
TEST(Cuda, OutputsEmbedTheModuleAndSayWhenThereIsNoDriver) {
  ScratchDir dir;
  const std::string model = (shared_dir() / "models/tinystories-bitnet-3m/model.bin").string();
  for (const char* sm : {"80", "86", "89", "90"}) {
    const std::string target = std::string("cuda-sm") + sm, exe = dir.file(target), src = dir.file(target + ".cu");
    const CommandResult c = run_command(std::string(BITNETC_BIN) + " " + shell_quote(model) + " --target=" + target +
                                            " -q -o " + shell_quote(exe) + " --cuda-source=" + shell_quote(src),
                                        dir);
    ASSERT_EQ(c.status, 0) << c.err;
    const std::string bytes = read_text(exe), source = read_text(src);
    std::vector<std::string> kernels;
    const std::regex entry("extern \"C\" __global__ void (bitnetc_[A-Za-z0-9_]+)\\(");
    for (auto it = std::sregex_iterator(source.begin(), source.end(), entry); it != std::sregex_iterator(); ++it)
      kernels.push_back((*it)[1]);
    EXPECT_GE(kernels.size(), 10u) << target;
    // The cubin: an ELF header for EM_CUDA (190) inside the output, with the kernels.
    size_t cubin = std::string::npos;
    for (size_t at = bytes.find("\x7f" "ELF", 1); at != std::string::npos; at = bytes.find("\x7f" "ELF", at + 1))
      if (at + 20 <= bytes.size() && static_cast<unsigned char>(bytes[at + 18]) == 190 && bytes[at + 19] == 0) {
        cubin = at;
        break;
      }
    ASSERT_NE(cubin, std::string::npos) << target << ": no cubin embedded";
    const size_t ptx = bytes.find(".target sm_" + std::string(sm));
    ASSERT_NE(ptx, std::string::npos) << target << ": no PTX for sm_" << sm;
    for (const std::string& k : kernels) {
      EXPECT_NE(bytes.find(k, cubin), std::string::npos) << target << ": " << k;
      EXPECT_NE(bytes.find(".entry " + k), std::string::npos) << target << ": PTX lacks " << k;
    }
    // No driver here (the fake one is not on the library path).
    const CommandResult r = run_command("env -u LD_LIBRARY_PATH " + shell_quote(exe) + " -p 'Once' -n 4", dir);
    EXPECT_EQ(r.status, 1) << target;
    EXPECT_NE(r.err.find("libcuda.so.1"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("install the NVIDIA driver"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "") << target << ": printed text without a GPU";
  }
  // The NVRTC image comes from the kernel cache the second time, and the output is the
  // same bytes as without the cache.
  const std::string compile = std::string(BITNETC_BIN) + " " + shell_quote(model) + " --target=cuda-sm80 ";
  const std::string cache = shell_quote(dir.file("cache"));
  const CommandResult cold =
      run_command(compile + "--kernel-cache " + cache + " -o " + shell_quote(dir.file("cold")), dir);
  const CommandResult warm =
      run_command(compile + "--kernel-cache " + cache + " -o " + shell_quote(dir.file("warm")), dir);
  const CommandResult off = run_command(compile + "--kernel-cache off -q -o " + shell_quote(dir.file("off")), dir);
  ASSERT_EQ(cold.status, 0) << cold.err;
  ASSERT_EQ(warm.status, 0) << warm.err;
  ASSERT_EQ(off.status, 0) << off.err;
  EXPECT_EQ(cold.err.find("the CUDA image from the kernel cache"), std::string::npos) << cold.err;
  EXPECT_NE(warm.err.find("the CUDA image from the kernel cache"), std::string::npos) << warm.err;
  EXPECT_EQ(read_text(dir.file("warm")), read_text(dir.file("off")));
  EXPECT_EQ(read_text(dir.file("cold")), read_text(dir.file("off")));
  EXPECT_EQ(read_text(dir.file("cuda-sm80")), read_text(dir.file("off")));
}

// A prompt longer than a prefill chunk (64 tokens) runs as several chunks of the
// tensor-core kernels, the last one partial, and gives the CPU output's tokens.
TEST(Cuda, LongPromptRunsAsSeveralChunks) {
  ScratchDir dir;
  const std::string model = (shared_dir() / "models/tinystories-bitnet-3m/model.bin").string();
  const FakeGpuOutput o = compile_for_fake_gpu(model, "cuda-sm80", "gpu", dir);
  const std::string cpu = dir.file("cpu");
  const CommandResult c = run_command(
      std::string(BITNETC_BIN) + " " + shell_quote(model) + " --target=x86-64-avx2 -q -o " + shell_quote(cpu), dir);
  ASSERT_EQ(c.status, 0) << c.err;
  std::string prompt;
  for (int i = 0; i < 12; ++i) prompt += "Once upon a time, a little cat played in the sun. ";
  const std::string flags = " -p " + shell_quote(prompt) + " -n 12 --temp 0 --json";
  const CommandResult gpu = run_command(o.env() + shell_quote(o.exe) + flags, dir);
  const CommandResult ref = run_command(shell_quote(cpu) + flags, dir);
  ASSERT_EQ(gpu.status, 0) << gpu.err;
  ASSERT_EQ(ref.status, 0) << ref.err;
  const json got = json::parse(gpu.out);
  EXPECT_GT(got["prompt_tokens"].size(), 130u) << "the prompt should span three chunks";
  EXPECT_NE(got["prompt_tokens"].size() % 64, 0u);
  EXPECT_EQ(got["tokens"], json::parse(ref.out)["tokens"]);
}

// The shared object of a CUDA target serves the C API (bitnet.h) to a C program, with
// two models in two threads at once.
TEST(Cuda, SharedObjectServesTheCApiOnTheDevice) {
  ScratchDir dir;
  const auto s = shared_dir();
  const std::string model = (s / "models/tinystories-bitnet-3m/model.bin").string();
  const FakeGpuOutput o = compile_for_fake_gpu(model, "cuda-sm80", "libtinystories.so", dir);
  const json golden = load(s / "golden/tinystories-bitnet-3m/golden.json");
  const auto& c = golden["cases"][0];
  write_text(dir.file("expected.txt"), c["text"].get<std::string>());
  const CommandResult r = build_and_run_capi_test(BITNETC_CC, dir, "tinystories", BITNETC_RUNTIME_DIR,
                                                  BITNETC_CAPI_TEST, o.env(), model,
                                                  (s / "models/tinystories-bitnet-3m/tokenizer.model").string(),
                                                  c["prompt"], dir.file("expected.txt"));
  EXPECT_EQ(r.status, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("C API: all checks passed"), std::string::npos) << r.out;
}

// --device names where the forward pass runs and never falls back: a CUDA output
// refuses --device=cpu, a CPU output --device=cuda. --bench reports the device and its
// measured read bandwidth (the roofline `bitnetc bench` uses for GPU outputs), --profile
// times each launch of a decode step (CUDA outputs only), and a shortened context (-c)
// sizes the device's KV cache and still gives the same tokens.
TEST(Cuda, DeviceFlagBenchAndShortContext) {
  ScratchDir dir;
  const std::string model = (shared_dir() / "models/tinystories-bitnet-3m/model.bin").string();
  const FakeGpuOutput o = compile_for_fake_gpu(model, "cuda-sm80", "gpu", dir);
  CommandResult r = run_command(o.env() + shell_quote(o.exe) + " --device cpu -p Once -n 4", dir);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("runs on an NVIDIA GPU only"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  const std::string cpu = dir.file("cpu");
  r = run_command(std::string(BITNETC_BIN) + " " + shell_quote(model) + " --target=x86-64-avx2 -q -o " + shell_quote(cpu),
                  dir);
  ASSERT_EQ(r.status, 0) << r.err;
  r = run_command(shell_quote(cpu) + " --device cuda -p Once -n 4", dir);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("runs on the CPU only"), std::string::npos) << r.err;

  r = run_command(o.env() + shell_quote(o.exe) + " --device cuda --bench 0,0,1", dir);
  ASSERT_EQ(r.status, 0) << r.err;
  const json bench = json::parse(r.out);
  EXPECT_NE(bench["device"].get<std::string>().find("fake GPU"), std::string::npos) << r.out;
  EXPECT_GT(bench["device_read_GBps"].get<double>(), 0.0) << r.out;

  // --profile: every launch of a decode step, timed by the device's events, with the
  // weights it reads: together the bytes a decoded token reads (to 1 %: a tied
  // embedding's row is counted at the embedding and in the head).
  r = run_command(o.env() + shell_quote(o.exe) + " --profile 2", dir);
  ASSERT_EQ(r.status, 0) << r.err;
  const json profile = json::parse(r.out);
  ASSERT_GE(profile["steps"].size(), 10u) << r.out;
  EXPECT_EQ(profile["launches"], profile["steps"].size());
  double total_us = 0, bytes = 0;
  for (const auto& s : profile["steps"]) {
    EXPECT_GE(s["us"].get<double>(), 0.0) << s;
    total_us += s["us"].get<double>();
    bytes += s["weight_bytes"].get<double>();
  }
  EXPECT_GT(total_us, 0.0);
  EXPECT_NEAR(profile["total_us"].get<double>(), total_us, 0.01 * total_us);
  const double decode_bytes = bench["decode_bytes_per_token"].get<double>();
  EXPECT_NEAR(bytes, decode_bytes, 0.01 * decode_bytes) << r.out;
  r = run_command(shell_quote(cpu) + " --profile 2", dir);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--profile times the launches of a CUDA output"), std::string::npos) << r.err;

  const std::string flags = " -p 'Once upon a time' -n 20 --temp 0 --json";
  const CommandResult shortened = run_command(o.env() + shell_quote(o.exe) + " -c 32" + flags, dir);
  const CommandResult full = run_command(shell_quote(cpu) + flags, dir);
  ASSERT_EQ(shortened.status, 0) << shortened.err;
  ASSERT_EQ(full.status, 0) << full.err;
  EXPECT_EQ(json::parse(shortened.out)["tokens"], json::parse(full.out)["tokens"]);

  // The engine over a CUDA output, one sequence at a time and two at once (their rows in
  // shared steps, a KV cache each, and the short context): the CPU output's tokens.
  write_text(dir.file("prompts.txt"), "Once upon a time\nThe little dog\n");
  const std::string prompts = " --prompts " + shell_quote(dir.file("prompts.txt")) + " -n 12 --temp 0 -s 1 --json";
  const CommandResult cpu_two = run_command(shell_quote(cpu) + prompts + " -np 2", dir);
  ASSERT_EQ(cpu_two.status, 0) << cpu_two.err;
  for (const char* np : {" -np 1", " -np 2 -c 32"}) {
    const CommandResult gpu = run_command(o.env() + shell_quote(o.exe) + prompts + np, dir);
    ASSERT_EQ(gpu.status, 0) << np << gpu.err;
    EXPECT_EQ(gpu.out, cpu_two.out) << np;
  }
}

// Batched sequences on the device against their solo runs: compile_tests' Golden suite
// (Batched*), with every other target.
