// TL1 and TL2: bitnet.cpp's lookup-table weight layouts, as its converter writes them
// (utils/convert-hf-to-gguf-bitnet.py: preprocess_weights_tl1 / preprocess_weights_tl2).
//
// The converter builds them with chains of numpy reshape/transpose. Here each chain is
// written out as the index arithmetic it amounts to; one function per layout gives the
// byte (and nibble or bit) that holds a group of weights, and both the encoder and the
// decoder go through it, so they cannot disagree with each other.
//
// TL1: pairs of weights (a, b) along a row become one 4-bit index 3a + b + 4 (0..8).
// TL2: triples (a, b, c) become |9a + 3b + c| (0..13) plus a sign bit; columns past the
//      last whole BK tile are stored as TL1-style pairs with a fixed 32x32 tile.
// The scale is one f32 per tensor, kept by bitnet.cpp in a separate "<name>_scale" tensor.
#include <stdexcept>

#include "tensor_types.h"

namespace bitnetc {

namespace {

// Position of the nibble holding a group: byte index and whether it is the high nibble.
struct NibblePos {
  uint64_t byte;
  bool high;
};

// Swaps the 2nd and 3rd 8-byte chunk of each 32-byte tile (the converter's
// weight[:, [0,1,2,3], :] = weight[:, [0,2,1,3], :]).
uint64_t tl2_chunk_swap(int64_t b2) {
  static constexpr int64_t kSwap[4] = {0, 2, 1, 3};
  return static_cast<uint64_t>(kSwap[b2 / 8] * 8 + b2 % 8);
}

// TL1: pair column kp (weights 2kp, 2kp+1) of row r.
NibblePos tl1_pos(int64_t r, int64_t kp, int64_t K, const TLTileConfig& c) {
  const int64_t by = 256 / c.bm;
  const int64_t i0 = r / c.BM, rr = r % c.BM, i2 = rr / c.bm, b = rr % c.bm, i4 = b / 16, b3 = b % 16;
  const int64_t i1 = kp / (c.BK / 2), kk = kp % (c.BK / 2), i3 = kk / (by / 2), k3 = kk % (by / 2);
  const int64_t i5 = k3 / 2, t = k3 % 2;
  const int64_t idx =
      ((((((i0 * (K / c.BK) + i1) * (c.BM / c.bm) + i2) * (c.BK / by) + i3) * (c.bm / 16) + i4) * (by / 4) + i5) * 16 +
       b3);
  return {static_cast<uint64_t>(idx), t == 0};
}

// TL2 three-weight part (bm = 32, so by = 6): triple column kt of row r, K3 columns.
NibblePos tl2_three_pos(int64_t r, int64_t kt, int64_t K3, const TLTileConfig& c) {
  const int64_t i0 = r / c.BM, rr = r % c.BM, i2 = rr / 32, b2 = rr % 32;
  const int64_t i1 = kt / (c.BK / 3), k2 = kt % (c.BK / 3), i3 = k2 / 2, k3 = k2 % 2;
  const int64_t g = ((i0 * (K3 / c.BK) + i1) * (c.BM / 32) + i2) * (c.BK / 6) + i3;
  return {static_cast<uint64_t>(g * 32) + tl2_chunk_swap(b2), k3 == 0};
}

// TL2 sign bits: 16 uint16 per 32-byte group, little-endian; returns the bit index
// from the start of the sign area.
uint64_t tl2_sign_bit(int64_t r, int64_t kt, int64_t K3, const TLTileConfig& c) {
  const int64_t i0 = r / c.BM, rr = r % c.BM, i2 = rr / 32, b2 = rr % 32;
  const int64_t i1 = kt / (c.BK / 3), k2 = kt % (c.BK / 3), j3 = k2 / 8, k4 = k2 % 8;
  const int64_t g = ((i0 * (K3 / c.BK) + i1) * (c.BM / 32) + i2) * (c.BK / 24) + j3;
  const int64_t i = 2 * k4 + b2 / 16, h = b2 % 16;
  return static_cast<uint64_t>((g * 32 + 2 * h) * 8 + (15 - i));
}

// TL2 two-weight tail: pair column kp (within the K2 tail columns) of row r.
NibblePos tl2_two_pos(int64_t r, int64_t kp, int64_t K2, const TLTileConfig& c) {
  const int64_t i0 = r / c.BM, rr = r % c.BM, i2 = rr / 32, b2 = rr % 32;
  const int64_t i1 = kp / 16, k2 = kp % 16, i3 = k2 / 2, k3 = k2 % 2;
  const int64_t g = ((i0 * (K2 / 32) + i1) * (c.BM / 32) + i2) * 8 + i3;
  return {static_cast<uint64_t>(g * 32) + tl2_chunk_swap(b2), k3 == 0};
}

void put_nibble(std::vector<uint8_t>& out, NibblePos p, uint8_t v) {
  out[p.byte] |= p.high ? static_cast<uint8_t>(v << 4) : v;
}
uint8_t get_nibble(const uint8_t* src, NibblePos p) { return p.high ? src[p.byte] >> 4 : src[p.byte] & 15; }

int8_t trit(int v) { return static_cast<int8_t>(v - 1); }

void require(const std::string& why) {
  if (!why.empty()) throw std::invalid_argument(why);
}

uint64_t tl2_three_bytes(int64_t M, int64_t K3) { return static_cast<uint64_t>(M * K3 / 6); }
uint64_t tl2_sign_bytes(int64_t M, int64_t K3) { return static_cast<uint64_t>(M * K3 / 24); }

}  // namespace

std::string check_tl1_config(int64_t M, int64_t K, const TLTileConfig& c) {
  if (c.BM <= 0 || c.BK <= 0 || c.bm <= 0) return "TL1 tile sizes must be positive";
  if (256 % c.bm != 0 || c.bm % 16 != 0 || (256 / c.bm) % 4 != 0)
    return "TL1 needs bm in {16, 32, 64} (bm=" + std::to_string(c.bm) + ")";
  const int64_t by = 256 / c.bm;
  if (M % c.BM != 0 || c.BM % c.bm != 0)
    return "TL1 needs rows (" + std::to_string(M) + ") % BM (" + std::to_string(c.BM) + ") == 0 and BM % bm == 0";
  if (K % c.BK != 0 || c.BK % by != 0)
    return "TL1 needs cols (" + std::to_string(K) + ") % BK (" + std::to_string(c.BK) + ") == 0 and BK % " +
           std::to_string(by) + " == 0";
  return "";
}

std::string check_tl2_config(int64_t M, int64_t K, const TLTileConfig& c) {
  if (c.bm != 32) return "TL2 needs bm = 32 (bitnet.cpp's converter assumes 3-weight pairs of by = 6)";
  if (c.BM <= 0 || M % c.BM != 0 || c.BM % 32 != 0)
    return "TL2 needs rows (" + std::to_string(M) + ") % BM (" + std::to_string(c.BM) + ") == 0 and BM % 32 == 0";
  if (c.BK <= 0 || c.BK % 24 != 0) return "TL2 needs BK % 24 == 0 (BK=" + std::to_string(c.BK) + ")";
  if (K < 256) return "TL2 needs at least 256 columns";
  const int64_t K2 = K % c.BK, K3 = K - K2;
  if (K2 % 32 != 0 || K2 > 256)
    return "TL2 needs cols % BK (" + std::to_string(K2) + ") to be a multiple of 32 and at most 256";
  const uint64_t used = tl2_three_bytes(M, K3) + tl2_sign_bytes(M, K3) + static_cast<uint64_t>(M * K2 / 4);
  if (used > *tensor_nbytes(TensorType::TL2, K, M) - 32) return "TL2 data would not fit bitnet.cpp's tensor size";
  return "";
}

std::optional<TLTileConfig> default_tl1_config(int64_t M, int64_t K) {
  for (int64_t BM : {256, 160, 128, 96, 64, 32})
    for (int64_t BK : {256, 128, 64})
      if (TLTileConfig c{BM, BK, 32}; check_tl1_config(M, K, c).empty()) return c;
  return std::nullopt;
}

std::optional<TLTileConfig> default_tl2_config(int64_t M, int64_t K) {
  for (int64_t BM : {256, 160, 128, 96, 64, 32})
    for (int64_t BK : {192, 96, 48, 24})
      if (TLTileConfig c{BM, BK, 32}; check_tl2_config(M, K, c).empty()) return c;
  return std::nullopt;
}

std::vector<uint8_t> encode_tl1(const TernaryWeights& w, const TLTileConfig& c) {
  require(check_tl1_config(w.rows, w.cols, c));
  std::vector<uint8_t> out(*tensor_nbytes(TensorType::TL1, w.cols, w.rows), 0);
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t kp = 0; kp < w.cols / 2; ++kp) {
      const int8_t* p = &w.codes[r * w.cols + 2 * kp];
      put_nibble(out, tl1_pos(r, kp, w.cols, c), static_cast<uint8_t>(3 * p[0] + p[1] + 4));
    }
  return out;
}

