// Ahead-of-time kernels: emitted as objects, linked by the system compiler into a small
// driver, run, and compared bit for bit with the interpreter's ternary matmul. This is
// the path every compiled output takes (emit, link, run), at the size of one kernel.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <map>

#include "cuda_kernels.h"
#include "cuda_program.h"
#include "interpreter.h"
#include "kernel_objects.h"
#include "layouts.h"
#include "lower.h"
#include "model_import.h"
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
  EXPECT_NE(choices[0].reason.find("no measured figures"), std::string::npos) << choices[0].reason;

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
  for (const auto& c : codegen::choose_layouts(gb, t, codegen::LayoutRequest::Auto))
    EXPECT_EQ(c.layout, rt::TernaryLayout::I2S);
}

namespace {

// Builds `driver` (C++ that includes cuda_emulation.h and a generated kernel) in `dir`
// with the rounding NVRTC gets (-ffp-contract=off ~ -fmad=false) and runs it there.
void run_emulated(const ScratchDir& dir, const std::string& driver) {
  write_text(dir.file("driver.cpp"), driver);
  const std::string cd = "cd " + shell_quote(dir.path().string()) + " && ";
  const CommandResult build = run_command(cd + BITNETC_CXX + " -std=c++17 -O1 -ffp-contract=off -I" +
                                              BITNETC_TEST_SUPPORT_DIR + " driver.cpp -o driver",
                                          dir);
  ASSERT_EQ(build.status, 0) << build.err;
  const CommandResult run = run_command(cd + "./driver", dir);
  ASSERT_EQ(run.status, 0) << run.err;
}

}  // namespace

