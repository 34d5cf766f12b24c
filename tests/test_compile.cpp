// Compiled executables: `bitnetc MODEL --target=T -o OUT` run on the golden prompts must
// give the reference interpreter's tokens (which are the goldens' tokens), for every
// target this machine runs, natively (x86) or under qemu-aarch64 (aarch64, with a CPU
// model that has exactly the target's features); seeded sampling must match `bitnetc
// run`; the same inputs give the same file; bad flags and prompts get clear errors.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

#include "model_import.h"
#include "support/target_runner.h"
#include "support/test_support.h"
#include "targets.h"

using namespace bitnetc;
using namespace bitnetc::test;
using nlohmann::json;

namespace {

using Result = CommandResult;
Result sh(const std::string& cmd, const ScratchDir& dir) { return run_command(cmd, dir); }
std::string quote(const std::string& s) { return shell_quote(s); }
std::string slurp(const std::string& path) { return read_text(path); }

std::vector<std::string> runnable_targets() {
  // Every CPU target whose code runs here: natively with the CPU's features, or under
  // the target's emulator.
  std::vector<std::string> t;
  for (const TargetInfo& target : targets())
    if (target.backend == Backend::Cpu &&
        (runs_on_this_cpu(target) || (!runs_natively(target) && !target.emulator.empty())))
      t.push_back(target.name);
  return t;
}

// The command prefix that runs `target`'s outputs here ("" natively, else its emulator).
std::string runner(const std::string& target) {
  const TargetInfo& t = *find_target(target);
  return runs_natively(t) ? std::string() : t.emulator + " ";
}

json load(const std::filesystem::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

std::string compile(const std::string& model, const std::string& target, const std::string& out,
                    const ScratchDir& dir) {
  const Result r =
      sh(std::string(BITNETC_BIN) + " " + quote(model) + " --target=" + target + " -q -o " + quote(out), dir);
  EXPECT_EQ(r.status, 0) << r.err;
  return out;
}

}  // namespace

// The end-to-end golden tests, one parameterised suite over the target table: every
// target whose outputs run here (each CPU target natively or under its emulator, a CUDA
// target on the stand-in driver) compiles each golden model and must give the
// reference's tokens, text and logits. Each (check, target) is a test of its own.
class Golden : public testing::TestWithParam<std::string> {
 protected:
  const std::string& target() const { return GetParam(); }
  bool cuda() const { return find_target(GetParam())->backend == Backend::Cuda; }

  void expect_goldens(const std::string& model, const std::filesystem::path& golden_file, const std::string& only_model,
                      int n) {
    ScratchDir dir;
    const json golden = load(golden_file);
    const TargetOutput o = compile_for(model, target(), "model", dir);
    int checked = 0;
    for (const auto& c : golden["cases"]) {
      if (!only_model.empty() && c["model"] != only_model) continue;
      const Result r = sh(
          o.run_prefix + quote(o.exe) + " -p " + quote(c["prompt"]) + " -n " + std::to_string(n) + " --temp 0 --json",
          dir);
      ASSERT_EQ(r.status, 0) << r.err;
      const json j = json::parse(r.out);
      EXPECT_EQ(j["prompt_tokens"], c["prompt_tokens"]) << target() << " " << c["prompt"];
      EXPECT_EQ(j["tokens"], c["tokens"]) << target() << " " << c["prompt"];
      ++checked;
    }
    EXPECT_GT(checked, 0);
  }

