// `bitnetc inspect` and `bitnetc synth` as a user runs them: exit codes, stdout, stderr.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "support/test_support.h"

using namespace bitnetc::test;
using nlohmann::json;

namespace {

using CliResult = CommandResult;

std::string quote(const std::string& s) { return shell_quote(s); }
std::string slurp(const std::string& path) { return read_text(path); }

CliResult run_bitnetc(const std::string& args, const ScratchDir& dir) {
  return run_command("exec " + std::string(BITNETC_BIN) + " " + args, dir);
}

// Where a GGUF header's length-prefixed name (a tensor's or a metadata key's) ends in
// `bytes`: its tensor info or value follows. npos when the name is not there.
size_t gguf_after_name(const std::string& bytes, const std::string& name) {
  std::string key(8, '\0');
  const uint64_t n = name.size();
  std::memcpy(key.data(), &n, 8);
  const size_t at = bytes.find(key + name);
  return at == std::string::npos ? at : at + key.size() + name.size();
}

}  // namespace

TEST(Cli, InspectJsonHasTheDocumentedKeys) {
  ScratchDir dir;
  const std::string model = dir.file("m.gguf");
  ASSERT_EQ(run_bitnetc("synth -o " + model + " --shape tiny --type i2_s --seed 3", dir).status, 0);
  const CliResult r = run_bitnetc("inspect --json " + model, dir);
  ASSERT_EQ(r.status, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["architecture"], "bitnet");
  EXPECT_EQ(j["metadata"]["general.architecture"], "bitnet");
  EXPECT_EQ(j["metadata"]["bitnetc.i2_s.layout"], "x86");
  ASSERT_TRUE(j["tensors"].is_array());
  bool found = false;
  for (const auto& t : j["tensors"]) {
    for (const char* k : {"name", "type", "shape", "offset", "nbytes"}) ASSERT_TRUE(t.contains(k)) << k;
    if (t["name"] == "blk.0.attn_q.weight") {
      found = true;
      EXPECT_EQ(t["type"], "I2_S");
      EXPECT_EQ(t["shape"], json({256, 256}));
      EXPECT_EQ(t["nbytes"], 256 * 256 / 4 + 32);
    }
  }
  EXPECT_TRUE(found);
  EXPECT_GT(j["n_params"].get<uint64_t>(), 0u);
  EXPECT_EQ(j["hyperparameters"]["n_layer"], 1);
}

TEST(Cli, InspectReadsEveryModelFileInShared) {
  ScratchDir dir;
  const auto s = shared_dir();
  std::vector<std::string> inputs = {(s / "golden/gguf/synth-b158/synth-b158-tq2_0.gguf").string(),
                                     (s / "golden/gguf/synth-b158/synth-b158-tq1_0.gguf").string(),
                                     (s / "golden/hf-bitnet-tiny/bf16").string(),
                                     (s / "golden/hf-bitnet-tiny/packed").string(),
                                     (s / "golden/hf-bitnet-tiny/packed/model.safetensors").string(),
                                     (s / "models/tinystories-bitnet-3m/model.bin").string()};
  for (const auto& e : std::filesystem::directory_iterator(s / "golden/tokenizer"))
    if (e.path().extension() == ".gguf") inputs.push_back(e.path().string());
  for (const auto& in : inputs) {
    const CliResult r = run_bitnetc("inspect " + in, dir);
    EXPECT_EQ(r.status, 0) << in << "\n" << r.err;
    EXPECT_NE(r.out.find("tensors ("), std::string::npos) << in;
    const CliResult j = run_bitnetc("inspect --json " + in, dir);
    EXPECT_EQ(j.status, 0) << in;
    EXPECT_NO_THROW((void)json::parse(j.out)) << in;
  }
}

