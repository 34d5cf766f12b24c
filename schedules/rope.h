// RoPE as a Halide pipeline for one width: rotates every head of every token of a chunk
// by its position's angles (token t of a chunk that starts at pos0 is at pos0 + t),
// from the cos/sin tables the runtime fills with the interpreter's angles
// (ir::rope_cos_sin). Bit for bit bitnetc_rope_rotate_head (strict_float: x0*c - x1*s
// and x0*s + x1*c, each product rounded, no FMA), pairs in vector lanes.
#pragma once

#include <cstdint>
#include <tuple>
#include <vector>

#include "Halide.h"
#include "ir.h"

namespace bitnetc::schedules {

struct RopeShape {
  int64_t n = 0;  // values per token (heads * head_dim)
  int head_dim = 0;
  ir::RopeStyle style = ir::RopeStyle::Interleaved;
  int vector_bytes = 32;
  // Every field, for the kernel cache's key (codegen/kernel_cache.h): a new field goes here too.
  auto fields() const { return std::tie(n, head_dim, style, vector_bytes); }
};

// Inputs: x (float, [n, tokens]), cos and sin (float, [head_dim / 2, positions]: at least
// pos0 + tokens), pos0 (int). Output: y (float, [n, tokens]).
struct RopePipeline {
  Halide::ImageParam x, cos, sin;
  Halide::Param<int> pos0;
  Halide::Func y;
  std::vector<Halide::Argument> arguments() const { return {x, cos, sin, pos0}; }
};

RopePipeline rope(const RopeShape& shape);

}  // namespace bitnetc::schedules