  // `bitnetc verify` (greedy tokens and top-5 logits against the interpreter) of the
  // target's output of `model`, compiled with `flags`.
  void expect_verify(const std::string& model, const std::string& flags, int n) {
    ScratchDir dir;
    const TargetOutput o = compile_for(model, target(), "model", dir, flags);
    // verify runs an aarch64 binary under its emulator itself; a CUDA one needs the driver.
    const Result r = sh((cuda() ? o.run_prefix : "") + BITNETC_BIN + " verify " + quote(model) + " --binary " +
                            quote(o.exe) + " -q -n " + std::to_string(n),
                        dir);
    EXPECT_EQ(r.status, 0) << target() << " " << model << flags << "\n" << r.out << r.err;
    EXPECT_NE(r.out.find("PASS: 4 prompts"), std::string::npos) << r.out;
  }
};

TEST_P(Golden, TinyStoriesGivesTheGoldenTokens) {
  const auto s = shared_dir();
  expect_goldens((s / "models/tinystories-bitnet-3m/model.bin").string(),
                 s / "golden/tinystories-bitnet-3m/golden.json", "", 64);
}

TEST_P(Golden, SynthB158Tq2GivesLlamaCppsTokens) {
  const auto d = shared_dir() / "golden/gguf/synth-b158";
  expect_goldens((d / "synth-b158-tq2_0.gguf").string(), d / "golden.json", "synth-b158-tq2_0.gguf", 32);
}

TEST_P(Golden, HfPackedGivesTransformersTokens) {
  const auto d = shared_dir() / "golden/hf-bitnet-tiny";
  expect_goldens((d / "packed").string(), d / "golden.json", "", 32);
}

TEST_P(Golden, OneBitLlmGivesItsReferenceTokens) {
  const auto d = shared_dir() / "golden/hf-1bitllm-tiny";
  expect_goldens(d.string(), d / "golden.json", "", 32);
}

// The golden models the tests above leave out, through `bitnetc verify`.
TEST_P(Golden, Tq10AndBf16CheckpointsMatchTheInterpreter) {
  const auto g = shared_dir() / "golden";
  for (const auto& model : {g / "gguf/synth-b158/synth-b158-tq1_0.gguf", g / "hf-bitnet-tiny/bf16"})
    expect_verify(model.string(), "", 16);
}

// The TinyStories model as the peers' own tools write it (../shared/golden/peer-files):
// llama.cpp's TQ2_0 and TQ1_0 (a scale per 256-weight block, computed with llama.cpp's
// Q8_K arithmetic) and bitnet.cpp's I2_S (per-token activations, as bitnet.cpp's kernels
// quantize them), and llama.cpp's default embedding type (Q6_K, tied head: computed with
// Q8_K activations as ggml's vec_dot_q6_K_q8_K does, on the CPU and on the GPU): every
// target's output writes that peer's
// greedy text. ik_llama.cpp's IQ2_BN / IQ1_BN files are computed with ik's Q8_K64
// arithmetic (InterpreterNumerics.Q8K64MatmulEqualsIkLlamaCppsKernel pins it to ik's own
// kernel, and the CUDA dp4a kernel computes it too); there is no ik text (its kernels
// abort on rows this short), and the story they write is the one every peer wrote.
TEST_P(Golden, PeerFilesGiveThePeersText) {
  ScratchDir dir;
  const auto d = shared_dir() / "golden/peer-files";
  const json golden = load(d / "golden.json");
  const int n = golden["n_predict"].get<int>();
  for (const char* file : {"llamacpp-tq2_0", "llamacpp-tq1_0", "bitnetcpp-i2_s", "llamacpp-tq2_0-q6k-embd",
                           "ikllama-iq2_bn", "ikllama-iq1_bn"}) {
    const TargetOutput o = compile_for((d / (std::string(file) + ".gguf")).string(), target(), file, dir);
    const std::string peer = std::string(file).rfind("ikllama", 0) == 0 ? "bitnetcpp-i2_s" : file;
    for (const auto& c : golden["files"][peer]["cases"]) {
      const Result r = sh(
          o.run_prefix + quote(o.exe) + " -p " + quote(c["prompt"]) + " -n " + std::to_string(n) + " --temp 0 --json",
          dir);
      ASSERT_EQ(r.status, 0) << file << " " << target() << "\n" << r.err;
      EXPECT_EQ(json::parse(r.out)["text"], c["text"]) << file << " " << target() << " " << c["prompt"];
    }
  }
}

// Lookup decoding (--lookup N) changes no token, greedy or sampled with a seed: the
// draft's logits come from one batched step, bit-identical to feeding its tokens one at a
// time, and each position is sampled in order with the same random stream. So too in the
// engine (--prompts -np 2), whose steps pack both sequences' drafts. The TinyStories
// model's greedy stories repeat themselves: some drafts must be kept.
TEST_P(Golden, LookupDecodingChangesNoToken) {
  ScratchDir dir;
  const TargetOutput o =
      compile_for((shared_dir() / "models/tinystories-bitnet-3m/model.bin").string(), target(), "model", dir);
  const std::vector<std::string> prompts = {"Once upon a time", "The sun was hot"};
  std::ofstream(dir.file("prompts.txt")) << prompts[0] << "\n" << prompts[1] << "\n";
  int accepted = 0, batched_accepted = 0;
  for (const char* sampling : {"--temp 0", "--temp 0.8 -s 7 --repeat-penalty 1.1"}) {
    const Result batched = sh(o.run_prefix + quote(o.exe) + " --prompts " + quote(dir.file("prompts.txt")) +
                                  " -np 2 -n 96 --lookup 4 --json " + sampling,
                              dir);
    ASSERT_EQ(batched.status, 0) << batched.err;
    std::istringstream lines(batched.out);
    std::vector<json> batched_runs;
    for (std::string line; std::getline(lines, line);) batched_runs.push_back(json::parse(line));
    ASSERT_EQ(batched_runs.size(), prompts.size()) << batched.out;
    for (size_t i = 0; i < prompts.size(); ++i) {
      const std::string run =
          o.run_prefix + quote(o.exe) + " -p " + quote(prompts[i]) + " -n 96 " + sampling + " --json";
      const Result plain = sh(run, dir), lookup = sh(run + " --lookup 4", dir);
      ASSERT_EQ(plain.status, 0) << plain.err;
      ASSERT_EQ(lookup.status, 0) << lookup.err;
      const json a = json::parse(plain.out), b = json::parse(lookup.out), &c = batched_runs[i];
      EXPECT_EQ(a["tokens"], b["tokens"]) << target() << " " << prompts[i] << " " << sampling;
      EXPECT_EQ(a["tokens"], c["tokens"]) << target() << " " << prompts[i] << " " << sampling << " (--prompts -np 2)";
      EXPECT_LE(b["accepted"].get<int>(), b["drafted"].get<int>());
      EXPECT_LE(c["accepted"].get<int>(), c["drafted"].get<int>());
      accepted += b["accepted"].get<int>();
      batched_accepted += c["accepted"].get<int>();
    }
  }
  EXPECT_GT(accepted, 0) << target();
  EXPECT_GT(batched_accepted, 0) << target();
}

// A Q8_0 head (the TinyStories model converted with --token-embedding-type q8_0, as
// llama-quantize writes one): activations to Q8_0 and ggml's eight-lane dot
// (InterpreterNumerics.Q8_0HeadEqualsGgmlsVecDot pins it to ggml's), the embedding rows
// dequantized, on every target as in the interpreter.
TEST_P(Golden, Q8_0HeadMatchesTheInterpreter) {
  ScratchDir dir("-model");  // expect_verify holds the test's plain folder
  const std::string model = dir.file("tinystories-q8_0-head.gguf");
  const Result r = sh(std::string(BITNETC_BIN) + " convert " +
                          quote((shared_dir() / "models/tinystories-bitnet-3m/model.bin").string()) +
                          " --token-embedding-type q8_0 -q -o " + quote(model),
                      dir);
  ASSERT_EQ(r.status, 0) << r.err;
  expect_verify(model, "", 16);
}

// Every layout of a target's row besides the one auto picks (its first), forced with
// --layout, against the interpreter: TL2 on x86, TL1 on ARM under qemu, and on
// wasm32-simd, whose auto layout is TL1, I2_S's row lanes. The tables are exact, so the
// tokens and logits are the same in every layout. A target with one layout (CUDA,
// scalar wasm32) refuses the request, naming its own.
TEST_P(Golden, OtherLayoutsMatchTheInterpreter) {
  const auto s = shared_dir();
  const std::vector<rt::TernaryLayout>& layouts = find_target(target())->layouts;
  if (layouts.size() == 1) {
    ScratchDir dir;
    const Result r =
        sh(std::string(BITNETC_BIN) + " " + quote((s / "models/tinystories-bitnet-3m/model.bin").string()) +
               " --target=" + target() + " --layout=tl2 -q -o " + quote(dir.file(output_name(target(), "m"))),
           dir);
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_TRUE(r.err.find("no lookup-table kernels") != std::string::npos ||  // CUDA
                r.err.find("has no tl2 kernels") != std::string::npos)        // WebAssembly
        << r.err;
    return;
  }
  for (size_t i = 1; i < layouts.size(); ++i) {
    const std::string layout = layouts[i] == rt::TernaryLayout::TL1   ? "tl1"
                               : layouts[i] == rt::TernaryLayout::TL2 ? "tl2"
                                                                      : "i2_s";
    for (const auto& model : {s / "models/tinystories-bitnet-3m/model.bin", s / "golden/hf-bitnet-tiny/bf16"})
      expect_verify(model.string(), " --layout=" + layout, 16);
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, Golden, testing::ValuesIn(testable_targets()),
                         [](const testing::TestParamInfo<std::string>& p) { return test_name(p.param); });

// A WebAssembly output's JavaScript API under node (tests/wasm/api_check.mjs):
// generate and stream give the interpreter's greedy tokens, seeds and stop strings and
// AbortSignals work, and bad input (options, lone surrogates, a prompt over the context,
// a memory cap too small, another model's weights) is an Error with a clear message and
// code, after which the model still answers. Weights embedded and external (a path or
// bytes).
TEST(Wasm, JavaScriptApiAnswersAndFailsClearly) {
  ScratchDir dir;
  const auto s = shared_dir();
  const std::string model = (s / "models/tinystories-bitnet-3m/model.bin").string();
  const json golden = load(s / "golden/tinystories-bitnet-3m/golden.json");
  const json& c = golden["cases"][0];
  const int n = 24;
  compile(model, "wasm32-simd", dir.file("embedded.mjs"), dir);
  const Result ext = sh(std::string(BITNETC_BIN) + " " + quote(model) +
                            " --target=wasm32-simd --weights=external -q -o " + quote(dir.file("external.mjs")),
                        dir);
  ASSERT_EQ(ext.status, 0) << ext.err;
  EXPECT_TRUE(std::filesystem::exists(dir.file("external.wasm")));
  EXPECT_TRUE(std::filesystem::exists(dir.file("external.weights")));
  const Result other =
      sh(std::string(BITNETC_BIN) + " " + quote((s / "golden/gguf/synth-b158/synth-b158-tq2_0.gguf").string()) +
             " --target=wasm32-simd --weights=external -q -o " + quote(dir.file("other.mjs")),
         dir);
  ASSERT_EQ(other.status, 0) << other.err;
  std::vector<int> tokens(c["tokens"].begin(), c["tokens"].begin() + n);
  const json config = {{"embedded", dir.file("embedded.mjs")},
                       {"external", dir.file("external.mjs")},
                       {"externalWeights", dir.file("external.weights")},
                       {"wrongWeights", dir.file("other.weights")},
                       {"target", "wasm32-simd"},
                       {"prompt", c["prompt"]},
                       {"tokens", tokens},
                       {"n", n}};
  const Result r = sh("node " + quote(std::string(BITNETC_SOURCE_DIR) + "/tests/wasm/api_check.mjs") + " " +
                          quote(config.dump()),
                      dir);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("all checks passed"), std::string::npos) << r.out << r.err;
}

// examples/web in a real browser (tests/web/page_check.mjs: Debian's chromium, headless,
// the folder served on 127.0.0.1): the page loads the compiled model, takes a typed
// prompt and streams the greedy golden story into the page, with its memory use.
TEST(Wasm, WebPageStreamsTheGoldenStoryInChromium) {
  ScratchDir dir;
  const auto s = shared_dir();
  for (const char* file : {"index.html", "app.js"})
    std::filesystem::copy_file(std::string(BITNETC_SOURCE_DIR) + "/examples/web/" + file, dir.file(file));
  compile((s / "models/tinystories-bitnet-3m/model.bin").string(), "wasm32-simd", dir.file("model.mjs"), dir);
  const json golden = load(s / "golden/tinystories-bitnet-3m/golden.json");
  const json& c = golden["cases"][0];
  const json config = {{"prompt", c["prompt"]}, {"text", c["full_text"]}};
  const Result r = sh("node " + quote(std::string(BITNETC_SOURCE_DIR) + "/tests/web/page_check.mjs") + " " +
                          quote(dir.path().string()) + " " + quote(config.dump()),
                      dir);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("the page wrote the golden story"), std::string::npos) << r.out << r.err;
}

// Seeded sampling in a WebAssembly output draws the native output's tokens (the same
// logits, the same sampler and random stream), for several samplers' settings.
TEST(Wasm, SeededSamplesAreTheNativeOutputs) {
  ScratchDir dir;
  const std::string model = (shared_dir() / "models/tinystories-bitnet-3m/model.bin").string();
  compile(model, "x86-64-avx2", dir.file("native"), dir);
  compile(model, "wasm32-simd", dir.file("simd.mjs"), dir);
  compile(model, "wasm32", dir.file("scalar.mjs"), dir);
  for (const std::string sampling : {" --temp 0.9 -s 7", " --temp 1.3 -s 123456789 --top-k 0 --top-p 1 --min-p 0",
                                     " --temp 0.7 -s 99 --top-k 5 --repeat-penalty 1.3"}) {
    const std::string args = " -p " + quote("The little dog") + " -n 48 --json" + sampling;
    const Result native = sh(quote(dir.file("native")) + args, dir);
    ASSERT_EQ(native.status, 0) << native.err;
    for (const char* wasm : {"simd.mjs", "scalar.mjs"}) {
      const Result w = sh("node " + quote(dir.file(wasm)) + args, dir);
      ASSERT_EQ(w.status, 0) << w.err;
      EXPECT_EQ(json::parse(w.out)["tokens"], json::parse(native.out)["tokens"]) << wasm << sampling;
      EXPECT_EQ(json::parse(w.out)["seed"], json::parse(native.out)["seed"]) << wasm << sampling;
    }
  }
}

// -i in a WebAssembly output under node: a bad line (invalid UTF-8, a prompt over the
// context) traps the module, yet the session goes on from the next line, as in the
// native output: the same answers on stdout, the same errors on stderr, exit 0.
TEST(Wasm, InteractiveInputGoesOnPastABadLine) {
  ScratchDir dir;
  const std::string model = (shared_dir() / "models/tinystories-bitnet-3m/model.bin").string();
  compile(model, "x86-64-avx2", dir.file("native"), dir);
  compile(model, "wasm32-simd", dir.file("simd.mjs"), dir);
  const std::string input = "printf 'Once upon a time\\n\\xff\\nThe dog\\n" + std::string(40, 'a') +
                            " b c d e f g h i j k l m n o p\\nThe cat\\n' | ";
  for (const std::string format : {"", " --json"}) {
    // (-s: a resumed session draws a seed of its own where none is given.)
    const std::string args = " -i -n 4 --temp 0 -s 5 -c 24" + format;
    const Result native = sh(input + quote(dir.file("native")) + args, dir);
    const Result wasm = sh(input + "node " + quote(dir.file("simd.mjs")) + args, dir);
    ASSERT_EQ(native.status, 0) << native.err;
    EXPECT_EQ(wasm.status, 0) << wasm.err;
    EXPECT_EQ(wasm.out, native.out) << format;
    EXPECT_EQ(wasm.err, native.err) << format;
    EXPECT_NE(wasm.err.find("not valid UTF-8"), std::string::npos) << wasm.err;
    EXPECT_NE(wasm.err.find("the context holds"), std::string::npos) << wasm.err;
    // The line after both errors is answered (text: echoed, JSON: a third object).
    EXPECT_TRUE(format.empty() ? wasm.out.find("The cat") != std::string::npos
                               : std::count(wasm.out.begin(), wasm.out.end(), '\n') == 3)
        << wasm.out;
  }
}

