#include "safetensors.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

namespace bitnetc {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct DtypeInfo {
  const char* name;
  TensorType type;
  uint32_t size;
};
constexpr DtypeInfo kDtypes[] = {
    {"F32", TensorType::F32, 4}, {"F16", TensorType::F16, 2}, {"BF16", TensorType::BF16, 2},
    {"I8", TensorType::I8, 1},   {"U8", TensorType::U8, 1},
};

// Parses JSON, rejecting duplicate keys in any object (nlohmann would keep the last).
// Throws ImportError with the absolute offset of the problem.
json parse_json_strict(const std::string& file, std::string_view text, uint64_t base_offset, const std::string& field) {
  std::vector<std::set<std::string>> keys_at_depth;
  std::string duplicate;
  auto cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      keys_at_depth.resize(static_cast<size_t>(depth) + 2);
      keys_at_depth[static_cast<size_t>(depth) + 1].clear();
    } else if (event == json::parse_event_t::key) {
      if (keys_at_depth.size() <= static_cast<size_t>(depth)) keys_at_depth.resize(static_cast<size_t>(depth) + 1);
      const std::string k = parsed.get<std::string>();
      if (!keys_at_depth[static_cast<size_t>(depth)].insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  try {
    json j = json::parse(text.begin(), text.end(), cb);
    if (!duplicate.empty()) throw ImportError(file, base_offset, field, "duplicate key \"" + duplicate + "\"");
    return j;
  } catch (const json::parse_error& e) {
    // The parser quotes what it last read, which may be binary (tensor data taken into
    // the header by a wrong header_size): escaped, never echoed raw.
    std::string what;
    for (unsigned char c : std::string(e.what())) {
      if (c >= 0x20 && c < 0x7f) {
        what += static_cast<char>(c);
      } else {
        char hex[8];
        std::snprintf(hex, sizeof hex, "\\x%02x", c);
        what += hex;
      }
    }
    const bool trailing = what.find("expected end of input") != std::string::npos;
    throw ImportError(file, base_offset + (e.byte > 0 ? e.byte - 1 : 0), field,
                      std::string("invalid JSON: ") + what +
                          (trailing ? " (the JSON ends before the header does: is header_size too large?)" : ""));
  } catch (const json::exception& e) {  // e.g. out_of_range: a number too large for a double
    throw ImportError(file, base_offset, field, std::string("invalid JSON: ") + e.what());
  }
}

}  // namespace

SafeTensorsFile SafeTensorsFile::open(const std::string& path) { return parse(MappedFile(path)); }

SafeTensorsFile SafeTensorsFile::parse(MappedFile mapped) {
  SafeTensorsFile st;
  st.file_ = std::make_unique<MappedFile>(std::move(mapped));
  const std::string& path = st.file_->path();
  ByteCursor cur(path, st.file_->bytes());
  const uint64_t n = cur.read<uint64_t>("header_size");
  if (n > kMaxHeaderBytes)
    cur.fail_at(0, "header_size", "header of " + std::to_string(n) + " bytes exceeds the 100 MB limit");
  if (n > cur.remaining())
    cur.fail_at(0, "header_size",
                "header of " + std::to_string(n) + " bytes runs past the end of the file (" +
                    std::to_string(st.file_->size()) + " bytes)");
  if (n < 2) cur.fail_at(0, "header_size", "header of " + std::to_string(n) + " bytes cannot hold a JSON object");
  st.header_bytes_ = n;
  auto hdr = cur.take(n, "header");
  const std::string_view text(reinterpret_cast<const char*>(hdr.data()), hdr.size());
  json j = parse_json_strict(path, text, 8, "header");
  if (!j.is_object()) cur.fail_at(8, "header", "the header is not a JSON object");

  const uint64_t data_start = 8 + n;
  const uint64_t data_size = st.file_->size() - data_start;
  // JSON keys are not located by the parser; report the header's offset for them.
  auto fail = [&](const std::string& field, const std::string& msg) -> void { cur.fail_at(8, field, msg); };

  try {
    for (auto& [name, entry] : j.items()) {
      if (name == "__metadata__") {
        if (!entry.is_object()) fail("__metadata__", "must be an object of strings");
        for (auto& [k, v] : entry.items()) {
          if (!v.is_string()) fail("__metadata__." + k, "must be a string");
          st.metadata_[k] = v.get<std::string>();
        }
        continue;
      }
      const std::string f = "tensor \"" + name + "\"";
      if (!entry.is_object()) fail(f, "must be an object");
      StTensor t;
      t.name = name;
      t.file = path;
      if (!entry.contains("dtype") || !entry["dtype"].is_string()) fail(f + ".dtype", "missing or not a string");
      t.dtype = entry["dtype"].get<std::string>();
      const DtypeInfo* info = nullptr;
      for (const auto& d : kDtypes)
        if (t.dtype == d.name) info = &d;
      if (!info) fail(f + ".dtype", "unsupported dtype \"" + t.dtype + "\" (bitnetc reads F32, F16, BF16, I8, U8)");
      t.type = info->type;
      if (!entry.contains("shape") || !entry["shape"].is_array()) fail(f + ".shape", "missing or not an array");
      uint64_t elems = 1;
      for (const auto& d : entry["shape"]) {
        if (!d.is_number_unsigned()) fail(f + ".shape", "dimensions must be non-negative integers");
        const uint64_t dim = d.get<uint64_t>();
        if (checked_mul(elems, dim, &elems)) fail(f + ".shape", "the product of the dimensions overflows 64 bits");
        t.shape.push_back(dim);
      }
      if (t.shape.size() > 8) fail(f + ".shape", std::to_string(t.shape.size()) + " dimensions (at most 8)");
      const auto& off = entry.contains("data_offsets") ? entry["data_offsets"] : json();
      if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
        fail(f + ".data_offsets", "must be [begin, end] with non-negative integers");
      const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
      if (begin > end) fail(f + ".data_offsets", "begin " + std::to_string(begin) + " > end " + std::to_string(end));
      if (end > data_size)
        fail(f + ".data_offsets", "end " + std::to_string(end) + " is past the " + std::to_string(data_size) +
                                      " bytes of data in the file (truncated?)");
      uint64_t expect;
      if (checked_mul(elems, info->size, &expect) || expect != end - begin)
        fail(f + ".data_offsets",
             "holds " + std::to_string(end - begin) + " bytes but shape x dtype needs " +
                 (checked_mul(elems, info->size, &expect) ? std::string("more than 2^64") : std::to_string(expect)));
      t.file_offset = data_start + begin;
      t.nbytes = end - begin;
      t.data = st.file_->data() + t.file_offset;
      st.tensors_.push_back(std::move(t));
    }
  } catch (const json::exception& e) {  // a value of an unexpected JSON type
    cur.fail_at(8, "header", std::string("unexpected value: ") + e.what());
  }

  // Ranges must tile the data section exactly: contiguous, no overlap, no gap.
  std::vector<StTensor*> order;
  for (auto& t : st.tensors_) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const StTensor* a, const StTensor* b) {
    return a->file_offset != b->file_offset ? a->file_offset < b->file_offset : a->nbytes < b->nbytes;
  });
  uint64_t expect_at = data_start;
  for (const StTensor* t : order) {
    if (t->file_offset < expect_at)
      cur.fail_at(t->file_offset, "tensor \"" + t->name + "\".data_offsets", "overlaps the previous tensor's data");
    if (t->file_offset > expect_at)
      cur.fail_at(
          expect_at, "tensor \"" + t->name + "\".data_offsets",
          "leaves a gap of " + std::to_string(t->file_offset - expect_at) + " bytes before it (not contiguous)");
    expect_at = t->file_offset + t->nbytes;
  }
  if (expect_at != st.file_->size())
    cur.fail_at(expect_at, "data",
                std::to_string(st.file_->size() - expect_at) + " bytes after the last tensor belong to no tensor");

  std::stable_sort(st.tensors_.begin(), st.tensors_.end(),
                   [](const StTensor& a, const StTensor& b) { return a.file_offset < b.file_offset; });
  for (size_t k = 0; k < st.tensors_.size(); ++k) st.index_[st.tensors_[k].name] = k;
  return st;
}

