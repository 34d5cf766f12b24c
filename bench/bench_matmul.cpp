// Ternary GEMV kernel benchmark: the Halide pipeline of schedules/ternary_matmul on the
// BitNet b1.58 2B4T projection shapes, for each x86 target this machine runs. Prints one
// JSON object: microseconds per call and token (median of repetitions) and weight bytes streamed
// per second, both with the weights in cache and streamed from memory (as in a whole
// model, whose weights far exceed the cache), for activations quantized per token and per
// block of 256 (Q8_K; rows named "q8_k"); then the dense head (f32, f16) and the k-quant
// head of llama.cpp's files. Threads: HL_NUM_THREADS, default all cores (on the outputs'
// pool); BENCH_TARGET=NAME measures one target, BENCH_PART=ternary|dense|kquant one family.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench_common.h"
#include "dense_matmul.h"
#include "kernel_objects.h"
#include "kquant_matmul.h"
#include "synthetic_model.h"
#include "targets.h"
#include "ternary_matmul.h"

using namespace bitnetc;

namespace {

void report(bool& first, const TargetInfo& t, const char* shape, const std::vector<double>& us, double bytes) {
  const double med = us[us.size() / 2];
  std::printf(
      "%s\n  {\"target\": \"%s\", \"shape\": \"%s\", \"us\": %.1f, \"min_us\": %.1f, \"max_us\": %.1f, \"GBps\": %.2f}",
      first ? "" : ",", t.name.c_str(), shape, med, us.front(), us.back(), bytes / (med * 1e-6) / 1e9);
  first = false;
}

}  // namespace

