// A model file's fingerprint: what bitnet_model_load(path) checks a path against, and
// what the blob records of the file it was compiled from (BlobHeader::source_fingerprint).
// XXH3-64 (xxHash, header only): FNV-1a's byte-serial loop took 1.5 s of a core for a
// 1.2 GB model, at every compile and at every load by path; XXH3 runs at memory speed.
#pragma once

#include <cstdint>
#include <istream>
#include <memory>
#include <stdexcept>
#include <vector>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace bitnetc::rt {

// The fingerprint of everything `in` holds from where it stands.
inline uint64_t model_fingerprint(std::istream& in) {
  const std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(), XXH3_freeState);
  if (!state || XXH3_64bits_reset(state.get()) != XXH_OK) throw std::bad_alloc();
  std::vector<char> buf(4 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    XXH3_64bits_update(state.get(), buf.data(), static_cast<size_t>(in.gcount()));
  }
  return XXH3_64bits_digest(state.get());
}

}  // namespace bitnetc::rt
