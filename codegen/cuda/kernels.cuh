// The CUDA kernels of every op of the forward pass, as templates whose parameters are
// the shapes and attributes (constants of the code, as the CPU kernels' are). codegen
// (codegen/cuda_kernels.cpp) embeds this file's text in each generated module after
// ir/numerics.h (the interpreter's arithmetic) and runtime_stub/cuda/cuda_state.h (the
// chunk's state), and instantiates each template once per distinct shape of the model
// behind a plain extern "C" __global__ entry point; it chooses only the launch geometry.
//
// The code uses blocks, __shared__ arrays and __syncthreads() but no warp shuffles,
// atomics or intrinsics beyond __dp4a/__fmul_rn/__fadd_rn and mma.h's warp matrix
// operations, so it stays valid C++: tests run it on the CPU through
// tests/support/cuda_emulation.h and compare it with the interpreter, bit for bit. The
// numerics are the interpreter's: products and sums unfused (NVRTC gets -fmad=false),
// sqrtf and division IEEE-rounded on the device as on the host.
//
// Every kernel's first parameter is the chunk's state (cuda_state.h). A chunk holds up
// to B rows (tokens) of one or several sequences; per-row kernels take the row from
// blockIdx.y. Each sequence has its own KV cache: the caches are tables of one device
// pointer per sequence ([n_ctx][kv_dim] floats each), so a row reads and writes only its
// own sequence's.
//
// Ternary weights are 16-weight words laid out chunk-major (word c of row n at c * N +
// n: neighbouring threads read neighbouring words, coalesced); byte b of a word holds,
// at bits 2s..2s+1, the code (w + 1) of weight 16c + 4s + b, so (word >> 2s) &
// 0x03030303 is four codes in byte order that meet four consecutive int8 activations in
// __dp4a.

// ---- the chunk's rows ------------------------------------------------------------------

__device__ inline int bitnetc_row_token(const int* state, int m) { return state[kBitnetcStateRows + m]; }
__device__ inline int bitnetc_row_pos(const int* state, int m) {
  return state[kBitnetcStateRows + state[kBitnetcStateBatch] + m];
}
__device__ inline int bitnetc_row_seq(const int* state, int m) {
  return state[kBitnetcStateRows + 2 * state[kBitnetcStateBatch] + m];
}
// The chunk row of the head's m-th logit row.
__device__ inline int bitnetc_logit_row(const int* state, int m) {
  return state[kBitnetcStateRows + 3 * state[kBitnetcStateBatch] + m];
}

// A tree reduction of a shared array of NT entries into entry 0: `combine(a, b)` folds
// entry b into entry a. Every thread of the block must reach it.
template <int NT, typename Combine>
__device__ void bitnetc_tree_reduce(int tid, Combine combine) {
  __syncthreads();
  for (int o = NT / 2; o > 0; o >>= 1) {
    if (tid < o) combine(tid, tid + o);
    __syncthreads();
  }
}

// ---- ternary matmuls -------------------------------------------------------------------

// K padded to whole 16-weight words (zero weights; the activations are zero there).
__host__ __device__ constexpr int bitnetc_padded_k(int k) { return (k + 15) / 16 * 16; }

// The output element `out[at]` from its value `v`: residual + v when the matmul absorbed
// the Add after it.
template <bool RESIDUAL>
__device__ inline void bitnetc_matmul_store(float* out, const float* residual, long long at, float v) {
  if constexpr (RESIDUAL)
    out[at] = __fadd_rn(residual[at], v);
  else
    out[at] = v;
}

// y = w_scale * sum over activation blocks of d_act * (codes . x - sum x), with dp4a:
// a block of threads computes ROWS rows (neighbouring threads read neighbouring words)
// for every row of the chunk (so each weight word is read once per chunk), its threads
// split into SLICES slices of K; the integer partial dots meet in shared memory (exact)
// and one thread per row applies the float epilogue in the interpreter's order. With a
// scale per (row, activation block) (BLOCK_SCALES: llama.cpp's TQ files, floats
// [blocks][N]) each block's dot is multiplied by its own scale in place of w_scale.
//
// Up to three weights that read the same activations (q, k and v; gate and up: N1, N2 >
// 0) run in one launch, each with its own blocks of threads, words, scale and output.
// x: int8 codes [B][padded K] as words; x_sum, d_act: [B][K / ACT_BLOCK].
template <int K, int ACT_BLOCK, int MB, int ROWS, int SLICES, bool RESIDUAL, bool BLOCK_SCALES, bool Q8K64, int N0,
          int N1 = 0, int N2 = 0>