// The CUDA ternary matmuls, dp4a and tensor-core (wmma), run on the CPU through
// tests/support/cuda_emulation.h (the kernel source is plain C++ there), against the
// interpreter's arithmetic bit for bit: per-token and Q8_K activations, K padded to
// whole words and to whole stages, rows past a block, a chunk of tokens shorter than
// the kernel's batch (a partial token tile; rows past the chunk stay untouched).
TEST(CudaKernels, MatmulRunOnTheCpuMatchesTheInterpreter) {
  ScratchDir dir;
  struct CudaCase {
    int64_t K, N, act_block;
    int batch;
  };
  for (const CudaCase c :
       {CudaCase{2560, 37, 2560, 1}, CudaCase{768, 33, 256, 3}, CudaCase{100, 5, 100, 2}, CudaCase{320, 70, 320, 19}}) {
    SplitMix64 rng(static_cast<uint64_t>(c.K + c.N));
    TernaryWeights w;
    w.rows = c.N;
    w.cols = c.K;
    for (int64_t i = 0; i < c.K * c.N; ++i) w.codes.push_back(static_cast<int8_t>(static_cast<int>(rng.next() % 3) - 1));
    const float ws = 0.0734f;
    const int64_t Kp = codegen::cuda_padded_k(c.K), blocks = c.K / c.act_block;
    std::vector<int8_t> x(Kp * c.batch, 0);
    std::vector<int32_t> xsum(blocks * c.batch, 0);
    std::vector<float> d(blocks * c.batch), want(c.N * c.batch);
    for (int m = 0; m < c.batch; ++m) {
      std::vector<float> xf(c.K);
      for (auto& v : xf) v = rng.normal();
      for (int64_t b = 0; b < blocks; ++b) {
        ir::quantize_activations(c.act_block == 256 ? ir::ActQuant::PerBlockQ8K : ir::ActQuant::PerTokenHF,
                                 &xf[b * c.act_block], c.act_block, &x[m * Kp + b * c.act_block], &d[m * blocks + b]);
        for (int64_t k = b * c.act_block; k < (b + 1) * c.act_block; ++k) xsum[m * blocks + b] += x[m * Kp + k];
      }
      for (int64_t n = 0; n < c.N; ++n) {  // ir::Interpreter's ternary_matmul
        float y = 0;
        for (int64_t b = 0; b < blocks; ++b) {
          int32_t acc = 0;
          for (int64_t k = b * c.act_block; k < (b + 1) * c.act_block; ++k) acc += w.codes[n * c.K + k] * x[m * Kp + k];
          y += static_cast<float>(acc) * (d[m * blocks + b] * ws);
        }
        want[m * c.N + n] = y;
      }
    }
    write_vec(dir.file("packed.bin"), codegen::pack_for_cuda_matmul(w));
    write_vec(dir.file("x.bin"), x);
    write_vec(dir.file("xsum.bin"), xsum);
    write_vec(dir.file("d.bin"), d);
    // The kernels' batch is larger than the chunk: buffers hold `batch` rows, the
    // kernel reads and writes only the chunk's.
    const int room = (c.batch + 2 + 15) / 16 * 16;
    for (const codegen::CudaKernel& kernel : {codegen::cuda_ternary_matmul({c.K, c.N, c.act_block, c.batch + 2}),
                                              codegen::cuda_ternary_matmul_mma({c.K, c.N, c.act_block, room})}) {
      const std::string name = kernel.name;
      const std::string driver =
          "#include \"cuda_emulation.h\"\n#include <cstdio>\n#include <cstdlib>\n#include <vector>\n" +
          codegen::cuda_module_preamble() + codegen::cuda_kernel_text(kernel) +
          "template <typename T> std::vector<T> load(const char* p, size_t n, size_t room) {\n"
          "  std::vector<T> v(room); FILE* f = std::fopen(p, \"rb\");\n"
          "  if (!f || std::fread(v.data(), sizeof(T), n, f) != n) std::exit(2);\n  std::fclose(f); return v; }\n"
          "int main() {\n  const int N = " +
          std::to_string(c.N) + ", M = " + std::to_string(c.batch) + ", ROOM = " + std::to_string(room) + ";\n" +
          "  auto packed = load<unsigned>(\"packed.bin\", " + std::to_string(Kp / 16 * c.N) + ", " +
          std::to_string(Kp / 16 * c.N) + ");\n" + "  auto x = load<int>(\"x.bin\", " +
          std::to_string(Kp / 4 * c.batch) + ", " + std::to_string(Kp / 4) + " * ROOM);\n" +
          "  auto xs = load<int>(\"xsum.bin\", " + std::to_string(blocks * c.batch) + ", " + std::to_string(blocks) +
          " * ROOM);\n" + "  auto d = load<float>(\"d.bin\", " + std::to_string(blocks * c.batch) + ", " +
          std::to_string(blocks) + " * ROOM);\n" +
          "  std::vector<float> y(N * (M + 2), -1.0f);\n  std::vector<int> state = {0, M, 1};\n" + "  bitnetc_launch(" +
          name + ", {" + std::to_string(kernel.grid_x) + ", 1, 1}, {" + std::to_string(kernel.block_x) +
          ", 1, 1}, state.data(), packed.data(), x.data(), xs.data(),\n" + "                 d.data(), " +
          std::to_string(ws) + "f, y.data());\n" +
          "  FILE* f = std::fopen(\"y.bin\", \"wb\"); std::fwrite(y.data(), 4, y.size(), f); std::fclose(f);\n}\n";
      ASSERT_NO_FATAL_FAILURE(run_emulated(dir, driver));
      const auto y = slurp(dir.file("y.bin"));
      ASSERT_EQ(y.size(), (want.size() + 2 * c.N) * 4);
      for (size_t i = 0; i < want.size() + 2 * c.N; ++i) {
        float v;
        std::memcpy(&v, &y[4 * i], 4);
        ASSERT_EQ(v, i < want.size() ? want[i] : -1.0f) << name << " output " << i;
      }
    }
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

// Norm + activation quantization on the GPU share the interpreter's arithmetic
// (ir/numerics.h is embedded in the kernel source): NVRTC builds it for every SM, and
// run on the CPU (block reductions with barriers, tests/support/cuda_emulation.h) the
// kernels give the interpreter's values, codes, scales and sums for each recipe's
// combination (wiring: per-token offsets, padding, per-block sums, first-maximum ties),
// bit for bit; so does the fused kernel that quantizes the normalized values directly.
TEST(CudaKernels, NormQuantSharesTheInterpretersNumerics) {
  ScratchDir dir;
  using ir::ActQuant;
  using ir::NormKind;
  struct NormQuantCase {
    int64_t n;
    int norm;
    bool has_weight;
    float eps;
    int quant, batch;
  };
  const NormQuantCase shapes[] = {
      {2560, static_cast<int>(NormKind::RmsF64Sum), true, 1e-5f, static_cast<int>(ActQuant::PerTokenBitnetCpp), 3},
      {512, static_cast<int>(NormKind::RmsF64Sum), true, 1e-6f, static_cast<int>(ActQuant::PerBlockQ8K), 2},
      {100, static_cast<int>(NormKind::RmsF32), true, 1e-5f, static_cast<int>(ActQuant::PerTokenHF), 2},
      {288, static_cast<int>(NormKind::BitNorm), false, 0.0f, static_cast<int>(ActQuant::PerTokenLlama2c), 1}};
  for (const auto& s : shapes) {
    const codegen::CudaNorm norm_attrs{s.norm, s.has_weight, s.eps};
    const codegen::CudaKernel norm = codegen::cuda_norm(s.n, norm_attrs);
    const codegen::CudaKernel quant = codegen::cuda_quantize(s.n, s.quant);
    const codegen::CudaKernel fused = codegen::cuda_quantize(s.n, s.quant, norm_attrs);
    const std::string source = codegen::cuda_module_preamble() + codegen::cuda_kernel_text(norm) +
                               codegen::cuda_kernel_text(quant) + codegen::cuda_kernel_text(fused);
    const std::string name = norm.name + " + " + quant.name;
    if (codegen::have_nvrtc()) {
      for (const char* t : {"cuda-sm80", "cuda-sm90"}) {
        const codegen::CudaImage image = codegen::compile_cuda(source, *find_target(t));
        EXPECT_NE(image.ptx.find(".entry " + norm.name), std::string::npos) << t;
        EXPECT_NE(image.ptx.find(".entry " + quant.name), std::string::npos) << t;
        EXPECT_NE(image.ptx.find(".entry " + fused.name), std::string::npos) << t;
      }
    }
    SplitMix64 rng(static_cast<uint64_t>(s.n));
    const int64_t Kp = codegen::cuda_padded_k(s.n), blocks = s.quant == 3 ? s.n / 256 : 1;
    std::vector<float> x(s.n * s.batch), w(s.n);
    for (auto& v : x) v = rng.normal();
    for (auto& v : w) v = 0.5f + rng.uniform();
    // A tie for the largest magnitude: the first value (negative) must set the scale.
    w[3] = w[5] = 1.0f;
    for (int m = 0; m < s.batch; ++m) x[m * s.n + 3] = -(x[m * s.n + 5] = 10.0f);
    std::vector<float> want_y(s.n * s.batch), want_d(blocks * s.batch);
    std::vector<int8_t> want_q(Kp * s.batch, 0);
    std::vector<int32_t> want_sum(blocks * s.batch, 0);
    for (int m = 0; m < s.batch; ++m) {
      ir::rms_norm(static_cast<NormKind>(s.norm), &x[m * s.n], s.n, s.has_weight ? w.data() : nullptr, s.eps,
                   &want_y[m * s.n]);
      ir::quantize_activations(static_cast<ActQuant>(s.quant), &want_y[m * s.n], s.n, &want_q[m * Kp],
                               &want_d[m * blocks]);
      for (int64_t k = 0; k < s.n; ++k) want_sum[m * blocks + k / (s.n / blocks)] += want_q[m * Kp + k];
    }
    write_vec(dir.file("x.bin"), x);
    write_vec(dir.file("w.bin"), w);
    const std::string driver =
        "#include \"cuda_emulation.h\"\n#include <cstdio>\n#include <cstdlib>\n#include <vector>\n" + source +
        "int main() {\n  const int N = " + std::to_string(s.n) + ", M = " + std::to_string(s.batch) +
        ", KP = " + std::to_string(Kp) + ", B = " + std::to_string(blocks) + ";\n" +
        R"(  std::vector<float> x(N * M), w(N), y(N * M), d(B * M);
  std::vector<int> q(KP / 4 * M, 0x55555555), sum(B * M), fq(q), fsum(B * M);
  std::vector<float> fd(B * M);
  FILE* f = std::fopen("x.bin", "rb"); if (std::fread(x.data(), 4, x.size(), f) != x.size()) return 2; std::fclose(f);
  f = std::fopen("w.bin", "rb"); if (std::fread(w.data(), 4, w.size(), f) != w.size()) return 2; std::fclose(f);
)" + "  std::vector<int> state = {0, M, 1};\n  bitnetc_launch(" +
        norm.name + ", {1, (unsigned)M, 1}, {" + std::to_string(norm.block_x) + ", 1, 1}, state.data(), x.data(), " +
        (s.has_weight ? "w.data(), " : "") + "y.data());\n  bitnetc_launch(" + quant.name + ", {1, (unsigned)M, 1}, {" +
        std::to_string(quant.block_x) +
        ", 1, 1}, state.data(), y.data(), q.data(), sum.data(), d.data());\n  bitnetc_launch(" + fused.name +
        ", {1, (unsigned)M, 1}, {" + std::to_string(fused.block_x) + ", 1, 1}, state.data(), x.data(), " +
        (s.has_weight ? "w.data(), " : "") + R"(fq.data(), fsum.data(), fd.data());
  f = std::fopen("out.bin", "wb");
  std::fwrite(y.data(), 4, y.size(), f); std::fwrite(q.data(), 4, q.size(), f);
  std::fwrite(sum.data(), 4, sum.size(), f); std::fwrite(d.data(), 4, d.size(), f);
  std::fwrite(fq.data(), 4, fq.size(), f); std::fwrite(fsum.data(), 4, fsum.size(), f);
  std::fwrite(fd.data(), 4, fd.size(), f); std::fclose(f);
}
)";
    ASSERT_NO_FATAL_FAILURE(run_emulated(dir, driver));
    const auto out = slurp(dir.file("out.bin"));
    ASSERT_EQ(out.size(), (want_y.size() + 2 * want_sum.size() + 2 * want_d.size()) * 4 + 2 * want_q.size());
    size_t at = 0;
    auto expect_bytes = [&](const void* want, size_t n, const char* what) {
      ASSERT_LE(at + n, out.size());
      EXPECT_EQ(std::memcmp(out.data() + at, want, n), 0) << name << ": " << what;
      at += n;
    };
    expect_bytes(want_y.data(), want_y.size() * 4, "normed values");
    expect_bytes(want_q.data(), want_q.size(), "codes (zero padded)");
    expect_bytes(want_sum.data(), want_sum.size() * 4, "sums");
    expect_bytes(want_d.data(), want_d.size() * 4, "scales");
    expect_bytes(want_q.data(), want_q.size(), "fused: codes (zero padded)");
    expect_bytes(want_sum.data(), want_sum.size() * 4, "fused: sums");
    expect_bytes(want_d.data(), want_d.size() * 4, "fused: scales");
    EXPECT_EQ(at, out.size());
  }
}

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