// The names a WebAssembly output takes: NAME.mjs, never a shared object; the loader is
// written last, so a failed compile leaves neither file.
TEST(Wasm, OutputNamesAreChecked) {
  ScratchDir dir;
  const std::string model = quote((shared_dir() / "models/tinystories-bitnet-3m/model.bin").string());
  const Result plain = sh(std::string(BITNETC_BIN) + " " + model + " --target=wasm32 -o " + quote(dir.file("m")), dir);
  EXPECT_EQ(plain.status, 1);
  EXPECT_NE(plain.err.find("name the output NAME.mjs"), std::string::npos) << plain.err;
  const Result so =
      sh(std::string(BITNETC_BIN) + " " + model + " --target=wasm32 --emit=so -o " + quote(dir.file("m.mjs")), dir);
  EXPECT_EQ(so.status, 1);
  EXPECT_NE(so.err.find("not a shared object"), std::string::npos) << so.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("m.mjs")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("m.wasm")));
  // The command line's usage errors are the native output's (exit 2, the usage line).
  compile((shared_dir() / "models/tinystories-bitnet-3m/model.bin").string(), "wasm32", dir.file("m.mjs"), dir);
  const Result bad = sh("node " + quote(dir.file("m.mjs")) + " -n lots", dir);
  EXPECT_EQ(bad.status, 2) << bad.err;
  EXPECT_NE(bad.err.find("-n"), std::string::npos) << bad.err;
  const Result server = sh("node " + quote(dir.file("m.mjs")) + " --server", dir);
  EXPECT_EQ(server.status, 2) << server.err;
  EXPECT_NE(server.err.find("no sockets"), std::string::npos) << server.err;
}

// The peers' files' logits equal the interpreter's (`bitnetc verify`: tokens and top-5
// logits), on one target (the text above on every one).
TEST(Compile, PeerFilesMatchTheInterpretersLogits) {
  ScratchDir dir;
  const auto d = shared_dir() / "golden/peer-files";
  for (const char* file : {"llamacpp-tq2_0", "llamacpp-tq1_0", "bitnetcpp-i2_s", "llamacpp-tq2_0-q6k-embd",
                           "ikllama-iq2_bn", "ikllama-iq1_bn"}) {
    const Result r = sh(std::string(BITNETC_BIN) + " verify " + quote((d / (std::string(file) + ".gguf")).string()) +
                            " --target=x86-64-avx2 -q -n 16",
                        dir);
    EXPECT_EQ(r.status, 0) << file << "\n" << r.out << r.err;
    EXPECT_NE(r.out.find("PASS: 4 prompts"), std::string::npos) << r.out;
  }
}

// The CPU plan each golden model compiles to (`compile -v`: the step kernels and which
// kernel runs each op, and the fusions the CPU back end declines) against checked-in
// text, one file per model and target family (tests/golden_plans/): a change in the
// plan is a change in what outputs run, to be made on purpose (BITNETC_UPDATE_GOLDEN=1).
TEST(Compile, GoldenModelsKeepTheirCpuPlans) {
  ScratchDir dir;
  const auto s = shared_dir();
  const std::vector<std::pair<std::string, std::filesystem::path>> models = {
      {"tinystories-bitnet-3m", s / "models/tinystories-bitnet-3m/model.bin"},
      {"synth-b158-tq2_0", s / "golden/gguf/synth-b158/synth-b158-tq2_0.gguf"},
      {"hf-bitnet-tiny-packed", s / "golden/hf-bitnet-tiny/packed"},
      {"hf-1bitllm-tiny", s / "golden/hf-1bitllm-tiny"}};
  for (const auto& [name, model] : models)
    for (const std::string family : {"x86-64-avx2", "aarch64-neon"}) {
      const Result r = sh(std::string(BITNETC_BIN) + " compile " + quote(model.string()) + " --target=" + family +
                              " -v -o " + quote(dir.file("m")),
                          dir);
      ASSERT_EQ(r.status, 0) << r.err;
      std::string plan;
      bool in_plan = false;
      std::istringstream lines(r.err);
      for (std::string line; std::getline(lines, line);) {
        if (line.rfind("step kernels:", 0) == 0) in_plan = true;
        if (in_plan && line.rfind("[", 0) == 0) break;  // the next progress line
        if (in_plan) plan += line + "\n";
      }
      ASSERT_FALSE(plan.empty()) << r.err;
      const std::filesystem::path path =
          std::filesystem::path(BITNETC_SOURCE_DIR) / "tests/golden_plans" / (name + "." + family + ".txt");
      if (std::getenv("BITNETC_UPDATE_GOLDEN")) {
        write_text(path.string(), plan);
        continue;
      }
      EXPECT_EQ(plan, slurp(path.string()))
          << name << " on " << family << ": the CPU plan changed; if intended, regenerate with BITNETC_UPDATE_GOLDEN=1";
    }
}

// `bitnetc synth --block-scales`: TQ weights with a different scale per 256-weight block
// (what llama.cpp's quantizer writes, and what the performance figures of the per-block
// path are measured on) decode to those scales and verify on every CPU target.
TEST(Compile, SyntheticBlockScalesDecodeAndVerify) {
  ScratchDir dir;
  for (const char* type : {"tq2_0", "tq1_0"}) {
    const std::string f = dir.file(std::string(type) + ".gguf");
    const Result synth =
        sh(std::string(BITNETC_BIN) + " synth --shape tiny --type " + type + " --block-scales -o " + quote(f), dir);
    ASSERT_EQ(synth.status, 0) << synth.err;
    const ImportedModel m = import_model(f);
    const TernaryWeights w = decode_ternary(m, *m.find("blk.0.ffn_down.weight"));
    ASSERT_GT(w.scales.size(), 1u);
    EXPECT_NE(w.scales[0], w.scales[1]) << type;
    // TQ1_0 decodes to the same kind of weights: one target for it is enough.
    for (const std::string& target :
         std::string(type) == "tq2_0" ? runnable_targets() : std::vector<std::string>{"x86-64-avx2"}) {
      const Result r = sh(std::string(BITNETC_BIN) + " verify " + quote(f) + " --target=" + target + " -q -n 8", dir);
      EXPECT_EQ(r.status, 0) << type << " " << target << "\n" << r.out << r.err;
      EXPECT_NE(r.out.find("PASS: 4 prompts"), std::string::npos) << r.out;
    }
  }
}

// -v names each tensor's layout and why.
TEST(Compile, VerboseNamesEachTensorsLayout) {
  ScratchDir dir;
  const auto s = shared_dir();
  const Result v =
      sh(std::string(BITNETC_BIN) + " compile " + quote((s / "models/tinystories-bitnet-3m/model.bin").string()) +
             " --target=x86-64-avx2 --layout=tl2 -v -o " + quote(dir.file("m")),
         dir);
  ASSERT_EQ(v.status, 0) << v.err;
  EXPECT_NE(v.err.find("tl2: "), std::string::npos) << v.err;
  EXPECT_NE(v.err.find("layout requested (--layout=tl2)"), std::string::npos) << v.err;
}

// Layout requests a target or a model cannot take are clear errors; inspect --target
// prints the plan.
TEST(Compile, LayoutRequestsAreCheckedAndExplained) {
  ScratchDir dir;
  const auto s = shared_dir();
  const std::string ts = quote((s / "models/tinystories-bitnet-3m/model.bin").string());
  const Result arm_tl2 =
      sh(std::string(BITNETC_BIN) + " compile " + ts + " --target=aarch64-neon --layout=tl2 -o " + quote(dir.file("a")),
         dir);
  EXPECT_EQ(arm_tl2.status, 1);
  EXPECT_NE(arm_tl2.err.find("target aarch64-neon has no tl2 kernels"), std::string::npos) << arm_tl2.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("a")));
  const Result q8k =
      sh(std::string(BITNETC_BIN) + " compile " + quote((s / "golden/gguf/synth-b158/synth-b158-tq2_0.gguf").string()) +
             " --target=x86-64-avx2 --layout=tl2 -o " + quote(dir.file("b")),
         dir);
  EXPECT_EQ(q8k.status, 1);
  EXPECT_NE(q8k.err.find("reads per-block (Q8_K) activations"), std::string::npos) << q8k.err;
  const Result plan = sh(std::string(BITNETC_BIN) + " inspect " + ts + " --target=aarch64-neon-dotprod", dir);
  ASSERT_EQ(plan.status, 0) << plan.err;
  EXPECT_NE(plan.out.find("layouts on aarch64-neon-dotprod (--layout=auto):"), std::string::npos) << plan.out;
  EXPECT_NE(plan.out.find("the target's preferred layout, i2_s"), std::string::npos) << plan.out;
  EXPECT_NE(plan.out.find("no per-shape figures for aarch64-neon-dotprod"), std::string::npos) << plan.out;
  // WebAssembly SIMD prefers TL1 (swizzle lookups) for per-token activations; scalar wasm32 has I2_S only.
  const Result wasm = sh(std::string(BITNETC_BIN) + " inspect " + ts + " --target=wasm32-simd", dir);
  ASSERT_EQ(wasm.status, 0) << wasm.err;
  EXPECT_NE(wasm.out.find("tl1   auto: the target's preferred layout, tl1"), std::string::npos) << wasm.out;
  const Result wasm_scalar = sh(std::string(BITNETC_BIN) + " inspect " + ts + " --target=wasm32", dir);
  ASSERT_EQ(wasm_scalar.status, 0) << wasm_scalar.err;
  EXPECT_EQ(wasm_scalar.out.find(" tl1 "), std::string::npos) << wasm_scalar.out;
  const Result x86 = sh(std::string(BITNETC_BIN) + " inspect " + ts + " --target=x86-64-avx2", dir);
  ASSERT_EQ(x86.status, 0) << x86.err;
  EXPECT_NE(x86.out.find("auto: least measured time"), std::string::npos) << x86.out;
}

