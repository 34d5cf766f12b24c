// GGUF v3 writer: metadata of every value type (nested arrays included) and tensors of
// every type bitnetc reads. Used by `bitnetc convert`, the synthetic-model generator
// and the tests (which corrupt its output on purpose).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gguf.h"
#include "tensor_types.h"

namespace bitnetc {

// A metadata value to be written.
struct GgufOut {
  GgufValueType type = GgufValueType::UINT32;
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string s;
  GgufValueType elem = GgufValueType::UINT32;  // arrays
  std::vector<GgufOut> items;

  static GgufOut u32(uint32_t v) {
    GgufOut o;
    o.type = GgufValueType::UINT32;
    o.u = v;
    return o;
  }
  static GgufOut i32(int32_t v) {
    GgufOut o;
    o.type = GgufValueType::INT32;
    o.i = v;
    return o;
  }
  static GgufOut u64(uint64_t v) {
    GgufOut o;
    o.type = GgufValueType::UINT64;
    o.u = v;
    return o;
  }
  static GgufOut f32(float v) {
    GgufOut o;
    o.type = GgufValueType::FLOAT32;
    o.f = v;
    return o;
  }
  static GgufOut boolean(bool v) {
    GgufOut o;
    o.type = GgufValueType::BOOL;
    o.b = v;
    return o;
  }
  static GgufOut str(std::string v) {
    GgufOut o;
    o.type = GgufValueType::STRING;
    o.s = std::move(v);
    return o;
  }
  static GgufOut scalar(GgufValueType t, double v);  // any numeric type
  static GgufOut array(GgufValueType elem, std::vector<GgufOut> items) {
    GgufOut o;
    o.type = GgufValueType::ARRAY;
    o.elem = elem;
    o.items = std::move(items);
    return o;
  }
  static GgufOut strings(const std::vector<std::string>& v);
  static GgufOut f32s(const std::vector<float>& v);
  static GgufOut i32s(const std::vector<int32_t>& v);
};

class GgufWriter {
 public:
  explicit GgufWriter(uint32_t version = 3) : version_(version) {}

  void set(std::string key, GgufOut value);  // replaces an existing key
  // `ne` in ggml order (ne[0] = row length). `data` must have exactly
  // tensor_nbytes(type, ne[0], rows) bytes, or tensor_file_bytes (TL1/TL2 as bitnet.cpp's
  // converter writes them).
  void add_tensor(std::string name, TensorType type, std::vector<uint64_t> ne, std::vector<uint8_t> data);

  uint64_t alignment() const { return alignment_; }

  std::vector<uint8_t> serialize() const;
  void write(const std::string& path) const;  // atomically

  // The file type id written for `t` (bitnet.cpp's ids for I2_S/TL1/TL2).
  static uint32_t file_type_id(TensorType t);

 private:
  struct Tensor {
    std::string name;
    TensorType type;
    std::vector<uint64_t> ne;
    std::vector<uint8_t> data;
  };
  uint32_t version_;
  uint64_t alignment_ = GgufFile::kDefaultAlignment;
  std::vector<std::pair<std::string, GgufOut>> kv_;
  std::vector<Tensor> tensors_;
};

}  // namespace bitnetc
