// GGUF: writer -> reader round trips of every metadata type and tensor type, and one
// test per corruption class that asserts the error names file, offset and field.
#include <gtest/gtest.h>

#include <deque>

#include "gguf.h"
#include "gguf_writer.h"
#include "support/test_support.h"
#include "synthetic_model.h"

using namespace bitnetc;
using namespace bitnetc::test;

namespace {

// Parses a copy of `bytes` kept alive for the whole test program: a GgufFile points into
// the buffer it parsed, and the tests often pass temporaries.
GgufFile parse_bytes(const std::vector<uint8_t>& bytes, const std::string& name = "mem.gguf") {
  static std::deque<std::vector<uint8_t>> keep;
  keep.push_back(bytes);
  return GgufFile::parse(MappedFile::from_memory(name, keep.back()));
}

GgufWriter small_writer() {
  GgufWriter w;
  w.set("general.architecture", GgufOut::str("bitnet"));
  w.set("test.u32", GgufOut::u32(7));
  w.add_tensor("a", TensorType::F32, {4, 2}, std::vector<uint8_t>(32, 1));
  w.add_tensor("b", TensorType::F16, {8}, std::vector<uint8_t>(16, 2));
  return w;
}

// Offset of the first tensor info (after header and metadata) in small_writer()'s file.
uint64_t first_tensor_info(const GgufFile& g) { return g.tensors()[0].info_offset; }

}  // namespace

TEST(Gguf, RoundTripsEveryMetadataType) {
  GgufWriter w;
  w.set("u8", GgufOut::scalar(GgufValueType::UINT8, 200));
  w.set("i8", GgufOut::scalar(GgufValueType::INT8, -100));
  w.set("u16", GgufOut::scalar(GgufValueType::UINT16, 60000));
  w.set("i16", GgufOut::scalar(GgufValueType::INT16, -30000));
  w.set("u32", GgufOut::u32(4000000000u));
  w.set("i32", GgufOut::i32(-2000000000));
  w.set("u64", GgufOut::u64(1ull << 60));
  w.set("i64", GgufOut::scalar(GgufValueType::INT64, -1e15));
  w.set("f32", GgufOut::f32(0.25f));
  w.set("f64", GgufOut::scalar(GgufValueType::FLOAT64, 1e-300));
  w.set("bool", GgufOut::boolean(true));
  w.set("str", GgufOut::str("h\xC3\xA9llo"));
  w.set("strs", GgufOut::strings({"a", "", "ccc"}));
  w.set("f32s", GgufOut::f32s({1.5f, -2.5f}));
  w.set("nested",
        GgufOut::array(GgufValueType::ARRAY,
                       {GgufOut::i32s({1, 2, 3}), GgufOut::array(GgufValueType::ARRAY, {GgufOut::strings({"x"})})}));
  w.set("empty", GgufOut::array(GgufValueType::UINT8, {}));
  const auto g = parse_bytes(w.serialize());
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.metadata().size(), 16u);
  EXPECT_EQ(*g.get_uint("u8"), 200u);
  EXPECT_EQ(*g.get_int("i8"), -100);
  EXPECT_EQ(*g.get_uint("u16"), 60000u);
  EXPECT_EQ(*g.get_int("i16"), -30000);
  EXPECT_EQ(*g.get_uint("u32"), 4000000000u);
  EXPECT_EQ(*g.get_int("i32"), -2000000000);
  EXPECT_EQ(*g.get_uint("u64"), 1ull << 60);
  EXPECT_EQ(*g.get_int("i64"), -1000000000000000);
  EXPECT_EQ(*g.get_float("f32"), 0.25);
  EXPECT_EQ(*g.get_float("f64"), 1e-300);
  EXPECT_EQ(*g.get_bool("bool"), true);
  EXPECT_EQ(*g.get_string("str"), "h\xC3\xA9llo");
  const GgufValue* strs = g.get_array("strs", GgufValueType::STRING);
  ASSERT_NE(strs, nullptr);
  EXPECT_EQ(strs->strings, (std::vector<std::string_view>{"a", "", "ccc"}));
  const GgufValue* f32s = g.get_array("f32s", GgufValueType::FLOAT32);
  EXPECT_EQ(f32s->array_f64(1), -2.5);
  const GgufValue* nested = g.get_array("nested", GgufValueType::ARRAY);
  ASSERT_EQ(nested->arrays.size(), 2u);
  EXPECT_EQ(nested->arrays[0].array_i64(2), 3);
  EXPECT_EQ(nested->arrays[1].arrays[0].strings[0], "x");
  EXPECT_EQ(g.get_array("empty", GgufValueType::UINT8)->count, 0u);
  EXPECT_FALSE(g.get_uint("absent").has_value());
  expect_import_error([&] { g.get_string("u32"); }, {"mem.gguf", "u32", "expected a string, found uint32"});
  expect_import_error([&] { g.get_uint("i8"); }, {"i8", "negative value -100"});
  expect_import_error([&] { g.get_array("strs", GgufValueType::INT32); }, {"expected an array of int32"});
}