__device__ void bitnetc_ternary_dp4a(const int* state, const unsigned* packed, const int* x, const int* x_sum,
                                     const float* d_act, float w_scale, const float* w_block_scales,
                                     const float* residual, float* y, const unsigned* packed_1 = nullptr,
                                     float w_scale_1 = 0, const float* w_block_scales_1 = nullptr,
                                     float* y_1 = nullptr, const unsigned* packed_2 = nullptr, float w_scale_2 = 0,
                                     const float* w_block_scales_2 = nullptr, float* y_2 = nullptr) {
  constexpr int KP = bitnetc_padded_k(K), KW = KP / 4, BLOCKS = K / ACT_BLOCK;
  // Words per activation block (the last block of a per-token row takes the padding,
  // whose weights are zero).
  constexpr int WORDS_PER_BLOCK = ACT_BLOCK == K ? KP / 16 : ACT_BLOCK / 16;
  constexpr int PARTS = SLICES > BLOCKS ? SLICES : BLOCKS;
  constexpr int FIRST_1 = (N0 + ROWS - 1) / ROWS, FIRST_2 = FIRST_1 + (N1 + ROWS - 1) / ROWS;
  // The block's weight: its rows, words, scale(s) and output.
  int blk = blockIdx.x, N = N0;
  const unsigned* w = packed;
  float scale = w_scale;
  const float* bs = w_block_scales;
  float* out = y;
  if (N1 > 0 && (int)blockIdx.x >= FIRST_1) {
    blk = blockIdx.x - FIRST_1, N = N1, w = packed_1, scale = w_scale_1, bs = w_block_scales_1, out = y_1;
  }
  if (N2 > 0 && (int)blockIdx.x >= FIRST_2) {
    blk = blockIdx.x - FIRST_2, N = N2, w = packed_2, scale = w_scale_2, bs = w_block_scales_2, out = y_2;
  }
  __shared__ int part[PARTS][ROWS][MB];
  const int r = threadIdx.x % ROWS, slice = threadIdx.x / ROWS;
  const int n = blk * ROWS + r;
  const int count = state[kBitnetcStateCount];
  // The factor of activation block b's dot for row n of the chunk's row m.
  auto factor = [&](int m, int b) {
    return __fmul_rn(d_act[m * BLOCKS + b], BLOCK_SCALES ? bs[b * N + n] : scale);
  };
  // The integer dot of words [c0, c1) of row n with every chunk row's codes.
  auto dots = [&](int c0, int c1, int* dot) {
#pragma unroll
    for (int m = 0; m < MB; ++m) dot[m] = 0;
    if (n >= N) return;
    for (int c = c0; c < c1; ++c) {
      const unsigned word = w[c * N + n];  // read once for every row of the chunk
      const int w0 = (int)(word & 0x03030303u), w1 = (int)((word >> 2) & 0x03030303u);
      const int w2 = (int)((word >> 4) & 0x03030303u), w3 = (int)((word >> 6) & 0x03030303u);
#pragma unroll
      for (int m = 0; m < MB; ++m) {
        if (m < count) {
          const int* xm = x + m * KW + 4 * c;
          dot[m] = __dp4a(w3, xm[3], __dp4a(w2, xm[2], __dp4a(w1, xm[1], __dp4a(w0, xm[0], dot[m]))));
        }
      }
    }
  };
  if constexpr (Q8K64) {
    // ik_llama.cpp's Q8_K64 activations: the integer dots of the four groups apart (shift
    // s of a word is group s), then ik's epilogue per row (ir/numerics.h).
    constexpr int G = kBitnetcQ8K64Groups;
    __shared__ int gpart[G][SLICES][ROWS][MB];
    int gdot[G][MB];
#pragma unroll
    for (int g = 0; g < G; ++g)
#pragma unroll
      for (int m = 0; m < MB; ++m) gdot[g][m] = 0;
    if (n < N) {
      for (int c = slice * (KP / 16) / SLICES; c < (slice + 1) * (KP / 16) / SLICES; ++c) {
        const unsigned word = w[c * N + n];
#pragma unroll
        for (int m = 0; m < MB; ++m) {
          if (m < count) {
            const int* xm = x + m * KW + 4 * c;
#pragma unroll
            for (int g = 0; g < G; ++g) gdot[g][m] = __dp4a((int)((word >> (2 * g)) & 0x03030303u), xm[g], gdot[g][m]);
          }
        }
      }
    }
#pragma unroll
    for (int g = 0; g < G; ++g)
#pragma unroll
      for (int m = 0; m < MB; ++m) gpart[g][slice][r][m] = gdot[g][m];
    __syncthreads();
    if (slice != 0 || n >= N) return;
    for (int m = 0; m < count; ++m) {
      float f[G];
      for (int g = 0; g < G; ++g) {
        int total = 0;
        for (int t = 0; t < SLICES; ++t) total += gpart[g][t][r][m];
        f[g] = bitnetc_q8k64_group_term(d_act[m * G + g], total, x_sum[m * G + g]);
      }
      // The row's scale: the tensor's, or its own (BLOCK_SCALES with one block: a scale per row).
      const float row_scale = BLOCK_SCALES ? bs[n] : scale;
      bitnetc_matmul_store<RESIDUAL>(out, residual, (long long)m * N + n, bitnetc_q8k64_combine(f, row_scale));
    }
    return;
  }
  int dot[MB];
  if constexpr (BLOCKS == 1) {  // one activation block: the slices split its words; partial dots add exactly
    dots(slice * WORDS_PER_BLOCK / SLICES, (slice + 1) * WORDS_PER_BLOCK / SLICES, dot);
#pragma unroll
    for (int m = 0; m < MB; ++m) part[slice][r][m] = dot[m];
    __syncthreads();
    if (slice != 0 || n >= N) return;
    for (int m = 0; m < count; ++m) {
      int total = 0;
      for (int t = 0; t < SLICES; ++t) total += part[t][r][m];
      // The interpreter's rounding: no fused multiply-add.
      const float v = __fadd_rn(0.0f, __fmul_rn((float)(total - x_sum[m]), factor(m, 0)));
      bitnetc_matmul_store<RESIDUAL>(out, residual, (long long)m * N + n, v);
    }
  } else {  // per-block activations: each slice takes whole blocks; the float sum runs in block order
    for (int b = slice * BLOCKS / SLICES; b < (slice + 1) * BLOCKS / SLICES; ++b) {
      dots(b * WORDS_PER_BLOCK, (b + 1) * WORDS_PER_BLOCK, dot);
#pragma unroll
      for (int m = 0; m < MB; ++m) part[b][r][m] = dot[m];
    }
    __syncthreads();
    if (slice != 0 || n >= N) return;
    for (int m = 0; m < count; ++m) {
      float acc = 0.0f;
      for (int b = 0; b < BLOCKS; ++b)
        acc = __fadd_rn(acc, __fmul_rn((float)(part[b][r][m] - x_sum[m * BLOCKS + b]), factor(m, b)));
      bitnetc_matmul_store<RESIDUAL>(out, residual, (long long)m * N + n, acc);
    }
  }
}