TEST(Compile, SeededSamplingMatchesTheInterpreterAndOutputsAreReproducible) {
  ScratchDir dir;
  const std::string model = (shared_dir() / "models/tinystories-bitnet-3m/model.bin").string();
  const std::string a = compile(model, "x86-64-avx2", dir.file("a"), dir);
  const std::string b = compile(model, "x86-64-avx2", dir.file("b"), dir);
  EXPECT_EQ(slurp(a), slurp(b)) << "the same inputs must give a byte-identical output";
  // The cross toolchain too (its compiler once named its temporary objects at random,
  // and the names landed in the symbol table).
  EXPECT_EQ(slurp(compile(model, "aarch64-neon-dotprod", dir.file("c"), dir)),
            slurp(compile(model, "aarch64-neon-dotprod", dir.file("d"), dir)));
  const std::string flags = " -p 'The cat' -n 32 --temp 0.9 --top-k 40 --top-p 0.95 -s 1234 --json";
  const Result compiled = sh(quote(a) + flags, dir);
  const Result oracle = sh(std::string(BITNETC_BIN) + " run " + quote(model) + flags, dir);
  ASSERT_EQ(compiled.status, 0) << compiled.err;
  ASSERT_EQ(oracle.status, 0) << oracle.err;
  EXPECT_EQ(json::parse(compiled.out)["tokens"], json::parse(oracle.out)["tokens"]);
}

TEST(Compile, ExecutableRejectsBadInputClearly) {
  ScratchDir dir;
  const std::string exe =
      compile((shared_dir() / "models/tinystories-bitnet-3m/model.bin").string(), "x86-64-avx2", dir.file("m"), dir);
  const Result unknown = sh(quote(exe) + " --bogus", dir);
  EXPECT_EQ(unknown.status, 2);
  EXPECT_NE(unknown.err.find("unknown option --bogus"), std::string::npos) << unknown.err;
  const Result zero = sh(quote(exe) + " -p Hi -n 0 --json", dir);
  ASSERT_EQ(zero.status, 0) << zero.err;
  EXPECT_TRUE(json::parse(zero.out)["tokens"].empty());
  const Result empty = sh(quote(exe) + " -p '' -n 3 --temp 0 --json", dir);
  ASSERT_EQ(empty.status, 0) << empty.err;
  EXPECT_EQ(json::parse(empty.out)["prompt_tokens"], json({1}));
  const Result too_long = sh(quote(exe) + " -c 4 -p 'Once upon a time there was' -n 2", dir);
  EXPECT_EQ(too_long.status, 1);
  EXPECT_NE(too_long.err.find("but the context holds 4"), std::string::npos) << too_long.err;
  const Result bad_utf8 = sh(quote(exe) + " -p $'a\\xff' -n 2", dir);
  EXPECT_EQ(bad_utf8.status, 1);
  EXPECT_NE(bad_utf8.err.find("not valid UTF-8 (at byte 1)"), std::string::npos) << bad_utf8.err;
  const Result no_file = sh(quote(exe) + " -f " + quote(dir.file("nope.txt")), dir);
  EXPECT_EQ(no_file.status, 2);
  EXPECT_NE(no_file.err.find("nope.txt"), std::string::npos) << no_file.err;
}

TEST(Compile, OutputIsCompleteOrAbsent) {
  ScratchDir dir;
  write_text(dir.file("a-file"), "x");
  const Result r =
      sh(std::string(BITNETC_BIN) + " " + quote((shared_dir() / "models/tinystories-bitnet-3m/model.bin").string()) +
             " --target=x86-64-avx2 -q -o " + quote(dir.file("a-file/out")),
         dir);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("a-file/out"), std::string::npos) << r.err;
  const Result unknown = sh(std::string(BITNETC_BIN) + " compile x.gguf --target=riscv -o y", dir);
  EXPECT_NE(unknown.status, 0);
}

namespace {

// A C program built for the target (aarch64: with the cross compiler, run under qemu
// with the cross sysroot) links the output's shared object and checks the C API.
void expect_c_api_works(const std::string& target, const std::string& cc, const std::string& run_prefix,
                        const std::string& nm) {
  ScratchDir dir;
  const auto s = shared_dir();
  const std::string model = (s / "models/tinystories-bitnet-3m/model.bin").string();
  compile(model, target, dir.file("libtinystories.so"), dir);
  // Only the C API is exported as functions or data (weak and GNU-unique symbols, types
  // V/W/u, are inline C++ statics of libstdc++ that a version script cannot hide).
  const Result syms = sh(
      nm + " -D --defined-only " + quote(dir.file("libtinystories.so")) + " | awk '$2 ~ /^[TDBR]$/ {print $3}'", dir);
  ASSERT_EQ(syms.status, 0) << syms.err;
  std::istringstream names(syms.out);
  int exported = 0;
  for (std::string name; std::getline(names, name);) {
    if (name.empty()) continue;
    EXPECT_EQ(name.rfind("bitnet_", 0), 0u) << "exported: " << name;
    ++exported;
  }
  EXPECT_EQ(exported, 36);
  const json golden = load(s / "golden/tinystories-bitnet-3m/golden.json");
  const auto& c = golden["cases"][0];
  write_text(dir.file("expected.txt"), c["text"].get<std::string>());
  const Result run = build_and_run_capi_test(cc, dir, "tinystories", BITNETC_RUNTIME_DIR, BITNETC_CAPI_TEST, run_prefix,
                                             model, (s / "models/tinystories-bitnet-3m/tokenizer.model").string(),
                                             c["prompt"], dir.file("expected.txt"));
  EXPECT_EQ(run.status, 0) << target << ": " << run.err << run.out;
  EXPECT_NE(run.out.find("C API: all checks passed"), std::string::npos) << target << ": " << run.out;
}

}  // namespace

TEST(Compile, SharedObjectServesTheCApiToACProgram) { expect_c_api_works("x86-64-avx2", BITNETC_CC, "", "nm"); }

// The C API under the sanitizers: a shared object linked with the runtime built with
// AddressSanitizer + UBSan and with ThreadSanitizer (--runtime=asan|tsan), and the C API
// test program built with the same sanitizer. Every check passes with no report, the 8
// threads sharing one model among them (each thread's text equal to the solo text).
TEST(Compile, CApiIsCleanUnderAsanAndTsan) {
  const auto s = shared_dir();
  const std::string model = (s / "models/tinystories-bitnet-3m/model.bin").string();
  const json golden = load(s / "golden/tinystories-bitnet-3m/golden.json");
  const auto& c = golden["cases"][0];
  for (const auto& [runtime, flags, env] :
       {std::tuple<std::string, std::string, std::string>{"asan",
                                                          "-fsanitize=address,undefined -fno-sanitize-recover=all",
                                                          "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 "},
        {"tsan", "-fsanitize=thread", "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 "}}) {
    ScratchDir dir;
    const Result r = sh(std::string(BITNETC_BIN) + " " + quote(model) + " --target=x86-64-avx2 --runtime=" + runtime +
                            " -q -o " + quote(dir.file("libtinystories.so")),
                        dir);
    ASSERT_EQ(r.status, 0) << runtime << ": " << r.err;
    write_text(dir.file("expected.txt"), c["text"].get<std::string>());
    const Result run =
        build_and_run_capi_test(BITNETC_CC, dir, "tinystories", BITNETC_RUNTIME_DIR, BITNETC_CAPI_TEST, env, model,
                                (s / "models/tinystories-bitnet-3m/tokenizer.model").string(), c["prompt"],
                                dir.file("expected.txt"), "-g " + flags);
    EXPECT_EQ(run.status, 0) << runtime << ": " << run.err << run.out;
    EXPECT_NE(run.out.find("C API: all checks passed"), std::string::npos) << runtime << ": " << run.out;
    EXPECT_EQ(run.err.find("Sanitizer"), std::string::npos) << runtime << ": " << run.err;
  }
  // A runtime this bitnetc does not have is a clear error.
  ScratchDir dir;
  const Result missing = sh(std::string(BITNETC_BIN) + " " + quote(model) +
                                " --target=aarch64-neon --runtime=tsan -q -o " + quote(dir.file("m")),
                            dir);
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.err.find("--runtime=tsan: this bitnetc has no such runtime build for aarch64-linux-gnu"),
            std::string::npos)
      << missing.err;
}

TEST(Compile, Aarch64SharedObjectServesTheCApiToACProgramUnderQemu) {
  for (const char* target : {"aarch64-neon", "aarch64-neon-dotprod"})
    expect_c_api_works(target, "aarch64-linux-gnu-gcc", runner(target) + "-L /usr/aarch64-linux-gnu ",
                       "aarch64-linux-gnu-nm");
}