TEST(Gguf, RoundTripsTensorsOfEveryTypeInPlace) {
  SyntheticSpec spec;
  spec.n_vocab = 300;
  spec.n_layer = 1;
  spec.n_ff = 512;
  for (auto t : {TensorType::TQ1_0, TensorType::TQ2_0, TensorType::I2_S, TensorType::TL1, TensorType::TL2,
                 TensorType::Q8_0, TensorType::F16, TensorType::BF16, TensorType::F32}) {
    spec.weight_type = t;
    const auto bytes = make_synthetic_gguf(spec).serialize();
    const auto g = GgufFile::parse(MappedFile::from_memory("synth.gguf", bytes));
    const GgufTensor* q = g.tensor("blk.0.attn_q.weight");
    ASSERT_NE(q, nullptr) << type_name(t);
    EXPECT_EQ(q->type, t);
    EXPECT_EQ(q->ne, (std::vector<uint64_t>{256, 256}));
    EXPECT_EQ(q->nbytes, *tensor_file_bytes(t, 256, 256));
    EXPECT_EQ(q->file_offset % 32, 0u);
    // Zero copy: the view points into the caller's buffer.
    EXPECT_EQ(q->data, bytes.data() + q->file_offset);
    EXPECT_EQ(g.bitnet_cpp_dialect(), t == TensorType::I2_S || t == TensorType::TL1 || t == TensorType::TL2);
  }
}

// bitnet.cpp's converter writes a TL tensor's packed bytes alone (ggml's size adds a
// 32-byte tail and rounding) with its `<name>_scale` right after: such files parse, and
// the tensors decode to their codes.
TEST(Gguf, ReadsTlTensorsAsBitnetCppsConverterWritesThem) {
  for (TensorType t : {TensorType::TL1, TensorType::TL2}) {
    const int64_t M = 128, K = 512;
    TernaryWeights w;
    w.rows = M;
    w.cols = K;
    SplitMix64 rng(3);
    for (int64_t i = 0; i < M * K; ++i) w.codes.push_back(static_cast<int8_t>(static_cast<int>(rng.next() % 3) - 1));
    const TLTileConfig cfg = t == TensorType::TL1 ? *default_tl1_config(M, K) : *default_tl2_config(M, K);
    auto bytes = t == TensorType::TL1 ? encode_tl1(w, cfg) : encode_tl2(w, cfg);
    const uint64_t payload = *tensor_file_bytes(t, K, M);
    ASSERT_LT(payload, bytes.size());
    EXPECT_EQ(payload, t == TensorType::TL1 ? 16384u : 15018u);  // the converter's array sizes for 128x512
    bytes.resize(payload);
    GgufWriter g;
    g.add_tensor("w", t, {uint64_t(K), uint64_t(M)}, bytes);
    g.add_tensor("w_scale", TensorType::F32, {1}, std::vector<uint8_t>(4, 0));
    const auto f = parse_bytes(g.serialize());
    ASSERT_EQ(f.tensor("w")->nbytes, payload);
    EXPECT_LE(f.tensor("w")->rel_offset + payload, f.tensor("w_scale")->rel_offset);
    const auto back = t == TensorType::TL1 ? decode_tl1(f.tensor("w")->data, M, K, cfg, 1.0f)
                                           : decode_tl2(f.tensor("w")->data, M, K, cfg, 1.0f);
    EXPECT_EQ(back.codes, w.codes) << type_name(t);
  }
}

