#include "gguf.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace bitnetc {

namespace {

constexpr int kMaxArrayDepth = 8;  // nested arrays deeper than this are rejected
constexpr uint32_t kMaxDims = 4;   // GGML_MAX_DIMS

std::string hex32(uint32_t v) {
  static const char* d = "0123456789abcdef";
  std::string s = "0x";
  for (int k = 7; k >= 0; --k) s += d[(v >> (4 * k)) & 15];
  return s;
}

// Upstream ggml's type ids (ggml.h). Ids 36..39 are handled by resolve_type_id.
std::optional<TensorType> upstream_type(uint32_t id) {
  switch (id) {
    case 0: return TensorType::F32;
    case 1: return TensorType::F16;
    case 2: return TensorType::Q4_0;
    case 3: return TensorType::Q4_1;
    case 6: return TensorType::Q5_0;
    case 7: return TensorType::Q5_1;
    case 8: return TensorType::Q8_0;
    case 9: return TensorType::Q8_1;
    case 10: return TensorType::Q2_K;
    case 11: return TensorType::Q3_K;
    case 12: return TensorType::Q4_K;
    case 13: return TensorType::Q5_K;
    case 14: return TensorType::Q6_K;
    case 15: return TensorType::Q8_K;
    case 16: return TensorType::IQ2_XXS;
    case 17: return TensorType::IQ2_XS;
    case 18: return TensorType::IQ3_XXS;
    case 19: return TensorType::IQ1_S;
    case 20: return TensorType::IQ4_NL;
    case 21: return TensorType::IQ3_S;
    case 22: return TensorType::IQ2_S;
    case 23: return TensorType::IQ4_XS;
    case 24: return TensorType::I8;
    case 25: return TensorType::I16;
    case 26: return TensorType::I32;
    case 27: return TensorType::I64;
    case 28: return TensorType::F64;
    case 29: return TensorType::IQ1_M;
    case 30: return TensorType::BF16;
    case 34: return TensorType::TQ1_0;
    case 35: return TensorType::TQ2_0;
    case 134: return TensorType::IQ1_BN;  // ik_llama.cpp's (no upstream type has these ids)
    case 135: return TensorType::IQ2_BN;
    default: return std::nullopt;
  }
}

class Parser {
 public:
  Parser(const MappedFile& f) : cur_(f.path(), f.bytes()) {}

  ByteCursor cur_;
  int depth_ = 0;

  std::string_view read_string(std::string_view field) {
    const uint64_t at = cur_.offset();
    const uint64_t len = cur_.read<uint64_t>(field);
    if (len > cur_.remaining()) {
      cur_.fail_at(at, field,
                   "string length " + std::to_string(len) + " exceeds the " + std::to_string(cur_.remaining()) +
                       " bytes left in the file");
    }
    auto bytes = cur_.take(len, field);
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
  }

  GgufValueType read_type(std::string_view field) {
    const uint64_t at = cur_.offset();
    const uint32_t t = cur_.read<uint32_t>(field);
    if (t > static_cast<uint32_t>(GgufValueType::FLOAT64))
      cur_.fail_at(at, field, "unknown metadata value type " + std::to_string(t));
    return static_cast<GgufValueType>(t);
  }

