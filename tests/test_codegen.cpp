// Ahead-of-time kernels: emitted as objects, linked by the system compiler into a small
// driver, run, and compared bit for bit with the interpreter's ternary matmul. This is
// the path every compiled output takes (emit, link, run), at the size of one kernel.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <fstream>
#include <map>

#include "cuda_kernels.h"
#include "cuda_program.h"
#include "interpreter.h"
#include "kernel_cache.h"
#include "kernel_objects.h"
#include "layouts.h"
#include "lower.h"
#include "model_import.h"
#include "process.h"
#include "support/test_support.h"
#include "synthetic_model.h"

using namespace bitnetc;
using namespace bitnetc::test;

namespace {

std::vector<uint8_t> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

template <typename T>
void write_vec(const std::string& path, const std::vector<T>& v) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(T)));
}

// The driver: reads the inputs, calls the AOT kernel, writes y.
const char* kDriver = R"(
#include <cstdio>
#include <vector>
#include "HalideBuffer.h"
extern "C" int bitnetc_gemv_test(halide_buffer_t*, halide_buffer_t*, halide_buffer_t*, halide_buffer_t*, float,
                                 halide_buffer_t*, halide_buffer_t*);
template <typename T> std::vector<T> load(const char* p, size_t n) {
  std::vector<T> v(n);
  FILE* f = std::fopen(p, "rb");
  if (!f || std::fread(v.data(), sizeof(T), n, f) != n) { std::perror(p); std::exit(2); }
  std::fclose(f);
  return v;
}
int main(int argc, char** argv) {
  const int K4 = std::atoi(argv[1]), N = std::atoi(argv[2]), nb = std::atoi(argv[3]);
  auto packed = load<uint8_t>("packed.bin", size_t(K4) * N);
  auto x = load<int8_t>("x.bin", size_t(K4) * 4);
  auto xs = load<int32_t>("xsum.bin", nb);
  auto d = load<float>("d.bin", nb);
  const float ws = load<float>("ws.bin", 1)[0];
  Halide::Runtime::Buffer<uint8_t> pb(packed.data(), K4, N);
  Halide::Runtime::Buffer<int8_t> xb(x.data(), K4 * 4, 1);
  Halide::Runtime::Buffer<int32_t> sb(xs.data(), nb, 1);
  Halide::Runtime::Buffer<float> db(d.data(), nb, 1);
  Halide::Runtime::Buffer<float> y(N, 1);
  Halide::Runtime::Buffer<float> unread_block_scales(1, 1);  // one scale per tensor: ws
  if (int err = bitnetc_gemv_test(pb, xb, sb, db, ws, unread_block_scales, y)) { std::fprintf(stderr, "kernel error %d\n", err); return 3; }
  FILE* f = std::fopen("y.bin", "wb");
  std::fwrite(y.data(), sizeof(float), N, f);
  std::fclose(f);
  return 0;
}
)";

}  // namespace

