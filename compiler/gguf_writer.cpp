#include "gguf_writer.h"

#include <cstring>
#include <stdexcept>

#include "atomic_file.h"

namespace bitnetc {

GgufOut GgufOut::scalar(GgufValueType t, double v) {
  GgufOut o;
  o.type = t;
  o.f = v;
  o.i = static_cast<int64_t>(v);
  o.u = static_cast<uint64_t>(o.i);
  o.b = v != 0;
  return o;
}

GgufOut GgufOut::strings(const std::vector<std::string>& v) {
  std::vector<GgufOut> items;
  items.reserve(v.size());
  for (const auto& s : v) items.push_back(str(s));
  return array(GgufValueType::STRING, std::move(items));
}

GgufOut GgufOut::f32s(const std::vector<float>& v) {
  std::vector<GgufOut> items;
  items.reserve(v.size());
  for (float x : v) items.push_back(f32(x));
  return array(GgufValueType::FLOAT32, std::move(items));
}

GgufOut GgufOut::i32s(const std::vector<int32_t>& v) {
  std::vector<GgufOut> items;
  items.reserve(v.size());
  for (int32_t x : v) items.push_back(i32(x));
  return array(GgufValueType::INT32, std::move(items));
}

void GgufWriter::set(std::string key, GgufOut value) {
  // Lay data out at the declared alignment; a bogus value (tests write them on purpose)
  // is recorded as given but not used for layout.
  if (key == "general.alignment" && value.type == GgufValueType::UINT32 && value.u && !(value.u & (value.u - 1)))
    alignment_ = value.u;
  for (auto& kv : kv_)
    if (kv.first == key) {
      kv.second = std::move(value);
      return;
    }
  kv_.emplace_back(std::move(key), std::move(value));
}

uint32_t GgufWriter::file_type_id(TensorType t) {
  switch (t) {
    case TensorType::F32: return 0;
    case TensorType::F16: return 1;
    case TensorType::Q4_0: return 2;
    case TensorType::Q4_1: return 3;
    case TensorType::Q5_0: return 6;
    case TensorType::Q5_1: return 7;
    case TensorType::Q8_0: return 8;
    case TensorType::Q8_1: return 9;
    case TensorType::Q2_K: return 10;
    case TensorType::Q3_K: return 11;
    case TensorType::Q4_K: return 12;
    case TensorType::Q5_K: return 13;
    case TensorType::Q6_K: return 14;
    case TensorType::Q8_K: return 15;
    case TensorType::IQ2_XXS: return 16;
    case TensorType::IQ2_XS: return 17;
    case TensorType::IQ3_XXS: return 18;
    case TensorType::IQ1_S: return 19;
    case TensorType::IQ4_NL: return 20;
    case TensorType::IQ3_S: return 21;
    case TensorType::IQ2_S: return 22;
    case TensorType::IQ4_XS: return 23;
    case TensorType::I8: return 24;
    case TensorType::I16: return 25;
    case TensorType::I32: return 26;
    case TensorType::I64: return 27;
    case TensorType::F64: return 28;
    case TensorType::IQ1_M: return 29;
    case TensorType::BF16: return 30;
    case TensorType::TQ1_0: return 34;
    case TensorType::TQ2_0: return 35;
    case TensorType::IQ1_BN: return 134;  // ik_llama.cpp's
    case TensorType::IQ2_BN: return 135;
    case TensorType::I2_S: return 36;
    case TensorType::TL1: return 38;
    case TensorType::TL2: return 39;
    case TensorType::MXFP4: return 39;
    case TensorType::U8:
    case TensorType::I2_L2C: break;
  }
  throw std::invalid_argument(std::string("GGUF has no type id for ") + type_name(t));
}

void GgufWriter::add_tensor(std::string name, TensorType type, std::vector<uint64_t> ne, std::vector<uint8_t> data) {
  uint64_t rows = 1;
  for (size_t d = 1; d < ne.size(); ++d) rows *= ne[d];
  const auto expect = tensor_nbytes(type, ne.empty() ? 1 : ne[0], rows);
  const auto payload = tensor_file_bytes(type, ne.empty() ? 1 : ne[0], rows);  // bitnet.cpp's TL files
  if (!expect || (*expect != data.size() && *payload != data.size()))
    throw std::invalid_argument("GgufWriter: tensor " + name + " has " + std::to_string(data.size()) +
                                " bytes, its type and shape need " + (expect ? std::to_string(*expect) : "n/a"));
  tensors_.push_back({std::move(name), type, std::move(ne), std::move(data)});
}

namespace {

struct Out {
  std::vector<uint8_t> b;
  template <typename T>
  void put(T v) {
    uint8_t tmp[sizeof(T)];
    std::memcpy(tmp, &v, sizeof(T));
    b.insert(b.end(), tmp, tmp + sizeof(T));
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
  }
  void pad_to(uint64_t align) {
    while (b.size() % align) b.push_back(0);
  }
};

void put_value(Out& o, GgufValueType t, const GgufOut& v) {
  switch (t) {
    case GgufValueType::UINT8: o.put<uint8_t>(static_cast<uint8_t>(v.u)); break;
    case GgufValueType::INT8: o.put<int8_t>(static_cast<int8_t>(v.i)); break;
    case GgufValueType::UINT16: o.put<uint16_t>(static_cast<uint16_t>(v.u)); break;
    case GgufValueType::INT16: o.put<int16_t>(static_cast<int16_t>(v.i)); break;
    case GgufValueType::UINT32: o.put<uint32_t>(static_cast<uint32_t>(v.u)); break;
    case GgufValueType::INT32: o.put<int32_t>(static_cast<int32_t>(v.i)); break;
    case GgufValueType::UINT64: o.put<uint64_t>(v.u); break;
    case GgufValueType::INT64: o.put<int64_t>(v.i); break;
    case GgufValueType::FLOAT32: o.put<float>(static_cast<float>(v.f)); break;
    case GgufValueType::FLOAT64: o.put<double>(v.f); break;
    case GgufValueType::BOOL: o.put<uint8_t>(v.b ? 1 : 0); break;
    case GgufValueType::STRING: o.str(v.s); break;
    case GgufValueType::ARRAY:
      o.put<uint32_t>(static_cast<uint32_t>(v.elem));
      o.put<uint64_t>(v.items.size());
      for (const auto& item : v.items) put_value(o, v.elem, item);
      break;
  }
}

}  // namespace

std::vector<uint8_t> GgufWriter::serialize() const {
  Out o;
  o.put<uint32_t>(GgufFile::kMagic);
  o.put<uint32_t>(version_);
  o.put<uint64_t>(tensors_.size());
  o.put<uint64_t>(kv_.size());
  for (const auto& [key, value] : kv_) {
    o.str(key);
    o.put<uint32_t>(static_cast<uint32_t>(value.type));
    put_value(o, value.type, value);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    o.str(t.name);
    o.put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
    for (uint64_t d : t.ne) o.put<uint64_t>(d);
    o.put<uint32_t>(file_type_id(t.type));
    o.put<uint64_t>(offset);
    offset += t.data.size();
    offset = (offset + alignment_ - 1) / alignment_ * alignment_;
  }
  o.pad_to(alignment_);
  for (const auto& t : tensors_) {
    o.b.insert(o.b.end(), t.data.begin(), t.data.end());
    o.pad_to(alignment_);
  }
  return o.b;
}

void GgufWriter::write(const std::string& path) const { write_file_atomically(path, serialize()); }

}  // namespace bitnetc
