// Weight layouts against each other: for every target this machine runs natively and
// every ternary layout that target has kernels for (I2_S with the target's instructions;
// TL2 on x86), the ternary matmul on the BitNet b1.58 2B4T projection shapes, GEMV
// (decode) and batch-8 GEMM (prefill), with the weights cold: each call reads another of
// many copies, more than the last-level cache holds, as decode does. Prints one JSON
// object; its figures are what TargetInfo::layout_figures (compiler/targets.cpp) records
// for `--layout=auto`. Threads: HL_NUM_THREADS (on the outputs' pool), default all cores.
//
//   build/bench/bench_layouts > layouts.json
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "kernel_objects.h"
#include "lut_matmul.h"
#include "lut_tiles.h"
#include "bench_common.h"
#include "synthetic_model.h"
#include "targets.h"
#include "ternary_matmul.h"

using namespace bitnetc;

namespace {

// One layout's pipeline and packing for a shape.
struct Candidate {
  std::string layout;
  schedules::MatmulPipeline pipeline;
  std::vector<uint8_t> packed;
  int dim0, dim1;
  int64_t Kp;
};

Candidate make(const std::string& layout, const TargetInfo& t, const TernaryWeights& w, int batch) {
  if (layout == "i2_s") {
    schedules::TernaryMatmulShape s = codegen::i2s_matmul_shape(t, w.cols, w.rows, w.cols);
    s.batch = batch;
    const schedules::PackedDims dims = schedules::packed_dims(s);
    return {layout,     schedules::ternary_matmul(s), schedules::pack_ternary(w, s), dims.bytes_per_tile,
            dims.tiles, schedules::packed_k(s)};
  }
  const schedules::LutLayout l = layout == "tl1" ? schedules::LutLayout::TL1 : schedules::LutLayout::TL2;
  return {layout,
          schedules::lut_matmul({w.cols, w.rows, l, batch}),
          schedules::pack_lut(w, l),
          static_cast<int>(schedules::lut_tile_bytes(w.cols, l)),
          static_cast<int>(schedules::lut_tiles(w.rows, l)),
          schedules::lut_padded_k(w.cols, l)};
}

}  // namespace

int main() {
  const auto& shapes = bench::k2b4tProjections;
  const std::vector<const TargetInfo*> tgts = bench::native_x86_targets();
  const char* threads = std::getenv("HL_NUM_THREADS");
  std::printf("{\"benchmark\": \"ternary_layouts\", \"threads\": \"%s\", \"results\": [", threads ? threads : "all");
  bool first = true;
  for (const TargetInfo* t : tgts)
    for (const bench::Shape& s : shapes)
      for (int batch : {1, kLayoutFigureBatch})
        for (const char* layout : {"i2_s", "tl2"}) {
          SplitMix64 rng(2);
          const TernaryWeights w = bench::random_weights(s);
          Candidate c = make(layout, *t, w, batch);
          // Copies enough to stream ~512 MB from memory, as decode does across layers.
          const size_t copies = std::clamp<size_t>((512u << 20) / c.packed.size(), 8, 512);
          std::vector<std::vector<uint8_t>> weights(copies, c.packed);
          std::vector<int8_t> x(c.Kp * batch, 0);
          for (int64_t k = 0; k < s.K * batch; ++k) x[k % c.Kp + (k / s.K) * c.Kp] = static_cast<int8_t>(rng.next() % 255 - 127);
          std::vector<int32_t> xs(batch, 0);
          std::vector<float> d(batch, 0.01f);
          Halide::Buffer<int8_t> xb(x.data(), static_cast<int>(c.Kp), batch);
          Halide::Buffer<int32_t> sb(xs.data(), 1, batch);
          Halide::Buffer<float> db(d.data(), 1, batch);
          Halide::Buffer<float> out(static_cast<int>(s.N), batch);
          c.pipeline.x.set(xb);
          c.pipeline.x_sum.set(sb);
          c.pipeline.d_act.set(db);
          c.pipeline.w_scale.set(1.0f);
          Halide::Pipeline p(c.pipeline.y);
          p.set_jit_externs({{"bitnetc_tl1_tiles", Halide::JITExtern(bitnetc_tl1_tiles)},
                             {"bitnetc_tl2_tiles", Halide::JITExtern(bitnetc_tl2_tiles)}});
          bench::use_output_thread_pool(p);
          p.compile_jit(layout == std::string("i2_s")
                            ? codegen::with_reduce_features(Halide::Target(t->halide), codegen::ternary_reduce(*t))
                            : Halide::Target(t->halide));
          std::vector<Halide::Buffer<uint8_t>> bufs;
          for (auto& copy : weights) bufs.emplace_back(copy.data(), c.dim0, c.dim1);
          size_t next = 0;
          auto call = [&] {
            c.pipeline.packed.set(bufs[next]);
            next = (next + 1) % bufs.size();
            p.realize(out);
          };
          for (size_t i = 0; i < copies; ++i) call();  // warm-up: page faults, JIT
          std::vector<double> us;
          for (int rep = 0; rep < 5; ++rep) {
            const auto t0 = std::chrono::steady_clock::now();
            for (size_t i = 0; i < copies; ++i) call();
            us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
                         static_cast<double>(copies));
          }
          std::sort(us.begin(), us.end());
          const double med = us[us.size() / 2];
          std::printf("%s\n  {\"target\": \"%s\", \"layout\": \"%s\", \"shape\": \"%s\", \"K\": %lld, \"N\": %lld, "
                      "\"batch\": %d, \"us\": %.1f, \"us_per_token\": %.1f, \"min_us\": %.1f, \"max_us\": %.1f, "
                      "\"weight_bytes\": %zu, \"GBps\": %.2f}",
                      first ? "" : ",", t->name.c_str(), layout, s.name, static_cast<long long>(s.K),
                      static_cast<long long>(s.N), batch, med, med / batch, us.front(), us.back(), c.packed.size(),
                      static_cast<double>(c.packed.size()) / (med * 1e-6) / 1e9);
          first = false;
          std::fflush(stdout);
        }
  std::printf("\n]}\n");
}