int main() {
  using bench::Shape;
  using bench::time_calls;
  const auto& shapes = bench::k2b4tProjections;
  std::vector<const TargetInfo*> tgts = bench::native_x86_targets();
  // BENCH_TARGET=NAME measures one target only.
  if (const char* only = std::getenv("BENCH_TARGET"))
    std::erase_if(tgts, [&](const TargetInfo* t) { return t->name != only; });
  // BENCH_PART=ternary|dense|kquant measures one family of kernels only.
  const char* part = std::getenv("BENCH_PART");
  auto measures = [&](const char* family) { return !part || std::string(part) == family; };
  const char* threads = std::getenv("HL_NUM_THREADS");
  std::printf("{\"benchmark\": \"ternary_matmul\", \"threads\": \"%s\", \"results\": [", threads ? threads : "all");
  bool first = true;
  // Batch 1 is the decode GEMV; batch 8 the prefill GEMM (time per token reported too).
  // Activations quantized per token (I2_S, bitnet-b1.58 numerics) or per block of 256
  // (Q8_K: llama.cpp's numerics, on TQ2_0/TQ1_0 files).
  for (int act_block : {0, 256})
    for (int batch : {1, 8})
      if (measures("ternary"))
        for (const TargetInfo* t : tgts)
          for (const Shape& s : shapes) {
            const TernaryWeights w = bench::random_weights(s);
            // The kernel and packing the compiled outputs use for this shape.
            schedules::TernaryMatmulShape shape = codegen::i2s_matmul_shape(*t, s.K, s.N, act_block ? act_block : s.K);
            shape.batch = batch;
            const schedules::MatmulReduce reduce = shape.reduce;
            auto p = schedules::ternary_matmul(shape);
            const int64_t Kp = schedules::packed_k(shape);
            auto packed = schedules::pack_ternary(w, shape);
            std::vector<int8_t> x(Kp * batch, 3);
            const int factors = static_cast<int>(s.K / shape.act_block);
            std::vector<int32_t> xs(batch * factors, 3 * static_cast<int32_t>(shape.act_block));
            std::vector<float> d(batch * factors, 0.01f);
            const schedules::PackedDims dims = schedules::packed_dims(shape);
            Halide::Buffer<uint8_t> pb(packed.data(), dims.bytes_per_tile, dims.tiles);
            Halide::Buffer<int8_t> xb(x.data(), static_cast<int>(Kp), batch);
            Halide::Buffer<int32_t> sb(xs.data(), factors, batch);
            Halide::Buffer<float> db(d.data(), factors, batch);
            p.packed.set(pb);
            p.x.set(xb);
            p.x_sum.set(sb);
            p.d_act.set(db);
            p.w_scale.set(1.0f);
            Halide::Buffer<float> out(static_cast<int>(s.N), batch);
            bench::use_output_thread_pool(p.y);
            p.y.compile_jit(codegen::with_reduce_features(Halide::Target(t->halide), reduce));
            p.y.realize(out);
            const std::string name =
                std::string(s.name) + (batch > 1 ? " batch " + std::to_string(batch) : "") + (act_block ? " q8_k" : "");
            auto us = time_calls([&] { p.y.realize(out); }, 7, batch > 1 ? 10 : 50);
            for (double& u : us) u /= batch;  // per token
            report(first, *t, name.c_str(), us, static_cast<double>(packed.size()) / batch);
            // A whole model reads every weight from memory, not from cache (once per token in
            // decode, once per chunk in prefill): the same call over copies of the weights that
            // together far exceed the last-level cache.
            const size_t copies = std::max<size_t>(2, (size_t{768} << 20) / packed.size());
            std::vector<std::vector<uint8_t>> copy(copies, packed);
            size_t next = 0;
            auto streamed = time_calls(
                [&] {
                  p.packed.set(Halide::Buffer<uint8_t>(copy[next].data(), dims.bytes_per_tile, dims.tiles));
                  next = (next + 1) % copies;
                  p.y.realize(out);
                },
                7, static_cast<int>(copies));
            for (double& u : streamed) u /= batch;
            report(first, *t, (name + " from memory").c_str(), streamed, static_cast<double>(packed.size()) / batch);
          }
  // The head (dense GEMV over transposed weights), float and half.
  const Shape heads[] = {{"head 32000x256 (synth-b158)", 256, 32000}, {"head 128256x2560 (2B4T)", 2560, 128256}};
  for (bool f16 : {false, true})
    for (const TargetInfo* t : measures("dense") ? tgts : std::vector<const TargetInfo*>{})
      for (const Shape& s : heads) {
        SplitMix64 rng(2);
        std::vector<float> w(static_cast<size_t>(s.K * s.N)), x(s.K);
        for (auto& v : w) v = rng.uniform() - 0.5f;
        for (auto& v : x) v = rng.uniform() - 0.5f;
        const int W = t->vector_bytes;
        auto p = schedules::dense_matmul({s.K, s.N, W, f16});
        const int64_t Np = schedules::dense_matmul_padded_rows(s.N, W);
        auto wt = schedules::transpose_for_dense_matmul(w, s.N, s.K, W, f16);
        std::vector<float>().swap(w);
        const int np = static_cast<int>(Np), k = static_cast<int>(s.K), T = schedules::dense_matmul_tile_rows(W);
        if (f16)
          p.wt.set(Halide::Buffer<uint16_t>(reinterpret_cast<uint16_t*>(wt.data()), T, k, np / T));
        else
          p.wt.set(Halide::Buffer<float>(reinterpret_cast<float*>(wt.data()), T, k, np / T));
        Halide::Buffer<float> xb(x.data(), k, 1);
        p.x.set(xb);
        Halide::Buffer<float> out(np, 1);
        bench::use_output_thread_pool(p.y);
        p.y.compile_jit(Halide::Target(t->halide));
        p.y.realize(out);
        const std::string name = std::string(s.name) + (f16 ? " f16" : " f32");
        report(first, *t, name.c_str(), time_calls([&] { p.y.realize(out); }, 5, s.N > 100000 ? 3 : 20),
               static_cast<double>(wt.size()));
      }
  // The head of llama.cpp's files (Q6_K, as llama-quantize writes it for TQ2_0 and ik_llama.cpp
  // for IQ2_BN) on Q8_K activations: 2B4T's 128256 x 2560, from memory (the codes at 6 bits,
  // 297 MB). The kernel the outputs use, and on wider targets AVX2's pairwise sums too.
  if (measures("kquant")) {
    const Shape s{"kquant head 128256x2560 (2B4T)", 2560, 128256};
    const std::string name = s.name;
    SplitMix64 rng(3);
    KQuantWeights w;
    w.rows = s.N, w.cols = s.K;
    w.q.resize(static_cast<size_t>(s.N * s.K));
    for (auto& q : w.q) q = static_cast<int8_t>(static_cast<int>(rng.next() % 64) - 32);
    w.sc.resize(w.q.size() / 16);
    for (auto& v : w.sc) v = static_cast<int8_t>(rng.next() % 256);
    w.m.assign(w.sc.size(), 0);
    w.d.assign(w.q.size() / 256, 0.001f);
    w.dmin.assign(w.d.size(), 0.0f);
    std::vector<int8_t> x(static_cast<size_t>(s.K), 5);
    std::vector<float> xd(static_cast<size_t>(s.K / 256), 0.01f);
    for (const TargetInfo* t : tgts) {
      // The kernel the outputs use; on AVX-512 also at the target's full width and with
      // AVX2's pairwise sums (what kquant_vector_bytes and the reduce were chosen from).
      const schedules::KQuantMatmulShape chosen = codegen::kquant_matmul_shape(*t, s.K, s.N);
      std::vector<std::pair<schedules::KQuantMatmulShape, std::string>> variants = {{chosen, ""}};
      if (chosen.vector_bytes != t->vector_bytes) {
        variants.push_back({chosen, " W" + std::to_string(t->vector_bytes)});
        variants.back().first.vector_bytes = t->vector_bytes;
      }
      if (chosen.reduce != schedules::MatmulReduce::PairwiseI16) {
        variants.push_back({chosen, " pairwise"});
        variants.back().first.reduce = schedules::MatmulReduce::PairwiseI16;
      }
      for (const auto& [shape, label] : variants) {
        std::vector<uint8_t> packed = schedules::pack_for_kquant_matmul(w, shape.vector_bytes);
        auto p = schedules::kquant_matmul(shape);
        schedules::set_kquant_weights(p, shape, packed);
        p.x.set(Halide::Buffer<int8_t>(x.data(), static_cast<int>(s.K), 1));
        p.xd.set(Halide::Buffer<float>(xd.data(), static_cast<int>(s.K / 256), 1));
        Halide::Buffer<float> out(static_cast<int>(schedules::dense_matmul_padded_rows(s.N, shape.vector_bytes)), 1);
        bench::use_output_thread_pool(p.y);
        p.y.compile_jit(codegen::with_reduce_features(Halide::Target(t->halide), shape.reduce));
        p.y.realize(out);
        report(first, *t, (name + label).c_str(), time_calls([&] { p.y.realize(out); }, 5, 3),
               static_cast<double>(packed.size()));
      }
    }
  }
  std::printf("\n]}\n");
}