TernaryWeights decode_tl1(const uint8_t* src, int64_t M, int64_t K, const TLTileConfig& c, float scale) {
  require(check_tl1_config(M, K, c));
  TernaryWeights w;
  w.rows = M;
  w.cols = K;
  w.codes.resize(static_cast<size_t>(M * K));
  for (int64_t r = 0; r < M; ++r)
    for (int64_t kp = 0; kp < K / 2; ++kp) {
      const int v = get_nibble(src, tl1_pos(r, kp, K, c));  // 3(a+1) + (b+1); 9..15 never written
      w.codes[r * K + 2 * kp] = v > 8 ? 0 : trit(v / 3);
      w.codes[r * K + 2 * kp + 1] = v > 8 ? 0 : trit(v % 3);
    }
  w.scale_block = static_cast<uint64_t>(M * K);
  w.scales = {scale};
  return w;
}

std::vector<uint8_t> encode_tl2(const TernaryWeights& w, const TLTileConfig& c) {
  require(check_tl2_config(w.rows, w.cols, c));
  const int64_t M = w.rows, K = w.cols, K2 = K % c.BK, K3 = K - K2;
  std::vector<uint8_t> out(*tensor_nbytes(TensorType::TL2, K, M), 0);
  const uint64_t sign_base = tl2_three_bytes(M, K3), two_base = sign_base + tl2_sign_bytes(M, K3);
  for (int64_t r = 0; r < M; ++r) {
    const int8_t* row = &w.codes[r * K];
    for (int64_t kt = 0; kt < K3 / 3; ++kt) {
      const int v = 9 * row[3 * kt] + 3 * row[3 * kt + 1] + row[3 * kt + 2];
      put_nibble(out, tl2_three_pos(r, kt, K3, c), static_cast<uint8_t>(v < 0 ? -v : v));
      if (v < 0) {
        const uint64_t bit = tl2_sign_bit(r, kt, K3, c);
        out[sign_base + bit / 8] |= static_cast<uint8_t>(1u << (bit % 8));
      }
    }
    for (int64_t kp = 0; kp < K2 / 2; ++kp) {
      const int8_t* p = &row[K3 + 2 * kp];
      NibblePos pos = tl2_two_pos(r, kp, K2, c);
      pos.byte += two_base;
      put_nibble(out, pos, static_cast<uint8_t>(3 * p[0] + p[1] + 4));
    }
  }
  return out;
}

