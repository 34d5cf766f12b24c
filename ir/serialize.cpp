#include "serialize.h"

#include <cstring>
#include <string>

namespace bitnetc::ir {

namespace {

constexpr uint32_t kMagic = 0x47544E42;  // "BNTG"
constexpr uint32_t kVersion = 3;  // 2: dense weights carry their format; 3: and Q8_0 heads

struct Writer {
  std::vector<uint8_t> b;
  template <typename T>
  void put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
  }
  void str(const std::string& s) {
    put<uint32_t>(static_cast<uint32_t>(s.size()));
    b.insert(b.end(), s.begin(), s.end());
  }
  template <typename T>
  void vec(const std::vector<T>& v) {
    put<uint64_t>(v.size());
    const auto* p = reinterpret_cast<const uint8_t*>(v.data());
    b.insert(b.end(), p, p + v.size() * sizeof(T));
  }
};

struct Reader {
  std::span<const uint8_t> b;
  size_t at = 0;
  void need(size_t n) {
    if (n > b.size() - at) throw std::runtime_error("model data truncated at byte " + std::to_string(at));
  }
  template <typename T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, b.data() + at, sizeof(T));
    at += sizeof(T);
    return v;
  }
  std::string str() {
    const uint32_t n = get<uint32_t>();
    need(n);
    std::string s(reinterpret_cast<const char*>(b.data() + at), n);
    at += n;
    return s;
  }
  template <typename T>
  std::vector<T> vec() {
    const uint64_t n = get<uint64_t>();
    if (n > (b.size() - at) / sizeof(T)) throw std::runtime_error("model data truncated at byte " + std::to_string(at));
    std::vector<T> v(n);
    if (n > 0) std::memcpy(v.data(), b.data() + at, n * sizeof(T));  // an empty vector's data() may be null
    at += n * sizeof(T);
    return v;
  }
};

}  // namespace

std::vector<uint8_t> serialize(const Graph& g, bool with_codes) {
  Writer w;
  w.put(kMagic);
  w.put(kVersion);
  w.str(g.name);
  for (int64_t v : {g.n_vocab, g.n_embd, g.n_layer, g.n_ctx, g.n_head_kv, g.head_dim}) w.put(v);
  w.put<int32_t>(g.logits);
  w.put<uint64_t>(g.values.size());
  for (const Value& v : g.values) {
    w.str(v.name);
    w.put(v.dtype);
    w.put(v.size);
  }
  w.put<uint64_t>(g.ops.size());
  for (const Op& op : g.ops) {
    w.put(op.kind);
    w.vec(op.inputs);
    w.put(op.output);
    w.put(op.weight);
    w.put(op.norm);
    w.put(op.eps);
    w.put(op.quant);
    w.put(op.rope_style);
    w.put(op.rope_freq);
    w.put(op.rope_theta);
    w.put(op.head_dim);
    w.put(op.n_head);
    w.put(op.n_head_kv);
    w.put(op.layer);
    w.put(op.score_scale);
    w.put(op.softmax_sum);
    w.put(op.act);
  }
  w.put<uint64_t>(g.dense.size());
  for (const DenseWeights& d : g.dense) {
    w.str(d.name);
    w.put(d.rows);
    w.put(d.cols);
    w.put(d.format);
    w.vec(d.data);
    const KQuantWeights& k = d.kquant;
    w.put(k.rows);
    w.put(k.cols);
    w.vec(k.q), w.vec(k.sc), w.vec(k.m), w.vec(k.d), w.vec(k.dmin);
    w.put(d.q8_0.rows);
    w.put(d.q8_0.cols);
    w.vec(d.q8_0.q), w.vec(d.q8_0.d);
  }
  w.put<uint64_t>(g.ternary.size());
  for (const NamedTernary& t : g.ternary) {
    w.str(t.name);
    w.put(t.w.rows);
    w.put(t.w.cols);
    w.put(t.w.scale_block);
    w.vec(t.w.scales);
    w.vec(with_codes ? t.w.codes : std::vector<int8_t>{});
  }
  return w.b;
}

Graph deserialize(std::span<const uint8_t> bytes) {
  Reader r{bytes};
  if (r.get<uint32_t>() != kMagic) throw std::runtime_error("not a bitnetc model (bad magic)");
  if (r.get<uint32_t>() != kVersion) throw std::runtime_error("model data of another bitnetc version");
  Graph g;
  g.name = r.str();
  for (int64_t* v : {&g.n_vocab, &g.n_embd, &g.n_layer, &g.n_ctx, &g.n_head_kv, &g.head_dim}) *v = r.get<int64_t>();
  g.logits = r.get<int32_t>();
  const uint64_t n_values = r.get<uint64_t>();
  for (uint64_t i = 0; i < n_values; ++i) {
    Value v;
    v.name = r.str();
    v.dtype = r.get<DType>();
    v.size = r.get<int64_t>();
    g.values.push_back(std::move(v));
  }
  const uint64_t n_ops = r.get<uint64_t>();
  for (uint64_t i = 0; i < n_ops; ++i) {
    Op op(r.get<OpKind>());
    op.inputs = r.vec<int>();
    op.output = r.get<int>();
    op.weight = r.get<int>();
    op.norm = r.get<NormKind>();
    op.eps = r.get<float>();
    op.quant = r.get<ActQuant>();
    op.rope_style = r.get<RopeStyle>();
    op.rope_freq = r.get<RopeFreq>();
    op.rope_theta = r.get<float>();
    op.head_dim = r.get<int>();
    op.n_head = r.get<int>();
    op.n_head_kv = r.get<int>();
    op.layer = r.get<int>();
    op.score_scale = r.get<ScoreScale>();
    op.softmax_sum = r.get<SoftmaxSum>();
    op.act = r.get<Activation>();
    g.ops.push_back(std::move(op));
  }
  const uint64_t n_dense = r.get<uint64_t>();
  for (uint64_t i = 0; i < n_dense; ++i) {
    DenseWeights d;
    d.name = r.str();
    d.rows = r.get<int64_t>();
    d.cols = r.get<int64_t>();
    d.format = r.get<DenseFormat>();
    if (d.format != DenseFormat::F32 && d.format != DenseFormat::KQuant && d.format != DenseFormat::Q8_0)
      throw std::runtime_error("model data names an unknown weight format");
    d.data = r.vec<float>();
    KQuantWeights& k = d.kquant;
    k.rows = r.get<int64_t>();
    k.cols = r.get<int64_t>();
    k.q = r.vec<int8_t>(), k.sc = r.vec<int8_t>(), k.m = r.vec<int8_t>();
    k.d = r.vec<float>(), k.dmin = r.vec<float>();
    d.q8_0.rows = r.get<int64_t>();
    d.q8_0.cols = r.get<int64_t>();
    d.q8_0.q = r.vec<int8_t>(), d.q8_0.d = r.vec<float>();
    g.dense.push_back(std::move(d));
  }
  const uint64_t n_ternary = r.get<uint64_t>();
  for (uint64_t i = 0; i < n_ternary; ++i) {
    NamedTernary t;
    t.name = r.str();
    t.w.rows = r.get<int64_t>();
    t.w.cols = r.get<int64_t>();
    t.w.scale_block = r.get<uint64_t>();
    t.w.scales = r.vec<float>();
    t.w.codes = r.vec<int8_t>();
    g.ternary.push_back(std::move(t));
  }
  const auto errors = verify(g);
  if (!errors.empty()) throw std::runtime_error("damaged model data: " + errors[0]);
  return g;
}

}  // namespace bitnetc::ir
