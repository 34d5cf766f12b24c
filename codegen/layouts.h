// Which weight layout each ternary matmul gets on a target: `--layout=auto|i2_s|tl1|tl2`.
//
// Matmuls that read the same activations share a layout (they share the quantized,
// zero-padded activation buffer, and the layouts pad K differently). `auto` picks, per
// such group, the layout with the least measured time for the group's shapes on the
// target (TargetInfo::layout_figures, written from bench/bench_layouts), among the
// layouts the target has kernels for (TargetInfo::layouts: I2_S everywhere, TL1 on ARM
// and wasm32-simd, TL2 on x86) and that the group's activations and scales allow (the
// lookup tables take per-token activations and one scale per tensor only). A target
// without figures gets its preferred layout, the first of its row.
#pragma once

#include <string>
#include <vector>

#include "ir.h"
#include "model_blob.h"
#include "model_import.h"
#include "targets.h"

namespace bitnetc::codegen {

enum class LayoutRequest { Auto, I2S, TL1, TL2 };
LayoutRequest parse_layout_request(const std::string& s);  // throws on an unknown name
const char* layout_label(rt::TernaryLayout l);            // "i2_s", "tl1", "tl2"
TensorType tensor_type_of(rt::TernaryLayout l);           // whose figures measure it (CUDA: I2_S)

struct LayoutChoice {
  rt::TernaryLayout layout;
  std::string reason;
};

// One choice per g.ternary entry. Throws std::invalid_argument for a layout the target
// or the model's activations cannot take, naming the tensor. With the model, `auto` also
// keeps I2_S for a group whose stored type can carry a scale per row or block (TQ1_0,
// TQ2_0, IQ1_BN, IQ2_BN): the lookup-table kernels take one scale per tensor.
std::vector<LayoutChoice> choose_layouts(const ir::Graph& g, const TargetInfo& target, LayoutRequest request,
                                         const ImportedModel* model = nullptr);

// The activation block of a ternary matmul's input (K for per-token quantization and for
// Q8_K64, whose groups interleave across the whole row).
int64_t act_block_of(const ir::Graph& g, const ir::Op& matmul, int64_t K);
// The quantizer of a ternary matmul's input.
ir::ActQuant act_quant_of(const ir::Graph& g, const ir::Op& matmul);

}  // namespace bitnetc::codegen
