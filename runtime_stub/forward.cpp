#include "forward.h"

#include <stdexcept>
#include <string>

namespace bitnetc::rt {

uint64_t decode_bytes_per_token(const ir::Graph& g, std::span<const TernaryRecord> ternary,
                                std::span<const DenseRecord> dense) {
  uint64_t bytes = 0;
  for (const TernaryRecord& r : ternary) bytes += packed_bytes(r);
  std::vector<bool> head(dense.size(), false);
  for (const ir::Op& op : g.ops)
    if (op.kind == ir::OpKind::DenseMatmul || op.kind == ir::OpKind::KQuantMatmul ||
        op.kind == ir::OpKind::Q8_0Matmul)
      head[op.weight] = true;
  for (size_t i = 0; i < dense.size(); ++i) {
    const DenseRecord& r = dense[i];
    if (r.storage == DenseStorage::KQuant || r.storage == DenseStorage::Q8_0) {  // all of a head, one row of an embedding
      const uint64_t all =
          r.storage == DenseStorage::KQuant ? kquant_bytes(r) : q8_0_sections(r.rows_padded, r.cols).end;
      bytes += head[i] ? all : all / static_cast<uint64_t>(r.rows_padded);
      continue;
    }
    bytes += (head[i] ? static_cast<uint64_t>(r.rows_padded) : 1) * static_cast<uint64_t>(r.cols) * element_bytes(r.storage);
  }
  return bytes;
}

void check_forward_args(const ir::Graph& g, std::span<const int32_t> tokens, int32_t pos, int32_t next_pos) {
  if (tokens.empty()) throw std::invalid_argument("no tokens to feed");
  if (pos < 0 || pos > next_pos) throw std::logic_error("positions must be fed in order");
  if (pos + static_cast<int64_t>(tokens.size()) > g.n_ctx)
    throw std::out_of_range("position " + std::to_string(pos + tokens.size() - 1) + " is outside the context of " +
                            std::to_string(g.n_ctx));
  for (int32_t t : tokens)
    if (t < 0 || t >= g.n_vocab) throw std::out_of_range("token id " + std::to_string(t) + " out of range");
}

void check_step_rows(const ir::Graph& g, std::span<const BatchRow> rows, std::span<const int32_t> next_pos) {
  if (rows.empty()) throw std::invalid_argument("no tokens to feed");
  // Per sequence: the position its next row in this step must have (-1: none yet).
  std::vector<int64_t> expect(next_pos.size(), -1);
  for (const BatchRow& r : rows) {
    if (r.seq < 0 || static_cast<size_t>(r.seq) >= next_pos.size())
      throw std::out_of_range("sequence " + std::to_string(r.seq) + " is not one of the " +
                              std::to_string(next_pos.size()) + " this forward pass holds");
    if (r.token < 0 || r.token >= g.n_vocab)
      throw std::out_of_range("token id " + std::to_string(r.token) + " out of range");
    if (r.pos < 0 || r.pos >= g.n_ctx)
      throw std::out_of_range("position " + std::to_string(r.pos) + " is outside the context of " +
                              std::to_string(g.n_ctx));
    int64_t& e = expect[r.seq];
    if (e < 0 ? r.pos > next_pos[r.seq] : r.pos != e) throw std::logic_error("positions must be fed in order");
    e = r.pos + 1;
  }
}

std::vector<BatchRow> rows_of_one_sequence(std::span<const int32_t> tokens, int32_t pos) {
  std::vector<BatchRow> rows(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) rows[i] = {0, pos + static_cast<int32_t>(i), tokens[i], false};
  if (!rows.empty()) rows.back().logits = true;
  return rows;
}

}  // namespace bitnetc::rt
