// The reference arithmetic of the normalizations, the activation quantizers, RoPE,
// attention and the sampler's repetition penalty: one home for their numerics, written in the part of C++ that CUDA
// device code shares. The interpreter calls these functions; codegen embeds this file's text in the CUDA kernels it
// generates (codegen/cuda_kernels.cpp), so the GPU rounds as the interpreter does. Plain C types and explicit
// comparisons (no std::max/clamp) on purpose.
#pragma once

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define BITNETC_HD __host__ __device__
#else
#include <math.h>
#include <string.h>
#define BITNETC_HD
#endif

// Kinds: the values of ir::NormKind, ir::ActQuant, ir::RopeStyle, ir::Activation,
// ir::ScoreScale and ir::SoftmaxSum (ir.h defines them from these).
enum BitnetcNormKind { kBitnetcRmsF32 = 0, kBitnetcRmsF64Sum = 1, kBitnetcRmsLlama2c = 2, kBitnetcBitNorm = 3 };
enum BitnetcActQuant {
  kBitnetcPerTokenLlama2c = 0,
  kBitnetcPerTokenHF = 1,
  kBitnetcPerTokenBitnetCpp = 2,
  kBitnetcPerBlockQ8K = 3,
  kBitnetcPerRowQ8K64 = 4,
  kBitnetcPerBlockQ8_0 = 5
};
// llama.cpp's Q8_0: a factor per 32 codes; ggml's dot of two such rows sums in 8 float lanes.
enum { kBitnetcQ8_0Block = 32, kBitnetcQ8_0Lanes = 8 };
enum BitnetcRopeStyle { kBitnetcRopeInterleaved = 0, kBitnetcRopeNeox = 1 };
enum BitnetcActivation { kBitnetcSiluDiv = 0, kBitnetcSiluLlama2c = 1, kBitnetcRelu2 = 2 };
enum BitnetcScoreScale { kBitnetcDivideSqrt = 0, kBitnetcMultiplyInvSqrt = 1 };
enum BitnetcSoftmaxSum { kBitnetcF32Divide = 0, kBitnetcF64MulInverse = 1 };

BITNETC_HD inline float bitnetc_float_from_bits(unsigned bits) {
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
  return __int_as_float((int)bits);
#else
  float f;
  memcpy(&f, &bits, 4);
  return f;
#endif
}

BITNETC_HD inline unsigned bitnetc_bits_of_float(float f) {
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
  return (unsigned)__float_as_int(f);
#else
  unsigned bits;
  memcpy(&bits, &f, 4);
  return bits;
#endif
}

// IEEE half to float, exactly (subnormals, infinities and NaNs included).
BITNETC_HD inline float bitnetc_half_to_float(unsigned short h) {
  const unsigned sign = (unsigned)(h & 0x8000) << 16;
  const unsigned exp = (h >> 10) & 0x1F;
  unsigned mant = h & 0x3FF;
  unsigned bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalize
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400) == 0);
      bits = sign | (unsigned)(127 - 15 - e) << 23 | (mant & 0x3FF) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | mant << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  return bitnetc_float_from_bits(bits);
}

