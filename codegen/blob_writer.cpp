#include "blob_writer.h"

#include <malloc.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "model_blob.h"
#include "serialize.h"

namespace bitnetc::codegen {

uint64_t source_fingerprint(const ImportedModel& m) {
  std::filesystem::path p = m.path;
  if (std::filesystem::is_directory(p)) p /= "model.safetensors";
  std::ifstream in(p, std::ios::binary);
  uint64_t h = 0xcbf29ce484222325ull;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h = rt::fnv1a64(reinterpret_cast<const uint8_t*>(buf.data()), static_cast<size_t>(in.gcount()), h);
  }
  return h;
}

std::vector<uint8_t> build_blob(ir::Graph g, PackedWeights& p, const BlobContents& c) {
  for (auto& t : g.ternary) t.w.codes.clear();
  for (auto& d : g.dense) std::vector<float>().swap(d.data);
  const std::vector<uint8_t> graph = ir::serialize(g), voc = rt::serialize_vocab(c.vocab);
  const std::vector<rt::CpuStep>& steps = c.cpu_plan.steps;
  // Reserved up front: growing a model-size vector by doubling would hold two copies.
  size_t total = sizeof(rt::BlobHeader) + graph.size() + voc.size() + c.stop_tokens.size() * sizeof(int32_t) +
                 p.ternary.size() * sizeof(rt::TernaryRecord) + p.dense.size() * sizeof(rt::DenseRecord) +
                 steps.size() * sizeof(rt::CpuStep) + c.cuda_plan.size() + 8 * 64 + 4096;
  for (const auto& b : p.ternary_bytes) total += b.size() + 64;
  for (const auto& b : p.ternary_block_scales) total += b.size() * sizeof(float) + 64;
  for (size_t i = 0; i < p.dense.size(); ++i) total += p.dense_bytes[i].size() + p.dense_scales[i].size() * 4 + 128;
  std::vector<uint8_t> blob;
  blob.reserve(total);
  blob.resize(sizeof(rt::BlobHeader), 0);
  rt::BlobHeader h{};
  h.magic = rt::kBlobMagic;
  h.version = rt::kBlobVersion;
  h.batch = static_cast<uint32_t>(c.batch);
  h.source_fingerprint = c.fingerprint;
  auto align = [&](size_t a) {
    while (blob.size() % a) blob.push_back(0);
  };
  auto append = [&](const void* data, size_t size, uint64_t& off) {
    align(64);
    off = blob.size();
    blob.insert(blob.end(), static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + size);
  };
  append(graph.data(), graph.size(), h.graph_off);
  h.graph_size = graph.size();
  append(voc.data(), voc.size(), h.vocab_off);
  h.vocab_size = voc.size();
  append(c.stop_tokens.data(), c.stop_tokens.size() * sizeof(int32_t), h.stop_off);
  h.n_stop = c.stop_tokens.size();
  // Records are written again once the weights' offsets are known.
  append(p.ternary.data(), p.ternary.size() * sizeof(rt::TernaryRecord), h.records_off);
  h.n_records = p.ternary.size();
  append(p.dense.data(), p.dense.size() * sizeof(rt::DenseRecord), h.dense_records_off);
  h.n_dense_records = p.dense.size();
  append(steps.data(), steps.size() * sizeof(rt::CpuStep), h.cpu_steps_off);
  h.n_cpu_steps = steps.size();
  if (!c.cuda_plan.empty()) {
    append(c.cuda_plan.data(), c.cuda_plan.size(), h.cuda_plan_off);
    h.cuda_plan_size = c.cuda_plan.size();
  }
  align(4096);
  h.weights_off = blob.size();
  // Each packed tensor is released as it is copied in, and its pages handed back at once
  // (glibc keeps freed heap memory otherwise).
  for (size_t i = 0; i < p.ternary.size(); ++i) {
    append(p.ternary_bytes[i].data(), p.ternary_bytes[i].size(), p.ternary[i].off);
    std::vector<uint8_t>().swap(p.ternary_bytes[i]);
    if (p.ternary[i].block_scales)
      append(p.ternary_block_scales[i].data(), p.ternary_block_scales[i].size() * sizeof(float),
             p.ternary[i].block_scales_off);
    if (i % 16 == 15) ::malloc_trim(0);
  }
  for (size_t i = 0; i < p.dense.size(); ++i) {
    append(p.dense_bytes[i].data(), p.dense_bytes[i].size(), p.dense[i].off);
    std::vector<uint8_t>().swap(p.dense_bytes[i]);
    ::malloc_trim(0);
    append(p.dense_scales[i].data(), p.dense_scales[i].size() * sizeof(float), p.dense[i].scales_off);
  }
  h.weights_size = blob.size() - h.weights_off;
  if (c.external_weights) {
    h.external_weights = 1;
    h.weights_hash = rt::fnv1a64(blob.data() + h.weights_off, h.weights_size);
  }
  std::memcpy(blob.data() + h.records_off, p.ternary.data(), p.ternary.size() * sizeof(rt::TernaryRecord));
  std::memcpy(blob.data() + h.dense_records_off, p.dense.data(), p.dense.size() * sizeof(rt::DenseRecord));
  std::memcpy(blob.data(), &h, sizeof h);
  return blob;
}

}  // namespace bitnetc::codegen