TEST(Codegen, AotMatmulLinksRunsAndMatchesTheInterpreter) {
  ScratchDir dir;
  const int64_t K = 768, N = 37, block = 256;
  const TargetInfo& target = *find_target("x86-64-avx2");  // runs on every x86-64 CI machine here
  const schedules::TernaryMatmulShape shape{K, N, block, target.ternary_bytes};
  // Each emission in a process of its own, as each bitnetc run is one: Halide makes
  // names unique per process (a second "y" in one process becomes "y$1"), so
  // reproducibility is a property of runs, and the same inputs must give the same bytes.
  auto emit_in_child = [&](const std::string& path) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      codegen::emit_ternary_matmul_object(shape, target, "bitnetc_gemv_test", path);
      ::_exit(0);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  };
  emit_in_child(dir.file("gemv.o"));
  emit_in_child(dir.file("gemv2.o"));
  EXPECT_EQ(slurp(dir.file("gemv.o")), slurp(dir.file("gemv2.o")));
  codegen::emit_halide_runtime(target, dir.file("halide_runtime.o"));

  SplitMix64 rng(5);
  TernaryWeights w;
  w.rows = N;
  w.cols = K;
  w.codes.resize(K * N);
  for (auto& c : w.codes) c = static_cast<int8_t>(static_cast<int>(rng.next() % 3) - 1);
  std::vector<float> xf(K);
  for (auto& v : xf) v = rng.normal();
  std::vector<int8_t> q(K);
  std::vector<float> d(K / block);
  ir::quantize_activations(ir::ActQuant::PerBlockQ8K, xf.data(), K, q.data(), d.data());
  const float ws = 0.0734f;
  const int64_t Kp = schedules::padded_k(K, target.ternary_bytes);
  std::vector<int8_t> xp(Kp, 0);
  std::copy(q.begin(), q.end(), xp.begin());
  std::vector<int32_t> xsum(K / block, 0);
  for (int64_t k = 0; k < K; ++k) xsum[k / block] += q[k];
  write_vec(dir.file("packed.bin"), schedules::pack_ternary_rows(w, target.ternary_bytes));
  write_vec(dir.file("x.bin"), xp);
  write_vec(dir.file("xsum.bin"), xsum);
  write_vec(dir.file("d.bin"), d);
  write_vec(dir.file("ws.bin"), std::vector<float>{ws});
  write_text(dir.file("driver.cpp"), kDriver);

  const std::string cmd = "cd " + dir.path().string() + " && " + BITNETC_CXX + " -std=c++17 -O1 -I" +
                          HALIDE_INCLUDE_DIR + " driver.cpp gemv.o halide_runtime.o -o driver -lpthread -ldl" +
                          " && ./driver " + std::to_string(Kp / 4) + " " + std::to_string(N) + " " +
                          std::to_string(K / block);
  const int rc = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << cmd;

  const auto ybytes = slurp(dir.file("y.bin"));
  ASSERT_EQ(ybytes.size(), static_cast<size_t>(N) * 4);
  for (int64_t n = 0; n < N; ++n) {
    float y = 0;
    for (int64_t b = 0; b < K / block; ++b) {
      int32_t acc = 0;
      for (int64_t k = b * block; k < (b + 1) * block; ++k) acc += w.codes[n * K + k] * q[k];
      y += static_cast<float>(acc) * (d[b] * ws);
    }
    float got;
    std::memcpy(&got, &ybytes[n * 4], 4);
    ASSERT_EQ(got, y) << "row " << n;
  }
}

