// SafeTensors: valid files and sharded checkpoints, and each way a header can lie.
#include <gtest/gtest.h>

#include "safetensors.h"
#include "support/test_support.h"

using namespace bitnetc;
using namespace bitnetc::test;

namespace {

SafeTensorsFile parse_bytes(const std::vector<uint8_t>& b, const std::string& name = "m.safetensors") {
  return SafeTensorsFile::parse(MappedFile::from_memory(name, b));
}

SafeTensorsBuilder two_tensors() {
  SafeTensorsBuilder sb;
  sb.add("w", "BF16", {2, 3}, std::vector<uint8_t>(12, 1));
  sb.add("p", "U8", {4}, {0, 1, 2, 3});
  return sb;
}

// Rebuilds with a header edited by `edit`.
std::vector<uint8_t> with_header(const std::function<void(nlohmann::ordered_json&)>& edit) {
  auto sb = two_tensors();
  nlohmann::ordered_json h = sb.header;
  edit(h);
  return SafeTensorsBuilder::assemble(h.dump(), sb.data);
}

}  // namespace

TEST(SafeTensors, ReadsEveryDtypeInPlace) {
  SafeTensorsBuilder sb;
  sb.add("f32", "F32", {2}, std::vector<uint8_t>(8, 0));
  sb.add("f16", "F16", {1, 2}, std::vector<uint8_t>(4, 0));
  sb.add("bf16", "BF16", {3}, std::vector<uint8_t>(6, 0));
  sb.add("i8", "I8", {2, 2}, {1, 2, 3, 4});
  sb.add("u8", "U8", {1}, {9});
  sb.add("empty", "F32", {0, 4}, {});
  const auto bytes = sb.build();
  const auto st = parse_bytes(bytes);
  ASSERT_EQ(st.tensors().size(), 6u);
  EXPECT_EQ(st.metadata().at("format"), "pt");
  const StTensor* i8 = st.find("i8");
  ASSERT_NE(i8, nullptr);
  EXPECT_EQ(i8->type, TensorType::I8);
  EXPECT_EQ(i8->shape, (std::vector<uint64_t>{2, 2}));
  EXPECT_EQ(i8->data, bytes.data() + i8->file_offset);
  EXPECT_EQ(i8->data[3], 4);
  EXPECT_EQ(st.find("bf16")->type, TensorType::BF16);
  EXPECT_EQ(st.find("empty")->nbytes, 0u);
}

TEST(SafeTensorsCorrupt, HeaderLength) {
  auto b = two_tensors().build();
  put_le<uint64_t>(b, 0, b.size());
  expect_import_error([&] { parse_bytes(b); }, {"m.safetensors: byte 0: header_size", "runs past the end"});
  put_le<uint64_t>(b, 0, 1ull << 40);
  expect_import_error([&] { parse_bytes(b); }, {"header_size", "exceeds the 100 MB limit"});
  std::vector<uint8_t> tiny = {1, 0, 0};
  expect_import_error([&] { parse_bytes(tiny); }, {"byte 0: header_size", "truncated"});
  // A header_size that takes tensor bytes into the header: said so, the bytes escaped.
  auto sb = two_tensors();
  sb.data.assign({0x98, 0xff, 0x00, 0x01});
  b = SafeTensorsBuilder::assemble(sb.header.dump(), sb.data);
  put_le<uint64_t>(b, 0, b.size() - 8);
  try {
    parse_bytes(b);
    ADD_FAILURE() << "accepted";
  } catch (const ImportError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("is header_size too large?"), std::string::npos) << m;
    EXPECT_TRUE(std::all_of(m.begin(), m.end(), [](char c) { return c >= 0x20 && c < 0x7f; })) << m;
  }
}

TEST(SafeTensorsCorrupt, InvalidJsonAndNonUtf8Names) {
  auto b = SafeTensorsBuilder::assemble("{\"w\": {\"dtype\": ", {});
  expect_import_error([&] { parse_bytes(b); }, {"header", "invalid JSON"});
  b = SafeTensorsBuilder::assemble("{\"w\": 1e999}", {});
  expect_import_error([&] { parse_bytes(b); }, {"byte 8: header", "invalid JSON"});
  b = SafeTensorsBuilder::assemble("[1, 2]", {});
  expect_import_error([&] { parse_bytes(b); }, {"not a JSON object"});
  b = SafeTensorsBuilder::assemble("{\"w\xFF\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, 1]}}", {7});
  expect_import_error([&] { parse_bytes(b); }, {"invalid JSON", "UTF-8"});
}

TEST(SafeTensorsCorrupt, UnknownDtypeAndBadShape) {
  auto b = with_header([](auto& h) { h["w"]["dtype"] = "F8_E4M3"; });
  expect_import_error([&] { parse_bytes(b); }, {"tensor \"w\".dtype", "unsupported dtype \"F8_E4M3\""});
  b = with_header([](auto& h) { h["w"]["shape"] = {2, -3}; });
  expect_import_error([&] { parse_bytes(b); }, {"tensor \"w\".shape", "non-negative integers"});
  b = with_header([](auto& h) { h["w"]["shape"] = {1ull << 40, 1ull << 40}; });
  expect_import_error([&] { parse_bytes(b); }, {"tensor \"w\".shape", "overflows"});
  b = with_header([](auto& h) { h["w"]["shape"] = {2, 2}; });
  expect_import_error([&] { parse_bytes(b); },
                      {"tensor \"w\".data_offsets", "holds 12 bytes but shape x dtype needs 8"});
}