// The same product on the int8 tensor cores (mma.h's warp matrix operations, m16n16k16)
// for prefill chunks: a block of 4 warps computes 64 rows for up to MB chunk rows (MB a
// multiple of 16; each weight word read once per chunk), the words of each stage
// unpacked to int8 codes in shared memory, the activations staged beside them; the
// int32 accumulators per activation block go through shared memory to the float
// epilogue, so the result is the dp4a kernel's (and the interpreter's) bit for bit.
template <int K, int N, int ACT_BLOCK, int MB, bool RESIDUAL, bool BLOCK_SCALES>
__device__ void bitnetc_ternary_mma(const int* state, const unsigned* packed, const int* x, const int* x_sum,
                                    const float* d_act, float w_scale, const float* w_block_scales,
                                    const float* residual, float* y) {
  constexpr int KP = bitnetc_padded_k(K), KW = KP / 4, BLOCKS = K / ACT_BLOCK;
  constexpr int WORDS_PER_BLOCK = ACT_BLOCK == K ? KP / 16 : ACT_BLOCK / 16;
  constexpr int TILES = MB / 16, ROWS = 64, NT = 128;  // 4 warps of 16 rows
  // A stage is 4 words (64 weights) of every row. Tiles in shared memory are 16 x 16
  // int8 with ldm 16 (256 bytes each, so every tile pointer is 256-bit aligned as wmma
  // needs): a_tile[j][r] is word j of row r as 16 codes in k order; b_tile[j][m] is the
  // same 16 activations of chunk row m. c_tile holds a block's integer dots, row-major
  // by chunk row (read with the weight rows fastest: coalesced stores of y); f_acc the
  // float sums across activation blocks.
  __shared__ __align__(32) int a_tile[4][ROWS][4];
  __shared__ __align__(32) int b_tile[4][MB][4];
  __shared__ __align__(32) int c_tile[MB][ROWS];
  __shared__ float f_acc[BLOCKS > 1 ? MB : 1][BLOCKS > 1 ? ROWS : 1];
  using namespace nvcuda;
  const int tid = threadIdx.x, warp = tid / 32;
  const int n0 = blockIdx.x * ROWS;
  const int count = state[kBitnetcStateCount];
  const int tiles = (count + 15) / 16;  // the row tiles that hold chunk rows (the same in every warp)
  auto factor = [&](int m, int b, int n) {
    return __fmul_rn(d_act[m * BLOCKS + b], BLOCK_SCALES ? w_block_scales[b * N + n] : w_scale);
  };
  wmma::fragment<wmma::accumulator, 16, 16, 16, int> acc[TILES];
  for (int b = 0; b < BLOCKS; ++b) {
#pragma unroll
    for (int t = 0; t < TILES; ++t) wmma::fill_fragment(acc[t], 0);
    const int c_end = b * WORDS_PER_BLOCK + WORDS_PER_BLOCK;
    for (int c0 = b * WORDS_PER_BLOCK; c0 < c_end; c0 += 4) {
      __syncthreads();  // the previous stage's tiles (and the previous block's c_tile) are read
      // Weights: consecutive threads take consecutive rows of one word (coalesced). Codes
      // are w + 1; words past the block or rows past N are zero codes (never used: no
      // activation there, or no output).
      for (int e = tid; e < 4 * ROWS; e += NT) {
        const int j = e / ROWS, r = e % ROWS, c = c0 + j, n = n0 + r;
        const unsigned word = c < c_end && n < N ? packed[c * N + n] : 0u;
        int* a = a_tile[j][r];
        a[0] = (int)(word & 0x03030303u);
        a[1] = (int)((word >> 2) & 0x03030303u);
        a[2] = (int)((word >> 4) & 0x03030303u);
        a[3] = (int)((word >> 6) & 0x03030303u);
      }
      // Activations: 16 bytes of one chunk row per thread, zero past the chunk's rows or K.
      for (int e = tid; e < 4 * MB; e += NT) {
        const int j = e % 4, m = e / 4, c = c0 + j;
        int* bt = b_tile[j][m];
        const bool in = m < count && c < c_end;
        for (int q = 0; q < 4; ++q) bt[q] = in ? x[m * KW + 4 * c + q] : 0;
      }
      __syncthreads();
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, signed char, wmma::row_major> a;
        wmma::load_matrix_sync(a, (const signed char*)a_tile[j][warp * 16], 16);
#pragma unroll
        for (int t = 0; t < TILES; ++t) {
          if (t >= tiles) break;
          // Column m of B is chunk row m's 16 activations: col_major with ldm 16.
          wmma::fragment<wmma::matrix_b, 16, 16, 16, signed char, wmma::col_major> bf;
          wmma::load_matrix_sync(bf, (const signed char*)b_tile[j][t * 16], 16);
          wmma::mma_sync(acc[t], a, bf, acc[t]);
        }
      }
    }
    // Element (weight row, chunk row) of a tile goes to c_tile[chunk row][weight row]:
    // column-major, ldm ROWS.
#pragma unroll
    for (int t = 0; t < TILES; ++t) {
      if (t >= tiles) break;
      wmma::store_matrix_sync(&c_tile[t * 16][warp * 16], acc[t], ROWS, wmma::mem_col_major);
    }
    __syncthreads();
    // The float epilogue in the interpreter's order, weight rows fastest (coalesced stores).
    for (int e = tid; e < count * ROWS; e += NT) {
      const int m = e / ROWS, r = e % ROWS, n = n0 + r;
      if (n >= N) continue;
      if constexpr (BLOCKS == 1) {
        const float v = __fadd_rn(0.0f, __fmul_rn((float)(c_tile[m][r] - x_sum[m]), factor(m, 0, n)));
        bitnetc_matmul_store<RESIDUAL>(y, residual, (long long)m * N + n, v);
      } else {
        const float term = __fmul_rn((float)(c_tile[m][r] - x_sum[m * BLOCKS + b]), factor(m, b, n));
        const float sum = __fadd_rn(b == 0 ? 0.0f : f_acc[m][r], term);  // only this thread touches (m, r)
        if (b + 1 < BLOCKS)
          f_acc[m][r] = sum;
        else
          bitnetc_matmul_store<RESIDUAL>(y, residual, (long long)m * N + n, sum);
      }
    }
  }
}