  GgufValue read_value(GgufValueType type, const std::string& field) {
    GgufValue v;
    v.type = type;
    v.offset = cur_.offset();
    switch (type) {
      case GgufValueType::UINT8:
        v.u = cur_.read<uint8_t>(field);
        v.i = static_cast<int64_t>(v.u);
        break;
      case GgufValueType::INT8: v.i = cur_.read<int8_t>(field); break;
      case GgufValueType::UINT16:
        v.u = cur_.read<uint16_t>(field);
        v.i = static_cast<int64_t>(v.u);
        break;
      case GgufValueType::INT16: v.i = cur_.read<int16_t>(field); break;
      case GgufValueType::UINT32:
        v.u = cur_.read<uint32_t>(field);
        v.i = static_cast<int64_t>(v.u);
        break;
      case GgufValueType::INT32: v.i = cur_.read<int32_t>(field); break;
      case GgufValueType::UINT64:
        v.u = cur_.read<uint64_t>(field);
        v.i = static_cast<int64_t>(v.u);
        break;
      case GgufValueType::INT64: v.i = cur_.read<int64_t>(field); break;
      case GgufValueType::FLOAT32: v.f = cur_.read<float>(field); break;
      case GgufValueType::FLOAT64: v.f = cur_.read<double>(field); break;
      case GgufValueType::BOOL: {
        const uint8_t b = cur_.read<uint8_t>(field);
        if (b > 1) cur_.fail_at(v.offset, field, "bool value " + std::to_string(b) + " is neither 0 nor 1");
        v.b = b != 0;
        break;
      }
      case GgufValueType::STRING: v.str = read_string(field); break;
      case GgufValueType::ARRAY: read_array(v, field); break;
    }
    if (type == GgufValueType::INT8 || type == GgufValueType::INT16 || type == GgufValueType::INT32 ||
        type == GgufValueType::INT64)
      v.u = static_cast<uint64_t>(v.i);
    return v;
  }

  void read_array(GgufValue& v, const std::string& field) {
    if (++depth_ > kMaxArrayDepth)
      cur_.fail(field, "arrays nested deeper than " + std::to_string(kMaxArrayDepth) + " levels");
    v.elem_type = read_type(field + ".type");
    const uint64_t count_at = cur_.offset();
    v.count = cur_.read<uint64_t>(field + ".count");
    // Every element takes at least this many bytes, so a count the file cannot hold is
    // refused before anything is allocated.
    const uint64_t min_elem = v.elem_type == GgufValueType::STRING  ? 8
                              : v.elem_type == GgufValueType::ARRAY ? 12
                                                                    : gguf_scalar_size(v.elem_type);
    if (v.count > cur_.remaining() / min_elem)
      cur_.fail_at(count_at, field + ".count",
                   "array of " + std::to_string(v.count) + " " + gguf_value_type_name(v.elem_type) +
                       " cannot fit in the " + std::to_string(cur_.remaining()) + " bytes left in the file");
    if (v.elem_type == GgufValueType::STRING) {
      v.strings.reserve(v.count);
      for (uint64_t k = 0; k < v.count; ++k) v.strings.push_back(read_string(field + "[" + std::to_string(k) + "]"));
    } else if (v.elem_type == GgufValueType::ARRAY) {
      v.arrays.reserve(v.count);
      for (uint64_t k = 0; k < v.count; ++k)
        v.arrays.push_back(read_value(GgufValueType::ARRAY, field + "[" + std::to_string(k) + "]"));
    } else {
      v.raw = cur_.take(v.count * min_elem, field).data();
      if (v.elem_type == GgufValueType::BOOL)
        for (uint64_t k = 0; k < v.count; ++k)
          if (v.raw[k] > 1)
            cur_.fail_at(count_at + 8 + k, field + "[" + std::to_string(k) + "]", "bool value is neither 0 nor 1");
    }
    --depth_;
  }
};

}  // namespace

const char* gguf_value_type_name(GgufValueType t) {
  static const char* names[] = {"uint8", "int8",   "uint16", "int16",  "uint32", "int32",  "float32",
                                "bool",  "string", "array",  "uint64", "int64",  "float64"};
  return names[static_cast<uint32_t>(t)];
}

