#include "rope.h"

#include <stdexcept>

#include "numerics.h"

namespace bitnetc::schedules {

using namespace Halide;

RopePipeline rope(const RopeShape& s) {
  if (s.head_dim < 2 || s.head_dim % 2 != 0 || s.n % s.head_dim != 0)
    throw std::invalid_argument("rope: head_dim must be even and divide n");
  RopePipeline p{ImageParam(Float(32), 2, "x"), ImageParam(Float(32), 2, "cos"), ImageParam(Float(32), 2, "sin"),
                 Param<int>("pos0"), Func("y")};
  const int d = s.head_dim, half = d / 2, n = static_cast<int>(s.n);
  const bool neox = s.style == ir::RopeStyle::Neox;
  Var m("m"), h("h"), t("t"), i("i");
  // Pair m of head h: its two values, and the two results.
  Expr i0 = h * d + (neox ? m : 2 * m), i1 = h * d + (neox ? m + half : 2 * m + 1);
  Expr c = p.cos(m, p.pos0 + t), sn = p.sin(m, p.pos0 + t);
  Expr x0 = p.x(i0, t), x1 = p.x(i1, t);
  Func first("first"), second("second");
  first(m, h, t) = strict_float(x0 * c - x1 * sn);
  second(m, h, t) = strict_float(x0 * sn + x1 * c);
  // Element i of the output: which pair and which half of it.
  Expr j = i % d, head = i / d;
  Expr pair = neox ? j % half : j / 2;
  Expr is_first = neox ? j < half : j % 2 == 0;
  p.y(i, t) = select(is_first, first(pair, head, t), second(pair, head, t));

  // A token at a time: its pairs in vectors, then the output interleaved from them.
  const int lanes = s.vector_bytes / 4;
  first.compute_at(p.y, t).vectorize(m, lanes, TailStrategy::GuardWithIf);
  second.compute_at(p.y, t).vectorize(m, lanes, TailStrategy::GuardWithIf);
  p.y.vectorize(i, lanes, TailStrategy::GuardWithIf);

  p.x.dim(0).set_bounds(0, n);
  p.x.dim(1).set_stride(n);
  for (ImageParam table : {p.cos, p.sin}) table.dim(0).set_bounds(0, half).dim(1).set_min(0).set_stride(half);
  p.y.output_buffer().dim(0).set_bounds(0, n);
  p.y.output_buffer().dim(1).set_stride(n);
  return p;
}

}  // namespace bitnetc::schedules
