// The steps between the matmuls at BitNet b1.58 2B4T's shapes: the generated norm +
// quantize and attention kernels (JIT-compiled for each native x86 target) against the
// reference C++ the runtime ran before them (ir/interpreter.h, one thread; the kernels
// use the outputs' pool: run with HL_NUM_THREADS=1 to compare like with like). Prints one
// JSON object: microseconds per call (median of repetitions).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "attention.h"
#include "bench_common.h"
#include "interpreter.h"
#include "norm_quant.h"

using namespace bitnetc;

namespace {

void report(bool& first, const std::string& target, const std::string& step, double kernel_us, double reference_us) {
  std::printf("%s\n  {\"target\": \"%s\", \"step\": \"%s\", \"kernel_us\": %.2f, \"reference_us\": %.2f}",
              first ? "" : ",", target.c_str(), step.c_str(), kernel_us, reference_us);
  first = false;
}

double median(const std::vector<double>& us) { return us[us.size() / 2]; }

}  // namespace

int main() {
  const char* threads = std::getenv("HL_NUM_THREADS");
  std::printf("{\"benchmark\": \"steps\", \"threads\": \"%s\", \"results\": [", threads ? threads : "all");
  bool first = true;
  SplitMix64 rng(3);
  for (const TargetInfo* t : bench::native_x86_targets()) {
    const Halide::Target target(t->halide);
    // rms_norm (ggml's double sum) + bitnet.cpp's per-token quantizer, as 2B4T's GGUF uses.
    for (int64_t n : {2560, 6912}) {
      std::vector<float> x(n), w(n), y(n);
      for (auto& v : x) v = rng.normal();
      for (auto& v : w) v = 0.5f + rng.uniform();
      std::vector<int8_t> q(n);
      float d = 0;
      int32_t sum = 0;
      auto p =
          schedules::norm_quant({n, n, n, ir::NormKind::RmsF64Sum, true, 1e-5f, ir::ActQuant::PerTokenBitnetCpp, t->vector_bytes});
      p.x.set(Halide::Buffer<float>(x.data(), static_cast<int>(n), 1));
      p.w.set(Halide::Buffer<float>(w.data(), static_cast<int>(n)));
      Halide::Buffer<int8_t> qb(q.data(), static_cast<int>(n), 1);
      Halide::Buffer<float> db(&d, 1, 1);
      Halide::Buffer<int32_t> sb(&sum, 1, 1);
      Halide::Pipeline pipeline = p.pipeline();
      bench::use_output_thread_pool(pipeline);
      pipeline.compile_jit(target);
      const double kernel = median(bench::time_calls([&] { pipeline.realize({qb, db, sb}); }, 7, 200));
      const double reference = median(bench::time_calls(
          [&] {
            ir::rms_norm(ir::NormKind::RmsF64Sum, x.data(), n, w.data(), 1e-5f, y.data());
            ir::quantize_activations(ir::ActQuant::PerTokenBitnetCpp, y.data(), n, q.data(), &d);
            sum = 0;
            for (int8_t c : q) sum += c;
          },
          7, 200));
      report(first, t->name, "norm_quant n=" + std::to_string(n), kernel, reference);
    }
    // Attention, 20 heads / 5 KV heads of 128 (2B4T's): one token at a position, or a
    // prefill chunk of 32 tokens ending there (a block-of-tokens kernel), at depth 4096
    // too; each kernel of rt::attention_kernel's pair where it runs. The interpreter's
    // time is the reference, for the shorter runs.
    const int d = 128, n_head = 20, n_head_kv = 5, kv_dim = n_head_kv * d, n_ctx = 4096;
    std::vector<float> kc(static_cast<size_t>(n_ctx) * kv_dim), vc(kc.size()), kt(kc.size());
    for (auto& v : kc) v = rng.normal();
    for (auto& v : vc) v = rng.normal();
    for (int r = 0; r < n_ctx; ++r)
      for (int c = 0; c < kv_dim; ++c) kt[rt::key_cache_index(r, c, kv_dim)] = kc[static_cast<size_t>(r) * kv_dim + c];
    ir::Op op(ir::OpKind::Attention);
    op.head_dim = d;
    op.n_head = n_head;
    op.n_head_kv = n_head_kv;
    for (auto [last_pos, n_tokens] : {std::pair{127, 1}, {4095, 1}, {511, 32}, {4095, 32}}) {
      const int last = last_pos, tokens = n_tokens;
      const int tokens_per_task = tokens >= rt::kAttentionBlockTokens ? rt::kAttentionBlockTokens : 1;
      auto p = schedules::attention(
          {d, n_head, n_head_kv, op.score_scale, op.softmax_sum, t->vector_bytes, tokens_per_task});
      Halide::Pipeline pipeline(p.out);
      bench::use_output_thread_pool(pipeline);
      pipeline.compile_jit(target);
      p.k_cache.set(
          Halide::Buffer<float>(kt.data(), rt::kAttentionPositionBlock, kv_dim, n_ctx / rt::kAttentionPositionBlock));
      p.v_cache.set(Halide::Buffer<float>(vc.data(), kv_dim, n_ctx));
      const int pos0 = last + 1 - tokens;
      std::vector<float> q(static_cast<size_t>(n_head) * d * tokens), out(q.size()), scores(n_ctx);
      for (auto& v : q) v = rng.normal();
      p.q.set(Halide::Buffer<float>(q.data(), n_head * d, tokens));
      p.pos0.set(pos0);
      Halide::Buffer<float> ob(out.data(), n_head * d, tokens);
      const int iters = std::max(1, 200000 / (tokens * (last + 1)));
      const double kernel = median(bench::time_calls([&] { pipeline.realize(ob); }, 7, iters));
      const double reference = median(bench::time_calls(
          [&] {
            for (int b = 0; b < tokens; ++b)
              for (int h = 0; h < n_head; ++h)
                ir::attend_head(op, h, &q[static_cast<size_t>(b) * n_head * d], kc.data(), vc.data(), kv_dim, pos0 + b,
                                scores.data(), &out[static_cast<size_t>(b) * n_head * d]);
          },
          3, std::max(1, iters / 4)));
      report(first, t->name,
             "attention tokens=" + std::to_string(tokens) + " last_pos=" + std::to_string(last) +
                 " tokens_per_task=" + std::to_string(tokens_per_task),
             kernel, reference);
    }
  }
  std::printf("\n]}\n");
}