TEST(Gguf, ReadsVersion2AndCustomAlignment) {
  GgufWriter w(2);
  w.set("general.alignment", GgufOut::u32(64));
  w.add_tensor("t", TensorType::F32, {3}, std::vector<uint8_t>(12, 0));
  w.add_tensor("u", TensorType::F32, {5}, std::vector<uint8_t>(20, 0));
  const auto g = parse_bytes(w.serialize());
  EXPECT_EQ(g.version(), 2u);
  EXPECT_EQ(g.alignment(), 64u);
  EXPECT_EQ(g.data_offset() % 64, 0u);
  EXPECT_EQ(g.tensor("u")->rel_offset, 64u);
}

TEST(Gguf, Type39IsMxfp4UpstreamAndTl2InBitnetCppFiles) {
  GgufWriter up;
  up.set("general.architecture", GgufOut::str("bitnet"));
  up.add_tensor("m", TensorType::MXFP4, {32}, std::vector<uint8_t>(17, 0));
  EXPECT_EQ(parse_bytes(up.serialize()).tensor("m")->type, TensorType::MXFP4);

  GgufWriter fork;  // a TL2 tensor with bitnet.cpp's "<name>_scale" companion
  fork.set("general.architecture", GgufOut::str("bitnet"));
  const uint64_t n = *tensor_nbytes(TensorType::TL2, 256, 32);
  fork.add_tensor("m", TensorType::TL2, {256, 32}, std::vector<uint8_t>(n, 0));
  fork.add_tensor("m_scale", TensorType::F32, {1}, std::vector<uint8_t>(4, 0));
  const auto g = parse_bytes(fork.serialize());
  EXPECT_EQ(g.tensor("m")->type, TensorType::TL2);
  EXPECT_TRUE(g.bitnet_cpp_dialect());
}

// ---- corruption classes -------------------------------------------------------------

TEST(GgufCorrupt, EveryTruncationIsAnErrorNeverACrash) {
  const auto bytes = small_writer().serialize();
  const auto whole = parse_bytes(bytes);
  const GgufTensor& last = whole.tensors().back();
  // Every prefix that ends before the last tensor's data does is an error.
  for (size_t n = 0; n < last.file_offset + last.nbytes; ++n) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<long>(n));
    expect_import_error([&] { parse_bytes(cut, "cut.gguf"); }, {"cut.gguf"});
  }
  const auto g = parse_bytes(small_writer().serialize());
  std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<long>(g.data_offset() + 8));
  expect_import_error([&] { parse_bytes(cut, "cut.gguf"); }, {"tensor \"a\".offset", "runs past the end of the file"});
  std::vector<uint8_t> hdr(bytes.begin(), bytes.begin() + 10);
  expect_import_error([&] { parse_bytes(hdr, "cut.gguf"); }, {"byte 8", "n_tensors", "truncated"});
}

TEST(GgufCorrupt, BadMagic) {
  auto b = small_writer().serialize();
  b[0] = 'X';
  expect_import_error([&] { parse_bytes(b); }, {"mem.gguf: byte 0: magic", "not a GGUF file"});
}