TEST(Cli, InspectErrorsGoToStderrWithNonZeroExit) {
  ScratchDir dir;
  const std::string model = dir.file("m.gguf");
  ASSERT_EQ(run_bitnetc("synth -o " + model + " --shape tiny", dir).status, 0);
  auto bytes = slurp(model);
  bytes.resize(bytes.size() / 2);
  write_text(dir.file("cut.gguf"), bytes);
  const CliResult r = run_bitnetc("inspect " + dir.file("cut.gguf"), dir);
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(r.out.empty());
  EXPECT_NE(r.err.find("bitnetc: error: " + dir.file("cut.gguf") + ": byte"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("runs past the end of the file"), std::string::npos) << r.err;

  const CliResult missing = run_bitnetc("inspect " + dir.file("nope.gguf"), dir);
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.err.find("no such file"), std::string::npos);
}

TEST(Cli, SynthRefusesImpossibleShapesAndUnwritablePaths) {
  ScratchDir dir;
  const CliResult bad =
      run_bitnetc("synth -o " + dir.file("x.gguf") + " --type tq2_0 --embd 100 --heads 4 --kv-heads 2", dir);
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("bitnetc: error:"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.gguf")));
  const CliResult unwritable = run_bitnetc("synth --shape tiny -o /nonexistent-dir/x.gguf", dir);
  EXPECT_EQ(unwritable.status, 1);
  EXPECT_NE(unwritable.err.find("/nonexistent-dir/x.gguf"), std::string::npos) << unwritable.err;
}

TEST(Cli, BareModelArgumentMeansCompile) {
  ScratchDir dir;
  const CliResult r = run_bitnetc(dir.file("nope.gguf") + " --target=x86-64-avx2 -o " + dir.file("model"), dir);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("nope.gguf: no such file"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("model")));
  const CliResult unknown = run_bitnetc("inspect --bogus x", dir);
  EXPECT_NE(unknown.status, 0);
}

namespace {
json golden(const std::string& rel) {
  std::ifstream in(shared_dir() / rel);
  return json::parse(in);
}
}  // namespace

TEST(CliRun, GreedyJsonReproducesTheGoldenGenerations) {
  ScratchDir dir;
  const auto s = shared_dir();
  const json ts = golden("golden/tinystories-bitnet-3m/golden.json");
  for (const auto& c : ts["cases"]) {
    const CliResult r = run_bitnetc("run " + (s / "models/tinystories-bitnet-3m/model.bin").string() + " -p " +
                                        quote(c["prompt"]) + " -n 64 --temp 0 --json",
                                    dir);
    ASSERT_EQ(r.status, 0) << r.err;
    const json j = json::parse(r.out);
    EXPECT_EQ(j["prompt_tokens"], c["prompt_tokens"]);
    EXPECT_EQ(j["tokens"], c["tokens"]);
    EXPECT_EQ(j["text"], c["text"]);
  }
  const json hf = golden("golden/hf-bitnet-tiny/golden.json");
  const auto& c = hf["cases"][0];
  const CliResult r = run_bitnetc(
      "run " + (s / "golden/hf-bitnet-tiny/packed").string() + " -p " + quote(c["prompt"]) + " -n 32 --temp 0 --json",
      dir);
  ASSERT_EQ(r.status, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["prompt_tokens"], c["prompt_tokens"]);
  EXPECT_EQ(j["tokens"], c["tokens"]);
  EXPECT_EQ(j["text"], c["text"]);
}

TEST(CliRun, SeededSamplingIsReproducible) {
  ScratchDir dir;
  const std::string model = (shared_dir() / "models/tinystories-bitnet-3m/model.bin").string();
  auto tokens = [&](const std::string& seed) {
    const CliResult r = run_bitnetc(
        "run " + model + " -p 'The cat' -n 24 --temp 1.0 --top-k 40 --top-p 0.9 -s " + seed + " --json", dir);
    EXPECT_EQ(r.status, 0) << r.err;
    return json::parse(r.out)["tokens"];
  };
  EXPECT_EQ(tokens("7"), tokens("7"));
  EXPECT_NE(tokens("7"), tokens("8"));
}

