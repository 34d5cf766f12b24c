#include "vocab_io.h"

#include <cstring>
#include <stdexcept>
#include <string>

namespace bitnetc::rt {

namespace {
constexpr uint32_t kMagic = 0x42564E42;  // "BNVB"

void put_bytes(std::vector<uint8_t>& b, const void* p, size_t n) {
  const auto* u = static_cast<const uint8_t*>(p);
  b.insert(b.end(), u, u + n);
}
template <typename T>
void put(std::vector<uint8_t>& b, T v) {
  put_bytes(b, &v, sizeof v);
}
void put_strings(std::vector<uint8_t>& b, const std::vector<std::string>& v) {
  put<uint64_t>(b, v.size());
  for (const auto& s : v) {
    put<uint32_t>(b, static_cast<uint32_t>(s.size()));
    put_bytes(b, s.data(), s.size());
  }
}

struct In {
  std::span<const uint8_t> b;
  size_t at = 0;
  void need(size_t n) {
    if (n > b.size() - at) throw std::runtime_error("vocabulary data truncated");
  }
  template <typename T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, b.data() + at, sizeof v);
    at += sizeof v;
    return v;
  }
  std::vector<std::string> strings() {
    const uint64_t n = get<uint64_t>();
    if (n > b.size()) throw std::runtime_error("vocabulary data damaged");
    std::vector<std::string> v;
    v.reserve(n);
    for (uint64_t i = 0; i < n; ++i) {
      const uint32_t len = get<uint32_t>();
      need(len);
      v.emplace_back(reinterpret_cast<const char*>(b.data() + at), len);
      at += len;
    }
    return v;
  }
};
}  // namespace

std::vector<uint8_t> serialize_vocab(const Vocab& v) {
  std::vector<uint8_t> b;
  put(b, kMagic);
  put(b, v.kind);
  put(b, v.pre);
  put_strings(b, v.tokens);
  put<uint64_t>(b, v.scores.size());
  put_bytes(b, v.scores.data(), v.scores.size() * sizeof(float));
  put<uint64_t>(b, v.types.size());
  put_bytes(b, v.types.data(), v.types.size());
  put_strings(b, v.merges);
  put_strings(b, v.pre_regexes);
  for (int32_t id : {v.bos, v.eos, v.eot, v.unk}) put(b, id);
  put<uint8_t>(b, v.add_bos);
  put<uint8_t>(b, v.add_space_prefix);
  put<uint8_t>(b, v.ignore_merges);
  put(b, v.chat_template);
  return b;
}

Vocab deserialize_vocab(std::span<const uint8_t> bytes) {
  In in{bytes};
  if (in.get<uint32_t>() != kMagic) throw std::runtime_error("not vocabulary data (bad magic)");
  Vocab v;
  v.kind = in.get<VocabKind>();
  v.pre = in.get<PreTokenizer>();
  v.tokens = in.strings();
  const uint64_t ns = in.get<uint64_t>();
  in.need(ns * sizeof(float));
  v.scores.resize(ns);
  std::memcpy(v.scores.data(), bytes.data() + in.at, ns * sizeof(float));
  in.at += ns * sizeof(float);
  const uint64_t nt = in.get<uint64_t>();
  in.need(nt);
  v.types.resize(nt);
  std::memcpy(v.types.data(), bytes.data() + in.at, nt);
  in.at += nt;
  v.merges = in.strings();
  v.pre_regexes = in.strings();
  v.bos = in.get<int32_t>();
  v.eos = in.get<int32_t>();
  v.eot = in.get<int32_t>();
  v.unk = in.get<int32_t>();
  v.add_bos = in.get<uint8_t>();
  v.add_space_prefix = in.get<uint8_t>();
  v.ignore_merges = in.get<uint8_t>();
  v.chat_template = in.get<ChatTemplate>();
  return v;
}

}  // namespace bitnetc::rt