// The C snippets of the BitNet libraries' documentation (tests/capi/snippets.c),
// verbatim, build with -Wall -Werror as C11 (gcc, clang) and as C++20 (g++, clang++)
// against bitnet_c.h and a compiled .so, and run: each generation writes text, no error
// is left, and the pull stream writes what bitnet_generate writes with its defaults.
TEST(Compile, DocumentedCSnippetsBuildAsC11AndCxx20AndRun) {
  ScratchDir dir;
  const auto s = shared_dir();
  const std::string model = (s / "models/tinystories-bitnet-3m/model.bin").string();
  compile(model, "x86-64-avx2", dir.file("libtinystories.so"), dir);
  std::filesystem::create_symlink(model, dir.file("model.gguf"));  // the snippet's path
  const std::string src = std::string(BITNETC_SOURCE_DIR) + "/tests/capi/snippets.c";
  for (const std::string cc :
       {"gcc -std=c11", "clang-14 -std=c11", "g++ -std=c++20 -x c++", "clang++-14 -std=c++20 -x c++"}) {
    const Result build = sh(cc + " -Wall -Werror -I" + BITNETC_RUNTIME_DIR + " " + quote(src) + " -x none -L" +
                                quote(dir.path().string()) + " -ltinystories -Wl,-rpath," + quote(dir.path().string()) +
                                " -o " + quote(dir.file("snippets")),
                            dir);
    ASSERT_EQ(build.status, 0) << cc << ": " << build.err;
    const Result run = sh("cd " + quote(dir.path().string()) + " && ./snippets 'Once upon a time'", dir);
    ASSERT_EQ(run.status, 0) << cc << ": " << run.err;
    std::map<std::string, std::string> line;
    std::istringstream lines(run.out);
    for (std::string l; std::getline(lines, l);)
      for (const char* key : {"Generated: ", "streamed: ", "error ", "pulled: ", "generated: "})
        if (l.rfind(key, 0) == 0) line[key] = l.substr(std::strlen(key));
    EXPECT_GT(line["Generated: "].size(), 20u) << cc << ": " << run.out;
    EXPECT_GT(line["streamed: "].size(), 20u) << cc << ": " << run.out;
    EXPECT_EQ(line["error "], "0 []") << cc;
    EXPECT_GT(line["pulled: "].size(), 20u) << cc << ": " << run.out;
    EXPECT_EQ(line["pulled: "], line["generated: "]) << cc;
  }
}

// The chat calls on a model with a template (tests/capi/chat.c): the template's name, the
// rendering with and without the assistant's opening, a reply equal to generating from
// the rendering, and a control token inside a message kept as text.
TEST(Compile, SharedObjectServesTheChatCalls) {
  ScratchDir dir;
  compile((shared_dir() / "golden/hf-bitnet-tiny/packed").string(), "x86-64-avx2", dir.file("libhf.so"), dir);
  const std::string src = std::string(BITNETC_SOURCE_DIR) + "/tests/capi/chat.c";
  const Result build = sh(std::string(BITNETC_CC) + " -std=c11 -Wall -Werror -I" + BITNETC_RUNTIME_DIR + " " +
                              quote(src) + " -L" + quote(dir.path().string()) + " -lhf -Wl,-rpath," +
                              quote(dir.path().string()) + " -o " + quote(dir.file("chat")),
                          dir);
  ASSERT_EQ(build.status, 0) << build.err;
  const Result run = sh(quote(dir.file("chat")), dir);
  EXPECT_EQ(run.status, 0) << run.err << run.out;
  EXPECT_NE(run.out.find("chat: all checks passed"), std::string::npos) << run.out << run.err;
}

// An output needs its target's instructions: on a CPU without them it says so and exits
// 1 before any kernel runs (here: the dotprod output on a Cortex-A72, which lacks them).
TEST(Compile, OutputRefusesACpuWithoutItsTargetsInstructions) {
  ScratchDir dir;
  const std::string exe = compile((shared_dir() / "models/tinystories-bitnet-3m/model.bin").string(),
                                  "aarch64-neon-dotprod", dir.file("m"), dir);
  const Result r = sh("qemu-aarch64 -cpu cortex-a72 " + quote(exe) + " -p Hi -n 2", dir);
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("compiled for aarch64-neon-dotprod and needs the ARMv8.2 dot product instructions"),
            std::string::npos)
      << r.err;
  const Result objdump = sh("aarch64-linux-gnu-objdump -d " + quote(exe) + " | grep -c 'sdot'", dir);
  EXPECT_GT(std::stoi("0" + objdump.out), 0) << "the dotprod kernels should use sdot";
}

// The executable under the edge cases of issue 6: thread counts, -n beyond the context,
// prompt truncation on request, a closed stdout, and interactive input.
TEST(Compile, ExecutableHandlesRuntimeEdgeCases) {
  ScratchDir dir;
  const std::string exe =
      compile((shared_dir() / "models/tinystories-bitnet-3m/model.bin").string(), "x86-64-avx2", dir.file("m"), dir);
  const Result t0 = sh(quote(exe) + " -p Hi -n 2 -t 0", dir);
  EXPECT_EQ(t0.status, 2);
  EXPECT_NE(t0.err.find("-t must be at least 1"), std::string::npos) << t0.err;
  const Result many = sh(quote(exe) + " -p Hi -n 2 --temp 0 --json -t 4096", dir);
  ASSERT_EQ(many.status, 0) << many.err;
  EXPECT_NE(many.err.find("more than the"), std::string::npos) << many.err;
  EXPECT_EQ(json::parse(many.out)["tokens"].size(), 2u);

  // -n beyond the context: a note, and generation ends when the context is full.
  const Result full = sh(quote(exe) + " -c 8 -p Once -n 50 --temp 0 --json", dir);
  ASSERT_EQ(full.status, 0) << full.err;
  EXPECT_NE(full.err.find("generation stops when it is full"), std::string::npos) << full.err;
  const json fj = json::parse(full.out);
  EXPECT_LE(fj["prompt_tokens"].size() + fj["tokens"].size(), 9u);
  EXPECT_GE(fj["tokens"].size(), 1u);

  // --truncate keeps the BOS and the prompt's last tokens, leaving room to generate.
  const std::string long_prompt = "'Once upon a time there was a little girl named Lily who liked to play'";
  const Result cut = sh(quote(exe) + " -c 16 -p " + long_prompt + " -n 4 --temp 0 --json --truncate", dir);
  ASSERT_EQ(cut.status, 0) << cut.err;
  EXPECT_NE(cut.err.find("the prompt was cut by"), std::string::npos) << cut.err;
  const json cj = json::parse(cut.out);
  EXPECT_EQ(cj["prompt_tokens"][0], 1);
  EXPECT_EQ(cj["prompt_tokens"].size(), 12u);  // 16 - 4 for generation
  EXPECT_EQ(cj["tokens"].size(), 4u);

  // A closed stdout (`| head`) ends the run quietly: exit 0, nothing on stderr.
  const Result pipe =
      sh("(" + quote(exe) + " -p Once -n 200 --temp 0; echo $? > " + quote(dir.file("rc")) + ") | head -c 5", dir);
  EXPECT_EQ(pipe.out, "Once ");
  EXPECT_EQ(slurp(dir.file("rc")), "0\n");
  EXPECT_EQ(pipe.err, "");

  // -i: one prompt per line, each answered; a bad line is reported and the session goes on.
  const Result inter =
      sh("printf 'Once upon a time\\n\\xff\\nThe dog\\n' | " + quote(exe) + " -i -n 4 --temp 0 --json", dir);
  ASSERT_EQ(inter.status, 0) << inter.err;
  std::istringstream lines(inter.out);
  std::vector<json> answers;
  for (std::string line; std::getline(lines, line);) answers.push_back(json::parse(line));
  ASSERT_EQ(answers.size(), 2u) << inter.out;
  EXPECT_EQ(answers[0]["tokens"].size(), 4u);
  const Result once = sh(quote(exe) + " -p 'The dog' -n 4 --temp 0 --json", dir);
  EXPECT_EQ(answers[1]["tokens"], json::parse(once.out)["tokens"]);
  EXPECT_NE(inter.err.find("not valid UTF-8"), std::string::npos) << inter.err;
}

// The compiler under faults: a file-size limit (a full disk) and an interrupt mid-compile
// leave neither an output file nor temporary litter.
TEST(Compile, FaultsLeaveNoPartialOutput) {
  ScratchDir dir;
  const std::string model = (shared_dir() / "models/tinystories-bitnet-3m/model.bin").string();
  std::filesystem::create_directory(dir.file("out"));
  std::filesystem::create_directory(dir.file("tmp"));
  const std::string env = "TMPDIR=" + quote(dir.file("tmp")) + " ";
  const Result limited = sh(
      "ulimit -f 1024; " + env + std::string(BITNETC_BIN) + " " + quote(model) + " -q -o " + quote(dir.file("out/m")),
      dir);
  EXPECT_EQ(limited.status, 1) << limited.err;
  EXPECT_NE(limited.err.find("bitnetc: error:"), std::string::npos) << limited.err;
  EXPECT_TRUE(std::filesystem::is_empty(dir.file("out"))) << "a partial output was left";
  EXPECT_TRUE(std::filesystem::is_empty(dir.file("tmp"))) << "scratch files were left";

  for (const char* sig : {"TERM", "INT"}) {
    const Result killed =
        sh(env + std::string(BITNETC_BIN) + " " + quote(model) + " -q -o " + quote(dir.file("out/m")) +
               " & pid=$!; sleep 0.4; kill -" + sig + " $pid; wait $pid; echo $?",
           dir);
    EXPECT_NE(killed.out, "0\n") << "the compile finished before the signal; the test needs a slower step";
    EXPECT_TRUE(std::filesystem::is_empty(dir.file("out"))) << sig;
    EXPECT_TRUE(std::filesystem::is_empty(dir.file("tmp"))) << sig;
  }
}

