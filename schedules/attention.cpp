#include "attention.h"

#include <algorithm>
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
  const int lanes = s.vector_bytes / 4;
  // A task is a kv head's group of heads and `block` tokens: each key and value it loads
  // serves every head and token of the task. Its accumulators (positions' scores, then
  // outputs, per head and token) must stay in registers: about half the vector
  // registers (32 with AVX-512, 16 elsewhere as the kernel sees them).
  const int acc_budget = s.vector_bytes >= 64 ? 16 : 8;
  const int block = std::max(1, std::min(s.tokens_per_task, acc_budget / group));
  const int per_position = group * block;  // scores (and outputs) a loaded key (value) serves
  Var i("i"), pos("pos"), h("h"), t("t");
  Expr kv_head = h / group;
  Expr tokens = p.q.dim(1).extent();
  Expr last = p.pos0 + t;            // the token's own position
  Expr positions = p.pos0 + tokens;  // every position some token of the chunk sees
  // The task's queries, copied once (their rows at fixed places for the score loop). A
  // task's last block may run past the chunk's tokens: those rows copy the last token's
  // query, attend every position and are never stored.
  Var c("c");
  Func q_task("q_task");
  q_task(c, t) = p.q(c, block > 1 ? min(t, tokens - 1) : Expr(t));

  // Scores: q . k in index order, scaled as bitnetc_scale_score does.
  RDom ri(0, d, "ri");
  Func dot("dot"), score("score");
  dot(pos, h, t) = 0.0f;
  const int B = kAttentionPositionBlock;
  dot(pos, h, t) = strict_float(dot(pos, h, t) + q_task(h * d + ri, t) * p.k_cache(pos % B, kv_head * d + ri, pos / B));
  const float sqrt_d = std::sqrt(static_cast<float>(d));
  score(pos, h, t) =
      strict_float(s.score_scale == ir::ScoreScale::DivideSqrt ? dot(pos, h, t) / sqrt_d : dot(pos, h, t) * (1.0f / sqrt_d));

  // Softmax over the token's positions 0..last, in position order. The positions past
  // a token's own (later tokens of the chunk) leave its sums as they are: a select, not
  // a where clause, so that the loops have no branch and the task's sums, which differ
  // in length, stay in registers together.
  RDom rp(0, positions, "rp");
  Expr seen = rp <= last;
  Func mx("mx"), e("e"), sum("sum"), prob("prob");
  mx(h, t) = score(0, h, t);
  mx(h, t) = select(seen, max(mx(h, t), score(rp, h, t)), mx(h, t));
  e(pos, h, t) = exact_expf(strict_float(score(pos, h, t) - mx(h, t)));
  if (s.softmax_sum == ir::SoftmaxSum::F32Divide) {
    sum(h, t) = 0.0f;
    sum(h, t) = select(seen, strict_float(sum(h, t) + e(rp, h, t)), sum(h, t));
    prob(pos, h, t) = strict_float(e(pos, h, t) / sum(h, t));
  } else {
    sum(h, t) = Internal::make_const(Float(64), 0.0);
    sum(h, t) = select(seen, strict_float(sum(h, t) + cast<double>(e(rp, h, t))), sum(h, t));
    prob(pos, h, t) = strict_float(e(pos, h, t) * cast<float>(Internal::make_const(Float(64), 1.0) / sum(h, t)));
  }

  // The weighted sum of the values, each output from 0 in position order.
  Func acc("acc");
  acc(i, h, t) = 0.0f;
  acc(i, h, t) =
      select(seen, strict_float(acc(i, h, t) + prob(rp, h, t) * p.v_cache(kv_head * d + i, rp)), acc(i, h, t));
  Var j("j");
  p.out(j, t) = acc(j % d, j / d, t);

  // Schedule: one task per (kv head, block of tokens), on the thread pool.
  Var ho("ho"), hk("hk"), hg("hg"), to("to"), ti("ti"), ii("ii"), task("task"), io("io"), ioo("ioo"), ioi("ioi");
  p.out.split(j, ho, ii, d)
      .split(ho, hk, hg, group)
      .split(t, to, ti, block, TailStrategy::GuardWithIf)
      .reorder(ii, hg, ti, hk, to)
      .fuse(hk, to, task)
      .parallel(task)
      .vectorize(ii, lanes, TailStrategy::GuardWithIf);
  // Every per-task buffer a whole block of tokens (a fixed size, so its loops unroll).
  acc.bound_extent(t, block);
  const bool unroll_rows = per_position <= acc_budget;
  auto unroll_heads_and_tokens = [&](Stage st) {
    if (unroll_rows) st.unroll(t).unroll(h);
  };
  q_task.compute_at(p.out, task);
  // The weighted sum: for each vector block of outputs, the positions in order, each
  // value vector loaded once for every head and token of the task.
  const int out_vectors = std::clamp(acc_budget / per_position, 1, (d + lanes - 1) / lanes);
  acc.compute_at(p.out, task).vectorize(i, lanes, TailStrategy::GuardWithIf);
  Stage acc_sum = acc.update();
  acc_sum.split(i, io, ii, lanes, TailStrategy::GuardWithIf)
      .split(io, ioo, ioi, out_vectors, TailStrategy::GuardWithIf)
      .reorder(ii, ioi, t, h, rp, ioo)
      .vectorize(ii)
      .unroll(ioi);
  unroll_heads_and_tokens(acc_sum);
  prob.compute_at(p.out, task).vectorize(pos, lanes, TailStrategy::RoundUp);
  // The softmax sums and maxima: each a chain in position order, the task's chains
  // interleaved (one chain alone waits on the adder's latency at every position).
  sum.compute_at(p.out, task);
  mx.compute_at(p.out, task);
  for (Stage st : {sum.update(), mx.update()}) {
    st.reorder(t, h, rp);
    unroll_heads_and_tokens(st);
  }
  // e^x a vector of positions at a time (in double inside, so half as many lanes per
  // register); the last vector may run into the scores' rounded-up block.
  e.compute_at(p.out, task).vectorize(pos, lanes, TailStrategy::RoundUp);
  // Scores a block of positions at a time for every head and token of the task: their
  // sums stay in registers while i runs (8 independent add chains or more cover the
  // add latency: bench/RESULTS.md, "Attention"), and each key vector loaded serves them
  // all. The last block rounds up past the chunk's positions into the cache's padding
  // (kAttentionPositionBlock, a multiple of every target's block); those lanes are
  // never read.
  Var po("po"), pi("pi"), pv("pv"), pl("pl");
  const int position_vectors = std::clamp(acc_budget / per_position, 1, 8);
  const int score_block = position_vectors * lanes;
  if (kAttentionPositionBlock % score_block != 0) throw std::logic_error("attention: a score block past the cache's");
  score.compute_at(p.out, task)
      .split(pos, po, pi, score_block, TailStrategy::RoundUp)
      .split(pi, pv, pl, lanes)
      .reorder(pl, pv, h, t, po)
      .vectorize(pl)
      .unroll(pv);
  dot.compute_at(score, po).split(pos, pv, pl, lanes).vectorize(pl).unroll(pv);
  if (unroll_rows) {  // every access to the block's sums at a constant place: registers
    score.unroll(h).unroll(t);
    dot.unroll(h).unroll(t);
  }
  Stage dot_sum = dot.update();
  dot_sum.split(pos, pv, pl, lanes).reorder(pl, pv, t, h, ri).vectorize(pl).unroll(pv);
  unroll_heads_and_tokens(dot_sum);

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