TEST(CliRun, BadInputGetsClearErrors) {
  ScratchDir dir;
  const std::string model = (shared_dir() / "models/tinystories-bitnet-3m/model.bin").string();
  const CliResult empty = run_bitnetc("run " + model + " -p '' -n 4 --temp 0 --json", dir);
  ASSERT_EQ(empty.status, 0) << empty.err;
  EXPECT_EQ(json::parse(empty.out)["prompt_tokens"], json({1}));  // BOS only
  const CliResult long_prompt = run_bitnetc("run " + model + " -c 4 -p 'Once upon a time there was' -n 4", dir);
  EXPECT_EQ(long_prompt.status, 1);
  EXPECT_NE(long_prompt.err.find("but the context holds 4"), std::string::npos) << long_prompt.err;
  const CliResult bad_utf8 = run_bitnetc("run " + model + " -p $'ab\\xff' -n 4", dir);
  EXPECT_EQ(bad_utf8.status, 1);
  EXPECT_NE(bad_utf8.err.find("not valid UTF-8 (at byte 2)"), std::string::npos) << bad_utf8.err;
  const CliResult missing = run_bitnetc("run " + model + " -f " + dir.file("nope.txt"), dir);
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.err.find("-f " + dir.file("nope.txt") + ": No such file or directory"), std::string::npos)
      << missing.err;
  // Non-regular files are refused before anything reads them (a folder used to abort, and
  // /dev/zero to grow until memory ran out).
  for (const std::string& file : {dir.path().string(), std::string("/dev/zero")}) {
    const CliResult r = run_bitnetc("run " + model + " -n 1 -f " + file, dir);
    EXPECT_EQ(r.status, 1) << file;
    EXPECT_NE(r.err.find("-f " + file + ": not a regular file"), std::string::npos) << r.err;
  }
  // Sampling numbers are finite and in range; a usage error exits 2 (CLI11's NaN-blind
  // Range is not enough).
  const std::pair<std::string, std::string> bad_numbers[] = {
      {"--temp nan", "--temp: \"nan\" is not a finite number"},
      {"--temp 1e400", "--temp: \"1e400\" is not a number"},
      {"--top-p 2", "--top-p: \"2\" is not a finite number in [0, 1]"},
      {"--min-p -0.5", "--min-p: \"-0.5\" is not a finite number in [0, 1]"},
      {"--repeat-penalty 0", "--repeat-penalty: \"0\" is not a finite number in (0, 100]"},
      {"--top-p x", "--top-p: \"x\" is not a number"},
  };
  for (const auto& [flag, message] : bad_numbers) {
    const CliResult r = run_bitnetc("run " + model + " -p Hi -n 1 " + flag, dir);
    EXPECT_EQ(r.status, 2) << flag;
    EXPECT_NE(r.err.find(message), std::string::npos) << flag << ": " << r.err;
  }
  const CliResult zero = run_bitnetc("run " + model + " -p 'Hi' -n 0 --json", dir);
  ASSERT_EQ(zero.status, 0) << zero.err;
  EXPECT_TRUE(json::parse(zero.out)["tokens"].empty());
}

