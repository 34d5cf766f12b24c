#include "attention.h"

#include <stdexcept>

#include "exact_exp.h"
#include "numerics.h"

namespace bitnetc::schedules {

using namespace Halide;

AttentionPipeline attention(const AttentionShape& s) {
  if (s.head_dim < 1 || s.n_head < 1 || s.n_head_kv < 1 || s.n_head % s.n_head_kv != 0)
    throw std::invalid_argument("attention: bad head shape");
  AttentionPipeline p{ImageParam(Float(32), 2, "q"), ImageParam(Float(32), 3, "k_cache"),
                      ImageParam(Float(32), 2, "v_cache"), Param<int>("pos0"), Func("out")};
  const int d = s.head_dim, group = s.n_head / s.n_head_kv, kv_dim = s.n_head_kv * d;
  Var i("i"), pos("pos"), h("h"), t("t");
  Expr kv_head = h / group;
  Expr last = p.pos0 + t;                         // the token's own position
  Expr positions = p.pos0 + p.q.dim(1).extent();  // every position some token of the chunk sees

  // Scores: q . k in index order, scaled as bitnetc_scale_score does.
  RDom ri(0, d, "ri");
  Func dot("dot"), score("score");
  dot(pos, h, t) = 0.0f;
  const int B = kAttentionPositionBlock;
  dot(pos, h, t) = strict_float(dot(pos, h, t) + p.q(h * d + ri, t) * p.k_cache(pos % B, kv_head * d + ri, pos / B));
  const float sqrt_d = std::sqrt(static_cast<float>(d));
  score(pos, h, t) =
      strict_float(s.score_scale == ir::ScoreScale::DivideSqrt ? dot(pos, h, t) / sqrt_d : dot(pos, h, t) * (1.0f / sqrt_d));

  // Softmax over the token's positions 0..last, in position order.
  RDom rp(0, positions, "rp");
  rp.where(rp <= last);
  Func mx("mx"), e("e"), sum("sum"), prob("prob");
  mx(h, t) = score(0, h, t);
  mx(h, t) = max(mx(h, t), score(rp, h, t));
  e(pos, h, t) = exact_expf(strict_float(score(pos, h, t) - mx(h, t)));
  if (s.softmax_sum == ir::SoftmaxSum::F32Divide) {
    sum(h, t) = 0.0f;
    sum(h, t) = strict_float(sum(h, t) + e(rp, h, t));
    prob(pos, h, t) = strict_float(e(pos, h, t) / sum(h, t));
  } else {
    sum(h, t) = Internal::make_const(Float(64), 0.0);
    sum(h, t) = strict_float(sum(h, t) + cast<double>(e(rp, h, t)));
    prob(pos, h, t) = strict_float(e(pos, h, t) * cast<float>(Internal::make_const(Float(64), 1.0) / sum(h, t)));
  }

  // The weighted sum of the values, each output from 0 in position order.
  Func acc("acc");
  acc(i, h, t) = 0.0f;
  acc(i, h, t) = strict_float(acc(i, h, t) + prob(rp, h, t) * p.v_cache(kv_head * d + i, rp));
  Var j("j");
  p.out(j, t) = acc(j % d, j / d, t);

  // Schedule: one task per (head, token). Scores take a vector of positions at a time
  // (each lane one position's chain over i); the weighted sum keeps a head's outputs
  // in vector accumulators while the positions run.
  const int lanes = s.vector_bytes / 4;
  Var ho("ho"), ii("ii"), task("task"), po("po"), pi("pi"), io("io");
  p.out.split(j, ho, ii, d).fuse(ho, t, task).parallel(task).vectorize(ii, lanes, TailStrategy::GuardWithIf);
  acc.compute_at(p.out, task).vectorize(i, lanes, TailStrategy::GuardWithIf);
  acc.update().split(i, io, ii, lanes, TailStrategy::GuardWithIf).reorder(ii, io, rp).vectorize(ii).unroll(io);
  prob.compute_at(p.out, task).vectorize(pos, lanes, TailStrategy::RoundUp);
  sum.compute_at(p.out, task);
  // e^x a vector of positions at a time (in double inside, so half as many lanes per
  // register); the last vector may run into the scores' rounded-up block.
  e.compute_at(p.out, task).vectorize(pos, lanes, TailStrategy::RoundUp);
  mx.compute_at(p.out, task);
  // Scores a block of 8 vectors of positions at a time: their sums stay in registers
  // while i runs (over a whole row of positions they went through memory on every i),
  // and are 8 independent add chains, enough to cover the add latency (4 were not:
  // bench/RESULTS.md, "Attention"). The last block
  // rounds up past the chunk's positions into the cache's padding
  // (kAttentionPositionBlock, a multiple of every target's block); those lanes are
  // never read.
  Var pv("pv"), pl("pl");
  const int block = 8 * lanes;
  static_assert(kAttentionPositionBlock % (8 * 16) == 0);
  score.compute_at(p.out, task).split(pos, po, pi, block, TailStrategy::RoundUp).vectorize(pi, lanes);
  dot.compute_at(score, po).vectorize(pos, lanes);
  dot.update().split(pos, pv, pl, lanes).reorder(pl, pv, ri).vectorize(pl).unroll(pv);

  p.q.dim(0).set_bounds(0, s.n_head * d);
  p.q.dim(1).set_stride(s.n_head * d);
  p.k_cache.dim(0).set_bounds(0, B).dim(1).set_bounds(0, kv_dim).set_stride(B);
  p.k_cache.dim(2).set_min(0).set_stride(B * kv_dim);
  p.v_cache.dim(0).set_bounds(0, kv_dim).dim(1).set_min(0).set_stride(kv_dim);
  p.out.output_buffer().dim(0).set_bounds(0, s.n_head * d);
  p.out.output_buffer().dim(1).set_stride(s.n_head * d);
  return p;
}

}  // namespace bitnetc::schedules