// --weights=external: the output and OUTPUT.weights, both reproducible, used together;
// a missing or foreign side file is a clear error; --weights names another location.
// Shared objects are reproducible too.
TEST(Compile, ExternalWeightsAndSharedObjectsAreReproducible) {
  ScratchDir dir;
  const std::string model = (shared_dir() / "models/tinystories-bitnet-3m/model.bin").string();
  auto compile_with = [&](const std::string& out, const std::string& flags) {
    const Result r = sh(std::string(BITNETC_BIN) + " " + quote(model) + " --target=x86-64-avx2 -q " + flags + " -o " +
                            quote(dir.file(out)),
                        dir);
    ASSERT_EQ(r.status, 0) << r.err;
  };
  compile_with("a", "--weights=external");
  compile_with("b", "--weights=external --kernel-cache off");  // every kernel compiled again
  compile_with("embedded", "");
  EXPECT_EQ(slurp(dir.file("a")), slurp(dir.file("b")));
  EXPECT_EQ(slurp(dir.file("a.weights")), slurp(dir.file("b.weights")));
  EXPECT_LT(slurp(dir.file("a")).size() + 1000000, slurp(dir.file("embedded")).size()) << "weights were embedded";

  const std::string flags = " -p 'Once upon a time' -n 16 --temp 0 --json";
  const Result ext = sh(quote(dir.file("a")) + flags, dir);
  const Result emb = sh(quote(dir.file("embedded")) + flags, dir);
  ASSERT_EQ(ext.status, 0) << ext.err;
  EXPECT_EQ(json::parse(ext.out)["tokens"], json::parse(emb.out)["tokens"]);

  std::filesystem::rename(dir.file("a.weights"), dir.file("elsewhere.weights"));
  const Result missing = sh(quote(dir.file("a")) + flags, dir);
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.err.find("a.weights: cannot open the weights file"), std::string::npos) << missing.err;
  const Result moved = sh(quote(dir.file("a")) + flags + " --weights " + quote(dir.file("elsewhere.weights")), dir);
  ASSERT_EQ(moved.status, 0) << moved.err;
  EXPECT_EQ(json::parse(moved.out)["tokens"], json::parse(emb.out)["tokens"]);

  // The side file of another model of the same shape (same size, other weights) is refused.
  for (const char* seed : {"1", "2"}) {
    const Result synth =
        sh(std::string(BITNETC_BIN) + " synth --shape tiny --type i2_s --arch bitnet-b1.58 --seed " + seed + " -o " +
               quote(dir.file(std::string("tiny") + seed + ".gguf")) + " && " + BITNETC_BIN + " " +
               quote(dir.file(std::string("tiny") + seed + ".gguf")) +
               " --target=x86-64-avx2 -q --weights=external -o " + quote(dir.file(std::string("t") + seed)),
           dir);
    ASSERT_EQ(synth.status, 0) << synth.err;
  }
  ASSERT_EQ(std::filesystem::file_size(dir.file("t1.weights")), std::filesystem::file_size(dir.file("t2.weights")));
  const Result own = sh(quote(dir.file("t1")) + " -p a -n 2", dir);
  EXPECT_EQ(own.status, 0) << own.err;
  const Result foreign = sh(quote(dir.file("t1")) + " -p a -n 2 --weights " + quote(dir.file("t2.weights")), dir);
  EXPECT_EQ(foreign.status, 1);
  EXPECT_NE(foreign.err.find("is not the weights file of this model"), std::string::npos) << foreign.err;

  // Two compiles to one name (a .so records its file name as SONAME) are the same bytes.
  compile_with("libm.so", "");
  const std::string first = slurp(dir.file("libm.so"));
  compile_with("libm.so", "");
  EXPECT_EQ(first, slurp(dir.file("libm.so")));

  // Every loadable segment of an executable and a shared object is aligned to 2 MiB, so
  // that the loader places the weights where 2 MiB pages can map them
  // (CompiledModel's advise_huge_pages: with 4 KiB pages the 2B4T shape decoded 6x slower).
  for (const char* out : {"embedded", "libm.so"}) {
    const Result headers = sh("readelf -lW " + quote(dir.file(out)), dir);
    ASSERT_EQ(headers.status, 0) << headers.err;
    int loads = 0;
    std::istringstream lines(headers.out);
    for (std::string line; std::getline(lines, line);) {
      if (line.find("LOAD") == std::string::npos) continue;
      ++loads;
      while (!line.empty() && line.back() == ' ') line.pop_back();
      EXPECT_TRUE(line.size() > 8 && line.compare(line.size() - 8, 8, "0x200000") == 0) << out << ": " << line;
    }
    EXPECT_GE(loads, 2) << headers.out;
  }
}

// The kernel cache: a second compile takes every object from it, and an output is the same
// bytes with the cache cold, warm, damaged, shared by two compiles at once, or off; an
// unusable folder is an error naming the flag (or, from the variable, a note).
TEST(Compile, KernelCacheGivesTheSameOutput) {
  ScratchDir dir;
  const std::string model = (shared_dir() / "models/tinystories-bitnet-3m/model.bin").string();
  const std::string cache = dir.file("cache");
  auto compile_with = [&](const std::string& out, const std::string& flags) {
    const Result r = sh(std::string(BITNETC_BIN) + " " + quote(model) + " --target=x86-64-avx2 " + flags + " -o " +
                            quote(dir.file(out)),
                        dir);
    EXPECT_EQ(r.status, 0) << r.err;
    return r.err;
  };
  const std::string cold = compile_with("cold", "--kernel-cache " + quote(cache));
  EXPECT_EQ(cold.find("from the kernel cache"), std::string::npos) << cold;
  const std::string warm = compile_with("warm", "--kernel-cache " + quote(cache));
  EXPECT_NE(warm.find("(11 of 11 objects from the kernel cache)"), std::string::npos) << warm;
  compile_with("off", "--kernel-cache off");
  EXPECT_EQ(slurp(dir.file("cold")), slurp(dir.file("off")));
  EXPECT_EQ(slurp(dir.file("warm")), slurp(dir.file("off")));

  // A damaged entry is compiled again.
  std::vector<std::filesystem::path> entries;
  for (const auto& e : std::filesystem::directory_iterator(cache)) entries.push_back(e.path());
  ASSERT_EQ(entries.size(), 11u);
  std::filesystem::resize_file(entries[3], std::filesystem::file_size(entries[3]) - 1);
  const std::string damaged = compile_with("damaged", "--kernel-cache " + quote(cache));
  EXPECT_NE(damaged.find("(10 of 11 objects from the kernel cache), 1 process"), std::string::npos) << damaged;
  EXPECT_EQ(slurp(dir.file("damaged")), slurp(dir.file("off")));

  // Two compiles of other shapes into one empty cache at once, then both warm.
  const Result synth = sh(std::string(BITNETC_BIN) + " synth --shape tiny --type i2_s --arch bitnet-b1.58 -o " +
                              quote(dir.file("tiny.gguf")),
                          dir);
  ASSERT_EQ(synth.status, 0) << synth.err;
  const std::string tiny =
      std::string(BITNETC_BIN) + " " + quote(dir.file("tiny.gguf")) + " --target=x86-64-avx512 -q ";
  const Result together =
      sh(tiny + "--kernel-cache " + quote(dir.file("shared")) + " -o " + quote(dir.file("t1")) + " & " + tiny +
             "--kernel-cache " + quote(dir.file("shared")) + " -o " + quote(dir.file("t2")) + " && wait $!",
         dir);
  ASSERT_EQ(together.status, 0) << together.err;
  const Result again = sh(tiny + "--kernel-cache " + quote(dir.file("shared")) + " -o " + quote(dir.file("t3")) +
                              " && " + tiny + "--kernel-cache off -o " + quote(dir.file("t4")),
                          dir);
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(slurp(dir.file("t1")), slurp(dir.file("t4")));
  EXPECT_EQ(slurp(dir.file("t2")), slurp(dir.file("t4")));
  EXPECT_EQ(slurp(dir.file("t3")), slurp(dir.file("t4")));

  // An unusable folder: the flag's is an error, the variable's a note.
  { std::ofstream(dir.file("file")) << "x"; }
  const Result bad = sh(std::string(BITNETC_BIN) + " " + quote(model) + " --target=x86-64-avx2 --kernel-cache " +
                            quote(dir.file("file")) + " -o " + quote(dir.file("bad")),
                        dir);
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("--kernel-cache " + dir.file("file") + ": cannot use the folder"), std::string::npos)
      << bad.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("bad")));
  const Result noted = sh("BITNETC_KERNEL_CACHE=" + quote(dir.file("file")) + " " + BITNETC_BIN + " " + quote(model) +
                              " --target=x86-64-avx2 -o " + quote(dir.file("noted")),
                          dir);
  EXPECT_EQ(noted.status, 0) << noted.err;
  EXPECT_NE(noted.err.find("compiling without the kernel cache"), std::string::npos) << noted.err;
  EXPECT_EQ(slurp(dir.file("noted")), slurp(dir.file("off")));
}

// --head=q8 announces that it changes numerics, stores the head as int8 (half a byte
// per weight less than f16), and on TinyStories still gives the exact build's greedy
// tokens (pinned: this model's q8 logits stay within 0.2 of the exact ones).
TEST(Compile, Q8HeadIsAnnouncedSmallerAndCloseToExact) {
  ScratchDir dir;
  const std::string model = (shared_dir() / "models/tinystories-bitnet-3m/model.bin").string();
  const Result r = sh(std::string(BITNETC_BIN) + " " + quote(model) + " --head=q8 -o " + quote(dir.file("q8")), dir);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("logits differ from the reference"), std::string::npos) << r.err;
  const std::string exact = compile(model, host_target().name, dir.file("exact"), dir);
  EXPECT_LT(std::filesystem::file_size(dir.file("q8")), std::filesystem::file_size(exact));
  const std::string flags = " -p 'Once upon a time' -n 32 --temp 0 --json";
  const Result q = sh(quote(dir.file("q8")) + flags, dir);
  const Result e = sh(quote(exact) + flags, dir);
  ASSERT_EQ(q.status, 0) << q.err;
  EXPECT_EQ(json::parse(q.out)["tokens"], json::parse(e.out)["tokens"]);
}