uint32_t gguf_scalar_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8:
    case GgufValueType::INT8:
    case GgufValueType::BOOL: return 1;
    case GgufValueType::UINT16:
    case GgufValueType::INT16: return 2;
    case GgufValueType::UINT32:
    case GgufValueType::INT32:
    case GgufValueType::FLOAT32: return 4;
    case GgufValueType::UINT64:
    case GgufValueType::INT64:
    case GgufValueType::FLOAT64: return 8;
    default: return 0;
  }
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufValueType::UINT8:
    case GgufValueType::INT8:
    case GgufValueType::UINT16:
    case GgufValueType::INT16:
    case GgufValueType::UINT32:
    case GgufValueType::INT32:
    case GgufValueType::UINT64:
    case GgufValueType::INT64: return true;
    default: return false;
  }
}

double GgufValue::array_f64(uint64_t k) const {
  const uint8_t* p = raw + k * gguf_scalar_size(elem_type);
  switch (elem_type) {
    case GgufValueType::FLOAT32: {
      float x;
      std::memcpy(&x, p, 4);
      return x;
    }
    case GgufValueType::FLOAT64: {
      double x;
      std::memcpy(&x, p, 8);
      return x;
    }
    default: return static_cast<double>(array_i64(k));
  }
}

int64_t GgufValue::array_i64(uint64_t k) const {
  const uint8_t* p = raw + k * gguf_scalar_size(elem_type);
  switch (elem_type) {
    case GgufValueType::UINT8:
    case GgufValueType::BOOL: return p[0];
    case GgufValueType::INT8: return static_cast<int8_t>(p[0]);
    case GgufValueType::UINT16: {
      uint16_t x;
      std::memcpy(&x, p, 2);
      return x;
    }
    case GgufValueType::INT16: {
      int16_t x;
      std::memcpy(&x, p, 2);
      return x;
    }
    case GgufValueType::UINT32: {
      uint32_t x;
      std::memcpy(&x, p, 4);
      return x;
    }
    case GgufValueType::INT32: {
      int32_t x;
      std::memcpy(&x, p, 4);
      return x;
    }
    case GgufValueType::UINT64:
    case GgufValueType::INT64: {
      int64_t x;
      std::memcpy(&x, p, 8);
      return x;
    }
    case GgufValueType::FLOAT32: {
      float x;
      std::memcpy(&x, p, 4);
      return static_cast<int64_t>(x);
    }
    case GgufValueType::FLOAT64: {
      double x;
      std::memcpy(&x, p, 8);
      return static_cast<int64_t>(x);
    }
    default: return 0;
  }
}

uint64_t GgufTensor::n_elements() const {
  uint64_t n = 1;
  for (uint64_t d : ne) n *= d;  // overflow was ruled out while parsing
  return n;
}

GgufFile GgufFile::open(const std::string& path) { return parse(MappedFile(path)); }

void GgufFile::fail(uint64_t offset, std::string_view field, const std::string& message) const {
  throw ImportError(file_->path(), offset, std::string(field), message);
}

