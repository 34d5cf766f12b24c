// The packing stage: every weight of a lowered graph in the layout the target's kernels
// read (one packer per layout, in a table: I2_S row tiles or row lanes, TL1/TL2 lookup
// tiles, CUDA's 16-weight words; dense weights row-major, in head tiles, k-major, or as
// llama.cpp's k-quant codes), with the record the runtime reads each one by
// (runtime_stub/model_blob.h), and the distinct kernel shapes those layouts need.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dense_matmul.h"
#include "layouts.h"
#include "lower.h"
#include "lut_matmul.h"
#include "model_blob.h"
#include "model_import.h"
#include "targets.h"
#include "ternary_matmul.h"

namespace bitnetc::codegen {

// A CPU ternary matmul kernel's shape: the I2_S pipeline's or a lookup-table one's.
struct TernaryKernel {
  rt::TernaryLayout layout;
  schedules::TernaryMatmulShape i2s;     // I2S
  schedules::LutMatmulShape lut;  // TL1, TL2
};

// The weights of a graph as the target's kernels read them, and the kernels they need.
struct PackedWeights {
  std::vector<rt::TernaryRecord> ternary;  // per g.ternary entry
  std::vector<std::vector<uint8_t>> ternary_bytes;
  std::vector<std::vector<float>> ternary_block_scales;  // per weight: empty, or [blocks][block_scale_rows]
  std::vector<TernaryKernel> ternary_kernels;  // CPU: one per distinct (K, N, activation block, layout, block scales)
  std::vector<LayoutChoice> layouts;           // per ternary weight, with the reason
  std::vector<rt::DenseRecord> dense;          // per g.dense entry
  std::vector<std::vector<uint8_t>> dense_bytes;
  std::vector<std::vector<float>> dense_scales;  // q8 heads
  std::vector<schedules::DenseMatmulShape> dense_kernels;  // CPU: one per distinct head (K, N, storage)
};

// Decodes and packs every weight, one at a time, and releases its decoded form as it
// goes (codes, floats): the decoded copies of a 2B4T-size model are several GB.
// `head_q8`: --head=q8 (an int8 head with a scale per row).
PackedWeights pack_weights(ir::Graph& g, const ImportedModel& m, const DecodeOptions& decode,
                           const TargetInfo& target, bool head_q8, LayoutRequest layout);

// One line per weight for `compile -v`: its layout, packing and kernels, and why.
std::vector<std::string> explain_packing(const ir::Graph& g, const TargetInfo& target, const PackedWeights& p);

}  // namespace bitnetc::codegen