const StTensor* SafeTensorsFile::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

SafeTensorsCheckpoint SafeTensorsCheckpoint::open(const std::string& path) {
  SafeTensorsCheckpoint ck;
  std::string index;
  if (fs::is_directory(path)) {
    const fs::path dir(path);
    if (fs::exists(dir / "model.safetensors.index.json")) {
      index = (dir / "model.safetensors.index.json").string();
    } else if (fs::exists(dir / "model.safetensors")) {
      ck.files_.push_back(
          std::make_unique<SafeTensorsFile>(SafeTensorsFile::open((dir / "model.safetensors").string())));
    } else {
      throw ImportError(path, ImportError::kNoOffset, "",
                        "folder has neither model.safetensors nor model.safetensors.index.json");
    }
  } else if (path.size() >= 5 && path.substr(path.size() - 5) == ".json") {
    index = path;
  } else {
    ck.files_.push_back(std::make_unique<SafeTensorsFile>(SafeTensorsFile::open(path)));
  }

  if (!index.empty()) {
    ck.index_path_ = index;
    MappedFile m(index);
    const std::string_view text(reinterpret_cast<const char*>(m.data()), m.size());
    json j = parse_json_strict(index, text, 0, "");
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw ImportError(index, ImportError::kNoOffset, "weight_map", "missing or not an object");
    std::map<std::string, size_t> shard_of_file;
    std::vector<std::pair<std::string, std::string>> wanted;
    for (auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string())
        throw ImportError(index, ImportError::kNoOffset, "weight_map." + name, "must be a file name");
      const std::string f = file.get<std::string>();
      // Shards live beside the index; a path elsewhere is refused.
      if (f.empty() || f.find('/') != std::string::npos || f == "." || f == "..")
        throw ImportError(index, ImportError::kNoOffset, "weight_map." + name,
                          "shard \"" + f + "\" is not a plain file name in the checkpoint folder");
      if (!shard_of_file.count(f)) {
        const std::string shard = (fs::path(index).parent_path() / f).string();
        shard_of_file[f] = ck.files_.size();
        ck.files_.push_back(std::make_unique<SafeTensorsFile>(SafeTensorsFile::open(shard)));
      }
      wanted.emplace_back(name, f);
    }
    for (const auto& [name, f] : wanted) {
      const StTensor* t = ck.files_[shard_of_file[f]]->find(name);
      if (!t)
        throw ImportError(index, ImportError::kNoOffset, "weight_map." + name,
                          "tensor is listed in shard " + f + " but that file does not hold it");
      ck.tensors_.push_back(t);
      ck.by_name_[name] = t;
    }
    return ck;
  }

  for (const auto& t : ck.files_[0]->tensors()) {
    ck.tensors_.push_back(&t);
    ck.by_name_[t.name] = &t;
  }
  return ck;
}

const StTensor* SafeTensorsCheckpoint::find(std::string_view name) const {
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : it->second;
}

}  // namespace bitnetc
