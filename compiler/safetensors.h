// SafeTensors reader (single files and sharded checkpoints) over memory maps.
//
// Layout: 8-byte little-endian header length N, N bytes of JSON, then the raw data.
// Validation follows the format's rules and is strict: every tensor's byte range lies
// inside the file, ranges are contiguous and non-overlapping and cover the data exactly,
// shape x dtype size equals the byte length, names are unique and UTF-8.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mapped_file.h"
#include "tensor_types.h"

namespace bitnetc {

struct StTensor {
  std::string name;
  std::string dtype;  // as written ("BF16", "U8", ...)
  TensorType type = TensorType::F32;
  std::vector<uint64_t> shape;  // outermost first (PyTorch order)
  uint64_t file_offset = 0;     // absolute
  uint64_t nbytes = 0;
  const uint8_t* data = nullptr;  // into the map
  std::string file;               // which file holds it

  uint64_t n_elements() const {
    uint64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
};

class SafeTensorsFile {
 public:
  static constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // as the reference library

  static SafeTensorsFile open(const std::string& path);
  static SafeTensorsFile parse(MappedFile file);

  const std::string& path() const { return file_->path(); }
  const MappedFile& mapped() const { return *file_; }
  uint64_t header_bytes() const { return header_bytes_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::vector<StTensor>& tensors() const { return tensors_; }  // in file order
  const StTensor* find(std::string_view name) const;

 private:
  std::unique_ptr<MappedFile> file_;
  uint64_t header_bytes_ = 0;
  std::map<std::string, std::string> metadata_;
  std::vector<StTensor> tensors_;
  std::unordered_map<std::string, size_t> index_;
};

// A checkpoint: one `model.safetensors`, or shards listed by
// `model.safetensors.index.json` (its weight_map names the file of every tensor).
class SafeTensorsCheckpoint {
 public:
  // `path` is a folder holding either file, a .safetensors file, or an index .json.
  static SafeTensorsCheckpoint open(const std::string& path);

  const std::vector<const StTensor*>& tensors() const { return tensors_; }
  const StTensor* find(std::string_view name) const;
  const std::vector<std::unique_ptr<SafeTensorsFile>>& files() const { return files_; }
  const std::string& index_path() const { return index_path_; }

 private:
  std::vector<std::unique_ptr<SafeTensorsFile>> files_;
  std::vector<const StTensor*> tensors_;
  std::unordered_map<std::string, const StTensor*> by_name_;
  std::string index_path_;
};

}  // namespace bitnetc
