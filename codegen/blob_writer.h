// The blob writer: the one place that writes the format runtime_stub/model_blob.h
// defines and runtime_stub/engine/compiled_model.cpp reads (the graph without weight data, the
// vocabulary, the stop tokens, the weights' records, the CPU plan's steps, the CUDA
// plan, then the weights, page aligned, each tensor 64-byte aligned). The on-disk
// structs are pinned by static_asserts beside their definitions (model_blob.h,
// cpu_plan.h, cuda_plan.h): an x86-64 bitnetc writes what an aarch64 runtime reads.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "cpu_program.h"
#include "ir.h"
#include "model_import.h"
#include "packing.h"
#include "vocab_io.h"

namespace bitnetc::codegen {

// What bitnet_model_load(path) checks a path against: rt::model_fingerprint of the model
// file (for a checkpoint folder, its model.safetensors).
uint64_t source_fingerprint(const ImportedModel& m);

struct BlobContents {
  const rt::Vocab& vocab;
  const std::vector<int32_t>& stop_tokens;
  const CpuPlan& cpu_plan;                 // empty for CUDA targets
  const std::vector<uint8_t>& cuda_plan;   // empty for CPU targets
  int batch;                               // BlobHeader::batch: rows per prefill kernel call
  uint64_t fingerprint;
  bool external_weights;                   // --weights=external: the weights' hash goes in the header
};

using BlobSink = std::function<void(std::span<const uint8_t>)>;

// The blob in two parts, so that it is never whole in memory: `head`, everything before
// the weights (the records hold the weights' final offsets), and the weights, which
// `write_weights(sink)` streams in order (`size` bytes of blob in all), releasing
// `packed`'s bytes after them. `packed` must outlive the Blob.
struct Blob {
  std::vector<uint8_t> head;
  uint64_t size = 0;
  std::function<void(const BlobSink&)> write_weights;
};
Blob layout_blob(ir::Graph g, PackedWeights& packed, const BlobContents& contents);

}  // namespace bitnetc::codegen