// --layout=auto: per group of matmuls that read the same activations, the layout with the
// least measured time on the target's figures; no figures: the target's preferred
// layout; per-block activations: I2_S. Explicit requests the target cannot serve throw.
TEST(Layouts, AutoPicksTheMeasuredFasterLayoutPerActivationGroup) {
  ScratchDir dir;
  SyntheticSpec spec;
  spec.arch = "bitnet-b1.58";
  spec.weight_type = TensorType::I2_S;  // bitnet.cpp's weights, so its numerics: per-token activations
  make_synthetic_gguf(spec).write(dir.file("m.gguf"));
  const ImportedModel m = import_model(dir.file("m.gguf"));
  const ir::Graph g = lower(m, {});
  TargetInfo t = *find_target("x86-64-avx2");
  const int64_t E = spec.n_embd, F = spec.n_ff;
  auto layouts_of = [&](const TargetInfo& target) {
    std::map<std::string, rt::TernaryLayout> by_name;
    const auto choices = codegen::choose_layouts(g, target, codegen::LayoutRequest::Auto);
    for (size_t i = 0; i < g.ternary.size(); ++i) by_name[g.ternary[i].name] = choices[i].layout;
    return by_name;
  };
  // TL2 measured faster for the FFN's down projection only (K = n_ff), I2_S elsewhere.
  t.layout_figures = {{TensorType::I2_S, E, E, 10, 5}, {TensorType::TL2, E, E, 20, 10},
                      {TensorType::I2_S, F, E, 30, 15}, {TensorType::TL2, F, E, 12, 6}};
  for (const auto& [name, layout] : layouts_of(t)) {
    const bool down = name.find("ffn_down") != std::string::npos;
    EXPECT_EQ(layout, down ? rt::TernaryLayout::TL2 : rt::TernaryLayout::I2S) << name;
  }
  t.layout_figures.clear();
  for (const auto& [name, layout] : layouts_of(t)) EXPECT_EQ(layout, rt::TernaryLayout::I2S) << name;
  const auto choices = codegen::choose_layouts(g, t, codegen::LayoutRequest::Auto);
  EXPECT_NE(choices[0].reason.find("no per-shape figures"), std::string::npos) << choices[0].reason;
  // Without figures, the target's first layout (WebAssembly SIMD prefers TL1).
  t.layouts = {rt::TernaryLayout::TL2, rt::TernaryLayout::I2S};
  for (const auto& [name, layout] : layouts_of(t)) EXPECT_EQ(layout, rt::TernaryLayout::TL2) << name;

  // Explicit requests: served everywhere, or a clear error.
  for (const auto& c : codegen::choose_layouts(g, t, codegen::LayoutRequest::TL2))
    EXPECT_EQ(c.layout, rt::TernaryLayout::TL2);
  EXPECT_THROW(codegen::choose_layouts(g, t, codegen::LayoutRequest::TL1), std::invalid_argument);
  EXPECT_THROW(codegen::choose_layouts(g, *find_target("aarch64-neon"), codegen::LayoutRequest::TL2),
               std::invalid_argument);
  LowerOptions per_block;
  per_block.act_quant = ActQuantGranularity::PerBlock;
  const ir::Graph gb = lower(m, per_block);
  try {
    codegen::choose_layouts(gb, t, codegen::LayoutRequest::TL2);
    ADD_FAILURE() << "per-block activations accepted for TL2";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("per-block (Q8_K) activations"), std::string::npos) << e.what();
  }
  // Auto keeps I2_S where a row holds several activation blocks (K past 256), even
  // where the target prefers a lookup table.
  const auto per_block_choices = codegen::choose_layouts(gb, t, codegen::LayoutRequest::Auto);
  for (const ir::Op& op : gb.ops)
    if (op.kind == ir::OpKind::TernaryMatmul && gb.ternary[op.weight].w.cols > 256)
      EXPECT_EQ(per_block_choices[op.weight].layout, rt::TernaryLayout::I2S) << gb.ternary[op.weight].name;

  // With the model: a stored type that can hold several scales (TQ2_0: one per 256
  // weights) keeps I2_S under auto, per-token activations or not, and says why.
  SyntheticSpec tq = spec;
  tq.weight_type = TensorType::TQ2_0;
  make_synthetic_gguf(tq).write(dir.file("tq.gguf"));
  const ImportedModel mt = import_model(dir.file("tq.gguf"));
  LowerOptions per_token;
  per_token.act_quant = ActQuantGranularity::PerToken;
  const ir::Graph gt = lower(mt, per_token);
  for (const auto& c : codegen::choose_layouts(gt, t, codegen::LayoutRequest::Auto, &mt)) {
    EXPECT_EQ(c.layout, rt::TernaryLayout::I2S);
    EXPECT_NE(c.reason.find("(TQ2_0) can hold a scale per row or block"), std::string::npos) << c.reason;
  }
}

