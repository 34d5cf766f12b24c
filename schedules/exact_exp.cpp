#include "exact_exp.h"

#include "numerics.h"

namespace bitnetc::schedules {

using namespace Halide;

Expr exact_expf(Expr x) {
  // The steps and constants of bitnetc_expf, in its order: x = (k + r) ln2 / 32,
  // e^x = 2^(k/32) (a table) * 2^(r/32) (a cubic).
  static Buffer<uint64_t> table(const_cast<uint64_t*>(reinterpret_cast<const uint64_t*>(kBitnetcExp2Table)),
                                std::vector<int>{32}, "bitnetc_exp2_table");
  auto f64 = [](double v) { return Internal::make_const(Float(64), v); };
  auto u64 = [](uint64_t v) { return Internal::make_const(UInt(64), v); };
  const double shift = 0x1.8p+52;  // adding it rounds to an integer (ties to even)
  Expr z = strict_float(f64(0x1.71547652b82fep+0 * 32) * cast<double>(x));
  Expr kd = strict_float(z + f64(shift));
  Expr ki = reinterpret<uint64_t>(kd);
  Expr r = strict_float(z - strict_float(kd - f64(shift)));
  Expr s = reinterpret<double>(table(clamp(cast<int>(ki & u64(31)), 0, 31)) + (ki << u64(47)));
  const double c0 = 0x1.c6af84b912394p-5 / 32 / 32 / 32, c1 = 0x1.ebfce50fac4f3p-3 / 32 / 32,
               c2 = 0x1.62e42ff0c52d6p-1 / 32;
  Expr p = strict_float(strict_float(f64(c0) * r) + f64(c1));
  Expr r2 = strict_float(r * r);
  Expr y = strict_float(strict_float(f64(c2) * r) + f64(1.0));
  y = strict_float(strict_float(p * r2) + y);
  Expr e = cast<float>(strict_float(y * s));
  e = select(x < -0x1.9fe368p6f, 0.0f, e);
  e = select(x > 0x1.62e42ep6f, reinterpret<float>(Internal::make_const(UInt(32), 0x7f800000u)), e);
  return select(is_nan(x), x, e);
}

}  // namespace bitnetc::schedules