// The batched executor: `OUT --prompts FILE -np K` generates K sequences at once, their
// prompt chunks and next tokens packed into shared forward steps (rows of several
// sequences, each with its own KV cache and positions). Each sequence's greedy tokens
// and top logits (printed round-trip exact) must be those of running its prompt alone,
// and its tokens the interpreter's; seeded sampling must give the solo run's tokens too.
// The prompts (2 to max_prompts of 1 to 30 words, the second one 80) and the slot count per target are drawn from a
// seeded generator, so the interleavings (prompt rows beside decode rows, slots reused
// as sequences end, chunks split across sequences) differ from case to case.
namespace {

void expect_batched_equals_solo(const std::string& target, const std::string& model, uint64_t seed, int max_prompts) {
  ScratchDir dir;
  const std::vector<std::string> words = {"Once", "upon",  "a",    "time", "there", "was",   "little",
                                          "girl", "named", "Lily", "she",  "liked", "to",    "play",
                                          "in",   "the",   "park", "with", "her",   "dog",   "One",
                                          "day",  "sun",   "big",  "tree", "and",   "happy", "."};
  uint64_t state = seed;
  auto draw = [&](uint64_t n) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<int>((state >> 33) % n);
  };
  const int n_prompts = 2 + draw(static_cast<uint64_t>(max_prompts - 1));
  std::vector<std::string> prompts;
  std::string file;
  for (int i = 0; i < n_prompts; ++i) {
    std::string p;
    // The second prompt is longer than a step's 64 rows: steps of prompt rows alone.
    for (int w = 0, n = i == 1 ? 80 : 1 + draw(30); w < n; ++w) p += (w ? " " : "") + words[draw(words.size())];
    prompts.push_back(p);
    file += p + "\n";
  }
  write_text(dir.file("prompts.txt"), file);
  const std::string n = " -n 20 --json --top-logits 4";
  std::vector<json> oracle;  // `bitnetc run --json` per prompt
  for (const std::string& p : prompts) {
    const Result r =
        sh(std::string(BITNETC_BIN) + " run " + quote(model) + " -p " + quote(p) + " -n 20 --temp 0 --json", dir);
    ASSERT_EQ(r.status, 0) << r.err;
    oracle.push_back(json::parse(r.out));
  }
  {
    const TargetOutput o = compile_for(model, target, "batched", dir);
    const std::string& exe = o.exe;
    // 2 to n_prompts slots: fewer than the prompts means slots are reused.
    const int slots = 2 + draw(static_cast<uint64_t>(n_prompts - 1));
    const std::string what =
        target + " " + model + " with " + std::to_string(n_prompts) + " prompts, -np " + std::to_string(slots);
    auto run_all = [&](const std::string& sampling) {
      const Result r = sh(o.run_prefix + quote(exe) + " --prompts " + quote(dir.file("prompts.txt")) + " -np " +
                              std::to_string(slots) + sampling + n,
                          dir);
      EXPECT_EQ(r.status, 0) << what << "\n" << r.err;
      std::vector<json> out;
      std::istringstream lines(r.out);
      for (std::string line; std::getline(lines, line);) out.push_back(json::parse(line));
      return out;
    };
    const std::vector<json> greedy = run_all(" --temp 0"), sampled = run_all(" --temp 0.9 -s 7");
    ASSERT_EQ(greedy.size(), prompts.size()) << what;
    ASSERT_EQ(sampled.size(), prompts.size()) << what;
    for (int i = 0; i < n_prompts; ++i) {
      EXPECT_EQ(greedy[i]["index"], i);
      const Result solo = sh(o.run_prefix + quote(exe) + " -p " + quote(prompts[i]) + " --temp 0" + n, dir);
      ASSERT_EQ(solo.status, 0) << solo.err;
      const json j = json::parse(solo.out);
      EXPECT_EQ(greedy[i]["prompt_tokens"], j["prompt_tokens"]) << what << ": " << prompts[i];
      EXPECT_EQ(greedy[i]["tokens"], j["tokens"]) << what << ": " << prompts[i];
      EXPECT_EQ(greedy[i]["top_logits"], j["top_logits"]) << what << ": " << prompts[i];
      EXPECT_EQ(greedy[i]["tokens"], oracle[i]["tokens"]) << what << " (interpreter): " << prompts[i];
      const Result solo_sampled =
          sh(o.run_prefix + quote(exe) + " -p " + quote(prompts[i]) + " --temp 0.9 -s 7" + n, dir);
      ASSERT_EQ(solo_sampled.status, 0) << solo_sampled.err;
      EXPECT_EQ(sampled[i]["tokens"], json::parse(solo_sampled.out)["tokens"]) << what << " (sampled): " << prompts[i];
    }
  }
}

}  // namespace

TEST_P(Golden, BatchedTinyStoriesSequencesGiveTheirSoloTokensAndLogits) {
  expect_batched_equals_solo(target(), (shared_dir() / "models/tinystories-bitnet-3m/model.bin").string(), 12345, 8);
}

TEST_P(Golden, BatchedHfCheckpointSequencesGiveTheirSoloTokensAndLogits) {
  // GQA, sub-norms, a 128K vocabulary (2 s a run under qemu): up to 4 prompts.
  expect_batched_equals_solo(target(), (shared_dir() / "golden/hf-bitnet-tiny/packed").string(), 777, 4);
}

// -h lists every flag with its default; --version names bitnetc, the target and the model.
TEST(Compile, ExecutableHasHelpAndVersion) {
  ScratchDir dir;
  const std::string exe =
      compile((shared_dir() / "models/tinystories-bitnet-3m/model.bin").string(), "x86-64-avx2", dir.file("m"), dir);
  const Result help = sh(quote(exe) + " --help", dir);
  EXPECT_EQ(help.status, 0) << help.err;
  for (const char* flag : {"--prompt", "--n-predict", "(default 64)", "--temp", "(default 0.8)", "--prompts", "-np",
                           "--bench P,G,R[,S]", "--version"})
    EXPECT_NE(help.out.find(flag), std::string::npos) << flag << "\n" << help.out;
  EXPECT_EQ(sh(quote(exe) + " -h", dir).out, help.out);
  const Result version = sh(quote(exe) + " --version", dir);
  EXPECT_EQ(version.status, 0) << version.err;
  // bitnetc's first line: "bitnetc X.Y.Z" (then "runtime: FOLDER").
  const std::string bitnetc_version = sh(std::string(BITNETC_BIN) + " --version", dir).out;
  const std::string compiler_version = bitnetc_version.substr(0, bitnetc_version.find('\n'));
  EXPECT_NE(bitnetc_version.find("\nruntime: /"), std::string::npos) << bitnetc_version;
  EXPECT_EQ(version.out.rfind(compiler_version + " output for x86-64-avx2: ", 0), 0u) << version.out;
  const size_t fp_at = version.out.find("fingerprint ");
  ASSERT_NE(fp_at, std::string::npos) << version.out;
  // --version --json: the artifact manifest, the same facts.
  const Result manifest = sh(quote(exe) + " --version --json", dir);
  ASSERT_EQ(manifest.status, 0) << manifest.err;
  const json m = json::parse(manifest.out);
  EXPECT_EQ("bitnetc " + m["bitnetc_version"].get<std::string>(), compiler_version);
  EXPECT_EQ(m["target"], "x86-64-avx2");
  EXPECT_EQ(m["fingerprint"], version.out.substr(fp_at + 12, 16));
  EXPECT_EQ(m["n_layer"], 8);
  EXPECT_EQ(m["weights"], "embedded");
  int ternary = 0;
  for (const auto& [layout, count] : m["layouts"].items()) ternary += count.get<int>();
  EXPECT_EQ(ternary, 8 * 7);  // q, k, v, o, gate, up, down per layer
}

// `--bench P,G,R,S`: S sequences decode together; the aggregate rate is reported.
TEST(Compile, BenchDecodesSeveralSequencesTogetherAndTimesLookupSteps) {
  ScratchDir dir;
  const std::string exe =
      compile((shared_dir() / "models/tinystories-bitnet-3m/model.bin").string(), "host", dir.file("m"), dir);
  const Result r = sh(quote(exe) + " --bench 0,16,2,4", dir);
  ASSERT_EQ(r.status, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["n_seq"], 4);
  ASSERT_EQ(j["tg_tps"].size(), 2u);
  EXPECT_GT(j["tg_tps"][0].get<double>(), 0);
  // --bench-draft K: lookup decoding's steps, the token and K drafts with every row's logits.
  const Result drafted = sh(quote(exe) + " --bench 0,16,2 --bench-draft 4", dir);
  ASSERT_EQ(drafted.status, 0) << drafted.err;
  const json d = json::parse(drafted.out);
  EXPECT_EQ(d["n_draft"], 4);
  ASSERT_EQ(d["tg_tps"].size(), 2u);
  EXPECT_GT(d["tg_tps"][0].get<double>(), 0);
  const Result bad = sh(quote(exe) + " --bench 0,16,2,0", dir);
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("SEQUENCES"), std::string::npos) << bad.err;
  const Result np = sh(quote(exe) + " -p hi -np 2", dir);
  EXPECT_EQ(np.status, 2);
  EXPECT_NE(np.err.find("give --prompts"), std::string::npos) << np.err;
}

