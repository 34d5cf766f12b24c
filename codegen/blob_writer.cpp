#include "blob_writer.h"

#include <malloc.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "model_blob.h"
#include "model_fingerprint.h"
#include "serialize.h"

namespace bitnetc::codegen {

uint64_t source_fingerprint(const ImportedModel& m) {
  std::filesystem::path p = m.path;
  if (std::filesystem::is_directory(p)) p /= "model.safetensors";
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error(p.string() + ": cannot read it again for its fingerprint");
  const uint64_t h = rt::model_fingerprint(in);
  if (in.bad()) throw std::runtime_error(p.string() + ": read failed while taking its fingerprint");
  return h;
}

namespace {

// The weights region in blob order: each packed tensor (then its block scales), and each
// dense weight (then its row scales), 64-byte aligned one after the other from
// `weights_off`. `piece(data, size, offset)` sees each with its offset in the blob.
template <class Piece>
void for_each_weight(PackedWeights& p, uint64_t weights_off, Piece&& piece) {
  uint64_t at = weights_off;
  auto next = [&](const void* data, size_t size, uint64_t& off) {
    at = (at + 63) / 64 * 64;
    off = at;
    piece(static_cast<const uint8_t*>(data), size, at);
    at += size;
  };
  for (size_t i = 0; i < p.ternary.size(); ++i) {
    next(p.ternary_bytes[i].data(), p.ternary_bytes[i].size(), p.ternary[i].off);
    if (p.ternary[i].block_scales)
      next(p.ternary_block_scales[i].data(), p.ternary_block_scales[i].size() * sizeof(float),
           p.ternary[i].block_scales_off);
  }
  for (size_t i = 0; i < p.dense.size(); ++i) {
    next(p.dense_bytes[i].data(), p.dense_bytes[i].size(), p.dense[i].off);
    next(p.dense_scales[i].data(), p.dense_scales[i].size() * sizeof(float), p.dense[i].scales_off);
  }
}

}  // namespace

Blob layout_blob(ir::Graph g, PackedWeights& p, const BlobContents& c) {
  for (auto& t : g.ternary) t.w.codes.clear();
  for (auto& d : g.dense) std::vector<float>().swap(d.data);
  const std::vector<uint8_t> graph = ir::serialize(g), voc = rt::serialize_vocab(c.vocab);
  const std::vector<rt::CpuStep>& steps = c.cpu_plan.steps;
  Blob blob;
  std::vector<uint8_t>& head = blob.head;
  head.resize(sizeof(rt::BlobHeader), 0);
  rt::BlobHeader h{};
  h.magic = rt::kBlobMagic;
  h.version = rt::kBlobVersion;
  h.batch = static_cast<uint32_t>(c.batch);
  h.source_fingerprint = c.fingerprint;
  auto align = [&](size_t a) { head.resize((head.size() + a - 1) / a * a, 0); };
  auto append = [&](const void* data, size_t size, uint64_t& off) {
    align(64);
    off = head.size();
    head.insert(head.end(), static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + size);
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
  h.weights_off = head.size();
  // The weights' offsets (and, for --weights=external, their hash, zero padding included,
  // as the runtime computes it over the side file) without copying them.
  uint64_t end = h.weights_off, hash = 0xcbf29ce484222325ull;
  for_each_weight(p, h.weights_off, [&](const uint8_t* data, size_t size, uint64_t at) {
    static const uint8_t zeros[64] = {};
    if (c.external_weights) {
      hash = rt::fnv1a64(zeros, at - end, hash);
      hash = rt::fnv1a64(data, size, hash);
    }
    end = at + size;
  });
  h.weights_size = end - h.weights_off;
  if (c.external_weights) {
    h.external_weights = 1;
    h.weights_hash = hash;
  }
  std::memcpy(head.data() + h.records_off, p.ternary.data(), p.ternary.size() * sizeof(rt::TernaryRecord));
  std::memcpy(head.data() + h.dense_records_off, p.dense.data(), p.dense.size() * sizeof(rt::DenseRecord));
  std::memcpy(head.data(), &h, sizeof h);
  blob.size = end;
  blob.write_weights = [&p, weights_off = h.weights_off](const BlobSink& sink) {
    uint64_t written = weights_off;
    for_each_weight(p, weights_off, [&](const uint8_t* data, size_t size, uint64_t at) {
      static const uint8_t zeros[64] = {};
      sink({zeros, static_cast<size_t>(at - written)});
      sink({data, size});
      written = at + size;
    });
    // Written: the packed bytes go, and their pages back to the system at once (glibc
    // keeps freed heap memory otherwise).
    for (auto& b : p.ternary_bytes) std::vector<uint8_t>().swap(b);
    for (auto& b : p.ternary_block_scales) std::vector<float>().swap(b);
    for (auto& b : p.dense_bytes) std::vector<uint8_t>().swap(b);
    for (auto& b : p.dense_scales) std::vector<float>().swap(b);
    ::malloc_trim(0);
  };
  return blob;
}

}  // namespace bitnetc::codegen