// ---- norms and activation quantization -------------------------------------------------

// The rms_norm scale of a row whose element i is input(i), as bitnetc_rms_scale computes
// it (every thread of the block must call it; all get the same value). ggml's double
// sum is reduced in parallel (in double the order does not change the float result, in
// all but astronomically rare cases); the float recipes are summed in order by one
// thread (a parallel float sum rounds differently, and on small random models that
// moved logits by more than 1).
template <int N, int KIND, int NT, typename Input>
__device__ float bitnetc_norm_scale(int tid, float eps, Input input) {
  if constexpr (KIND == kBitnetcRmsF64Sum) {
    __shared__ double norm_red[NT];
    double ss = 0;
    for (int i = tid; i < N; i += NT) {
      const float v = input(i);
      ss += (double)(v * v);
    }
    norm_red[tid] = ss;
    bitnetc_tree_reduce<NT>(tid, [&](int a, int b) { norm_red[a] += norm_red[b]; });
    return bitnetc_rms_scale(KIND, (double)norm_red[0], N, eps);
  } else {
    __shared__ float norm_red[1];
    if (tid == 0) {
      float ss = 0;
#pragma unroll 8
      for (int i = 0; i < N; ++i) {
        const float v = input(i);
        ss += v * v;
      }
      norm_red[0] = ss;
    }
    __syncthreads();
    return bitnetc_rms_scale(KIND, (double)norm_red[0], N, eps);
  }
}

// rms_norm of each chunk row: one block per row. x, y: [B][N]; w the norm's weight
// (WEIGHTED), eps a float's bits.
template <int N, int KIND, bool WEIGHTED, unsigned EPS_BITS>
__device__ void bitnetc_norm(const int* state, const float* x, const float* w, float* y) {
  constexpr int NT = 256;
  const int tid = threadIdx.x, m = blockIdx.y;
  const float* xm = x + m * N;
  auto input = [&](int i) { return xm[i]; };
  const float r = bitnetc_norm_scale<N, KIND, NT>(tid, bitnetc_float_from_bits(EPS_BITS), input);
  for (int i = tid; i < N; i += NT) y[m * N + i] = bitnetc_rms_apply(KIND, input(i), WEIGHTED ? w : 0, i, r);
}

// Activation quantization of each chunk row (ir::ActQuant QUANT): one block per row; the
// largest magnitude (and the first value that has it) reduced in shared memory, then
// every code as the interpreter computes it, and the codes' sum (all exact). Writes the
// int8 codes q ([B][padded N], zero padded, as words), their sums x_sum and the dequant
// factors d ([B][blocks]: one per row, or per 256-block for Q8_K). With a norm
// (NORM_KIND >= 0) the block first computes the row's rms_norm scale and quantizes the
// normalized values, recomputed where they are read and never stored: one launch and
// one pass over x instead of two. With a gated activation (GATED >= 0, ir::Activation)
// the input is activate(gate) * up, likewise never stored (x is the gate then).
template <int N, int QUANT, int NORM_KIND, bool NORM_WEIGHTED, unsigned EPS_BITS, int GATED>
__device__ void bitnetc_quantize(const int* state, const float* x, const float* up, const float* w, int* q,
                                 int* x_sum, float* d) {
  constexpr int KP = bitnetc_padded_k(N),
                BLOCKS = QUANT == kBitnetcPerBlockQ8K    ? N / 256
                         : QUANT == kBitnetcPerBlockQ8_0 ? N / kBitnetcQ8_0Block
                                                         : 1;
  constexpr int BLOCK = N / BLOCKS, NT = 256;
  const int tid = threadIdx.x, m = blockIdx.y;
  const float* xm = x + m * N;
  const float* um = GATED >= 0 ? up + m * N : nullptr;
  // Element i of the row's input: x, or the gated activation of gate and up.
  auto input = [&](int i) { return GATED >= 0 ? __fmul_rn(bitnetc_activate(GATED, xm[i]), um[i]) : xm[i]; };
  float r = 0;
  if constexpr (NORM_KIND >= 0) r = bitnetc_norm_scale<N, NORM_KIND, NT>(tid, bitnetc_float_from_bits(EPS_BITS), input);
  // The value quantized: element i of the input (normalized, when a norm is absorbed).
  auto value = [&](int i) {
    if constexpr (NORM_KIND >= 0)
      return bitnetc_rms_apply(NORM_KIND, input(i), NORM_WEIGHTED ? w : 0, i, r);
    else
      return input(i);
  };
  signed char* qm = (signed char*)q + m * KP;
  if constexpr (QUANT == kBitnetcPerRowQ8K64) {
    // ik_llama.cpp's Q8_K64: four interleaved groups (element i in group (i % 16) / 4),
    // each with its own largest magnitude, factor and sum of codes.
    constexpr int G = kBitnetcQ8K64Groups;
    __shared__ float gmax[G][NT];
    __shared__ int gsum[G][NT];
    float a[G] = {0, 0, 0, 0};
    for (int i = tid; i < N; i += NT) {
      const float ax = fabsf(value(i));
      const int g = bitnetc_q8k64_group(i);
      if (ax > a[g]) a[g] = ax;
    }
    for (int g = 0; g < G; ++g) gmax[g][tid] = a[g];
    bitnetc_tree_reduce<NT>(tid, [&](int x, int y) {
      for (int g = 0; g < G; ++g)
        if (gmax[g][y] > gmax[g][x]) gmax[g][x] = gmax[g][y];
    });
    float dg[G], id[G];
    int s[G] = {0, 0, 0, 0};
    for (int g = 0; g < G; ++g) {
      dg[g] = gmax[g][0] / 127;  // (IEEE division: NVRTC divides exactly by default)
      id[g] = dg[g] > 0 ? 1 / dg[g] : 0.0f;
    }
    for (int i = tid; i < N; i += NT) {
      const int g = bitnetc_q8k64_group(i);
      const signed char c = bitnetc_rne_code(id[g], value(i));
      qm[i] = c;
      s[g] += c;
    }
    for (int g = 0; g < G; ++g) gsum[g][tid] = s[g];
    bitnetc_tree_reduce<NT>(tid, [&](int x, int y) {
      for (int g = 0; g < G; ++g) gsum[g][x] += gsum[g][y];
    });
    if (tid < G) {
      x_sum[m * G + tid] = gsum[tid][0];
      d[m * G + tid] = dg[tid];
    }
    for (int i = N + tid; i < KP; i += NT) qm[i] = 0;
    return;
  }
  __shared__ float amax[NT], first[NT];
  __shared__ int at[NT], sum[NT];
  for (int b = 0; b < BLOCKS; ++b) {
    // The largest |x| and the first value that has it (as the interpreter's scan finds).
    float a = 0, f = 0;
    int i_a = BLOCK;
    for (int i = tid; i < BLOCK; i += NT) {
      const float xi = value(b * BLOCK + i), ax = fabsf(xi);
      if (ax > a) {
        a = ax;
        f = xi;
        i_a = i;
      }
    }
    amax[tid] = a;
    first[tid] = f;
    at[tid] = i_a;
    bitnetc_tree_reduce<NT>(tid, [&](int a, int b) {
      if (amax[b] > amax[a] || (amax[b] == amax[a] && at[b] < at[a])) {
        amax[a] = amax[b];
        first[a] = first[b];
        at[a] = at[b];
      }
    });
    const BitnetcQuantScale scale = bitnetc_quant_scale(QUANT, amax[0], first[0]);
    int s = 0;
    for (int i = tid; i < BLOCK; i += NT) {
      const signed char c = bitnetc_quant_code(QUANT, value(b * BLOCK + i), scale);
      qm[b * BLOCK + i] = c;
      s += c;
    }
    sum[tid] = s;
    bitnetc_tree_reduce<NT>(tid, [&](int a, int b) { sum[a] += sum[b]; });
    if (tid == 0) {
      x_sum[m * BLOCKS + b] = sum[0];
      d[m * BLOCKS + b] = scale.d;
    }
    __syncthreads();  // the shared arrays are reused by the next block
  }
  for (int i = N + tid; i < KP; i += NT) qm[i] = 0;
}