// float to IEEE half, rounded to nearest even (subnormals, overflow to infinity, NaN),
// as x86's F16C and ggml's GGML_FP32_TO_FP16 round: the FP16 library's float trick
// (scaling by 2^112 and 2^-110 rounds the mantissa in the float unit).
BITNETC_HD inline unsigned short bitnetc_float_to_half(float f) {
  const float base0 = (fabsf(f) * 0x1.0p+112f) * 0x1.0p-110f;
  const unsigned w = bitnetc_bits_of_float(f);
  const unsigned shl1_w = w + w, sign = w & 0x80000000u;
  unsigned bias = shl1_w & 0xFF000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  const unsigned bits = bitnetc_bits_of_float(bitnetc_float_from_bits((bias >> 1) + 0x07800000u) + base0);
  const unsigned nonsign = ((bits >> 13) & 0x00007C00u) + (bits & 0x00000FFFu);
  return (unsigned short)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

// round(v) (half away from zero), inline: the quantizers round every activation, and
// a libm call per element was a few percent of decode. Exact for every float: below
// 2^23 the truncation and the fraction v - t are exact; above it v is an integer.
BITNETC_HD inline float bitnetc_round(float v) {
  if (!(fabsf(v) < 8388608.0f)) return v;  // integers, infinities, NaN
  const float t = (float)(int)v;
  const float frac = v - t;
  const float r = frac >= 0.5f ? t + 1.0f : (frac <= -0.5f ? t - 1.0f : t);
  return copysignf(r, v);  // -0.3 rounds to -0.0, as round does
}

// nearbyint(v) in the default rounding mode (half to even), inline, for every float:
// adding and removing 2^23 rounds |v| < 2^23 to an integer (the sum's step is 1).
BITNETC_HD inline float bitnetc_round_even(float v) {
  const float a = fabsf(v);
  if (!(a < 8388608.0f)) return v;
  return copysignf((a + 8388608.0f) - 8388608.0f, v);
}

// ggml's nearest_int: round half to even for |x| < 2^22 via the 1.5*2^23 trick.
BITNETC_HD inline int bitnetc_ggml_nearest_int(float f) {
  const float v = f + 12582912.f;
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
  const int i = __float_as_int(v);
#else
  int i;
  memcpy(&i, &v, 4);
#endif
  return (i & 0x007fffff) - 0x00400000;
}

// rms_norm in three parts, so that a GPU can sum the squares in parallel: the sum of
// squares (double for RmsF64Sum, float for the others, added in index order here), the
// scale that sum gives, and each element's result.
BITNETC_HD inline bool bitnetc_rms_sums_in_double(int kind) { return kind == kBitnetcRmsF64Sum; }

BITNETC_HD inline float bitnetc_rms_scale(int kind, double sum_of_squares, long long n, float eps) {
  if (kind == kBitnetcRmsF32) {  // transformers: mean(x^2) in float32, x * rsqrt(mean + eps), then * w
    return 1.0f / sqrtf((float)sum_of_squares / (float)n + eps);
  } else if (kind == kBitnetcRmsF64Sum) {  // ggml: sum of squares in double, (x*scale)*w
    const float mean = (float)(sum_of_squares / (double)n);
    return 1.0f / sqrtf(mean + eps);
  } else if (kind == kBitnetcRmsLlama2c) {  // runbit.c final norm
    float ss = (float)sum_of_squares;
    ss /= (float)n;
    ss += eps;
    return 1.0f / sqrtf(ss);
  }
  // BitNorm, runbit.c inside BitLinear: x / (n * rms(x)), no eps, no weight
  float ss = (float)sum_of_squares;
  ss /= (float)n;
  float r = 1.0f / sqrtf(ss);
  r /= (float)n;
  return r;
}

// Element i of the result (w: the norm weight or null).
BITNETC_HD inline float bitnetc_rms_apply(int kind, float x, const float* w, long long i, float r) {
  if (kind == kBitnetcRmsF64Sum) return w ? (x * r) * w[i] : x * r;
  if (kind == kBitnetcRmsLlama2c) return w ? w[i] * (r * x) : r * x;
  if (kind == kBitnetcBitNorm) return x * r;
  return w ? w[i] * (x * r) : x * r;  // RmsF32
}

BITNETC_HD inline void bitnetc_rms_norm(int kind, const float* x, long long n, const float* w, float eps, float* y) {
  double ss;
  if (bitnetc_rms_sums_in_double(kind)) {
    double s = 0;
    for (long long i = 0; i < n; ++i) s += (double)(x[i] * x[i]);
    ss = s;
  } else {
    float s = 0;
    for (long long i = 0; i < n; ++i) s += x[i] * x[i];
    ss = s;
  }
  const float r = bitnetc_rms_scale(kind, ss, n, eps);
  for (long long i = 0; i < n; ++i) y[i] = bitnetc_rms_apply(kind, x[i], w, i, r);
}

// Element x's code under the inverse scale id: half to even, saturated to int8 as x86's
// packs do (Q8_K64, Q8_0; a NaN's is 0, as a cast gives on x86 and CUDA alike).
BITNETC_HD inline signed char bitnetc_rne_code(float id, float x) {
  const float v = bitnetc_round_even(id * x);
  return (signed char)(v < -128.0f ? -128.0f : (127.0f < v ? 127.0f : v));
}

// Activation quantization in two parts, so that a GPU can find the largest magnitude in
// parallel: the scale from the largest |x| of a token (or Q8_K, Q8_0 block) and the signed
// value that has it first, then each element's code.
struct BitnetcQuantScale {
  float mul;  // what x is multiplied by before rounding
  float d;    // the dequantization factor
  int zero;   // every code is 0 (an all-zero input)
};

BITNETC_HD inline BitnetcQuantScale bitnetc_quant_scale(int kind, float amax, float first_max) {
  BitnetcQuantScale s = {0.0f, 0.0f, 0};
  if (kind == kBitnetcPerTokenLlama2c) {
    const float a = (float)((double)amax / 127.0);
    if (a == 0) {  // all zeros: runbit.c would divide by zero; the only sane result is 0
      s.zero = 1;
      return s;
    }
    s.mul = (float)(1.0 / (double)a);
    s.d = a;
  } else if (kind == kBitnetcPerTokenHF) {
    const float m = amax < 1e-5f ? 1e-5f : amax;
    s.mul = (1.0f / m) * 127.0f;  // eager PyTorch: reciprocal, then * 127
    s.d = 1.0f / s.mul;
  } else if (kind == kBitnetcPerTokenBitnetCpp) {
    const double m = 1e-5 < (double)amax ? (double)amax : 1e-5;
    s.mul = (float)(127.0 / m);
    s.d = 1.0f / s.mul;
  } else if (kind == kBitnetcPerBlockQ8_0) {  // quantize_row_q8_0's AVX2 path
    s.zero = amax == 0;
    s.mul = s.zero ? 0.0f : 127.f / amax;
    s.d = bitnetc_half_to_float(bitnetc_float_to_half(amax / 127.f));
  } else {  // PerBlockQ8K
    if (amax == 0) {
      s.zero = 1;
      return s;
    }
    s.mul = -127.f / first_max;
    s.d = 1 / s.mul;
  }
  return s;
}

BITNETC_HD inline signed char bitnetc_quant_code(int kind, float x, BitnetcQuantScale s) {
  if (s.zero) return 0;
  // (round of the float product widened to double is round of the float itself.)
  if (kind == kBitnetcPerTokenLlama2c) return (signed char)bitnetc_round(x * s.mul);
  if (kind == kBitnetcPerTokenHF) {
    const float v = bitnetc_round_even(x * s.mul);
    return (signed char)(v < -128.0f ? -128.0f : (127.0f < v ? 127.0f : v));
  }
  if (kind == kBitnetcPerTokenBitnetCpp) {
    const float v = bitnetc_round(x * s.mul);
    return (signed char)(v < -128.0f ? -128.0f : (127.0f < v ? 127.0f : v));
  }
  if (kind == kBitnetcPerBlockQ8_0) return bitnetc_rne_code(s.mul, x);
  const int v = bitnetc_ggml_nearest_int(s.mul * x);  // PerBlockQ8K
  return (signed char)(v < 127 ? v : 127);
}

// ik_llama.cpp's Q8_K64 (the vec_dot type of its IQ1_BN / IQ2_BN; quantize_row_q8_K64's
// x86 path): a row in four interleaved groups, element k in group (k % 16) / 4, each with
// d = amax / 127 and q = clamp(rne(x * (1 / d)), -128, 127) (0 when d is 0). NaNs count
// as zero, as in the other quantizers.
enum { kBitnetcQ8K64Groups = 4 };
BITNETC_HD inline int bitnetc_q8k64_group(long long k) { return (int)((k % 16) / 4); }

BITNETC_HD inline void bitnetc_quantize_q8k64(const float* x, long long n, signed char* q, float* d) {
  float amax[kBitnetcQ8K64Groups] = {0, 0, 0, 0};
  for (long long k = 0; k < n; ++k) {
    const float ax = fabsf(x[k]);
    const int g = bitnetc_q8k64_group(k);
    if (ax > amax[g]) amax[g] = ax;
  }
  float id[kBitnetcQ8K64Groups];
  for (int g = 0; g < kBitnetcQ8K64Groups; ++g) {
    d[g] = amax[g] / 127;
    id[g] = d[g] > 0 ? 1 / d[g] : 0.0f;
  }
  for (long long k = 0; k < n; ++k) q[k] = bitnetc_rne_code(id[bitnetc_q8k64_group(k)], x[k]);
}

// ik's dot of a ternary row with Q8_K64 activations (mul_mat_iq{1,2}bn_q8_K64 on x86):
// per group g the exact sum S of code * q (code = weight + 1) and the exact sum Q of q,
// f_g = fma(d_g, S, -(d_g * Q)), then w_scale * ((f_0 + f_2) + (f_1 + f_3)) (hsum_float_4).
// The fma in double is exact (rows under 2^19 elements): d_g * S and the rounded d_g * Q
// are both whole multiples of d_g's last place, and their difference is under 2^52 of them.
BITNETC_HD inline float bitnetc_q8k64_group_term(float d, int code_sum, int q_sum) {
  const float minus = d * (float)q_sum;
  return (float)((double)d * (double)(float)code_sum - (double)minus);
}
BITNETC_HD inline float bitnetc_q8k64_combine(const float* f, float w_scale) {
  return w_scale * ((f[0] + f[2]) + (f[1] + f[3]));
}

// ggml's dot of a Q8_0 row with Q8_0 activations (ggml_vec_dot_q8_0_q8_0 on x86, and
// llamafile's tinyBLAS_Q0_AVX for prompts): eight float lanes, lane j of block b taking the
// exact integer sum S of elements 4j..4j+3, acc_j = fma(d_w * d_x, S, acc_j) block after
// block (d_w * d_x is exact: two halves), then hsum_float_8's order.
BITNETC_HD inline float bitnetc_q8_0_lane_step(float dd, int lane_sum, float acc) {
  return fmaf(dd, (float)lane_sum, acc);
}
BITNETC_HD inline float bitnetc_q8_0_hsum(const float* a) {
  return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

// How many dequantization factors n activations of `kind` have.
BITNETC_HD inline long long bitnetc_quant_factor_count(int kind, long long n) {
  return kind == kBitnetcPerBlockQ8K     ? n / 256
         : kind == kBitnetcPerBlockQ8_0 ? n / kBitnetcQ8_0Block
         : kind == kBitnetcPerRowQ8K64  ? kBitnetcQ8K64Groups
                                        : 1;
}

// Quantizes n activations to int8 codes q with dequantization factors d (one per token,
// one per 256-block for Q8_K, one per 32-block for Q8_0, four for Q8_K64:
// bitnetc_quant_factor_count).
BITNETC_HD inline void bitnetc_quantize(int kind, const float* x, long long n, signed char* q, float* d) {
  if (kind == kBitnetcPerRowQ8K64) {
    bitnetc_quantize_q8k64(x, n, q, d);
    return;
  }
  const long long block = kind == kBitnetcPerBlockQ8K    ? 256
                          : kind == kBitnetcPerBlockQ8_0 ? (long long)kBitnetcQ8_0Block
                                                         : n;
  for (long long b = 0; b < n / block; ++b) {
    const float* xb = x + block * b;
    float amax = 0, first_max = 0;
    for (long long j = 0; j < block; ++j) {
      const float ax = fabsf(xb[j]);
      if (ax > amax) {
        amax = ax;
        first_max = xb[j];
      }
    }
    const BitnetcQuantScale s = bitnetc_quant_scale(kind, amax, first_max);
    for (long long j = 0; j < block; ++j) q[block * b + j] = bitnetc_quant_code(kind, xb[j], s);
    d[b] = s.d;
  }
}


// e^x in float: the algorithm and constants of Arm's optimized-routines expf (MIT
// licensed; glibc's expf since 2.28), computed in double with its three fused
// multiply-adds written out, so it gives the same bits everywhere: glibc's own expf on
// x86-64 with FMA (checked on every 7th float: no difference), every runtime, and the
// CUDA kernels (whose expf differs from libm's in the last bit now and then, which on
// small random models moved logits visibly). x = (k + r) ln2 / 32, exp(x) = 2^(k/32)
// (a table) * 2^(r/32) (a cubic).
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
__device__ static const unsigned long long kBitnetcExp2Table[32] = {
#else
static const unsigned long long kBitnetcExp2Table[32] = {
#endif
    0x3ff0000000000000ull, 0x3fefd9b0d3158574ull, 0x3fefb5586cf9890full, 0x3fef9301d0125b51ull,
    0x3fef72b83c7d517bull, 0x3fef54873168b9aaull, 0x3fef387a6e756238ull, 0x3fef1e9df51fdee1ull,
    0x3fef06fe0a31b715ull, 0x3feef1a7373aa9cbull, 0x3feedea64c123422ull, 0x3feece086061892dull,
    0x3feebfdad5362a27ull, 0x3feeb42b569d4f82ull, 0x3feeab07dd485429ull, 0x3feea47eb03a5585ull,
    0x3feea09e667f3bcdull, 0x3fee9f75e8ec5f74ull, 0x3feea11473eb0187ull, 0x3feea589994cce13ull,
    0x3feeace5422aa0dbull, 0x3feeb737b0cdc5e5ull, 0x3feec49182a3f090ull, 0x3feed503b23e255dull,
    0x3feee89f995ad3adull, 0x3feeff76f2fb5e47ull, 0x3fef199bdd85529cull, 0x3fef3720dcef9069ull,
    0x3fef5818dcfba487ull, 0x3fef7c97337b9b5full, 0x3fefa4afa2a490daull, 0x3fefd0765b6e4540ull};

BITNETC_HD inline double bitnetc_double_from_bits(unsigned long long bits) {
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
  return __longlong_as_double((long long)bits);
#else
  double d;
  memcpy(&d, &bits, 8);
  return d;
#endif
}

BITNETC_HD inline unsigned long long bitnetc_bits_of_double(double d) {
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
  return (unsigned long long)__double_as_longlong(d);
#else
  unsigned long long bits;
  memcpy(&bits, &d, 8);
  return bits;
#endif
}

BITNETC_HD inline float bitnetc_expf(float x) {
  const double shift = 0x1.8p+52;  // adding it rounds to an integer (ties to even)
  const double xd = (double)x;
  if (x != x) return x;
  if (x > 0x1.62e42ep6f) return bitnetc_float_from_bits(0x7f800000u);  // overflow (and +inf)
  if (x < -0x1.9fe368p6f) return 0.0f;                                  // underflow (and -inf)
  const double z = 0x1.71547652b82fep+0 * 32 * xd;
  double kd = z + shift;
  const unsigned long long ki = bitnetc_bits_of_double(kd);
  kd -= shift;
  const double r = z - kd;
  const double s = bitnetc_double_from_bits(kBitnetcExp2Table[ki % 32] + (ki << 47));
  const double c0 = 0x1.c6af84b912394p-5 / 32 / 32 / 32, c1 = 0x1.ebfce50fac4f3p-3 / 32 / 32,
               c2 = 0x1.62e42ff0c52d6p-1 / 32;
  const double p = fma(c0, r, c1);
  const double r2 = r * r;
  double y = fma(c2, r, 1.0);
  y = fma(p, r2, y);
  return (float)(y * s);
}


// sin and cos in float (RoPE's tables): Arm's optimized-routines sinf and cosf (MIT
// licensed; glibc's since 2.28), computed in double with the multiply-adds that glibc's
// x86-64 FMA build fuses written as fma, so they give glibc's bits on x86-64 and the
// same bits on every runtime: musl's and wasi-libc's sinf (a WebAssembly output's) are
// another algorithm. |x| < pi/4 takes the polynomials directly, |x| < 120 one
// multiply-subtract of pi/2, larger |x| an integer reduction with 192 bits of 4/pi.
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
__device__ static const double kBitnetcSinCosPoly[2][9] = {
#else
static const double kBitnetcSinCosPoly[2][9] = {
#endif
    // c0 .. c4 (the cosine), s1 .. s3 (the sine); the 2nd row computes -cos.
    {0x1p0, -0x1.ffffffd0c621cp-2, 0x1.55553e1068f19p-5, -0x1.6c087e89a359dp-10, 0x1.99343027bf8c3p-16,
     -0x1.555545995a603p-3, 0x1.1107605230bc4p-7, -0x1.994eb3774cf24p-13, 0},
    {-0x1p0, 0x1.ffffffd0c621cp-2, -0x1.55553e1068f19p-5, 0x1.6c087e89a359dp-10, -0x1.99343027bf8c3p-16,
     -0x1.555545995a603p-3, 0x1.1107605230bc4p-7, -0x1.994eb3774cf24p-13, 0}};
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
__device__ static const unsigned kBitnetcInvPio4[24] = {
#else
static const unsigned kBitnetcInvPio4[24] = {
#endif
    0xa2,       0xa2f9,     0xa2f983,   0xa2f9836e, 0xf9836e4e, 0x836e4e44, 0x6e4e4415, 0x4e441529,
    0x441529fc, 0x1529fc27, 0x29fc2757, 0xfc2757d1, 0x2757d1f5, 0x57d1f534, 0xd1f534dd, 0xf534ddc0,
    0x34ddc0db, 0xddc0db62, 0xc0db6295, 0xdb629599, 0x6295993c, 0x95993c43, 0x993c4390, 0x3c439041};

// Quadrant n (odd: the cosine polynomial) of x (x2 = x * x) with polynomial row `row`.
BITNETC_HD inline float bitnetc_sincos_poly(double x, double x2, int row, int n) {
  const double* p = kBitnetcSinCosPoly[row];
  if ((n & 1) == 0) {
    const double x3 = x * x2;
    const double s1 = fma(x2, p[7], p[6]);
    const double x7 = x3 * x2;
    const double s = fma(x3, p[5], x);
    return (float)fma(x7, s1, s);
  }
  const double x4 = x2 * x2;
  const double c2 = fma(x2, p[4], p[3]);
  const double c1 = fma(x2, p[1], p[0]);
  const double x6 = x4 * x2;
  const double c = fma(x4, p[2], c1);
  return (float)fma(x6, c2, c);
}

// sin (want_cos = 0) or cos (1) of y.
BITNETC_HD inline float bitnetc_sinf_cosf(float y, int want_cos) {
  const unsigned top = (bitnetc_bits_of_float(y) >> 20) & 0x7ff;  // abstop12
  double x = (double)y;
  if (top < 0x3f4) {  // |y| < pi/4
    if (top < 0x398) return want_cos ? 1.0f : y;  // |y| < 2^-12
    return bitnetc_sincos_poly(x, x * x, 0, want_cos);
  }
  if (top >= 0x7f8) return y - y;  // inf, NaN: NaN
  int n, sign = 0;
  if (top < 0x42f) {  // |y| < 120
    const double r = x * 0x1.45F306DC9C883p+23;  // 2/pi, the quadrant in bits 24..31
    n = ((int)r + 0x800000) >> 24;
    x = fma(-(double)n, 0x1.921FB54442D18p0, x);
  } else {
    unsigned xi = bitnetc_bits_of_float(y);
    sign = (int)(xi >> 31);
    const unsigned* arr = &kBitnetcInvPio4[(xi >> 26) & 15];
    const int shift = (xi >> 23) & 7;
    xi = ((xi & 0xffffff) | 0x800000) << shift;
    unsigned long long res0 = (unsigned long long)(unsigned)(xi * arr[0]);
    const unsigned long long res1 = (unsigned long long)xi * arr[4];
    const unsigned long long res2 = (unsigned long long)xi * arr[8];
    res0 = (res2 >> 32) | (res0 << 32);
    res0 += res1;
    const unsigned long long q = (res0 + (1ull << 61)) >> 62;
    res0 -= q << 62;
    x = (double)(long long)res0 * 0x1.921FB54442D18p-62;
    n = (int)q;
  }
  const int quadrant = n + sign;
  const double s = ((quadrant + 1) & 2) ? -1.0 : 1.0;  // the sine's sign in quadrants 0..3: + - - +
  const double xs = x * s;
  return bitnetc_sincos_poly(xs, x * x, (quadrant & 2) ? 1 : 0, want_cos ? n ^ 1 : n);
}

BITNETC_HD inline float bitnetc_sinf(float y) { return bitnetc_sinf_cosf(y, 0); }
BITNETC_HD inline float bitnetc_cosf(float y) { return bitnetc_sinf_cosf(y, 1); }

// x^y in float for x > 0 normal and finite (RoPE's frequencies: theta^e): Arm's
// optimized-routines powf (glibc's since 2.28) on that path, its multiply-adds as
// fma like glibc's x86-64 FMA build: log2(x) from a 16-entry table and a quintic,
// then 2^(y log2 x) from kBitnetcExp2Table and a cubic. Other x: NaN.
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
__device__ static const double kBitnetcPowfLog2[16][2] = {
#else
static const double kBitnetcPowfLog2[16][2] = {
#endif
    {0x1.661ec79f8f3bep+0, -0x1.efec65b963019p-2}, {0x1.571ed4aaf883dp+0, -0x1.b0b6832d4fca4p-2},
    {0x1.49539f0f010bp+0, -0x1.7418b0a1fb77bp-2},  {0x1.3c995b0b80385p+0, -0x1.39de91a6dcf7bp-2},
    {0x1.30d190c8864a5p+0, -0x1.01d9bf3f2b631p-2}, {0x1.25e227b0b8eap+0, -0x1.97c1d1b3b7afp-3},
    {0x1.1bb4a4a1a343fp+0, -0x1.2f9e393af3c9fp-3}, {0x1.12358f08ae5bap+0, -0x1.960cbbf788d5cp-4},
    {0x1.0953f419900a7p+0, -0x1.a6f9db6475fcep-5}, {0x1p+0, 0x0p+0},
    {0x1.e608cfd9a47acp-1, 0x1.338ca9f24f53dp-4},  {0x1.ca4b31f026aap-1, 0x1.476a9543891bap-3},
    {0x1.b2036576afce6p-1, 0x1.e840b4ac4e4d2p-3},  {0x1.9c2d163a1aa2dp-1, 0x1.40645f0c6651cp-2},
    {0x1.886e6037841edp-1, 0x1.88e9c2c1b9ff8p-2},  {0x1.767dcf5534862p-1, 0x1.ce0a44eb17bccp-2}};

BITNETC_HD inline float bitnetc_powf(float x, float y) {
  const unsigned ix = bitnetc_bits_of_float(x);
  if (ix - 0x00800000u >= 0x7f800000u - 0x00800000u || !(y == y) || y - y != 0.0f)
    return bitnetc_float_from_bits(0x7fc00000u);  // outside the path this computes
  // log2(x): x = 2^k z with z in [0x3f330000, 2 * 0x3f330000); c near z (a table entry).
  const unsigned tmp = ix - 0x3f330000u;
  const int i = (int)((tmp >> 19) % 16);
  const unsigned top = tmp & 0xff800000u;
  const int k = (int)top >> 23;
  const double invc = kBitnetcPowfLog2[i][0], logc = kBitnetcPowfLog2[i][1];
  const double z = (double)bitnetc_float_from_bits(ix - top);
  const double r = fma(z, invc, -1.0);
  const double y0 = logc + (double)k;
  const double r2 = r * r;
  double l = fma(0x1.27616c9496e0bp-2, r, -0x1.71969a075c67ap-2);
  const double pp = fma(0x1.ec70a6ca7baddp-2, r, -0x1.7154748bef6c8p-1);
  const double r4 = r2 * r2;
  double q = fma(0x1.71547652ab82bp0, r, y0);
  q = fma(pp, r2, q);
  l = fma(l, r4, q);
  const double ylogx = (double)y * l;
  if (((bitnetc_bits_of_double(ylogx) >> 47) & 0xffff) >= (bitnetc_bits_of_double(126.0) >> 47)) {
    if (ylogx <= -150.0) return 0.0f;
    if (ylogx > 0x1.fffffffd1d571p+6) return bitnetc_float_from_bits(0x7f800000u);
  }
  // 2^ylogx: ylogx = k/32 + r2' with r2' in [-1/64, 1/64].
  const double shift = 0x1.8p+52 / 32;
  double kd = ylogx + shift;
  const unsigned long long ki = bitnetc_bits_of_double(kd);
  kd -= shift;
  const double rr = ylogx - kd;
  const double s = bitnetc_double_from_bits(kBitnetcExp2Table[ki % 32] + (ki << 47));
  const double zz = fma(0x1.c6af84b912394p-5, rr, 0x1.ebfce50fac4f3p-3);
  const double rr2 = rr * rr;
  double e = fma(0x1.62e42ff0c52d6p-1, rr, 1.0);
  e = fma(zz, rr2, e);
  return (float)(e * s);
}

// Rotates one head of head_dim values by the angles of its head_dim/2 pairs.
BITNETC_HD inline void bitnetc_rope_rotate_head(int style, int head_dim, const float* cos, const float* sin, float* v) {
  const int half = head_dim / 2;
  for (int m = 0; m < half; ++m) {
    const int i0 = style == kBitnetcRopeNeox ? m : 2 * m;
    const int i1 = style == kBitnetcRopeNeox ? m + half : 2 * m + 1;
    const float x0 = v[i0], x1 = v[i1];
    v[i0] = x0 * cos[m] - x1 * sin[m];
    v[i1] = x0 * sin[m] + x1 * cos[m];
  }
}

BITNETC_HD inline float bitnetc_activate(int kind, float g) {
  if (kind == kBitnetcSiluDiv) return g / (1.0f + bitnetc_expf(-g));
  if (kind == kBitnetcSiluLlama2c) return g * (1.0f / (1.0f + bitnetc_expf(-g)));
  const float r = g > 0.0f ? g : 0.0f;  // Relu2
  return r * r;
}

// A head's dot product q . k scaled by 1/sqrt(d) as the op says.
BITNETC_HD inline float bitnetc_scale_score(int score_scale, int d, float dot) {
  const float sqrt_d = sqrtf((float)d);
  return score_scale == kBitnetcDivideSqrt ? dot / sqrt_d : dot * (1.0f / sqrt_d);
}

// q . k over one head's d values (summed in index order), scaled.
BITNETC_HD inline float bitnetc_attention_score(int score_scale, int d, const float* q, const float* k) {
  float s = 0;
  for (int i = 0; i < d; ++i) s += q[i] * k[i];
  return bitnetc_scale_score(score_scale, d, s);
}

// One head `h` of one token's attention at `pos` over caches of [pos + 1][kv_dim] rows
// (k and v of `pos` already written); `scores` has room for pos + 1 floats. Scores,
// softmax and the weighted sum run in position order.
BITNETC_HD inline void bitnetc_attend_head(int score_scale, int softmax_sum, int head_dim, int n_head, int n_head_kv,
                                           int h, const float* q, const float* k_cache, const float* v_cache,
                                           int kv_dim, int pos, float* scores, float* out) {
  const int d = head_dim, group = n_head / n_head_kv;
  const int kvh = h / group;
  // Eight positions' scores at a time, each summed in bitnetc_attention_score's order:
  // one score is a chain of d dependent adds, and eight independent chains keep the
  // adder busy (the same bits, several times faster at long contexts).
  const float* qh = q + h * d;
  int t = 0;
  for (; t + 8 <= pos + 1; t += 8) {
    const float* k = k_cache + (long long)t * kv_dim + kvh * d;
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < d; ++i)
      for (int j = 0; j < 8; ++j) s[j] += qh[i] * k[(long long)j * kv_dim + i];
    for (int j = 0; j < 8; ++j) scores[t + j] = bitnetc_scale_score(score_scale, d, s[j]);
  }
  for (; t <= pos; ++t)
    scores[t] = bitnetc_attention_score(score_scale, d, qh, k_cache + (long long)t * kv_dim + kvh * d);
  float mx = scores[0];
  for (t = 1; t <= pos; ++t)
    if (scores[t] > mx) mx = scores[t];
  if (softmax_sum == kBitnetcF32Divide) {
    float sum = 0;
    for (int t = 0; t <= pos; ++t) sum += (scores[t] = bitnetc_expf(scores[t] - mx));
    for (int t = 0; t <= pos; ++t) scores[t] /= sum;
  } else {
    double sum = 0;
    for (int t = 0; t <= pos; ++t) sum += (double)(scores[t] = bitnetc_expf(scores[t] - mx));
    const float inv = (float)(1.0 / sum);
    for (int t = 0; t <= pos; ++t) scores[t] *= inv;
  }
  // The weighted sum of the values, 16 outputs at a time kept in registers while t runs
  // (each output still adds its terms in position order from 0.0f).
  float* o = out + h * d;
  for (int i0 = 0; i0 < d; i0 += 16) {
    const int w = d - i0 < 16 ? d - i0 : 16;
    float acc[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    const float* v = v_cache + kvh * d + i0;
    if (w == 16) {
      for (int t = 0; t <= pos; ++t)
        for (int i = 0; i < 16; ++i) acc[i] += scores[t] * v[(long long)t * kv_dim + i];
    } else {
      for (int t = 0; t <= pos; ++t)
        for (int i = 0; i < w; ++i) acc[i] += scores[t] * v[(long long)t * kv_dim + i];
    }
    for (int i = 0; i < w; ++i) o[i0 + i] = acc[i];
  }
}

// The repetition penalty of one logit (rt::Sampler's; a GPU output applies it to the
// logits before it selects the candidates): positive logits divided, others multiplied.
BITNETC_HD inline float bitnetc_repeat_penalty(float logit, float penalty) {
  return logit > 0 ? logit / penalty : logit * penalty;
}
