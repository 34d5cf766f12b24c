// Ternary matmul over the lookup-table layouts TL1 and TL2 (runtime_stub/cpu/lut_tiles.h has
// the byte layouts): a Halide pipeline that builds each token's tables, runs the
// hand-written lookup tile over N/32-row tasks on Halide's thread pool (an extern stage:
// Halide 14 has no byte-table lookup), and scales the integer sums exactly as the
// interpreter does. Per-token activations only (one activation block per row).
//
// Same arguments as schedules/ternary_matmul.h's pipeline, so outputs call either through
// one kernel table: packed (uint8, [tile_bytes, n_tiles]), x (int8, [K_padded, M], zero
// padded), x_sum (int32, [1, M]; unused: table lookups give sum_k w_k x_k directly),
// d_act (float, [1, M]), w_scale, w_block_scales (never read: per-tensor scales only);
// output y (float, [N, M]).
#pragma once

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "Halide.h"
#include "ternary.h"
#include "ternary_matmul.h"

namespace bitnetc::schedules {

enum class LutLayout { TL1, TL2 };
const char* layout_name(LutLayout l);

int64_t lut_padded_k(int64_t K, LutLayout l);
int lut_tile_rows(LutLayout l);
int64_t lut_tile_bytes(int64_t K, LutLayout l);
int64_t lut_tiles(int64_t N, LutLayout l);

// Packs (codes only) into the layout: lut_tiles(N) tiles of lut_tile_bytes(K) bytes.
std::vector<uint8_t> pack_lut(const TernaryWeights& w, LutLayout l);
// The codes back from a packing (the layout's definition read the other way; tests).
std::vector<int8_t> unpack_lut(const std::vector<uint8_t>& packed, int64_t N, int64_t K, LutLayout l);

// The extern tile a pipeline calls: bitnetc_tl{1,2}_tiles (the target's SIMD: NEON, AVX2),
// its _scalar reference, or (TL1) _simd128, WebAssembly SIMD's (lut_tiles.h says why a
// name of its own).
enum class LutTile { Native, Scalar, Simd128 };

struct LutMatmulShape {
  int64_t K = 0, N = 0;
  LutLayout layout = LutLayout::TL2;
  int batch = 1;
  LutTile tile = LutTile::Native;
  // Every field, for the kernel cache's key (codegen/kernel_cache.h): a new field goes here too.
  auto fields() const { return std::tie(K, N, layout, batch, tile); }
};

MatmulPipeline lut_matmul(const LutMatmulShape& shape);
std::string lut_tile_function(const LutMatmulShape& shape);

}  // namespace bitnetc::schedules