// NVRTC compiles the generated kernels for every CUDA target into a cubin (an ELF for
// EM_CUDA that names the kernel) and PTX for the SM; without NVRTC the error says so.
TEST(CudaKernels, NvrtcCompilesForEveryCudaTarget) {
  const codegen::CudaKernel kernel = codegen::cuda_ternary_matmul({2560, 6912, 2560, 1});
  const codegen::CudaKernel mma = codegen::cuda_ternary_matmul_mma({2560, 6912, 256, 64});
  const std::string source =
      codegen::cuda_module_preamble() + codegen::cuda_kernel_text(kernel) + codegen::cuda_kernel_text(mma);
  const std::string name = kernel.name;
  int cuda_targets = 0;
  for (const TargetInfo& t : targets()) {
    if (t.backend != Backend::Cuda) continue;
    ++cuda_targets;
    if (!codegen::have_nvrtc()) {
      try {
        codegen::compile_cuda(source, t);
        ADD_FAILURE() << "compiled without NVRTC";
      } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("without CUDA's NVRTC"), std::string::npos) << e.what();
      }
      continue;
    }
    const codegen::CudaImage image = codegen::compile_cuda(source, t);
    ASSERT_GT(image.cubin.size(), 64u) << t.name;
    EXPECT_EQ(std::string(image.cubin.begin(), image.cubin.begin() + 4), "\x7f" "ELF") << t.name;
    const unsigned machine = image.cubin[18] | (image.cubin[19] << 8);
    EXPECT_EQ(machine, 190u) << t.name << ": e_machine should be EM_CUDA";
    EXPECT_NE(std::string(image.cubin.begin(), image.cubin.end()).find(name), std::string::npos) << t.name;
    EXPECT_NE(image.ptx.find(".entry " + name), std::string::npos) << t.name;
    EXPECT_NE(image.ptx.find(".target " + t.cuda_sm), std::string::npos) << t.name;
    EXPECT_NE(image.ptx.find("dp4a"), std::string::npos) << t.name << ": the dot products should use dp4a";
    EXPECT_NE(image.ptx.find(".entry " + mma.name), std::string::npos) << t.name;
    EXPECT_NE(image.ptx.find("wmma.mma.sync.aligned.row.col.m16n16k16.s32.s8.s8.s32"), std::string::npos)
        << t.name << ": prefill should use the int8 tensor cores";
  }
  EXPECT_EQ(cuda_targets, 4);
  // A kernel NVRTC rejects is an error with its log, not a crash.
  if (codegen::have_nvrtc())
    EXPECT_THROW(codegen::compile_cuda("extern \"C\" __global__ void k() { undefined_thing(); }",
                                       *find_target("cuda-sm80")),
                 std::runtime_error);
}

// Every CUDA kernel, run on the CPU through tests/support/cuda_emulation.h against the
// reference, is in the op harness (test_ops.cpp).

namespace {

// The CUDA plan of graph `g` with records as the packer makes them (weights' offsets
// aside): each launch's kernel name, in order, and the decode launch count.
struct PlanKernels {
  std::vector<std::string> launched;
  size_t decode_launches = 0;
  size_t count(const std::string& prefix) const {
    size_t n = 0;
    for (const std::string& k : launched) n += k.rfind(prefix, 0) == 0;
    return n;
  }
};
PlanKernels cuda_plan_kernels(const ir::Graph& g) {
  std::vector<rt::TernaryRecord> ternary(g.ternary.size());
  for (size_t i = 0; i < g.ternary.size(); ++i) {
    rt::TernaryRecord& r = ternary[i];
    r.K = g.ternary[i].w.cols;
    r.N = g.ternary[i].w.rows;
    r.K_padded = codegen::cuda_padded_k(r.K);
    r.act_block = r.K;
    r.layout = rt::TernaryLayout::Cuda;
    r.w_scale = 1.0f;
  }
  for (const ir::Op& op : g.ops)  // Q8_K activations: blocks of 256
    if (op.kind == ir::OpKind::Quantize && ir::act_quant_is_per_block(op.quant))
      for (const ir::Op& reader : g.ops)
        if (reader.kind == ir::OpKind::TernaryMatmul && reader.inputs[0] == op.output)
          ternary[reader.weight].act_block = 256;
  std::vector<rt::DenseRecord> dense(g.dense.size());
  for (size_t i = 0; i < g.dense.size(); ++i)
    dense[i] = {rt::kNoKernel,
                rt::DenseStorage::F32,
                rt::DenseLayout::KMajor,
                0,
                g.dense[i].rows,
                g.dense[i].cols,
                g.dense[i].rows,
                0,
                0};
  const codegen::CudaProgram p = codegen::build_cuda_program(g, ternary, dense, codegen::kCudaChunkTokens);
  PlanKernels k;
  for (const rt::CudaStep& s : p.steps) {
    k.launched.push_back(p.kernel_names[s.kernel]);
    k.decode_launches += s.run_for != rt::CudaRunFor::SeveralTokens;
  }
  return k;
}

}  // namespace