TEST(SafeTensorsCorrupt, OffsetsOutsideOverlappingOrGapped) {
  auto b = with_header([](auto& h) {
    h["p"]["data_offsets"] = {12, 100};
    h["p"]["shape"] = {88};
  });
  expect_import_error([&] { parse_bytes(b); }, {"tensor \"p\".data_offsets", "past the 16 bytes of data"});
  b = with_header([](auto& h) { h["p"]["data_offsets"] = {10, 14}; });
  expect_import_error([&] { parse_bytes(b); }, {"tensor \"p\".data_offsets", "overlaps"});
  b = with_header([](auto& h) { h["p"]["data_offsets"] = {14, 12}; });
  expect_import_error([&] { parse_bytes(b); }, {"begin 14 > end 12"});
  b = SafeTensorsBuilder::assemble(R"({"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]},)"
                                   R"( "p": {"dtype": "U8", "shape": [4], "data_offsets": [13, 17]}})",
                                   std::vector<uint8_t>(17, 0));
  expect_import_error([&] { parse_bytes(b); }, {"tensor \"p\".data_offsets", "leaves a gap of 1 bytes"});
  auto sb = two_tensors();
  auto extra = sb.build();
  extra.push_back(0);
  expect_import_error([&] { parse_bytes(extra); }, {"1 bytes after the last tensor belong to no tensor"});
  b = with_header([](auto& h) { h["w"]["data_offsets"] = {0}; });
  expect_import_error([&] { parse_bytes(b); }, {"tensor \"w\".data_offsets", "[begin, end]"});
}

TEST(SafeTensorsCorrupt, DuplicateNamesAndBadMetadata) {
  auto b = SafeTensorsBuilder::assemble(
      "{\"w\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, 1]},"
      " \"w\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [1, 2]}}",
      {1, 2});
  expect_import_error([&] { parse_bytes(b); }, {"duplicate key \"w\""});
  b = with_header([](auto& h) { h["__metadata__"] = {{"format", 3}}; });
  expect_import_error([&] { parse_bytes(b); }, {"__metadata__.format", "must be a string"});
}

TEST(SafeTensorsCheckpoint, ReadsShardsThroughTheIndex) {
  ScratchDir dir;
  SafeTensorsBuilder a, b;
  a.add("x", "F32", {1}, std::vector<uint8_t>(4, 0));
  b.add("y", "U8", {2}, {5, 6});
  write_bytes(dir.file("model-00001-of-00002.safetensors"), a.build());
  write_bytes(dir.file("model-00002-of-00002.safetensors"), b.build());
  write_text(dir.file("model.safetensors.index.json"),
             R"({"metadata": {}, "weight_map": {"x": "model-00001-of-00002.safetensors",
                                                "y": "model-00002-of-00002.safetensors"}})");
  const auto ck = SafeTensorsCheckpoint::open(dir.path().string());
  ASSERT_EQ(ck.tensors().size(), 2u);
  EXPECT_EQ(ck.files().size(), 2u);
  EXPECT_EQ(ck.find("y")->data[1], 6);
  EXPECT_NE(ck.find("y")->file.find("00002"), std::string::npos);
}

TEST(SafeTensorsCheckpoint, RefusesBadIndexes) {
  ScratchDir dir;
  SafeTensorsBuilder a;
  a.add("x", "F32", {1}, std::vector<uint8_t>(4, 0));
  write_bytes(dir.file("s1.safetensors"), a.build());
  const std::string index = dir.file("model.safetensors.index.json");
  write_text(index, R"({"weight_map": {"x": "s1.safetensors", "z": "s1.safetensors"}})");
  expect_import_error([&] { SafeTensorsCheckpoint::open(dir.path().string()); },
                      {"model.safetensors.index.json", "weight_map.z", "does not hold it"});
  write_text(index, R"({"weight_map": {"x": "../../etc/passwd"}})");
  expect_import_error([&] { SafeTensorsCheckpoint::open(dir.path().string()); },
                      {"weight_map.x", "not a plain file name"});
  write_text(index, R"({"weight_map": {"x": "missing.safetensors"}})");
  expect_import_error([&] { SafeTensorsCheckpoint::open(dir.path().string()); },
                      {"missing.safetensors", "cannot open"});
  write_text(index, R"({"weight_map": [1]})");
  expect_import_error([&] { SafeTensorsCheckpoint::open(dir.path().string()); }, {"weight_map", "not an object"});
  std::filesystem::remove(index);
  std::filesystem::remove(dir.file("s1.safetensors"));
  expect_import_error([&] { SafeTensorsCheckpoint::open(dir.path().string()); },
                      {"neither model.safetensors nor model.safetensors.index.json"});
}
