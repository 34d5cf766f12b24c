// A byte form of the graph, baked into compiled outputs: every op with its attributes,
// the value sizes, the dense weights as float32, and each ternary weight's shape and
// scales (its codes travel separately, packed for the target's kernels).
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <vector>

#include "ir.h"

namespace bitnetc::ir {

std::vector<uint8_t> serialize(const Graph& g, bool with_ternary_codes = false);

// Throws std::runtime_error on malformed bytes (a damaged output file).
Graph deserialize(std::span<const uint8_t> bytes);

}  // namespace bitnetc::ir