GgufFile GgufFile::parse(MappedFile mapped) {
  GgufFile g;
  g.file_ = std::make_unique<MappedFile>(std::move(mapped));
  Parser p(*g.file_);
  ByteCursor& cur = p.cur_;

  // ---- header ----
  const uint32_t magic = cur.read<uint32_t>("magic");
  if (magic != kMagic) cur.fail_at(0, "magic", "not a GGUF file (magic " + hex32(magic) + ", expected \"GGUF\")");
  g.version_ = cur.read<uint32_t>("version");
  if (g.version_ == 1) cur.fail_at(4, "version", "GGUF version 1 is not supported (only 2 and 3)");
  if (g.version_ != 2 && g.version_ != 3) {
    const bool swapped = __builtin_bswap32(g.version_) == 2 || __builtin_bswap32(g.version_) == 3;
    cur.fail_at(4, "version",
                swapped ? "big-endian GGUF is not supported"
                        : "unsupported GGUF version " + std::to_string(g.version_) + " (expected 2 or 3)");
  }
  const uint64_t n_tensors_at = cur.offset();
  const uint64_t n_tensors = cur.read<uint64_t>("n_tensors");
  const uint64_t n_kv_at = cur.offset();
  const uint64_t n_kv = cur.read<uint64_t>("n_kv");
  // Smallest possible encodings: a KV is key length (8) + 1 key byte + type (4) + 1;
  // a tensor info is name length (8) + n_dims (4) + one dim (8) + type (4) + offset (8).
  if (n_kv > cur.remaining() / 14)
    cur.fail_at(
        n_kv_at, "n_kv",
        std::to_string(n_kv) + " metadata entries cannot fit in a " + std::to_string(g.file_size()) + "-byte file");
  if (n_tensors > cur.remaining() / 32)
    cur.fail_at(n_tensors_at, "n_tensors",
                std::to_string(n_tensors) + " tensors cannot fit in a " + std::to_string(g.file_size()) + "-byte file");

  // ---- metadata ----
  g.kv_.reserve(n_kv);
  for (uint64_t k = 0; k < n_kv; ++k) {
    const std::string field = "metadata[" + std::to_string(k) + "]";
    GgufKV kv;
    kv.offset = cur.offset();
    kv.key = p.read_string(field + ".key");
    if (kv.key.empty()) cur.fail_at(kv.offset, field + ".key", "empty key");
    if (!is_valid_utf8(kv.key)) cur.fail_at(kv.offset, field + ".key", "key is not valid UTF-8");
    const std::string vfield = std::string(kv.key);
    const GgufValueType type = p.read_type(vfield + ".type");
    kv.value = p.read_value(type, vfield);
    if (!g.kv_index_.emplace(kv.key, g.kv_.size()).second)
      cur.fail_at(kv.offset, field + ".key", "duplicate key \"" + std::string(kv.key) + "\"");
    g.kv_.push_back(std::move(kv));
  }

  if (const GgufKV* a = g.find("general.alignment")) {
    const GgufValue& v = a->value;
    if (v.type != GgufValueType::UINT32)
      g.fail(v.offset, "general.alignment", std::string("must be uint32, found ") + gguf_value_type_name(v.type));
    if (v.u == 0 || (v.u & (v.u - 1)) != 0)
      g.fail(v.offset, "general.alignment", std::to_string(v.u) + " is not a power of two");
    g.alignment_ = v.u;
  }

  // ---- tensor infos ----
  g.tensors_.reserve(n_tensors);
  for (uint64_t k = 0; k < n_tensors; ++k) {
    const std::string field = "tensor_infos[" + std::to_string(k) + "]";
    GgufTensor t;
    t.info_offset = cur.offset();
    t.name = p.read_string(field + ".name");
    if (t.name.empty()) cur.fail_at(t.info_offset, field + ".name", "empty tensor name");
    if (!is_valid_utf8(t.name)) cur.fail_at(t.info_offset, field + ".name", "tensor name is not valid UTF-8");
    const std::string tf = "tensor \"" + std::string(t.name) + "\"";
    const uint64_t ndims_at = cur.offset();
    const uint32_t n_dims = cur.read<uint32_t>(tf + ".n_dims");
    if (n_dims == 0 || n_dims > kMaxDims)
      cur.fail_at(ndims_at, tf + ".n_dims", std::to_string(n_dims) + " dimensions (1 to 4 are allowed)");
    uint64_t n = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t at = cur.offset();
      const uint64_t ne = cur.read<uint64_t>(tf + ".ne[" + std::to_string(d) + "]");
      if (ne == 0 || ne > static_cast<uint64_t>(INT64_MAX))
        cur.fail_at(at, tf + ".ne[" + std::to_string(d) + "]", "dimension " + std::to_string(ne) + " is out of range");
      if (checked_mul(n, ne, &n) || n > static_cast<uint64_t>(INT64_MAX))
        cur.fail_at(at, tf + ".ne", "the product of the dimensions overflows 64 bits");
      t.ne.push_back(ne);
    }
    const uint64_t type_at = cur.offset();
    t.type_id = cur.read<uint32_t>(tf + ".type");
    const uint64_t off_at = cur.offset();
    t.rel_offset = cur.read<uint64_t>(tf + ".offset");
    if (t.rel_offset % g.alignment_ != 0)
      cur.fail_at(off_at, tf + ".offset",
                  "data offset " + std::to_string(t.rel_offset) + " is not a multiple of the alignment " +
                      std::to_string(g.alignment_));
    (void)type_at;
    if (!g.tensor_index_.emplace(t.name, g.tensors_.size()).second)
      cur.fail_at(t.info_offset, field + ".name", "duplicate tensor name \"" + std::string(t.name) + "\"");
    g.tensors_.push_back(std::move(t));
  }

  // Tensor type ids 36..39 mean bitnet.cpp's I2_S, I8_S, TL1, TL2 in bitnet.cpp's ggml
  // fork, while upstream ggml retired 36..38 (IQ4_NL_x_x repack types, never valid in
  // a file now) and gave 39 to MXFP4. So 36 and 38 are bitnet.cpp's; 39 is TL2 when the
  // file is otherwise bitnet.cpp's (architecture "bitnet-b1.58", another I2_S/TL1
  // tensor, or the "<name>_scale" tensor bitnet.cpp writes next to each TL tensor) and
  // MXFP4 otherwise. I8_S (37) is an activation type and never appears in a model file.
  bool dialect = g.architecture() == "bitnet-b1.58";
  for (const auto& t : g.tensors_) {
    if (t.type_id == 36 || t.type_id == 38) dialect = true;
    if (t.type_id == 39 && g.tensor_index_.count(std::string(t.name) + "_scale")) dialect = true;
  }
  g.bitnet_cpp_dialect_ = dialect;

  // ---- data section ----
  uint64_t data_offset = cur.offset();
  if (data_offset % g.alignment_ != 0) data_offset += g.alignment_ - data_offset % g.alignment_;
  // A file without tensors (llama.cpp's vocab-only files) may end before the padding.
  if (data_offset > g.file_size() && !g.tensors_.empty())
    cur.fail_at(cur.offset(), "data",
                "the data section (at " + std::to_string(data_offset) + ") starts past the end of the file (" +
                    std::to_string(g.file_size()) + ")");
  g.data_offset_ = data_offset;

  for (auto& t : g.tensors_) {
    const std::string tf = "tensor \"" + std::string(t.name) + "\"";
    const uint64_t type_at = t.info_offset + 8 + t.name.size() + 4 + 8 * t.ne.size();
    std::optional<TensorType> type = upstream_type(t.type_id);
    if (t.type_id == 36 && dialect) type = TensorType::I2_S;
    if (t.type_id == 38 && dialect) type = TensorType::TL1;
    if (t.type_id == 39) type = dialect ? TensorType::TL2 : TensorType::MXFP4;
    if (!type) g.fail(type_at, tf + ".type", "unknown tensor type id " + std::to_string(t.type_id));
    t.type = *type;
    // What the file must hold (bitnet.cpp's TL tensors omit ggml's slack).
    const auto nbytes = tensor_file_bytes(t.type, t.row_len(), t.n_rows());
    if (!nbytes)
      g.fail(type_at, tf + ".type",
             std::string("row length ") + std::to_string(t.row_len()) + " is not a whole number of " +
                 type_name(t.type) + " blocks (" + std::to_string(type_traits(t.type).block_size) + " elements)");
    t.nbytes = *nbytes;
    uint64_t end;
    if (checked_add(data_offset, t.rel_offset, &t.file_offset) || checked_add(t.file_offset, t.nbytes, &end) ||
        end > g.file_size())
      g.fail(type_at + 4, tf + ".offset",
             "data [" + std::to_string(t.rel_offset) + ", +" + std::to_string(t.nbytes) +
                 ") runs past the end of the file (data section holds " + std::to_string(g.file_size() - data_offset) +
                 " bytes)");
    t.data = g.file_->data() + t.file_offset;
  }

  // Overlapping tensor data means a corrupt or hostile file.
  std::vector<const GgufTensor*> by_offset;
  for (const auto& t : g.tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensor* a, const GgufTensor* b) { return a->rel_offset < b->rel_offset; });
  for (size_t k = 1; k < by_offset.size(); ++k) {
    const GgufTensor* a = by_offset[k - 1];
    const GgufTensor* b = by_offset[k];
    if (a->rel_offset + a->nbytes > b->rel_offset)
      g.fail(b->info_offset, "tensor \"" + std::string(b->name) + "\".offset",
             "data overlaps tensor \"" + std::string(a->name) + "\" ([" + std::to_string(a->rel_offset) + ", " +
                 std::to_string(a->rel_offset + a->nbytes) + ") vs [" + std::to_string(b->rel_offset) + ", ...))");
  }
  return g;
}