TEST(Cli, TargetsListsTheTableAndTheHost) {
  ScratchDir dir;
  const CliResult r = run_bitnetc("targets", dir);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("x86-64-avx2"), std::string::npos);
  EXPECT_NE(r.out.find("x86-64-avx512"), std::string::npos);
  EXPECT_NE(r.out.find("aarch64-neon-dotprod  128     i2_s,tl1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("x86-64-avx2           256     i2_s,tl2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("runs under qemu-aarch64 -cpu cortex-a72"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("host                  = x86-64-"), std::string::npos) << r.out;
  // Halide's sapphirerapids feature (VEX AVX-VNNI) faults on AVX-512 CPUs without it.
  EXPECT_EQ(r.out.find("sapphirerapids"), std::string::npos);
}

// `bitnetc verify`: passes on a correct output, and fails (exit 1, naming the cause) on
// one compiled with other numerics (Q8_K activation blocks instead of runbit.c's).
TEST(Cli, VerifyPassesAndCatchesAMismatch) {
  ScratchDir dir;
  const std::string model = (shared_dir() / "models/tinystories-bitnet-3m/model.bin").string();
  const CliResult good = run_bitnetc("verify " + shell_quote(model) + " -n 8 -q", dir);
  ASSERT_EQ(good.status, 0) << good.out << good.err;
  EXPECT_NE(good.out.find("PASS: 4 prompts"), std::string::npos) << good.out;
  ASSERT_EQ(
      run_bitnetc(shell_quote(model) + " --act-quant per-block -q -o " + shell_quote(dir.file("other")), dir).status,
      0);
  const CliResult bad =
      run_bitnetc("verify " + shell_quote(model) + " -n 8 -q --binary " + shell_quote(dir.file("other")), dir);
  EXPECT_EQ(bad.status, 1) << bad.out << bad.err;
  EXPECT_NE(bad.out.find("MISMATCH"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("FAIL"), std::string::npos) << bad.out;
}

// `bitnetc bench --json`: the documented figures, each plausible.
TEST(Cli, BenchPrintsLlamaBenchStyleJson) {
  ScratchDir dir;
  const std::string model = (shared_dir() / "models/tinystories-bitnet-3m/model.bin").string();
  const CliResult r =
      run_bitnetc("bench " + shell_quote(model) + " -p 16 -n 8 -d 24 -r 2 -t 1 --layout tl2 --json -q", dir);
  ASSERT_EQ(r.status, 0) << r.err;
  const json j = json::parse(r.out);
  for (const char* key : {"output_bytes", "compile_s", "startup_s", "peak_rss_kb", "read_GBps",
                          "decode_bytes_per_token", "decode_roofline_tps", "tg_roofline_fraction"})
    EXPECT_GT(j.at(key).get<double>(), 0) << key;
  ASSERT_EQ(j["tests"].size(), 2u);
  EXPECT_EQ(j["tests"][0]["test"], "pp16");
  EXPECT_EQ(j["tests"][1]["test"], "tg8");
  for (const auto& t : j["tests"]) {
    EXPECT_GT(t["tps"].get<double>(), 0);
    ASSERT_EQ(t["samples"].size(), 2u);  // the warm-up repetition is not among them
    const double a = t["samples"][0], b = t["samples"][1];
    EXPECT_DOUBLE_EQ(t["median_tps"].get<double>(), (a + b) / 2);
  }
  EXPECT_DOUBLE_EQ(j["tg_roofline_fraction"].get<double>(),
                   j["tests"][1]["median_tps"].get<double>() / j["decode_roofline_tps"].get<double>());
  EXPECT_EQ(j["threads"], 1);
  EXPECT_EQ(j["layout"], "tl2");
  EXPECT_EQ(j["depth"], 24);  // each test after 24 tokens already in the cache
  for (const auto& t : j["tests"]) EXPECT_EQ(t["depth"], 24);
  // A depth the context cannot hold is refused, naming the flag.
  const CliResult deep = run_bitnetc("bench " + shell_quote(model) + " -p 16 -n 8 -d 100000 -r 1 -t 1 -q", dir);
  EXPECT_EQ(deep.status, 1);
  EXPECT_NE(deep.err.find("--depth 100000: the model's context is"), std::string::npos) << deep.err;
}

// --numerics: each engine's whole recipe over the file's structure, said by inspect (with
// why), refused when unknown; and an output compiled with an override computes what the
// interpreter computes with it (verify).
TEST(Cli, NumericsOverrideTheRecipeAndVerify) {
  ScratchDir dir;
  const std::string model = dir.file("m.gguf");
  ASSERT_EQ(run_bitnetc("synth -o " + model + " --shape tiny --type tq2_0 --seed 5", dir).status, 0);
  const std::vector<std::tuple<std::string, std::string, std::string>> want = {
      {"auto", "per_block_q8k", "rms_f64sum"},
      {"llama.cpp", "per_block_q8k", "rms_f64sum"},
      {"bitnet.cpp", "per_token_bitnetcpp", "rms_f64sum"},
      {"ik_llama.cpp", "per_row_q8k64", "rms_f64sum"},
      {"transformers", "per_token_hf", "rms_f32"},
      {"bitllama2c", "per_token_llama2c", "rms_llama2c"}};
  for (const auto& [numerics, act_quant, norm] : want) {
    const CliResult r = run_bitnetc("inspect --json --numerics=" + numerics + " " + model, dir);
    ASSERT_EQ(r.status, 0) << r.err;
    const json s = json::parse(r.out)["semantics"];
    EXPECT_EQ(s["act_quant"], act_quant) << numerics;
    EXPECT_EQ(s["norm"], norm) << numerics;
    if (numerics != "auto") EXPECT_NE(s["why"].get<std::string>().find("--numerics=" + numerics), std::string::npos);
  }
  const CliResult bad = run_bitnetc("run --numerics=numpy -p x " + model, dir);
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("--numerics"), std::string::npos) << bad.err;
  for (const char* numerics : {"transformers", "bitllama2c", "ik_llama.cpp"}) {
    const CliResult v = run_bitnetc(std::string("verify -q -n 8 --numerics=") + numerics + " " + model, dir);
    EXPECT_EQ(v.status, 0) << numerics << "\n" << v.out << v.err;
    EXPECT_NE(v.out.find("PASS"), std::string::npos) << v.out;
  }
  // ik's Q8_K64 arithmetic takes one weight scale per row: llama.cpp's per-block scales
  // are refused by name rather than computed some other way.
  const std::string blocks = dir.file("blocks.gguf");
  ASSERT_EQ(run_bitnetc("synth -o " + blocks + " --shape tiny --type tq2_0 --block-scales --seed 5", dir).status, 0);
  const CliResult ik = run_bitnetc("run --numerics=ik_llama.cpp -n 1 -p x " + blocks, dir);
  EXPECT_EQ(ik.status, 1) << ik.err;
  EXPECT_NE(ik.err.find("blk.0."), std::string::npos) << ik.err;
  EXPECT_NE(ik.err.find("takes one scale per row"), std::string::npos) << ik.err;
}

// The compile checks each weight's scale against the same weight's in the other layers
// as it packs them: a scale 3e6 times the others' (plausible alone) is refused, naming
// the tensor, and no output is written.
TEST(Cli, CompileRefusesAScaleWildlyUnlikeTheOtherLayers) {
  ScratchDir dir;
  const std::string model = dir.file("m.gguf");
  ASSERT_EQ(run_bitnetc("synth -o " + model + " --shape tiny --layers 4 --type i2_s --seed 3", dir).status, 0);
  const CliResult info = run_bitnetc("inspect --json " + model, dir);
  ASSERT_EQ(info.status, 0) << info.err;
  uint64_t scale_at = 0;
  const json j = json::parse(info.out);
  for (const auto& t : j["tensors"])
    if (t["name"] == "blk.1.ffn_up.weight") scale_at = t["offset"].get<uint64_t>() + t["nbytes"].get<uint64_t>() - 32;
  ASSERT_NE(scale_at, 0u);
  std::string bytes = slurp(model);
  float s;
  std::memcpy(&s, bytes.data() + scale_at, 4);
  s *= 3.0e6f;
  std::memcpy(bytes.data() + scale_at, &s, 4);
  write_text(model, bytes);
  const CliResult r = run_bitnetc("compile -q " + model + " -o " + dir.file("out"), dir);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("blk.1.ffn_up.weight"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("1000x"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("out")));
}

// Paths that would block, loop or fail late are refused at once, naming them: a FIFO as
// the model (inspect and compile used to wait in open() forever), a symlink loop, an
// output folder that does not exist (reported before lowering, not after the compile).
TEST(Cli, ModelAndOutputPathsAreCheckedFirst) {
  ScratchDir dir;
  const std::string fifo = dir.file("model.gguf");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  for (const char* cmd : {"inspect ", "compile -o out "}) {
    const CliResult r = run_command(std::string("timeout 20 ") + BITNETC_BIN + " " + cmd + fifo, dir);
    EXPECT_EQ(r.status, 1) << cmd;
    EXPECT_NE(r.err.find(fifo + ": not a regular file or a checkpoint folder"), std::string::npos) << r.err;
  }
  const std::string loop = dir.file("loop");
  std::filesystem::create_symlink(loop, loop);
  const CliResult looped = run_bitnetc("inspect " + loop, dir);
  EXPECT_EQ(looped.status, 1);
  EXPECT_NE(looped.err.find("Too many levels of symbolic links"), std::string::npos) << looped.err;
  const std::string model = dir.file("m.gguf");
  ASSERT_EQ(run_bitnetc("synth -o " + model + " --shape tiny --type i2_s", dir).status, 0);
  const CliResult nowhere = run_bitnetc("compile " + model + " -o " + dir.file("missing/out"), dir);
  EXPECT_EQ(nowhere.status, 1);
  EXPECT_NE(nowhere.err.find("missing/out: cannot write it: its folder"), std::string::npos) << nowhere.err;
  EXPECT_EQ(nowhere.err.find("lowering"), std::string::npos) << "checked only after lowering: " << nowhere.err;
}

// A compile killed outright (SIGKILL, which no handler sees) leaves its scratch folder;
// the next compile removes it, and leaves the folders of compiles still running.
TEST(Cli, KilledCompilesScratchIsRemovedByTheNextOne) {
  ScratchDir dir;
  const std::string tmp = dir.file("tmp");
  std::filesystem::create_directory(tmp);
  const std::string model = dir.file("m.gguf");
  ASSERT_EQ(run_bitnetc("synth -o " + model + " --shape tiny --type i2_s", dir).status, 0);
  // Without the kernel cache the kill lands while kernels compile in forked workers,
  // which must die with the compile (they hold its scratch folder's lock).
  const std::string env = "TMPDIR=" + shell_quote(tmp) + " BITNETC_KERNEL_CACHE=off ";
  // Started, killed once its scratch folder exists (at most 30 s).
  const CliResult killed = run_command(
      env + BITNETC_BIN + " compile " + model + " -q -o " + dir.file("a") + " & pid=$!; for i in $(seq 600); do " +
          "ls " + shell_quote(tmp) + " | grep -q '^bitnetc-' && break; sleep 0.05; done; kill -9 $pid; wait $pid; " +
          "ls " + shell_quote(tmp),
      dir);
  EXPECT_NE(killed.out.find("bitnetc-"), std::string::npos) << "no scratch folder to leave: " << killed.out;
  ASSERT_EQ(run_command(env + BITNETC_BIN + " compile " + model + " -q -o " + dir.file("b"), dir).status, 0);
  EXPECT_TRUE(std::filesystem::is_empty(tmp)) << run_command("ls -a " + shell_quote(tmp), dir).out;
}

// Damaged weight values (a NaN or negative scale, a NaN norm weight, an infinite
// embedding value) compiled into an output that printed token 0 forever; compile and
// inspect now refuse them, naming the tensor and where in it.
TEST(Cli, DamagedWeightValuesAreRefusedByCompileAndInspect) {
  ScratchDir dir;
  const std::string model = dir.file("m.gguf");
  ASSERT_EQ(run_bitnetc("synth -o " + model + " --shape tiny --type i2_s --seed 3", dir).status, 0);
  const CliResult info = run_bitnetc("inspect --json " + model, dir);
  ASSERT_EQ(info.status, 0) << info.err;
  std::map<std::string, json> tensors;
  const json listed = json::parse(info.out);  // outlives the loop
  for (const auto& t : listed["tensors"]) tensors[t["name"].get<std::string>()] = t;
  const std::string original = slurp(model);
  struct Damage {
    std::string tensor;
    bool from_end;  // an offset from the tensor's end (I2_S keeps its scale last)
    uint64_t offset;
    float value;
    std::string message;
  };
  const Damage damages[] = {
      {"blk.0.ffn_up.weight", true, 32, std::nanf(""), "weight scale (nan) is not finite"},
      {"blk.0.ffn_up.weight", true, 32, -1.0f, "is negative"},
      {"blk.0.attn_norm.weight", false, 4, std::nanf(""), "value at element 1 is NaN"},
      {"token_embd.weight", false, 8, INFINITY, "value at row 0, column 2 is infinite"},
  };
  for (const Damage& d : damages) {
    ASSERT_TRUE(tensors.count(d.tensor)) << d.tensor;
    ASSERT_EQ(tensors[d.tensor]["type"], d.tensor == "blk.0.ffn_up.weight" ? "I2_S" : "F32");
    const uint64_t at = tensors[d.tensor]["offset"].get<uint64_t>() +
                        (d.from_end ? tensors[d.tensor]["nbytes"].get<uint64_t>() - d.offset : d.offset);
    std::string bytes = original;
    std::memcpy(bytes.data() + at, &d.value, 4);
    const std::string damaged = dir.file("damaged.gguf");
    write_text(damaged, bytes);
    for (const char* cmd : {"inspect ", "compile -q -o out "}) {
      const CliResult r = run_bitnetc(cmd + damaged, dir);
      EXPECT_EQ(r.status, 1) << cmd << d.message;
      EXPECT_NE(r.err.find(d.tensor + ": "), std::string::npos) << r.err;
      EXPECT_NE(r.err.find(d.message), std::string::npos) << r.err;
    }
  }
  // The F32 embedding retyped as F16 in its tensor info: the file stays well-formed (half the
  // bytes, in bounds), but the halves of f32 values read as f16 include NaNs and infinities.
  const size_t tensor_info = gguf_after_name(original, "token_embd.weight");
  ASSERT_NE(tensor_info, std::string::npos);
  uint32_t n_dims = 0;
  std::memcpy(&n_dims, original.data() + tensor_info, 4);
  ASSERT_EQ(n_dims, 2u);
  std::string bytes = original;
  const uint32_t f16_type = 1;
  std::memcpy(bytes.data() + tensor_info + 4 + 8 * n_dims, &f16_type, 4);
  const std::string retyped = dir.file("retyped.gguf");
  write_text(retyped, bytes);
  for (const char* cmd : {"inspect ", "compile -q -o out "}) {
    const CliResult r = run_bitnetc(cmd + retyped, dir);
    EXPECT_EQ(r.status, 1) << cmd << r.err;
    EXPECT_NE(r.err.find("token_embd.weight: value at row 0"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("the tensor is damaged"), std::string::npos) << r.err;
  }
}

// A sweep over hostile GGUF files made from a valid one, run through `bitnetc compile`:
// every corruption class below must end in exit 1 with a message naming the file, never a
// crash, a hang or a silently compiled output. (Issue 21 found 12 of 155 such files
// compiling or crashing; this is the regression net for all the classes it named.)
TEST(Cli, HostileGgufSweepEndsInCleanErrors) {
  ScratchDir dir;
  const std::string model = dir.file("m.gguf");
  ASSERT_EQ(run_bitnetc("synth -o " + model + " --shape tiny --type i2_s --seed 3", dir).status, 0);
  const CliResult listing = run_bitnetc("inspect --json " + model, dir);
  ASSERT_EQ(listing.status, 0) << listing.err;
  const json info = json::parse(listing.out);
  const std::string original = slurp(model);
  auto after_name = [&](const std::string& name) {
    const size_t at = gguf_after_name(original, name);
    EXPECT_NE(at, std::string::npos) << name;
    return at;
  };
  auto put = [](std::string bytes, size_t at, auto value) {
    std::memcpy(bytes.data() + at, &value, sizeof value);
    return bytes;
  };
  std::vector<std::pair<std::string, std::string>> cases;  // (what, bytes)
  for (int i = 1; i <= 12; ++i)
    cases.emplace_back("truncated to " + std::to_string(i) + "/13",
                       original.substr(0, original.size() * static_cast<size_t>(i) / 13));
  for (const auto& t : info["tensors"]) {
    const std::string name = t["name"];
    const bool dense = t["type"] == "F32";
    const size_t dims = after_name(name);
    const size_t type = dims + 4 + 8 * t["shape"].size();
    const uint64_t offset = t["offset"], nbytes = t["nbytes"];
    for (uint32_t to : dense ? std::vector<uint32_t>{1, 36, 9999} : std::vector<uint32_t>{0, 1, 9999})
      cases.emplace_back(name + " retyped to " + std::to_string(to), put(original, type, to));
    uint64_t ne0 = 0;
    std::memcpy(&ne0, original.data() + dims + 4, 8);
    cases.emplace_back(name + " twice as wide", put(original, dims + 4, ne0 * 2));
    uint64_t data_offset = 0;
    std::memcpy(&data_offset, original.data() + type + 4, 8);
    cases.emplace_back(name + " data past the end", put(original, type + 4, data_offset + original.size()));
    const size_t value_at = dense ? offset : offset + nbytes - 32;  // I2_S keeps its scale last
    for (float v : {std::nanf(""), INFINITY, -1.0f})  // a negative dense value is legal
      if (!dense || v != -1.0f) cases.emplace_back(name + " value " + std::to_string(v), put(original, value_at, v));
  }
  for (const auto& [key, value] : info["metadata"].items()) {
    const size_t at = after_name(key);
    uint32_t type = 0;
    std::memcpy(&type, original.data() + at, 4);
    cases.emplace_back(key + " of value type 77", put(original, at, uint32_t{77}));
    if (type == 4 && key.rfind("bitnet.", 0) == 0 && key != "bitnet.context_length")
      for (uint32_t v : {0u, 7u, 0xFFFFFFFFu}) cases.emplace_back(key + " = " + std::to_string(v), put(original, at + 4, v));
    if (type == 4 && key.rfind("tokenizer.", 0) == 0) cases.emplace_back(key + " = -1", put(original, at + 4, ~0u));
    if (type == 6)
      for (float v : {std::nanf(""), INFINITY, 0.0f, -1.0f})
        cases.emplace_back(key + " = " + std::to_string(v), put(original, at + 4, v));
  }
  size_t clean = 0;
  const std::string damaged = dir.file("c.gguf");
  for (const auto& [what, bytes] : cases) {
    write_text(damaged, bytes);
    const CliResult r = run_bitnetc("compile -q -o " + dir.file("out") + " " + damaged, dir);
    const bool ok = r.status == 1 && r.err.find("bitnetc: error: " + damaged + ": ") != std::string::npos &&
                    r.err.find("no such file") == std::string::npos;
    clean += ok;
    EXPECT_TRUE(ok) << what << ": exit " << r.status << ": " << r.err;
  }
  std::printf("hostile GGUF sweep: %zu cases, %zu clean errors\n", cases.size(), clean);
  EXPECT_GE(cases.size(), 150u);
}
