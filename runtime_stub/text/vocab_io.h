// The byte form of a Vocab baked into compiled outputs.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "tokenizer.h"

namespace bitnetc::rt {

std::vector<uint8_t> serialize_vocab(const Vocab& v);
Vocab deserialize_vocab(std::span<const uint8_t> bytes);  // throws std::runtime_error

}  // namespace bitnetc::rt