const GgufKV* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second];
}

const GgufTensor* GgufFile::tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::string_view GgufFile::architecture() const {
  const GgufKV* kv = find("general.architecture");
  return kv && kv->value.type == GgufValueType::STRING ? kv->value.str : std::string_view{};
}

namespace {
[[noreturn]] void wrong_type(const GgufFile& g, const GgufKV& kv, const char* expected) {
  g.fail(kv.value.offset, kv.key,
         std::string("expected ") + expected + ", found " + gguf_value_type_name(kv.value.type));
}
}  // namespace

std::optional<std::string_view> GgufFile::get_string(std::string_view key) const {
  const GgufKV* kv = find(key);
  if (!kv) return std::nullopt;
  if (kv->value.type != GgufValueType::STRING) wrong_type(*this, *kv, "a string");
  return kv->value.str;
}

std::optional<uint64_t> GgufFile::get_uint(std::string_view key) const {
  const GgufKV* kv = find(key);
  if (!kv) return std::nullopt;
  if (!kv->value.is_integer()) wrong_type(*this, *kv, "an unsigned integer");
  const bool is_signed = kv->value.type == GgufValueType::INT8 || kv->value.type == GgufValueType::INT16 ||
                         kv->value.type == GgufValueType::INT32 || kv->value.type == GgufValueType::INT64;
  if (is_signed && kv->value.i < 0) fail(kv->value.offset, kv->key, "negative value " + std::to_string(kv->value.i));
  return kv->value.u;
}