// ---- dense weights ---------------------------------------------------------------------

// A dense weight's element as a float: f32, IEEE half bits, or an int8 code (before its
// row's scale).
__device__ inline float bitnetc_dense_value(float v) { return v; }
__device__ inline float bitnetc_dense_value(unsigned short h) { return bitnetc_half_to_float(h); }
__device__ inline float bitnetc_dense_value(signed char c) { return (float)c; }

// Embedding rows of the chunk's tokens: one thread per element, rows from blockIdx.y. The
// table is ROWS x COLS row-major, or k-major (element (r, c) at c * ROWS + r: a tied
// head's layout); a Q8 table (a tied --head=q8) multiplies by the row's scale.
template <typename T, int ROWS, int COLS, bool Q8, bool K_MAJOR>
__device__ void bitnetc_embedding(const int* state, const T* table, const float* scales, float* out) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= COLS) return;
  const int m = blockIdx.y;
  const long long token = bitnetc_row_token(state, m);
  const float value = bitnetc_dense_value(table[K_MAJOR ? (long long)c * ROWS + token : token * COLS + c]);
  out[m * COLS + c] = Q8 ? __fmul_rn(value, scales[token]) : value;
}

// Dense matmul y = W x with W k-major (coalesced: neighbouring threads read neighbouring
// rows), summed in column order; an int8 row's sum is then multiplied by its scale (the
// CPU kernels' --head=q8 numerics). LOGIT_ROWS (the head): row m of y is the logits of
// the chunk's bitnetc_logit_row(m), launched with the logit rows' count in y; else
// every chunk row.
template <typename T, int K, int N, bool Q8, bool LOGIT_ROWS>
__device__ void bitnetc_dense_matmul(const int* state, const T* w, const float* scales, const float* x, float* y) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  if (n >= N) return;
  const int row = LOGIT_ROWS ? bitnetc_logit_row(state, blockIdx.y) : (int)blockIdx.y;
  const float* xm = x + (long long)row * K;
  float* ym = y + (long long)blockIdx.y * N;
  float acc = 0.0f;
  for (int c = 0; c < K; ++c) acc = __fadd_rn(acc, __fmul_rn(bitnetc_dense_value(w[(long long)c * N + n]), xm[c]));
  ym[n] = Q8 ? __fmul_rn(acc, scales[n]) : acc;
}

// llama.cpp's k-quant weights (Q4_K/Q5_K/Q6_K, unpacked as ir/kquant.h describes), each
// part k-major: element (r, c') of a part with columns c' at c' * N + r (q: a column per
// weight, sc and m: per group of 16, d and dmin: per super-block of 256).