// The executable as llama-cli users expect it: -f - reads stdin, a random seed unless -s
// (printed by -v and in --json, and -s reproduces it), -r stops at a text, --ignore-eos
// goes past the end of the story, --no-special keeps control-token text as text.
TEST(Compile, ExecutableFollowsLlamaCliConventions) {
  ScratchDir dir;
  const std::string exe =
      compile((shared_dir() / "models/tinystories-bitnet-3m/model.bin").string(), "x86-64-avx2", dir.file("m"), dir);
  const json plain = json::parse(sh(quote(exe) + " -p 'Once upon a time' -n 40 --temp 0 --json", dir).out);
  const Result piped = sh("printf 'Once upon a time' | " + quote(exe) + " -f - -n 40 --temp 0 --json", dir);
  ASSERT_EQ(piped.status, 0) << piped.err;
  EXPECT_EQ(json::parse(piped.out)["tokens"], plain["tokens"]);

  const std::string sampled = " -p 'Once upon a time' -n 24 --temp 0.9 --json";
  const json a = json::parse(sh(quote(exe) + sampled, dir).out), b = json::parse(sh(quote(exe) + sampled, dir).out);
  ASSERT_TRUE(a.contains("seed") && b.contains("seed"));
  EXPECT_NE(a["seed"], b["seed"]);  // 2^-64 to fail by chance
  const std::string seed = std::to_string(a["seed"].get<uint64_t>());
  EXPECT_EQ(json::parse(sh(quote(exe) + sampled + " -s " + seed, dir).out)["tokens"], a["tokens"]);
  const Result verbose = sh(quote(exe) + " -p Once -n 2 -v -s 77", dir);
  EXPECT_NE(verbose.err.find("seed 77 |"), std::string::npos) << verbose.err;

  // -r: the text up to and including the first stop string.
  const std::string full = plain["text"];
  const size_t lily = full.find("Lily");
  ASSERT_NE(lily, std::string::npos) << full;
  const Result stopped = sh(quote(exe) + " -p 'Once upon a time' -n 40 --temp 0 -r Lily -r never-there --json", dir);
  EXPECT_EQ(json::parse(stopped.out)["text"], full.substr(0, lily + 4));
  // --ignore-eos: the story ends with EOS; past it, -n decides.
  const json story = json::parse(sh(quote(exe) + " -p 'The end' -n 400 --temp 0 --json", dir).out);
  const size_t n = story["tokens"].size();
  ASSERT_LT(n, 390u);
  const json past = json::parse(
      sh(quote(exe) + " -p 'The end' -n " + std::to_string(n + 5) + " --temp 0 --ignore-eos --json", dir).out);
  EXPECT_EQ(past["tokens"].size(), n + 5);
  // --no-special: "<s>" in the prompt is text, not a second BOS.
  const json special = json::parse(sh(quote(exe) + " -p '<s>Hi' -n 1 --temp 0 --json", dir).out);
  const json literal = json::parse(sh(quote(exe) + " -p '<s>Hi' -n 1 --temp 0 --json --no-special", dir).out);
  EXPECT_EQ(std::count(special["prompt_tokens"].begin(), special["prompt_tokens"].end(), 1), 2);
  EXPECT_EQ(std::count(literal["prompt_tokens"].begin(), literal["prompt_tokens"].end(), 1), 1);
}

// What the executable cannot use is an error naming it, never a crash, a hang or a lost
// write: write errors (a full disk, a closed stdout), files that are not regular or too
// large, endless stdin lines, --weights on an output that embeds its weights.
TEST(Compile, ExecutableRefusesWhatItCannotUse) {
  ScratchDir dir;
  const std::string exe =
      compile((shared_dir() / "models/tinystories-bitnet-3m/model.bin").string(), "x86-64-avx2", dir.file("m"), dir);
  for (const char* json_flag : {"", " --json"}) {
    const Result full = sh(quote(exe) + " -p Once -n 8 --temp 0" + json_flag + " > /dev/full", dir);
    EXPECT_EQ(full.status, 1) << json_flag;
    EXPECT_NE(full.err.find("writing to standard output: No space left on device"), std::string::npos) << full.err;
  }
  const Result closed = sh(quote(exe) + " -p Once -n 8 --temp 0 >&-", dir);
  EXPECT_EQ(closed.status, 1);
  EXPECT_NE(closed.err.find("writing to standard output: Bad file descriptor"), std::string::npos) << closed.err;

  const std::string big = dir.file("big.txt");
  ASSERT_EQ(sh("truncate -s 17M " + quote(big), dir).status, 0);
  const std::pair<std::string, std::string> files[] = {
      {dir.path().string(), "not a regular file"},
      {"/dev/zero", "not a regular file"},
      {big, "a prompt file holds at most 16 MiB"},
  };
  for (const auto& [file, message] : files) {
    const Result r = sh("timeout 20 " + quote(exe) + " -f " + quote(file) + " -n 2", dir);
    EXPECT_EQ(r.status, 2) << file;
    EXPECT_NE(r.err.find("-f " + file + ": "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
  }
  const Result endless = sh("head -c 3000000 /dev/zero | timeout 20 " + quote(exe) + " -i -n 2", dir);
  EXPECT_EQ(endless.status, 1);
  EXPECT_NE(endless.err.find("standard input: a line longer than 1 MiB"), std::string::npos) << endless.err;
  const Result weights = sh(quote(exe) + " -p Once -n 2 --weights " + quote(big), dir);
  EXPECT_EQ(weights.status, 2);
  EXPECT_NE(weights.err.find("this output holds its weights itself"), std::string::npos) << weights.err;
  const Result penalty = sh(quote(exe) + " -p Once --repeat-penalty 0", dir);
  EXPECT_EQ(penalty.status, 2);
  EXPECT_NE(penalty.err.find("--repeat-penalty must be a finite number > 0"), std::string::npos) << penalty.err;
}

// -cnv keeps the KV cache across turns: a turn processes only the tokens after what the
// cache holds, and answers exactly as a fresh run of the whole rendered conversation.
// When the context fills, the oldest turns are dropped whole, and it says so.
TEST(Compile, ConversationKeepsItsCacheAndAnswersAsAFreshRun) {
  ScratchDir dir;
  const std::string exe =
      compile((shared_dir() / "golden/hf-bitnet-tiny/packed").string(), "x86-64-avx2", dir.file("chat"), dir);
  auto fresh = [&](const std::string& rendered) {
    const Result r = sh(quote(exe) + " -p " + quote(rendered) + " -n 8 --temp 0 --json", dir);
    EXPECT_EQ(r.status, 0) << r.err;
    return json::parse(r.out);
  };
  const std::string turn1 = "User: Hi there<|eot_id|>Assistant: ";
  const json reply1 = fresh(turn1);
  const std::string turn2 =
      turn1 + reply1["text"].get<std::string>() + "<|eot_id|>User: Tell me more<|eot_id|>Assistant: ";
  const json reply2 = fresh(turn2);
  const Result chat = sh("printf 'Hi there\\nTell me more\\n' | " + quote(exe) + " -cnv -n 8 --temp 0 -c 128", dir);
  ASSERT_EQ(chat.status, 0) << chat.err;
  EXPECT_EQ(chat.out, reply1["text"].get<std::string>() + "\n" + reply2["text"].get<std::string>() + "\n");
  // Lookup decoding drafts within a turn (the pulled generation's steps): the same replies.
  const Result chat_lookup =
      sh("printf 'Hi there\\nTell me more\\n' | " + quote(exe) + " -cnv -n 8 --temp 0 -c 128 --lookup 4", dir);
  ASSERT_EQ(chat_lookup.status, 0) << chat_lookup.err;
  EXPECT_EQ(chat_lookup.out, chat.out);
  // The second turn processed fewer tokens than its whole prompt.
  const size_t second = chat.err.find("[", chat.err.find("new prompt tokens") + 1);
  ASSERT_NE(second, std::string::npos) << chat.err;
  EXPECT_LT(std::stoul(chat.err.substr(second + 1)), reply2["prompt_tokens"].size()) << chat.err;
  EXPECT_EQ(chat.err.find("<|eot_id|>"), std::string::npos) << "the template is echoed: " << chat.err;

  // A small context: the oldest turns go, the chat goes on.
  const Result small = sh("printf 'a\\nb\\nc\\nd\\ne\\nf\\n' | " + quote(exe) + " -i -n 8 --temp 0 -c 48", dir);
  EXPECT_EQ(small.status, 0) << small.err;
  EXPECT_NE(small.err.find("is full: dropped the oldest"), std::string::npos) << small.err;
  // --chat-template: a name, a Jinja file of a known family, or an error naming it.
  const std::string jinja = dir.file("t.jinja"), junk = dir.file("junk.jinja");
  sh("printf '{%% for m in messages %%}<|im_start|>{{ m.role }}{%% endfor %%}' > " + quote(jinja), dir);
  sh("printf 'hello' > " + quote(junk), dir);
  EXPECT_EQ(sh("printf 'Hi\\n' | " + quote(exe) + " -cnv -n 2 --temp 0 --chat-template " + quote(jinja), dir).status,
            0);
  const Result bad = sh("printf 'Hi\\n' | " + quote(exe) + " -cnv -n 2 --chat-template " + quote(junk), dir);
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("neither a template name"), std::string::npos) << bad.err;
  const std::string stories =
      compile((shared_dir() / "models/tinystories-bitnet-3m/model.bin").string(), "x86-64-avx2", dir.file("m"), dir);
  const Result none = sh("printf 'Hi\\n' | " + quote(stories) + " -cnv -n 2", dir);
  EXPECT_EQ(none.status, 2);
  EXPECT_NE(none.err.find("this model has no chat template"), std::string::npos) << none.err;
}