std::optional<int64_t> GgufFile::get_int(std::string_view key) const {
  const GgufKV* kv = find(key);
  if (!kv) return std::nullopt;
  if (!kv->value.is_integer()) wrong_type(*this, *kv, "an integer");
  if (kv->value.type == GgufValueType::UINT64 && kv->value.u > static_cast<uint64_t>(INT64_MAX))
    fail(kv->value.offset, kv->key, "value out of range");
  return kv->value.i;
}

std::optional<double> GgufFile::get_float(std::string_view key) const {
  const GgufKV* kv = find(key);
  if (!kv) return std::nullopt;
  if (kv->value.is_float()) return kv->value.f;
  if (kv->value.is_integer()) return static_cast<double>(kv->value.i);
  wrong_type(*this, *kv, "a number");
}

std::optional<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufKV* kv = find(key);
  if (!kv) return std::nullopt;
  if (kv->value.type != GgufValueType::BOOL) wrong_type(*this, *kv, "a bool");
  return kv->value.b;
}

const GgufValue* GgufFile::get_array(std::string_view key, GgufValueType elem) const {
  const GgufKV* kv = find(key);
  if (!kv) return nullptr;
  if (kv->value.type != GgufValueType::ARRAY) wrong_type(*this, *kv, "an array");
  if (kv->value.elem_type != elem)
    fail(kv->value.offset, kv->key,
         std::string("expected an array of ") + gguf_value_type_name(elem) + ", found an array of " +
             gguf_value_type_name(kv->value.elem_type));
  return &kv->value;
}

}  // namespace bitnetc