// Element (token, c) of a k-quant embedding table: (d * sc) * q - dmin * m, ggml's
// dequantization order.
template <int ROWS>
__device__ inline float bitnetc_kquant_value(const signed char* q, const signed char* sc, const signed char* m,
                                             const float* d, const float* dmin, long long r, int c) {
  const long long g = (long long)(c / 16) * ROWS + r, b = (long long)(c / 256) * ROWS + r;
  return __fsub_rn(__fmul_rn(__fmul_rn(d[b], (float)sc[g]), (float)q[(long long)c * ROWS + r]),
                   __fmul_rn(dmin[b], (float)m[g]));
}

template <int ROWS, int COLS>
__device__ void bitnetc_kquant_embedding(const int* state, const signed char* q, const signed char* sc,
                                         const signed char* m, const float* d, const float* dmin, float* out) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= COLS) return;
  const int row = blockIdx.y;
  out[row * COLS + c] = bitnetc_kquant_value<ROWS>(q, sc, m, d, dmin, bitnetc_row_token(state, row), c);
}

// A k-quant head on Q8_K activations (x: int8 codes [B][padded K] as words, xd: a factor
// per super-block [B][K / 256]), as ggml's vec_dot_q*_K_q8_K computes it and
// ir::kquant_dot defines it: per super-block the exact integer sums isum = sum sc*q*x and
// imin = sum m*x, then acc = (acc + (d*xd)*isum) - (dmin*xd)*imin, super-block after
// super-block. One thread per row of the weight; LOGIT_ROWS as bitnetc_dense_matmul.
template <int K, int N, bool LOGIT_ROWS>
__device__ void bitnetc_kquant_matmul(const int* state, const signed char* q, const signed char* sc,
                                      const signed char* m, const float* d, const float* dmin, const int* x,
                                      const float* xd, float* y) {
  constexpr int KP = bitnetc_padded_k(K), BLOCKS = K / 256;
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  if (n >= N) return;
  const int row = LOGIT_ROWS ? bitnetc_logit_row(state, blockIdx.y) : (int)blockIdx.y;
  const signed char* xm = (const signed char*)x + (long long)row * KP;
  const float* xdm = xd + (long long)row * BLOCKS;
  float acc = 0.0f;
  for (int b = 0; b < BLOCKS; ++b) {
    int isum = 0, imin = 0;
    for (int c = b * 256; c < (b + 1) * 256; ++c) {
      const long long g = (long long)(c / 16) * N + n;
      isum += (int)sc[g] * (int)q[(long long)c * N + n] * (int)xm[c];
      imin += (int)m[g] * (int)xm[c];
    }
    acc = __fadd_rn(acc, __fmul_rn(__fmul_rn(d[(long long)b * N + n], xdm[b]), (float)isum));
    acc = __fsub_rn(acc, __fmul_rn(__fmul_rn(dmin[(long long)b * N + n], xdm[b]), (float)imin));
  }
  y[(long long)blockIdx.y * N + n] = acc;
}

// llama.cpp's Q8_0 weights, k-major parts (rt::q8_0_sections): the codes q, a column per
// weight, then the block factors d, a column per block of 32.
template <int ROWS>
__device__ inline float bitnetc_q8_0_value(const signed char* q, const float* d, long long r, int c) {
  return __fmul_rn((float)q[(long long)c * ROWS + r], d[(long long)(c / kBitnetcQ8_0Block) * ROWS + r]);
}

template <int ROWS, int COLS>
__device__ void bitnetc_q8_0_embedding(const int* state, const signed char* q, const float* d, float* out) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= COLS) return;
  const int row = blockIdx.y;
  out[row * COLS + c] = bitnetc_q8_0_value<ROWS>(q, d, bitnetc_row_token(state, row), c);
}

// A Q8_0 head on Q8_0 activations (x: int8 codes [B][padded K] as words, xd: a factor per
// block of 32 [B][K / 32]), as ggml's vec_dot_q8_0_q8_0 computes it and ir::q8_0_dot
// defines it: eight lanes, acc_j = fma(d * xd, S_j, acc_j) block after block
// (bitnetc_q8_0_lane_step), then hsum_float_8. One thread per row of the weight.
template <int K, int N, bool LOGIT_ROWS>
__device__ void bitnetc_q8_0_matmul(const int* state, const signed char* q, const float* d, const int* x,
                                    const float* xd, float* y) {
  constexpr int KP = bitnetc_padded_k(K), B = kBitnetcQ8_0Block, BLOCKS = K / B;
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  if (n >= N) return;
  const int row = LOGIT_ROWS ? bitnetc_logit_row(state, blockIdx.y) : (int)blockIdx.y;
  const signed char* xm = (const signed char*)x + (long long)row * KP;
  const float* xdm = xd + (long long)row * BLOCKS;
  float acc[kBitnetcQ8_0Lanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int b = 0; b < BLOCKS; ++b) {
    const float dd = __fmul_rn(d[(long long)b * N + n], xdm[b]);
    for (int j = 0; j < kBitnetcQ8_0Lanes; ++j) {
      int s = 0;
      for (int c = b * B + 4 * j; c < b * B + 4 * j + 4; ++c) s += (int)q[(long long)c * N + n] * (int)xm[c];
      acc[j] = bitnetc_q8_0_lane_step(dd, s, acc[j]);
    }
  }
  y[(long long)blockIdx.y * N + n] = bitnetc_q8_0_hsum(acc);
}

// ---- RoPE, the KV caches and attention -------------------------------------------------

// RoPE: y = x with every head rotated by the angles of its row's position, read from
// tables of [position][HEAD_DIM / 2] cos and sin. One thread per head.
template <int N, int HEAD_DIM, int STYLE>
__device__ void bitnetc_rope(const int* state, const float* cos, const float* sin, const float* x, float* y) {
  constexpr int HALF = HEAD_DIM / 2;
  const int h = blockIdx.x * blockDim.x + threadIdx.x;
  if (h >= N / HEAD_DIM) return;
  const int m = blockIdx.y;
  const long long pos = bitnetc_row_pos(state, m);
  float* v = y + m * N + h * HEAD_DIM;
  const float* u = x + m * N + h * HEAD_DIM;
  for (int i = 0; i < HEAD_DIM; ++i) v[i] = u[i];
  bitnetc_rope_rotate_head(STYLE, HEAD_DIM, cos + pos * HALF, sin + pos * HALF, v);
}

