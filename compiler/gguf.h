// GGUF v2/v3 reader over a memory map (the format of llama.cpp and bitnet.cpp).
//
// Parsing validates everything a later stage relies on: header, every metadata value
// (nested arrays included), tensor infos, alignment, data offsets and sizes. Tensor data
// is never copied: each GgufTensor points into the map. Any defect raises an
// ImportError naming the file, the byte offset and the field.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mapped_file.h"
#include "tensor_types.h"

namespace bitnetc {

enum class GgufValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};
const char* gguf_value_type_name(GgufValueType t);
// Bytes of one scalar of this type (0 for STRING and ARRAY).
uint32_t gguf_scalar_size(GgufValueType t);

struct GgufValue {
  GgufValueType type = GgufValueType::UINT8;
  uint64_t offset = 0;  // where the value starts in the file

  // Scalars (all integer types widen into these; FLOAT32 widens exactly into f).
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string_view str;

  // Arrays: element type and count; scalar elements stay in the file (raw), strings are
  // views into it, nested arrays are parsed recursively.
  GgufValueType elem_type = GgufValueType::UINT8;
  uint64_t count = 0;
  const uint8_t* raw = nullptr;
  std::vector<std::string_view> strings;
  std::vector<GgufValue> arrays;

  bool is_integer() const;
  bool is_float() const { return type == GgufValueType::FLOAT32 || type == GgufValueType::FLOAT64; }
  // Element k of a scalar array, widened.
  double array_f64(uint64_t k) const;
  int64_t array_i64(uint64_t k) const;
};

struct GgufKV {
  std::string_view key;
  uint64_t offset = 0;  // where the key starts
  GgufValue value;
};

struct GgufTensor {
  std::string_view name;
  std::vector<uint64_t> ne;  // ggml order: ne[0] is the row length (innermost)
  uint32_t type_id = 0;      // as stored in the file
  TensorType type = TensorType::F32;
  uint64_t rel_offset = 0;   // relative to the data section
  uint64_t file_offset = 0;  // absolute
  uint64_t nbytes = 0;
  uint64_t info_offset = 0;       // where the tensor info starts in the header
  const uint8_t* data = nullptr;  // into the map

  uint64_t n_elements() const;
  uint64_t row_len() const { return ne.empty() ? 1 : ne[0]; }
  uint64_t n_rows() const { return ne.empty() ? 1 : n_elements() / ne[0]; }
};

class GgufFile {
 public:
  static constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
  static constexpr uint64_t kDefaultAlignment = 32;

  // Opens and validates. Throws ImportError.
  static GgufFile open(const std::string& path);
  static GgufFile parse(MappedFile file);

  const std::string& path() const { return file_->path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return file_->size(); }
  const MappedFile& mapped() const { return *file_; }

  const std::vector<GgufKV>& metadata() const { return kv_; }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufKV* find(std::string_view key) const;
  const GgufTensor* tensor(std::string_view name) const;

  // `general.architecture`, or "" when absent.
  std::string_view architecture() const;
  // True when tensor type ids 36..39 were read as bitnet.cpp's (I2_S, TL1, TL2).
  bool bitnet_cpp_dialect() const { return bitnet_cpp_dialect_; }

  // Typed accessors: nullopt when the key is absent; ImportError (naming the key and
  // its offset) when present with the wrong type or out of range.
  std::optional<std::string_view> get_string(std::string_view key) const;
  std::optional<uint64_t> get_uint(std::string_view key) const;
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;  // accepts integers too
  std::optional<bool> get_bool(std::string_view key) const;
  const GgufValue* get_array(std::string_view key, GgufValueType elem) const;

  [[noreturn]] void fail(uint64_t offset, std::string_view field, const std::string& message) const;

 private:
  std::unique_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  bool bitnet_cpp_dialect_ = false;
  std::vector<GgufKV> kv_;
  std::vector<GgufTensor> tensors_;
  std::unordered_map<std::string_view, size_t> kv_index_, tensor_index_;
};

}  // namespace bitnetc