// The CUDA plan fuses an op into another's launch only when nothing else reads its
// output: on the 2B4T structure (sub-norms, relu^2) every layer is 10 decode launches;
// a second reader of a norm, a gated activation, a RoPE output or a matmul output
// before a residual add (here an extra Add reading it twice) keeps that op's own launch.
TEST(CudaPlan, FusesOnlyOpsWhoseOutputNothingElseReads) {
  ScratchDir dir;
  make_synthetic_gguf(SyntheticSpec{}).write(dir.file("m.gguf"));
  const ir::Graph g = lower(import_model(dir.file("m.gguf")), {});
  const PlanKernels fused = cuda_plan_kernels(g);
  const size_t layers = static_cast<size_t>(g.n_layer);
  EXPECT_EQ(fused.count("bitnetc_rope_kv_store_"), layers);
  EXPECT_EQ(fused.count("bitnetc_gated_norm_quantize_"), layers);
  EXPECT_EQ(fused.count("bitnetc_add_"), 0u);
  EXPECT_EQ(fused.count("bitnetc_gated_"), layers);  // all gated_norm_quantize
  EXPECT_EQ(fused.count("bitnetc_rope_"), layers);   // all rope_kv_store
  EXPECT_EQ(fused.count("bitnetc_kv_store_"), 0u);
  EXPECT_EQ(fused.count("bitnetc_norm_") - fused.count("bitnetc_norm_quantize_"), 1u);  // the final norm
  EXPECT_EQ(fused.decode_launches, 10 * layers + 9);  // + embedding, final norm, head, penalty, 2 argmax, 3 top-k

  // One extra reader of each kind of fused value, in the first layer.
  ir::Graph blocked = g;
  auto read_by_add = [&](int v) {
    for (const ir::Op& op : g.ops)
      if (op.kind == ir::OpKind::Add && (op.inputs[0] == v || op.inputs[1] == v)) return true;
    return false;
  };
  auto add_reader = [&](ir::OpKind producer_kind, bool before_residual_add) {
    for (const ir::Op& op : g.ops)
      if (op.kind == producer_kind && (!before_residual_add || read_by_add(op.output))) {
        ir::Op extra(ir::OpKind::Add);
        extra.inputs = {op.output, op.output};
        extra.output = blocked.add_value("extra", ir::DType::F32, g.values[op.output].size);
        blocked.ops.push_back(extra);
        return;
      }
    FAIL() << "no op to block";
  };
  for (ir::OpKind k : {ir::OpKind::Norm, ir::OpKind::GatedAct, ir::OpKind::Rope}) add_reader(k, false);
  add_reader(ir::OpKind::TernaryMatmul, true);  // the attention's output projection
  ASSERT_TRUE(ir::verify(blocked).empty()) << ir::verify(blocked)[0];
  const PlanKernels b = cuda_plan_kernels(blocked);
  EXPECT_EQ(b.count("bitnetc_norm_") - b.count("bitnetc_norm_quantize_"), 2u);  // the final norm and the blocked one
  EXPECT_EQ(b.count("bitnetc_gated_") - b.count("bitnetc_gated_norm_quantize_"), 1u);
  EXPECT_EQ(b.count("bitnetc_rope_kv_store_"), layers - 1);
  EXPECT_EQ(b.count("bitnetc_rope_") - b.count("bitnetc_rope_kv_store_"), 2u);  // q and k of layer 0
  EXPECT_EQ(b.count("bitnetc_kv_store_"), 1u);
  // The output projection writes its own output; its residual add is a launch again.
  EXPECT_EQ(b.count("bitnetc_add_"), 4u + 1u);                              // the 4 extra readers and that residual
  EXPECT_EQ(b.decode_launches, fused.decode_launches + 4 + 1 + 1 + 2 + 1);  // extras, norm, gated, rope, add
}