// RoPE of a layer's q and k and the KV cache store in one launch (an Attention whose q
// and k come from Rope steps nothing else reads): q rotated into q_out, k rotated
// straight into its sequence's key cache at its position, v copied into the value
// cache. One thread per head, q's then k's, the first KV threads also copying v.
template <int QN, int KV, int HEAD_DIM, int STYLE>
__device__ void bitnetc_rope_kv_store(const int* state, const float* cos_q, const float* sin_q, const float* cos_k,
                                      const float* sin_k, const float* q, const float* k, const float* v, float* q_out,
                                      float* const* k_caches, float* const* v_caches) {
  constexpr int HALF = HEAD_DIM / 2, QH = QN / HEAD_DIM, KH = KV / HEAD_DIM;
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= (QH + KH > KV ? QH + KH : KV)) return;
  const int m = blockIdx.y;
  const long long pos = bitnetc_row_pos(state, m);
  const int seq = bitnetc_row_seq(state, m);
  if (t < QH + KH) {
    const bool is_q = t < QH;
    const int h = is_q ? t : t - QH;
    const float* u = is_q ? q + m * QN + h * HEAD_DIM : k + m * KV + h * HEAD_DIM;
    float* o = is_q ? q_out + m * QN + h * HEAD_DIM : k_caches[seq] + pos * KV + h * HEAD_DIM;
    for (int i = 0; i < HEAD_DIM; ++i) o[i] = u[i];
    const float* c = (is_q ? cos_q : cos_k) + pos * HALF;
    const float* sn = (is_q ? sin_q : sin_k) + pos * HALF;
    bitnetc_rope_rotate_head(STYLE, HEAD_DIM, c, sn, o);
  }
  if (t < KV) v_caches[seq][pos * KV + t] = v[m * KV + t];
}

// Appends the chunk's k and v ([B][KV]) to their sequences' caches at their positions.
// One thread per element.
template <int KV>
__device__ void bitnetc_kv_store(const int* state, const float* k, const float* v, float* const* k_caches,
                                 float* const* v_caches) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= KV) return;
  const int m = blockIdx.y, seq = bitnetc_row_seq(state, m);
  const long long at = (long long)bitnetc_row_pos(state, m) * KV + i;
  k_caches[seq][at] = k[m * KV + i];
  v_caches[seq][at] = v[m * KV + i];
}

// Attention: one block of NT threads per (head, chunk row), against the row's own
// sequence's caches up to its position. Its threads compute the scores (each in the
// interpreter's order), the maximum and the softmax (the f32 sum in position order by
// one thread; ggml's double sum reduced in shared memory), then each output element as
// a sum over positions in order. scores: scratch of [B][NH][n_ctx].
template <int NH, int NKV, int D, int SCORE_SCALE, int SOFTMAX_SUM>
__device__ void bitnetc_attention(const int* state, const float* q, float* const* k_caches, float* const* v_caches,
                                  float* scores, float* out) {
  constexpr int KV = NKV * D, QN = NH * D, GROUP = NH / NKV, NT = 128;
  __shared__ float red[NT];
  __shared__ double red_d[NT];
  __shared__ int has[NT];
  const int tid = threadIdx.x, h = blockIdx.x, m = blockIdx.y;
  const int pos = bitnetc_row_pos(state, m);
  const float* k_cache = k_caches[bitnetc_row_seq(state, m)];
  const float* v_cache = v_caches[bitnetc_row_seq(state, m)];
  float* p = scores + (long long)(m * NH + h) * state[kBitnetcStateCtx];
  const float* qh = q + m * QN + h * D;
  const long long kv_off = (long long)(h / GROUP) * D;
  float mx = 0;
  for (int t = tid; t <= pos; t += NT) {
    const float s = bitnetc_attention_score(SCORE_SCALE, D, qh, k_cache + (long long)t * KV + kv_off);
    p[t] = s;
    if (t == tid || s > mx) mx = s;
  }
  // The maximum over the threads that have a position (has[]: the others hold none).
  red[tid] = mx;
  has[tid] = tid <= pos;
  bitnetc_tree_reduce<NT>(tid, [&](int a, int b) {
    if (has[b] && (!has[a] || red[b] > red[a])) {
      red[a] = red[b];
      has[a] = 1;
    }
  });
  const float top = red[0];
  __syncthreads();
  if constexpr (SOFTMAX_SUM == kBitnetcF32Divide) {  // the interpreter's f32 sum, in position order
    for (int t = tid; t <= pos; t += NT) p[t] = bitnetc_expf(p[t] - top);
    __syncthreads();
    if (tid == 0) {
      float sum = 0;
      for (int t = 0; t <= pos; ++t) sum += p[t];
      red[0] = sum;
    }
    __syncthreads();
    const float sum = red[0];
    for (int t = tid; t <= pos; t += NT) p[t] /= sum;
  } else {  // ggml: the sum in double (order-free in all but astronomically rare cases)
    double part = 0;
    for (int t = tid; t <= pos; t += NT) part += (double)(p[t] = bitnetc_expf(p[t] - top));
    red_d[tid] = part;
    bitnetc_tree_reduce<NT>(tid, [&](int a, int b) { red_d[a] += red_d[b]; });
    const float inv = (float)(1.0 / red_d[0]);
    for (int t = tid; t <= pos; t += NT) p[t] *= inv;
  }
  __syncthreads();
  for (int i = tid; i < D; i += NT) {
    float o = 0.0f;
    for (int t = 0; t <= pos; ++t) o += p[t] * v_cache[(long long)t * KV + kv_off + i];
    out[m * QN + h * D + i] = o;
  }
}