TernaryWeights decode_tl2(const uint8_t* src, int64_t M, int64_t K, const TLTileConfig& c, float scale) {
  require(check_tl2_config(M, K, c));
  const int64_t K2 = K % c.BK, K3 = K - K2;
  const uint64_t sign_base = tl2_three_bytes(M, K3), two_base = sign_base + tl2_sign_bytes(M, K3);
  TernaryWeights w;
  w.rows = M;
  w.cols = K;
  w.codes.resize(static_cast<size_t>(M * K));
  for (int64_t r = 0; r < M; ++r) {
    int8_t* row = &w.codes[r * K];
    for (int64_t kt = 0; kt < K3 / 3; ++kt) {
      int v = get_nibble(src, tl2_three_pos(r, kt, K3, c));
      if (v > 13) v = 0;  // never written
      const uint64_t bit = tl2_sign_bit(r, kt, K3, c);
      if ((src[sign_base + bit / 8] >> (bit % 8)) & 1) v = -v;
      const int u = v + 13;  // 9(a+1) + 3(b+1) + (c+1)
      row[3 * kt] = trit(u / 9);
      row[3 * kt + 1] = trit(u / 3 % 3);
      row[3 * kt + 2] = trit(u % 3);
    }
    for (int64_t kp = 0; kp < K2 / 2; ++kp) {
      NibblePos pos = tl2_two_pos(r, kp, K2, c);
      pos.byte += two_base;
      const int v = get_nibble(src, pos);
      row[K3 + 2 * kp] = v > 8 ? 0 : trit(v / 3);
      row[K3 + 2 * kp + 1] = v > 8 ? 0 : trit(v % 3);
    }
  }
  w.scale_block = static_cast<uint64_t>(M * K);
  w.scales = {scale};
  return w;
}

}  // namespace bitnetc