// A forked task starts from this process's state and leaves it untouched; what it throws,
// or how it dies, comes back as a message.
TEST(ForkedTask, RunsInACopyAndReportsWhatWentWrong) {
  int value = 1;
  ForkedTask changes_its_copy([&] { value = 2; });
  EXPECT_EQ(changes_its_copy.wait(), "");
  EXPECT_EQ(value, 1);
  ForkedTask throws([] { throw std::runtime_error("kernel bitnetc_gemv0: no such shape"); });
  EXPECT_EQ(throws.wait(), "kernel bitnetc_gemv0: no such shape");
  ForkedTask dies([] { ::raise(SIGKILL); });
  EXPECT_EQ(dies.wait(), "killed by signal 9");
  {
    ForkedTask never_waited_for([] { ::pause(); });  // the destructor kills and reaps it
  }
}

// The kernel cache gives back exactly what was stored under exactly the same key; a
// damaged entry or one whose file name collides is a miss; trim removes the least
// recently used entries past its limit.
TEST(KernelCache, HitsOnlyTheSameKeyAndIntactEntries) {
  ScratchDir dir;
  const codegen::KernelCache cache = codegen::KernelCache::open(dir.file("cache"), nullptr);
  ASSERT_TRUE(cache.enabled());
  std::string object(70000, '\0');
  for (size_t i = 0; i < object.size(); ++i) object[i] = static_cast<char>(i * 7);
  { std::ofstream(dir.file("k.o"), std::ios::binary) << object; }
  EXPECT_FALSE(cache.fetch("key a", dir.file("out.o")));
  cache.store("key a", dir.file("k.o"));
  ASSERT_TRUE(cache.fetch("key a", dir.file("out.o")));
  EXPECT_EQ(slurp(dir.file("out.o")), std::vector<uint8_t>(object.begin(), object.end()));
  EXPECT_FALSE(cache.fetch("key b", dir.file("other.o")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("other.o")));

  std::vector<std::filesystem::path> entries;
  for (const auto& e : std::filesystem::directory_iterator(dir.file("cache"))) entries.push_back(e.path());
  ASSERT_EQ(entries.size(), 1u);
  // Another key whose entry file holds key a's entry (as a hash collision would): a miss.
  cache.store("key b", dir.file("k.o"));
  for (const auto& e : std::filesystem::directory_iterator(dir.file("cache")))
    if (e.path() != entries[0])
      std::filesystem::copy_file(entries[0], e.path(), std::filesystem::copy_options::overwrite_existing);
  EXPECT_FALSE(cache.fetch("key b", dir.file("other.o")));
  // One byte of the object changed: a miss.
  {
    std::fstream f(entries[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-100, std::ios::end);
    f.put('x');
  }
  EXPECT_FALSE(cache.fetch("key a", dir.file("out.o")));

  // Trim: three fresh entries of ~70 kB under a limit of two keep the two used last.
  for (const char* k : {"one", "two", "three"}) {
    cache.store(k, dir.file("k.o"));
    ::usleep(20000);  // distinct modification times
  }
  ASSERT_TRUE(cache.fetch("one", dir.file("out.o")));  // used again: kept
  cache.trim(2 * object.size() + 1000);
  EXPECT_TRUE(cache.fetch("one", dir.file("out.o")));
  EXPECT_TRUE(cache.fetch("three", dir.file("out.o")));
  EXPECT_FALSE(cache.fetch("two", dir.file("out.o")));

  // A FIFO in an entry's place is a miss, not a wait for a writer.
  const std::filesystem::path fifo_dir = dir.file("fifo-cache");
  const codegen::KernelCache fifo_cache = codegen::KernelCache::open(fifo_dir.string(), nullptr);
  fifo_cache.store("fifo", dir.file("k.o"));
  const std::filesystem::path entry = std::filesystem::directory_iterator(fifo_dir)->path();
  std::filesystem::remove(entry);
  ASSERT_EQ(::mkfifo(entry.c_str(), 0644), 0);
  EXPECT_FALSE(fifo_cache.fetch("fifo", dir.file("out.o")));

  // A folder that cannot be made: an error naming the flag, or a note without the cache.
  { std::ofstream(dir.file("file")) << "x"; }
  try {
    codegen::KernelCache::open(dir.file("file") + "/sub", nullptr);
    ADD_FAILURE() << "an unusable --kernel-cache was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("--kernel-cache " + dir.file("file") + "/sub: cannot use the folder"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(codegen::KernelCache::open("off", nullptr).enabled());
}