// ---- element-wise ops ------------------------------------------------------------------

// out = activate(gate) * up (ir::Activation ACT), one thread per element.
template <int N, int ACT>
__device__ void bitnetc_gated(const int* state, const float* gate, const float* up, float* out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= N) return;
  const int at = blockIdx.y * N + i;
  out[at] = __fmul_rn(bitnetc_activate(ACT, gate[at]), up[at]);
}

// out = a + b, one thread per element.
template <int N>
__device__ void bitnetc_add(const int* state, const float* a, const float* b, float* out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= N) return;
  const int at = blockIdx.y * N + i;
  out[at] = __fadd_rn(a[at], b[at]);
}

// ---- sampling on the device (the head's first logit row) ------------------------------

// Greedy: the index of the largest of N logits (the lowest index among equal ones, as
// rt::argmax). P threads each scan every P-th logit (coalesced) into (value, index)
// pairs, partial = [P] floats then [P] ints; one thread then picks among them.
template <int N, int P>
__device__ void bitnetc_argmax_partial(const int* state, const float* logits, float* partial) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= P) return;
  int best = t < N ? t : 0;
  for (int i = t + P; i < N; i += P)
    if (logits[i] > logits[best]) best = i;
  partial[t] = logits[best];
  ((int*)(partial + P))[t] = best;
}

template <int P>
__device__ void bitnetc_argmax_final(const int* state, const float* partial, int* result) {
  if (blockIdx.x * blockDim.x + threadIdx.x != 0) return;
  const int* index = (const int*)(partial + P);
  int best = 0;
  for (int j = 1; j < P; ++j)
    if (partial[j] > partial[best] || (partial[j] == partial[best] && index[j] < index[best])) best = j;
  result[0] = index[best];
}

// The repetition penalty, in place on the N logits: the state's penalty on the logits
// of the first kBitnetcStatePenaltyCount ids of `tokens` (distinct, so no two threads
// write one logit). One block.
template <int N>
__device__ void bitnetc_repeat_penalty(const int* state, float* logits, const int* tokens) {
  const int count = state[kBitnetcStatePenaltyCount];
  const float penalty = bitnetc_float_from_bits((unsigned)state[kBitnetcStatePenalty]);
  for (int j = threadIdx.x; j < count; j += blockDim.x) {
    const int t = tokens[j];
    if (t >= 0 && t < N) logits[t] = bitnetc_repeat_penalty(logits[t], penalty);
  }
}

// Inserts (v, id) into the sorted list (vals, ids) of `have` entries, at most `k` kept,
// largest first and lower ids first among equal values (the host sampler's order).
__device__ inline void bitnetc_topk_insert(float* vals, int* ids, int& have, int k, float v, int id) {
  if (have < k || v > vals[have - 1] || (v == vals[have - 1] && id < ids[have - 1])) {
    int j = have < k ? have++ : k - 1;
    while (j > 0 && (v > vals[j - 1] || (v == vals[j - 1] && id < ids[j - 1]))) {
      vals[j] = vals[j - 1];
      ids[j] = ids[j - 1];
      --j;
    }
    vals[j] = v;
    ids[j] = id;
  }
}

// Writes a sorted list (vals, ids) of `have` entries as KMAX values then KMAX ids of
// list `t` among `lists` (-1: no entry).
template <int KMAX>
__device__ void bitnetc_topk_store(float* out, int lists, int t, const float* vals, const int* ids, int have) {
  float* o = out + t * KMAX;
  int* o_ids = (int*)(out + lists * KMAX) + t * KMAX;
  for (int j = 0; j < KMAX; ++j) {
    o[j] = j < have ? vals[j] : 0.0f;
    o_ids[j] = j < have ? ids[j] : -1;
  }
}

// The state's K (kBitnetcStateTopK, at most KMAX) largest logits with their ids: P
// threads each keep a sorted list over every P-th logit; merge passes then join PER
// lists per thread. Lists are [lists][KMAX] floats followed by as many ids.
template <int N, int P, int KMAX>
__device__ void bitnetc_topk_partial(const int* state, const float* logits, float* lists) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= P) return;
  const int K = state[kBitnetcStateTopK];
  if (K <= 0) return;
  float vals[KMAX];
  int ids[KMAX];
  int have = 0;
  for (int id = t; id < N; id += P) bitnetc_topk_insert(vals, ids, have, K, logits[id], id);
  bitnetc_topk_store<KMAX>(lists, P, t, vals, ids, have);
}

template <int L, int PER, int KMAX>
__device__ void bitnetc_topk_merge(const int* state, const float* in, float* out) {
  constexpr int T = L / PER;
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= T) return;
  const int K = state[kBitnetcStateTopK];
  if (K <= 0) return;
  const int* in_ids = (const int*)(in + L * KMAX);
  float vals[KMAX];
  int ids[KMAX];
  int have = 0;
  for (int e = t * PER * KMAX; e < (t + 1) * PER * KMAX; ++e)
    if (in_ids[e] >= 0) bitnetc_topk_insert(vals, ids, have, K, in[e], in_ids[e]);
  bitnetc_topk_store<KMAX>(out, T, t, vals, ids, have);
}

// For benchmarks: reads n 16-byte words (a grid-stride loop, the access pattern of a
// bandwidth test) and writes a value that depends on all of them to *sink.
__device__ inline void bitnetc_read_words(const uint4* p, unsigned long long n, unsigned* sink) {
  unsigned acc = 0;
  for (unsigned long long i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (unsigned long long)gridDim.x * blockDim.x) {
    const uint4 v = p[i];
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9E3779B9u) *sink = acc;  // (almost) never taken, but the loads must happen
}
