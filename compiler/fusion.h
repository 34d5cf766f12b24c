// The fusion pass: which ops' work another op's kernel can do with the same bits, for
// every back end. It only proposes; each back end takes the fusions it has kernels for
// (the CPU outputs: a norm inside its quantize; CUDA outputs: all of them) and says in
// `compile -v` which it declines. One home for producer/reader counts and for every
// fusion rule.
//  - a Quantize computes the Norm before it, and the GatedAct before that, when nothing
//    else reads their outputs (the values are recomputed where read, never stored);
//  - a ternary matmul adds the residual of the Add that is its output's only reader;
//  - an Attention rotates its q and k (the Ropes that are their only readers) itself.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "ir.h"

namespace bitnetc {

// Each value's producing op (-1: none) and how many op inputs read it.
struct ValueUses {
  std::vector<int32_t> producer, readers;
  // The op that produces `v` when that op is of `kind` and only one input anywhere
  // reads v (and v is not the logits): an op another kernel may absorb. Else -1.
  int32_t sole_producer(const ir::Graph& g, int v, ir::OpKind kind) const;
};
ValueUses value_uses(const ir::Graph& g);

struct Fusions {
  std::vector<int32_t> norm_of_quantize;                        // per Quantize: the Norm it computes, else -1
  std::vector<int32_t> gated_of_quantize;                       // per Quantize: the GatedAct it computes, else -1
  std::vector<int32_t> add_of_matmul;                           // per TernaryMatmul: the Add it absorbs, else -1
  std::vector<std::pair<int32_t, int32_t>> ropes_of_attention;  // per Attention: its q and k Ropes, or -1
};
Fusions plan_fusions(const ir::Graph& g);

}  // namespace bitnetc