TEST(GgufCorrupt, BadVersions) {
  auto b = small_writer().serialize();
  put_le<uint32_t>(b, 4, 1);
  expect_import_error([&] { parse_bytes(b); }, {"byte 4: version", "version 1 is not supported"});
  put_le<uint32_t>(b, 4, 7);
  expect_import_error([&] { parse_bytes(b); }, {"byte 4: version", "unsupported GGUF version 7"});
  put_le<uint32_t>(b, 4, 0x03000000);
  expect_import_error([&] { parse_bytes(b); }, {"big-endian GGUF is not supported"});
}

TEST(GgufCorrupt, CountsTheFileCannotHold) {
  auto b = small_writer().serialize();
  put_le<uint64_t>(b, 16, UINT64_MAX);
  expect_import_error([&] { parse_bytes(b); }, {"byte 16: n_kv", "cannot fit"});
  b = small_writer().serialize();
  put_le<uint64_t>(b, 8, 1ull << 40);
  expect_import_error([&] { parse_bytes(b); }, {"byte 8: n_tensors", "cannot fit"});
}

TEST(GgufCorrupt, StringAndArrayLengths) {
  GgufWriter w;
  w.set("k", GgufOut::str("value"));
  auto b = w.serialize();
  // Key length of the first KV at 24: claims more than the file.
  put_le<uint64_t>(b, 24, 1ull << 62);
  expect_import_error([&] { parse_bytes(b); }, {"byte 24: metadata[0].key", "exceeds"});

  GgufWriter a;
  a.set("arr", GgufOut::i32s({1, 2, 3}));
  b = a.serialize();
  const uint64_t count_at = 24 + 8 + 3 + 4 + 4;  // key len, "arr", value type, elem type
  put_le<uint64_t>(b, count_at, UINT64_MAX / 2);
  expect_import_error([&] { parse_bytes(b); }, {"byte " + std::to_string(count_at) + ": arr.count", "cannot fit"});
}

TEST(GgufCorrupt, UnknownValueTypeBadBoolDeepNesting) {
  GgufWriter w;
  w.set("k", GgufOut::u32(1));
  auto b = w.serialize();
  put_le<uint32_t>(b, 24 + 8 + 1, 99);
  expect_import_error([&] { parse_bytes(b); }, {"k.type", "unknown metadata value type 99"});

  GgufWriter bw;
  bw.set("flag", GgufOut::boolean(true));
  b = bw.serialize();
  b[24 + 8 + 4 + 4] = 2;
  expect_import_error([&] { parse_bytes(b); }, {"flag", "neither 0 nor 1"});

  GgufOut deep = GgufOut::i32s({1});
  for (int d = 0; d < 10; ++d) deep = GgufOut::array(GgufValueType::ARRAY, {deep});
  GgufWriter dw;
  dw.set("deep", deep);
  expect_import_error([&] { parse_bytes(dw.serialize()); }, {"deep", "nested deeper than 8 levels"});
}

TEST(GgufCorrupt, UnknownTensorTypeAndBadBlocks) {
  auto w = small_writer();
  auto b = w.serialize();
  const auto g = parse_bytes(b);
  const uint64_t type_at = first_tensor_info(g) + 8 + 1 + 4 + 2 * 8;
  put_le<uint32_t>(b, type_at, 77);
  expect_import_error([&] { parse_bytes(b); },
                      {"byte " + std::to_string(type_at), "tensor \"a\".type", "unknown tensor type id 77"});
  put_le<uint32_t>(b, type_at, 35);  // TQ2_0 needs rows of 256
  expect_import_error([&] { parse_bytes(b); }, {"tensor \"a\".type", "not a whole number of TQ2_0 blocks"});
}

TEST(GgufCorrupt, DimensionsOutOfRangeOrOverflowing) {
  auto b = small_writer().serialize();
  const uint64_t info = first_tensor_info(parse_bytes(b));
  put_le<uint32_t>(b, info + 9, 5);
  expect_import_error([&] { parse_bytes(b); }, {"tensor \"a\".n_dims", "5 dimensions"});
  b = small_writer().serialize();
  put_le<uint64_t>(b, info + 13, 0);
  expect_import_error([&] { parse_bytes(b); }, {"tensor \"a\".ne[0]", "out of range"});
  put_le<uint64_t>(b, info + 13, 1ull << 40);
  put_le<uint64_t>(b, info + 21, 1ull << 40);
  expect_import_error([&] { parse_bytes(b); },
                      {"byte " + std::to_string(info + 21), "tensor \"a\".ne", "overflows 64 bits"});
}

TEST(GgufCorrupt, MisalignedOverlappingAndOutOfFileData) {
  auto b = small_writer().serialize();
  const auto g = parse_bytes(b);
  const uint64_t off_b = g.tensors()[1].info_offset + 8 + 1 + 4 + 8 + 4;
  put_le<uint64_t>(b, off_b, 4);
  expect_import_error([&] { parse_bytes(b); },
                      {"byte " + std::to_string(off_b), "tensor \"b\".offset", "not a multiple of the alignment 32"});
  put_le<uint64_t>(b, off_b, 0);
  expect_import_error([&] { parse_bytes(b); }, {"overlaps tensor \"a\""});
  put_le<uint64_t>(b, off_b, 1ull << 20);
  expect_import_error([&] { parse_bytes(b); }, {"tensor \"b\".offset", "runs past the end of the file"});
  put_le<uint64_t>(b, off_b, UINT64_MAX - 31);
  expect_import_error([&] { parse_bytes(b); }, {"tensor \"b\".offset", "runs past the end of the file"});
}

TEST(GgufCorrupt, DuplicateNamesAndKeys) {
  GgufWriter w;
  w.add_tensor("same", TensorType::F32, {1}, std::vector<uint8_t>(4, 0));
  w.add_tensor("same", TensorType::F32, {1}, std::vector<uint8_t>(4, 0));
  expect_import_error([&] { parse_bytes(w.serialize()); }, {"tensor_infos[1].name", "duplicate tensor name \"same\""});
  GgufWriter k;
  k.set("a", GgufOut::u32(1));
  k.set("b", GgufOut::u32(2));
  auto b = k.serialize();
  b[24 + 8 + 1 + 4 + 4 + 8] = 'a';  // second key "b" -> "a"
  expect_import_error([&] { parse_bytes(b); }, {"metadata[1].key", "duplicate key \"a\""});
}

TEST(GgufCorrupt, NonUtf8KeysAndNames) {
  GgufWriter k;
  k.set("bad\xFF", GgufOut::u32(1));
  expect_import_error([&] { parse_bytes(k.serialize()); }, {"byte 24: metadata[0].key", "not valid UTF-8"});
  GgufWriter t;
  t.add_tensor("t\xC0\xAF", TensorType::F32, {1}, std::vector<uint8_t>(4, 0));
  expect_import_error([&] { parse_bytes(t.serialize()); }, {"tensor_infos[0].name", "not valid UTF-8"});
}

TEST(GgufCorrupt, BadAlignment) {
  for (auto [v, msg] : {std::pair<uint32_t, const char*>{0, "not a power of two"}, {48, "not a power of two"}}) {
    GgufWriter w;
    w.set("general.alignment", GgufOut::u32(v));
    expect_import_error([&] { parse_bytes(w.serialize()); }, {"general.alignment", msg});
  }
  GgufWriter w;
  w.set("general.alignment", GgufOut::str("32"));
  expect_import_error([&] { parse_bytes(w.serialize()); }, {"general.alignment", "must be uint32, found string"});
}

TEST(Gguf, OpenNamesMissingFiles) {
  expect_import_error([] { GgufFile::open("/nonexistent/x.gguf"); }, {"/nonexistent/x.gguf", "cannot open"});
}
